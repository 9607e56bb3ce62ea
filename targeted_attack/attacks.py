"""Client update strategies: what a benign or a malicious client sends.

One small class per attack, one protocol (`ClientUpdateStrategy`): given a
`LocalTrainer` at w_t, the client's benign dataset D_trn and malicious dataset
D_mal (the backdoor items alone; a strategy that trains on D_trn ∪ D_mal forms
the union itself with `local_training.union`), whether it is malicious and its
share of the round's boost, return `ClientDelta` (Δ = w − w_t, and the number
of benign examples trained on, used as the aggregation weight). Called inside a
`tf.function`.

A benign client's update is always its ordinary local training:
Δ_benign = LocalTrain(w_t, D_trn) − w_t.

Several attackers in one round: Sun et al. (Sec. 3) and Bagdasaryan et al.
assume they coordinate and divide the boosted update evenly, so a boosting
strategy multiplies its boost by `boost_share` = 1/k for k attackers in the
round (the experiment's `split_boost` setting; 1 when off).
"""

import abc
from typing import NamedTuple

import tensorflow as tf

from targeted_attack import checks
from targeted_attack import local_training
from targeted_attack import update_math


class ClientDelta(NamedTuple):
  """Δ = w − w_t as a structure like the trainable weights, and its weight."""
  delta: object
  num_benign_examples: tf.Tensor


def benign_update(trainer: local_training.LocalTrainer, initial_weights,
                  benign_dataset) -> ClientDelta:
  """Δ_benign: one pass of local training on D_trn from w_t."""
  trainer.assign_trainable(initial_weights)
  num_examples = trainer.train_pass(benign_dataset)
  delta = update_math.subtract(trainer.read_trainable(), initial_weights)
  return ClientDelta(delta, num_examples)


def _delta_to(trainer, initial_weights):
  return update_math.subtract(trainer.read_trainable(), initial_weights)


def _union(trainer, benign_dataset, malicious_dataset):
  return local_training.union(benign_dataset, malicious_dataset,
                              trainer.seed[0])


class ClientUpdateStrategy(abc.ABC):
  """What a client sends; subclasses implement `malicious_update`."""

  def __call__(self, trainer, initial_weights, benign_dataset,
               malicious_dataset, is_malicious,
               boost_share=1.0) -> ClientDelta:
    if is_malicious:
      return self.malicious_update(trainer, initial_weights, benign_dataset,
                                   malicious_dataset, boost_share)
    return benign_update(trainer, initial_weights, benign_dataset)

  @abc.abstractmethod
  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    """The malicious client's Δ; `boost_share` scales any boost it applies."""


class NoAttack(ClientUpdateStrategy):
  """Every client follows the protocol: Δ = Δ_benign, malicious or not."""

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    del malicious_dataset, boost_share
    return benign_update(trainer, initial_weights, benign_dataset)


class ClientExplicitBoosting(ClientUpdateStrategy):
  """Explicit boosting, as in the original research code.

  Δ = Δ_benign + β · Δ_mal, where Δ_benign = LocalTrain(w_t, D_trn) − w_t
  and Δ_mal = LocalTrain(w_t, D_trn ∪ D_mal) − w_t are trained separately
  from w_t (β multiplied by `boost_share`). Sun et al.'s Eq. 1 sends
  β(w* − w_t) alone: that is `ModelReplacement`.
  """

  def __init__(self, boost_factor: float = 1.0):
    self.boost_factor = checks.number('boost_factor', boost_factor)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    benign = benign_update(trainer, initial_weights, benign_dataset)
    trainer.assign_trainable(initial_weights)
    trainer.train_pass_without_metrics(
        _union(trainer, benign_dataset, malicious_dataset))
    malicious_delta = _delta_to(trainer, initial_weights)
    delta = update_math.add_scaled(benign.delta, malicious_delta,
                                   self.boost_factor * boost_share)
    return ClientDelta(delta, benign.num_benign_examples)


