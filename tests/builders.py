"""The TF and TFF objects the tests train and aggregate with: the tiny
softmax model of `reference` as a TFF model, its datasets, the attacked process
on it, a tiny experiment config, and a runner for aggregation factories.

Set-up only: every expected value comes from `reference` (NumPy) or from the
paper's formula in the test itself.
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack.experiment import config as config_lib

import reference
from reference import INITIAL_BIAS
from reference import INITIAL_KERNEL
from reference import NUM_CLASSES
from reference import NUM_FEATURES


INPUT_SPEC = collections.OrderedDict(
    x=tf.TensorSpec([None, NUM_FEATURES], tf.float32),
    y=tf.TensorSpec([None, 1], tf.int32))


def model_fn():
  """One dense layer, deterministic initial weights, no dropout."""
  keras_model = tf.keras.Sequential([
      tf.keras.layers.Dense(
          NUM_CLASSES, input_shape=(NUM_FEATURES,),
          kernel_initializer=tf.keras.initializers.Constant(INITIAL_KERNEL),
          bias_initializer=tf.keras.initializers.Constant(INITIAL_BIAS))
  ])
  return tff.learning.models.from_keras_model(
      keras_model,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec=INPUT_SPEC,
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


def make_dataset(seed: int, n: int, batch_size: int = 2) -> tf.data.Dataset:
  x, y = reference.make_examples(seed, n)
  return tf.data.Dataset.from_tensor_slices(
      collections.OrderedDict(x=x, y=y)).batch(batch_size)


def union_examples(benign: tf.data.Dataset, malicious: tf.data.Dataset,
                   seed: int = 0):
  """(x, y) of D_trn ∪ D_mal in the order `attack_base.union` yields them.

  Only the order comes from the library (its seeded shuffle); the tests check
  separately that the union holds exactly the examples of both.
  """
  from targeted_attack.attacks import base as attack_base  # pylint: disable=g-import-not-at-top
  batches = list(attack_base.union(benign, malicious,
                                      tf.constant(seed, tf.int64)))
  x = np.concatenate([b['x'].numpy() for b in batches])
  y = np.concatenate([b['y'].numpy() for b in batches])
  return x, y


def attacked_process(aggregator, boost_factor: float = 10.0,
                     client_weighting=None):
  """The attacked process on `model_fn`: client SGD 0.1, server SGD 1.0,
  the unconstrained attack with β = `boost_factor`, `aggregator` plugged in
  (`client_weighting`: the process's, default its number of examples)."""
  from targeted_attack import attacked_fedavg  # pylint: disable=g-import-not-at-top
  from targeted_attack import process as process_lib  # pylint: disable=g-import-not-at-top
  return process_lib.build_federated_averaging_process_attacked(
      model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      model_update_aggregation_factory=aggregator,
      client_update_tf=attacked_fedavg.ClientExplicitBoosting(boost_factor),
      client_weighting=(client_weighting or
                        process_lib.ClientWeighting.NUM_EXAMPLES))


VALUE_TYPE = tff.StructWithPythonType(
    [('a', tff.TensorType(np.float32, [2, 3])),
     ('b', tff.TensorType(np.float32, [4]))], collections.OrderedDict)


WEIGHT_TYPE = tff.TensorType(np.float32)


def updates_with_norms(norms, seed=0):
  """Client updates with exactly the given global ℓ2 norms."""
  rng = np.random.RandomState(seed)
  updates = []
  for norm in norms:
    a, b = rng.randn(2, 3), rng.randn(4)
    scale = norm / np.sqrt(np.sum(a**2) + np.sum(b**2))
    updates.append(
        collections.OrderedDict(a=(a * scale).astype(np.float32),
                                b=(b * scale).astype(np.float32)))
  return updates


def flat(update):
  return np.concatenate([np.ravel(update['a']), np.ravel(update['b'])])


def run_aggregator(factory, updates, weights=None, rounds=1,
                   global_model=None):
  """`rounds` calls of `factory`'s process on `updates` (VALUE_TYPE); a
  factory that takes the global model (FLAME) is given `global_model`."""
  from targeted_attack.defenses import plumbing  # pylint: disable=g-import-not-at-top
  if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
    process = factory.create(VALUE_TYPE, WEIGHT_TYPE)
    weights = weights or [1.0] * len(updates)
    args = (updates, [np.float32(w) for w in weights])
  else:
    process = factory.create(VALUE_TYPE)
    args = (updates,)
  if plumbing.takes_global_model(factory):
    if global_model is None:
      raise ValueError('this factory takes the global model: pass one')
    args += (global_model,)
  state = process.initialize()
  outputs = []
  for _ in range(rounds):
    output = process.next(state, *args)
    state = output.state
    outputs.append(output)
  return outputs if rounds > 1 else outputs[0]


def tiny_config(tmp_path, **overrides):
  settings = dict(
      root_output_dir=str(tmp_path), experiment_name='tiny', random_seed=1,
      synthetic_num_clients=12, synthetic_examples_per_client=20,
      model='linear', num_clients_per_round=3, num_rounds=4, num_epochs=1,
      batch_size=10, task_num=2, attack='unconstrained', attack_freq=2,
      defense='clip', norm_bound=1.0, checkpoint_every=2)
  settings.update(overrides)
  return config_lib.ExperimentConfig(**settings)


def run_killed_in_round(config, round_num: int, monkeypatch) -> None:
  """`experiment.run.run(config)`, killed (KeyboardInterrupt) as round
  `round_num` starts: the rounds before it are written, as by a killed run."""
  import pytest  # pylint: disable=g-import-not-at-top
  from targeted_attack.data import sampling  # pylint: disable=g-import-not-at-top
  from targeted_attack.experiment import run as run_lib  # pylint: disable=g-import-not-at-top
  real_sample = sampling.sample_clients

  def dies(num_clients, per_round, seed, current_round):
    if current_round == round_num:
      raise KeyboardInterrupt('simulated kill')
    return real_sample(num_clients, per_round, seed, current_round)

  with monkeypatch.context() as patch:
    patch.setattr(sampling, 'sample_clients', dies)
    with pytest.raises(KeyboardInterrupt):
      run_lib.run(config, progress=False)
