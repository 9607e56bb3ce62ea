"""Client update strategies: what a benign or a malicious client sends.

One small class per attack, one protocol (`ClientUpdateStrategy`): given a
`LocalTrainer` at w_t, the client's benign and malicious datasets and whether it
is malicious, return `ClientDelta` (Δ = w − w_t, the number of benign examples
trained on, used as the aggregation weight). Called inside a `tf.function`.

A benign client's update is always its ordinary local training:
Δ_benign = LocalTrain(w_t, D_benign) − w_t.
"""

import abc
import math
from typing import NamedTuple

import tensorflow as tf

from targeted_attack import local_training


class ClientDelta(NamedTuple):
  """Δ = w − w_t as a structure like the trainable weights, and its weight."""
  delta: object
  num_benign_examples: tf.Tensor


def _check_finite_number(name: str, value) -> float:
  try:
    value = float(value)
  except (TypeError, ValueError):
    raise ValueError(f'`{name}` must be a finite number, got {value!r}.')
  if not math.isfinite(value):
    raise ValueError(f'`{name}` must be a finite number, got {value!r}.')
  return value


def _check_positive(name: str, value) -> float:
  value = _check_finite_number(name, value)
  if value <= 0:
    raise ValueError(f'`{name}` must be > 0, got {value!r}.')
  return value


def _check_count(name: str, value, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ValueError(f'`{name}` must be an integer >= {minimum}, got {value!r}.')
  return value


def benign_update(trainer: local_training.LocalTrainer, initial_weights,
                  benign_dataset) -> ClientDelta:
  """Δ_benign: one pass of local training on D_benign from w_t."""
  trainer.assign_trainable(initial_weights)
  num_examples = trainer.train_pass(benign_dataset)
  delta = local_training.subtract(trainer.read_trainable(), initial_weights)
  return ClientDelta(delta, num_examples)


class ClientUpdateStrategy(abc.ABC):
  """What a client sends; subclasses implement `malicious_update`."""

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
    self.boost_factor = _check_finite_number('boost_factor', boost_factor)

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

  def __init__(self, boost_factor: float, norm_bound: float, round_num: int):
    self.boost_factor = _check_finite_number('boost_factor', boost_factor)
    self.norm_bound = _check_positive('norm_bound', norm_bound)
    self.round_num = _check_count('round_num', round_num)

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