class ModelReplacement(ClientUpdateStrategy):
  """Boosted model replacement (Sun et al. 2019, Eq. 1; Bagdasaryan Eq. 3).

  w* = LocalTrain(w_t, D_trn ∪ D_mal); Δ = β · (w* − w_t) (β multiplied by
  `boost_share`). With β = Σ_k n_k / (η n_k), w_{t+1} ≈ w*. Its aggregation
  weight is the number of benign examples in one pass.
  """

  def __init__(self, boost_factor: float):
    self.boost_factor = checks.positive('boost_factor', boost_factor)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    trainer.assign_trainable(initial_weights)
    trainer.train_pass_without_metrics(
        _union(trainer, benign_dataset, malicious_dataset))
    delta = update_math.scale(_delta_to(trainer, initial_weights),
                              self.boost_factor * boost_share)
    return ClientDelta(delta, local_training.count_examples(benign_dataset))


class ClientProjectBoost(ClientUpdateStrategy):
  """Norm-bounded (PGD) boosted attack (Sun et al. 2019, Sec. 3).

  From w = w_t, `round_num` times: one pass over D_trn, one pass over D_mal,
  then w ← w_t + Π_M(w − w_t), the projection onto the ℓ2 ball of radius
  M = `norm_bound` (global norm over all trainable tensors). Sends
  Δ = β · (w − w_t) (β multiplied by `boost_share`), so ‖Δ‖₂ ≤ β · M. Its
  aggregation weight is the number of benign examples in one pass.
  """

  def __init__(self, boost_factor: float, norm_bound: float, round_num: int):
    self.boost_factor = checks.number('boost_factor', boost_factor)
    self.norm_bound = checks.positive('norm_bound', norm_bound)
    self.round_num = checks.integer('round_num', round_num)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    trainer.assign_trainable(initial_weights)
    num_examples = tf.constant(0, tf.int64)
    for _ in range(self.round_num):
      num_examples = trainer.train_pass(benign_dataset)
      trainer.train_pass_without_metrics(malicious_dataset)
      delta = update_math.project_to_ball(
          _delta_to(trainer, initial_weights), self.norm_bound)
      trainer.assign_trainable(
          update_math.add_scaled(initial_weights, delta, 1.0))
    boosted = update_math.scale(_delta_to(trainer, initial_weights),
                                self.boost_factor * boost_share)
    return ClientDelta(boosted, num_examples)


class DataPoisoning(ClientUpdateStrategy):
  """The naive (black-box) data-poisoning attack (Bagdasaryan et al. 2018).

  The attacker follows the protocol on poisoned data: one pass of ordinary
  local training over its benign batches with c = `poison_per_batch` items of
  each batch replaced by backdoor items; no boosting, no projection.
  """

  def __init__(self, poison_per_batch: int):
    self.poison_per_batch = checks.integer('poison_per_batch', poison_per_batch)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    del boost_share
    trainer.assign_trainable(initial_weights)
    num_examples = trainer.train_pass(
        local_training.poison_batches(benign_dataset, malicious_dataset,
                                      self.poison_per_batch))
    return ClientDelta(_delta_to(trainer, initial_weights), num_examples)


ANOMALY_TERMS = ('l2', 'cosine')


def anomaly_loss(weights, initial_weights, anomaly: str) -> tf.Tensor:
  """L_ano: 'l2': ‖X − w_t‖₂; 'cosine': 1 − cos(X, w_t).

  ‖·‖ is the global norm over all tensors. The ℓ2 distance is taken as
  sqrt(‖X − w_t‖² + 1e-12) so that its gradient is defined at X = w_t. The
  cosine is between the two models as vectors (Bagdasaryan et al. 2018,
  Sec. 4: "cosine distance between models"); its gradient at X = w_t is 0.
  """
  if anomaly == 'l2':
    delta = update_math.subtract(weights, initial_weights)
    squared = tf.add_n([tf.reduce_sum(tf.square(d))
                        for d in tf.nest.flatten(delta)])
    return tf.sqrt(squared + 1e-12)
  x = tf.nest.flatten(weights)
  r = tf.nest.flatten(initial_weights)
  dot = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(x, r)])
  norms = update_math.global_norm(x) * update_math.global_norm(r)
  return 1.0 - tf.math.divide_no_nan(dot, norms)


