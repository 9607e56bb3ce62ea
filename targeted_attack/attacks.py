"""Client update strategies: what a benign or a malicious client sends.

One small class per attack, one protocol (`ClientUpdateStrategy`): given a
`LocalTrainer` at w_t, the client's benign and malicious datasets and whether it
is malicious, return `ClientDelta` (Δ = w − w_t, the number of benign examples
trained on, used as the aggregation weight). Called inside a `tf.function`.

A benign client's update is always its ordinary local training:
Δ_benign = LocalTrain(w_t, D_benign) − w_t.
"""

import abc
from typing import NamedTuple

import tensorflow as tf

from targeted_attack import checks
from targeted_attack import local_training


class ClientDelta(NamedTuple):
  """Δ = w − w_t as a structure like the trainable weights, and its weight."""
  delta: object
  num_benign_examples: tf.Tensor


def benign_update(trainer: local_training.LocalTrainer, initial_weights,
                  benign_dataset) -> ClientDelta:
  """Δ_benign: one pass of local training on D_benign from w_t."""
  trainer.assign_trainable(initial_weights)
  num_examples = trainer.train_pass(benign_dataset)
  delta = local_training.subtract(trainer.read_trainable(), initial_weights)
  return ClientDelta(delta, num_examples)


class ClientUpdateStrategy(abc.ABC):
  """What a client sends; subclasses implement `malicious_update`.

  `malicious_includes_benign`: whether the experiment should hand the attacker
  D_trn ∪ D_mal (its own benign data with the backdoor items) as the malicious
  dataset, or the backdoor items D_mal alone (attacks that mix them in
  themselves).
  """

  malicious_includes_benign = True

  def __call__(self, trainer, initial_weights, benign_dataset,
               malicious_dataset, is_malicious) -> ClientDelta:
    if is_malicious:
      return self.malicious_update(trainer, initial_weights, benign_dataset,
                                   malicious_dataset)
    return benign_update(trainer, initial_weights, benign_dataset)

  @abc.abstractmethod
  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset) -> ClientDelta:
    """The malicious client's Δ (must also train on its benign data)."""


class ClientExplicitBoosting(ClientUpdateStrategy):
  """Explicit boosting (Sun et al. 2019, Sec. 3; Bagdasaryan et al. Eq. 3).

  Δ = Δ_benign + β · Δ_mal, where Δ_mal = LocalTrain(w_t, D_mal) − w_t and
  Δ_benign = LocalTrain(w_t, D_benign) − w_t are trained separately from w_t.
  With β = Σ_k n_k / (η n_k) this is model replacement.
  """

  def __init__(self, boost_factor: float = 1.0):
    self.boost_factor = checks.number('boost_factor', boost_factor)

  def __call__(self, trainer, initial_weights, benign_dataset,
               malicious_dataset, is_malicious) -> ClientDelta:
    # A benign client's malicious dataset is empty, so Δ_mal = 0 and the
    # formula reduces to Δ_benign: no branch is needed.
    del is_malicious
    return self.malicious_update(trainer, initial_weights, benign_dataset,
                                 malicious_dataset)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset) -> ClientDelta:
    benign = benign_update(trainer, initial_weights, benign_dataset)
    trainer.assign_trainable(initial_weights)
    trainer.train_pass_without_metrics(malicious_dataset)
    malicious_delta = local_training.subtract(trainer.read_trainable(),
                                              initial_weights)
    delta = local_training.add_scaled(benign.delta, malicious_delta,
                                      self.boost_factor)
    return ClientDelta(delta, benign.num_benign_examples)


