"""Bagdasaryan et al. 2018's attacks: data poisoning, constrain-and-scale,
train-and-scale.

Data poisoning with a boost is also A3FL's local training (Zhang et al.
2023, Sec. 4), on the trigger its backdoor optimises (`backdoors.a3fl`).
"""

from typing import Optional

import tensorflow as tf

from targeted_attack import checks
from targeted_attack import update_math
from targeted_attack.attacks import base


class DataPoisoning(base.ClientUpdateStrategy):
  """The naive (black-box) data-poisoning attack (Bagdasaryan et al. 2018).

  The attacker follows the protocol on poisoned data: `num_passes` passes of
  ordinary local training over its benign batches with c = `poison_per_batch`
  items of each batch replaced by backdoor items (1: the protocol's training;
  DBA's attackers train longer); no projection. With `boost_factor`
  β (not None), it sends Δ = β · (w − w_t), β multiplied by `boost_share`
  (A3FL's attacker, `--attack=a3fl`: β = 1, the paper's, follows the
  protocol, and k attackers of a round each send 1/k of it with
  split_boost); None sends Δ = w − w_t. Its aggregation weight is its number
  of benign examples.
  """

  def __init__(self, poison_per_batch: int,
               boost_factor: Optional[float] = None, num_passes: int = 1):
    self.poison_per_batch = checks.integer('poison_per_batch', poison_per_batch)
    self.boost_factor = (None if boost_factor is None else
                         checks.positive('boost_factor', boost_factor))
    self.num_passes = checks.integer('poison_passes', num_passes)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    trainer.assign_trainable(initial_weights)
    poisoned = base.poison_batches(benign_dataset, malicious_dataset,
                                   self.poison_per_batch)
    for _ in range(self.num_passes):
      num_examples = trainer.train_pass(poisoned)
    return base.ClientDelta(
        base.boost(base.delta_from(trainer, initial_weights),
                   self.boost_factor, boost_share), num_examples)


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


class ConstrainAndScale(base.ClientUpdateStrategy):
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
                       malicious_dataset, boost_share) -> base.ClientDelta:
    trainer.assign_trainable(initial_weights)
    poisoned = base.poison_batches(benign_dataset, malicious_dataset,
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
    return base.ClientDelta(
        base.boost(base.delta_from(trainer, initial_weights), self.gamma,
                   boost_share), num_examples)


class TrainAndScale(base.ClientUpdateStrategy):
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
                       malicious_dataset, boost_share) -> base.ClientDelta:
    del boost_share
    trainer.assign_trainable(initial_weights)
    union = base.trainer_union(trainer, benign_dataset, malicious_dataset)
    for _ in range(self.num_passes):
      trainer.train_pass_without_metrics(union)
    delta = base.delta_from(trainer, initial_weights)
    gamma = tf.math.divide_no_nan(self.norm_bound,
                                  update_math.global_norm(delta))
    return base.ClientDelta(update_math.scale(delta, gamma),
                            base.count_examples(benign_dataset))