class ConstrainAndScale(ClientUpdateStrategy):
  """Constrain-and-scale (Bagdasaryan et al. 2018, Algorithm 2).

  From X = w_t, up to `max_epochs` passes of SGD over the benign batches, c
  items of each replaced by backdoor items, on
      L = α · L_class + (1 − α) · L_ano(X),
  L_ano ∈ {ℓ2 distance to w_t, 1 − cos(X, w_t)}, at rate
  lr · decay^⌊t / step_size⌋ after t steps; it stops after the first pass
  whose backdoor loss (on D_mal) is below ε. It sends
  L̃ − w_t = γ · (X − w_t) (γ multiplied by `boost_share`).
  """

  def __init__(self, alpha: float, gamma: float, anomaly: str = 'l2',
               poison_per_batch: int = 5, learning_rate: float = 0.1,
               lr_decay: float = 0.1, lr_step_size: int = 1000,
               max_epochs: int = 5, early_stop_loss: float = 0.0):
    self.alpha = checks.fraction('alpha', alpha)
    self.gamma = checks.positive('gamma', gamma)
    self.anomaly = checks.choice('anomaly', anomaly, ANOMALY_TERMS)
    self.poison_per_batch = checks.integer('poison_per_batch', poison_per_batch)
    self.learning_rate = checks.positive('learning_rate', learning_rate)
    self.lr_decay = checks.positive('lr_decay', lr_decay)
    self.lr_step_size = checks.integer('lr_step_size', lr_step_size)
    self.max_epochs = checks.integer('max_epochs', max_epochs)
    self.early_stop_loss = checks.number('early_stop_loss', early_stop_loss)

  def learning_rate_at(self, step):
    exponent = tf.math.floordiv(tf.cast(step, tf.int64), self.lr_step_size)
    return self.learning_rate * tf.pow(self.lr_decay,
                                       tf.cast(exponent, tf.float32))

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
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
    delta = update_math.scale(_delta_to(trainer, initial_weights),
                              self.gamma * boost_share)
    return ClientDelta(delta, num_examples)


class TrainAndScale(ClientUpdateStrategy):
  """Train-and-scale (Bagdasaryan et al. 2018, Eq. 5).

  Train on D_trn ∪ D_mal (`num_passes` passes of local training, "to
  convergence"), then scale by γ = S / ‖X − w_t‖₂, so the update sits exactly
  at the bound S = `norm_bound` that the server allows (each attacker at the
  bound: no boost to share).
  """

  def __init__(self, norm_bound: float, num_passes: int = 1):
    self.norm_bound = checks.positive('norm_bound', norm_bound)
    self.num_passes = checks.integer('num_passes', num_passes)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    del boost_share
    trainer.assign_trainable(initial_weights)
    union = _union(trainer, benign_dataset, malicious_dataset)
    for _ in range(self.num_passes):
      trainer.train_pass_without_metrics(union)
    delta = _delta_to(trainer, initial_weights)
    gamma = tf.math.divide_no_nan(self.norm_bound,
                                  update_math.global_norm(delta))
    return ClientDelta(update_math.scale(delta, gamma),
                       local_training.count_examples(benign_dataset))


class PGDAttack(ClientUpdateStrategy):
  """PGD with or without model replacement (Wang et al. 2020).

  SGD at rate `learning_rate` on D_trn ∪ D_mal for `num_passes` passes; every
  `project_frequency` steps (and at the end) w ← w_t + Π_ε(w − w_t), the
  projection onto the ℓ2 ball of radius ε = `eps` around w_t. With model
  replacement, the update is then multiplied by `replacement_scale` (the boost
  β, times `boost_share`); the experiment uses ε = M/β then, so the sent norm
  is at most M.
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
                       malicious_dataset, boost_share) -> ClientDelta:
    trainer.assign_trainable(initial_weights)

    def project(weights):
      delta = update_math.project_to_ball(
          update_math.subtract(weights, initial_weights), self.eps)
      return update_math.add_scaled(initial_weights, delta, 1.0)

    def after_step(step, weights):
      return tf.cond(tf.equal(step % self.project_frequency, 0),
                     lambda: project(weights), lambda: weights)

    union = _union(trainer, benign_dataset, malicious_dataset)
    step = tf.constant(0, tf.int64)
    for _ in range(self.num_passes):
      _, step = trainer.sgd_pass(union, lambda t: self.learning_rate,
                                 after_step=after_step, initial_step=step)
    trainer.assign_trainable(project(trainer.read_trainable()))
    scale = self.replacement_scale
    if scale != 1.0:
      scale = scale * boost_share
    delta = update_math.scale(_delta_to(trainer, initial_weights), scale)
    return ClientDelta(delta, local_training.count_examples(benign_dataset))