class ClientProjectBoost(ClientUpdateStrategy):
  """Norm-bounded (PGD) boosted attack (Sun et al. 2019, Sec. 3).

  From w = w_t, `round_num` times: one pass over D_benign, one pass over D_mal,
  then w ← w_t + Π_M(w − w_t), the projection onto the ℓ2 ball of radius
  M = `norm_bound` (global norm over all trainable tensors). Sends
  Δ = β · (w − w_t), so ‖Δ‖₂ ≤ β · M. Its aggregation weight is the number of
  benign examples in one pass.
  """

  malicious_includes_benign = False

  def __init__(self, boost_factor: float, norm_bound: float, round_num: int):
    self.boost_factor = checks.number('boost_factor', boost_factor)
    self.norm_bound = checks.positive('norm_bound', norm_bound)
    self.round_num = checks.integer('round_num', round_num)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset) -> ClientDelta:
    trainer.assign_trainable(initial_weights)
    num_examples = tf.constant(0, tf.int64)
    for _ in range(self.round_num):
      num_examples = trainer.train_pass(benign_dataset)
      trainer.train_pass_without_metrics(malicious_dataset)
      delta = local_training.subtract(trainer.read_trainable(),
                                      initial_weights)
      delta = local_training.project_to_ball(delta, self.norm_bound)
      trainer.assign_trainable(
          local_training.add_scaled(initial_weights, delta, 1.0))
    delta = local_training.subtract(trainer.read_trainable(), initial_weights)
    boosted = tf.nest.map_structure(lambda d: self.boost_factor * d, delta)
    return ClientDelta(boosted, num_examples)


def _delta_to(trainer, initial_weights):
  return local_training.subtract(trainer.read_trainable(), initial_weights)


def _scaled(delta, scale):
  return tf.nest.map_structure(lambda d: scale * d, delta)


class DataPoisoning(ClientUpdateStrategy):
  """The naive (black-box) data-poisoning attack (Bagdasaryan et al. 2018).

  The attacker follows the protocol on poisoned data: one pass of ordinary
  local training over its benign batches with c = `poison_per_batch` items of
  each batch replaced by backdoor items; no boosting, no projection.
  """

  malicious_includes_benign = False

  def __init__(self, poison_per_batch: int):
    self.poison_per_batch = checks.integer('poison_per_batch', poison_per_batch)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset) -> ClientDelta:
    trainer.assign_trainable(initial_weights)
    num_examples = trainer.train_pass(
        local_training.poison_batches(benign_dataset, malicious_dataset,
                                      self.poison_per_batch))
    return ClientDelta(_delta_to(trainer, initial_weights), num_examples)


ANOMALY_TERMS = ('l2', 'cosine')


def anomaly_loss(weights, initial_weights, anomaly: str) -> tf.Tensor:
  """L_ano: 'l2': ‖w − w_t‖₂; 'cosine': 1 − cos(w − w_t, w_t).

  ‖·‖ is the global norm over all tensors; the ℓ2 distance is taken as
  sqrt(‖w − w_t‖² + 1e-12) so that its gradient is defined at w = w_t.
  """
  delta = tf.nest.flatten(local_training.subtract(weights, initial_weights))
  reference = tf.nest.flatten(initial_weights)
  squared = tf.add_n([tf.reduce_sum(tf.square(d)) for d in delta])
  if anomaly == 'l2':
    return tf.sqrt(squared + 1e-12)
  dot = tf.add_n([tf.reduce_sum(d * r) for d, r in zip(delta, reference)])
  norms = tf.sqrt(squared + 1e-12) * local_training.global_norm(reference)
  return 1.0 - tf.math.divide_no_nan(dot, norms)


class ConstrainAndScale(ClientUpdateStrategy):
  """Constrain-and-scale (Bagdasaryan et al. 2018, Algorithm 2).

  From X = w_t, up to `max_epochs` passes of SGD over the benign batches, c
  items of each replaced by backdoor items, on
      L = α · L_class + (1 − α) · L_ano(X),
  L_ano ∈ {ℓ2 distance to w_t, 1 − cos(X − w_t, w_t)}, at rate
  lr · decay^⌊t / step_size⌋ after t steps; it stops after the first pass
  whose backdoor loss (on D_mal) is below ε. It sends
  L̃ − w_t = γ · (X − w_t), i.e. the model γ(X − w_t) + w_t.
  """

  malicious_includes_benign = False

  def __init__(self, alpha: float, gamma: float, anomaly: str = 'l2',
               poison_per_batch: int = 5, learning_rate: float = 0.1,
               lr_decay: float = 0.1, lr_step_size: int = 1000,
               max_epochs: int = 5, early_stop_loss: float = 0.0):
    self.alpha = checks.fraction('alpha', alpha)
    self.gamma = checks.positive('gamma', gamma)
    if anomaly not in ANOMALY_TERMS:
      raise ValueError(f'`anomaly` must be one of {ANOMALY_TERMS}, got '
                       f'{anomaly!r}.')
    self.anomaly = anomaly
    self.poison_per_batch = checks.integer('poison_per_batch', poison_per_batch)
    self.learning_rate = checks.positive('learning_rate', learning_rate)
    self.lr_decay = checks.positive('lr_decay', lr_decay)
    self.lr_step_size = checks.integer('lr_step_size', lr_step_size)
    self.max_epochs = checks.integer('max_epochs', max_epochs)
    self.early_stop_loss = checks.number('early_stop_loss',
                                                early_stop_loss)

  def learning_rate_at(self, step):
    exponent = tf.math.floordiv(tf.cast(step, tf.int64), self.lr_step_size)
    return self.learning_rate * tf.pow(self.lr_decay,
                                       tf.cast(exponent, tf.float32))

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset) -> ClientDelta:
    trainer.assign_trainable(initial_weights)
    poisoned = local_training.poison_batches(benign_dataset, malicious_dataset,
                                             self.poison_per_batch)
    regularizer = lambda w: (1.0 - self.alpha) * anomaly_loss(
        w, initial_weights, self.anomaly)
    step = tf.constant(0, tf.int64)
    num_examples = tf.constant(0, tf.int64)
    for _ in tf.range(self.max_epochs):
      num_examples, step = trainer.sgd_pass(
          poisoned, self.learning_rate_at, class_loss_weight=self.alpha,
          regularizer=regularizer, initial_step=step)
      if trainer.mean_loss(malicious_dataset) < self.early_stop_loss:
        break
    delta = _scaled(_delta_to(trainer, initial_weights), self.gamma)
    return ClientDelta(delta, num_examples)


