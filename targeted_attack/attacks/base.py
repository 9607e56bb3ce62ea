"""The client update strategy, and the post-steps every attack shares.

An attack says *how a malicious update is formed*; what it trains on (D_mal,
the backdoor) is the other axis, chosen independently (`backdoors/`).

One protocol (`ClientUpdateStrategy`): given a `LocalTrainer` at w_t
(`process.local_training`), the client's benign dataset D_trn and malicious
dataset D_mal (the backdoor items alone; a strategy that trains on
D_trn ∪ D_mal forms the union itself with `union`), whether it is malicious
and its share of the round's boost, return `ClientDelta` (Δ = w − w_t, and the
number of benign examples trained on, used as the aggregation weight). Called
inside a `tf.function`.

A benign client's update is always its ordinary local training:
Δ_benign = LocalTrain(w_t, D_trn) − w_t.

The post-steps, written once here: `delta_from` (Δ = w − w_t),
`project_around` (w_t + Π_ε(w − w_t), the PGD projection) and `boost`
(β · share · Δ). Several attackers in one round: Sun et al. (Sec. 3) and
Bagdasaryan et al. assume they coordinate and divide the boosted update
evenly, so a boosting strategy multiplies its boost by `boost_share` = 1/k
for k attackers in the round (the experiment's `split_boost` setting; 1 when
off).
"""

import abc
from typing import NamedTuple, Optional

import tensorflow as tf

from targeted_attack import update_math
from targeted_attack import dataset_loops


class ClientDelta(NamedTuple):
  """Δ = w − w_t as a structure like the trainable weights, and its weight."""
  delta: object
  num_benign_examples: tf.Tensor


def delta_from(trainer, initial_weights):
  """Δ = w − w_t, w the trainer's current trainable weights."""
  return update_math.subtract(trainer.read_trainable(), initial_weights)


def project_around(weights, center, radius):
  """center + Π_radius(weights − center): the ℓ2 ball of `radius` around w_t."""
  delta = update_math.project_to_ball(update_math.subtract(weights, center),
                                      radius)
  return update_math.add_scaled(center, delta, 1.0)


def boost(delta, boost_factor: Optional[float], boost_share):
  """β · share · Δ (β = `boost_factor`); Δ itself when β is None (no boost)."""
  if boost_factor is None:
    return delta
  return update_math.scale(delta, boost_factor * boost_share)


# The dropout pass index of the protocol's benign pass: fixed, so a benign
# client's masks do not depend on which attack's passes were traced before it
# (a trainer's other passes count from 1).
BENIGN_DROPOUT_PASS = 0


def benign_update(trainer, initial_weights, benign_dataset) -> ClientDelta:
  """Δ_benign: one pass of local training on D_trn from w_t, its dropout
  masks those of pass `BENIGN_DROPOUT_PASS` whatever the strategy traced
  before it."""
  trainer.assign_trainable(initial_weights)
  num_examples = trainer.train_pass(benign_dataset,
                                    dropout_pass=BENIGN_DROPOUT_PASS)
  return ClientDelta(delta_from(trainer, initial_weights), num_examples)


class ClientUpdateStrategy(abc.ABC):
  """What a client sends; subclasses implement `malicious_update`."""

  def __call__(self, trainer, initial_weights, benign_dataset,
               malicious_dataset, is_malicious,
               boost_share=1.0) -> ClientDelta:
    """A malicious client's update trains outside the protocol: client-side
    DP-SGD (`trainer.dp_sgd`) is off for all its passes, since a malicious
    client has no reason to add noise to what it sends."""

    def malicious():
      trainer.follows_protocol = False
      result = self.malicious_update(trainer, initial_weights, benign_dataset,
                                     malicious_dataset, boost_share)
      trainer.follows_protocol = True
      return result

    return tf.cond(tf.cast(is_malicious, tf.bool), malicious,
                   lambda: benign_update(trainer, initial_weights,
                                         benign_dataset))

  @abc.abstractmethod
  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    """The malicious client's Δ; `boost_share` scales any boost it applies."""


class OnUnion(ClientUpdateStrategy):
  """`strategy`, handed D_trn ∪ D_mal (`trainer_union`) as its malicious
  dataset: how the experiment gives a strategy that trains on the malicious
  dataset it is given (the original `ClientExplicitBoosting`) the attacker's
  own data plus the backdoor."""

  def __init__(self, strategy: ClientUpdateStrategy):
    self.strategy = strategy

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    return self.strategy.malicious_update(
        trainer, initial_weights, benign_dataset,
        trainer_union(trainer, benign_dataset, malicious_dataset),
        boost_share)


class NoAttack(ClientUpdateStrategy):
  """Every client follows the protocol: Δ = Δ_benign, malicious or not."""

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> ClientDelta:
    del malicious_dataset, boost_share
    return benign_update(trainer, initial_weights, benign_dataset)


# ---------------------------------------------------------------------------
# What an attacker trains on, built from D_trn and D_mal (TF datasets).


def union(benign: tf.data.Dataset, malicious: tf.data.Dataset,
          seed) -> tf.data.Dataset:
  """D_trn ∪ D_mal: the examples of both, shuffled together, rebatched.

  The examples are gathered into tensors and permuted by a stateless shuffle
  of `seed` (int64 scalar, paired with a constant), so the order depends on
  the seed alone; batches have the size of the larger first batch of the two.
  """
  batch_size = tf.maximum(batch_size_of(benign), batch_size_of(malicious))
  examples = benign.unbatch().concatenate(malicious.unbatch())
  everything = examples.batch(2**31 - 1).get_single_element()
  count = tf.shape(tf.nest.flatten(everything)[0])[0]
  order = tf.random.experimental.stateless_shuffle(
      tf.range(count), tf.stack([tf.cast(seed, tf.int64),
                                 tf.constant(0x5eed, tf.int64)]))
  shuffled = tf.nest.map_structure(lambda t: tf.gather(t, order), everything)
  return tf.data.Dataset.from_tensor_slices(shuffled).batch(
      tf.cast(tf.maximum(batch_size, 1), tf.int64))


def trainer_union(trainer, benign_dataset, malicious_dataset):
  """`union` shuffled by the client's own seed."""
  return union(benign_dataset, malicious_dataset, trainer.seed[0])


def poison_batches(benign: tf.data.Dataset, backdoor: tf.data.Dataset,
                   poison_per_batch: int) -> tf.data.Dataset:
  """Each benign batch with its first c items replaced by backdoor items.

  Backdoor items are taken in order, cycling (Bagdasaryan et al. 2018,
  Alg. 2: "replace c items of each batch").
  """
  poison = backdoor.unbatch().repeat().batch(poison_per_batch)

  def replace(batch, items):
    return tf.nest.map_structure(
        lambda b, p: tf.concat([p, b[poison_per_batch:]], axis=0), batch,
        items)

  return tf.data.Dataset.zip((benign, poison)).map(replace)


def batch_size_of(dataset: tf.data.Dataset) -> tf.Tensor:
  """The number of rows of the first batch of `dataset` (0 when empty)."""
  return dataset_loops.fold_batches(
      dataset.take(1), tf.constant(0, tf.int64), lambda _, batch: tf.shape(
          tf.nest.flatten(batch)[0], out_type=tf.int64)[0])


def count_examples(dataset: tf.data.Dataset) -> tf.Tensor:
  """The number of examples (rows of its batches) in one pass of `dataset`."""
  return dataset_loops.fold_batches(
      dataset, tf.constant(0, tf.int64), lambda count, batch: count + tf.shape(
          tf.nest.flatten(batch)[0], out_type=tf.int64)[0])