class TrainAndScale(ClientUpdateStrategy):
  """Train-and-scale (Bagdasaryan et al. 2018, Eq. 5).

  Train on D_trn ∪ D_mal (`num_passes` passes of local training, "to
  convergence"), then scale by γ = S / ‖X − w_t‖₂, so the update sits exactly
  at the bound S = `norm_bound` that the server allows.
  """

  def __init__(self, norm_bound: float, num_passes: int = 1):
    self.norm_bound = checks.positive('norm_bound', norm_bound)
    self.num_passes = checks.integer('num_passes', num_passes)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset) -> ClientDelta:
    trainer.assign_trainable(initial_weights)
    for _ in range(self.num_passes):
      trainer.train_pass_without_metrics(malicious_dataset)
    delta = _delta_to(trainer, initial_weights)
    gamma = tf.math.divide_no_nan(self.norm_bound,
                                  local_training.global_norm(delta))
    return ClientDelta(_scaled(delta, gamma),
                       local_training.count_examples(benign_dataset))


class PGDAttack(ClientUpdateStrategy):
  """PGD with or without model replacement (Wang et al. 2020).

  SGD at rate `learning_rate` on D_trn ∪ D_mal for `num_passes` passes; every
  `project_frequency` steps (and at the end) w ← w_t + Π_ε(w − w_t), the
  projection onto the ℓ2 ball of radius ε = `eps` around w_t. With
  `replacement_scale` (model replacement: the number of clients per round)
  the update is then multiplied by it.
  """

  def __init__(self, eps: float, project_frequency: int = 1,
               learning_rate: float = 0.1, num_passes: int = 1,
               replacement_scale: float = 1.0):
    self.eps = checks.positive('eps', eps)
    self.project_frequency = checks.integer('project_frequency',
                                          project_frequency)
    self.learning_rate = checks.positive('learning_rate', learning_rate)
    self.num_passes = checks.integer('num_passes', num_passes)
    self.replacement_scale = checks.positive('replacement_scale',
                                             replacement_scale)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset) -> ClientDelta:
    trainer.assign_trainable(initial_weights)

    def project(weights):
      delta = local_training.project_to_ball(
          local_training.subtract(weights, initial_weights), self.eps)
      return local_training.add_scaled(initial_weights, delta, 1.0)

    def after_step(step, weights):
      return tf.cond(tf.equal(step % self.project_frequency, 0),
                     lambda: project(weights), lambda: weights)

    step = tf.constant(0, tf.int64)
    for _ in range(self.num_passes):
      _, step = trainer.sgd_pass(malicious_dataset,
                                 lambda t: self.learning_rate,
                                 after_step=after_step, initial_step=step)
    trainer.assign_trainable(project(trainer.read_trainable()))
    delta = _scaled(_delta_to(trainer, initial_weights),
                    self.replacement_scale)
    return ClientDelta(delta, local_training.count_examples(benign_dataset))
