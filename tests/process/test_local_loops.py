"""Local training's loops (`dataset_loops.fold_batches`) and the CNNs'
step-seeded dropout: the arithmetic against NumPy, the loop kinds against
each other, and the masks a function of the client's own seed only."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import dataset_loops
from targeted_attack import process as process_lib
from targeted_attack import runtime
from targeted_attack.attacks import base as attack_base
from targeted_attack.attacks import boosting
from targeted_attack.backdoors import semantic
from targeted_attack.data import federated
from targeted_attack.process import round_data
from targeted_attack.process import local_training
from targeted_attack.process import models
import builders


@pytest.mark.parametrize('loop', dataset_loops.LOOP_KINDS)
@pytest.mark.parametrize('n', [0, 1, 7])
def test_fold_sums_batches_and_counts_as_numpy(loop, n):
  values = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
  dataset = tf.data.Dataset.from_tensor_slices(values).batch(2)

  @tf.function
  def fold():
    return dataset_loops.fold_batches(
        dataset, (tf.zeros([3]), tf.constant(0, tf.int64)),
        lambda s, b: (s[0] + tf.reduce_sum(b, 0), s[1] + 1), loop)

  total, batches = fold()
  np.testing.assert_allclose(total, values.sum(0), rtol=1e-6, atol=1e-6)
  assert int(batches) == -(-n // 2)


def test_fold_in_a_tff_computations_graph_mode_body_still_runs():
  # Outside a tf.function no iterator can be made: it falls back to reduce.
  @tff.tensorflow.computation(tff.SequenceType(np.int64))
  def total(dataset):
    return dataset_loops.fold_batches(dataset, tf.constant(0, tf.int64),
                                      lambda s, x: s + x)

  assert total(list(range(5))) == 10


def test_an_unknown_loop_kind_is_named():
  with pytest.raises(ValueError, match='loop.*iterator'):
    dataset_loops.fold_batches(tf.data.Dataset.range(2), 0, None, 'scan')
  with pytest.raises(ValueError, match='local_loop'):
    process_lib.build_federated_averaging_process_attacked(
        builders.model_fn, local_loop='scan')


def _dropout_output(seed, x, rate=0.5):
  layer = models.StepSeededDropout(rate, seed=3)
  variable = tf.Variable(tf.constant(seed, tf.int64))
  with models.step_seed(variable):
    return layer(x, training=True).numpy()


def test_step_seeded_dropout_keeps_or_scales_each_input_by_its_seed():
  x = tf.ones([400, 50])
  y = _dropout_output([1, 2], x)
  # Each output is 0 or x / (1 − rate); the kept share is Binomial(n, 1/2).
  assert set(np.unique(y)) <= {0.0, 2.0}
  kept = (y > 0).mean()
  assert abs(kept - 0.5) < 4 * np.sqrt(0.25 / y.size)
  np.testing.assert_array_equal(y, _dropout_output([1, 2], x))
  assert not np.array_equal(y, _dropout_output([1, 3], x))
  # Out of a step's scope, or not training: Keras' Dropout.
  layer = models.StepSeededDropout(0.5, seed=3)
  np.testing.assert_array_equal(layer(x, training=False), x)


def _train_small_cnn(client_seed, loop, num_passes=2):
  """The trainable weights of small_cnn after `num_passes` passes of SGD on
  the same 6 examples, from the same start, with this client seed."""
  rng = np.random.default_rng(5)
  dataset = tf.data.Dataset.from_tensor_slices(dict(
      x=rng.uniform(size=(6, 28, 28, 1)).astype(np.float32),
      y=rng.integers(0, 10, size=(6, 1)).astype(np.int32))).batch(3)
  trainer = local_training.LocalTrainer(
      models.build_model_fn('small_cnn')(),
      tff.learning.optimizers.build_sgdm(0.1), loop=loop)

  @tf.function
  def train(seed):
    trainer.set_seed(seed)
    for _ in range(num_passes):
      trainer.train_pass(dataset)
    return trainer.read_trainable()

  return [w.numpy() for w in train(tf.constant(client_seed, tf.int64))]


def test_dropout_masks_depend_on_the_clients_seed_not_the_loop():
  a = _train_small_cnn([4, 1], 'iterator')
  for other in (_train_small_cnn([4, 1], 'reduce'),
                _train_small_cnn([4, 1], 'iterator')):
    for u, v in zip(a, other):
      np.testing.assert_array_equal(u, v)
  # Another client (seed), the same data: other masks, another model.
  b = _train_small_cnn([4, 2], 'iterator')
  assert any(not np.array_equal(u, v) for u, v in zip(a, b))


def test_concurrent_clients_with_dropout_repeat_exactly():
  # 4 clients at once (4 threads) on small_cnn, an attacker among them: the
  # same round from the same state twice gives the same model (with Keras'
  # stateful dropout under the iterator loop, it did not).
  runtime.set_local_execution_context(kind='in_process', max_concurrency=4)
  pool = federated.load_synthetic(8, 12, seed=0)
  task = semantic.select_backdoor_task(pool, 2, seed=0)
  client_data = round_data.round_client_data(
      pool, task, np.arange(4), np.arange(4) < 1, 2, 4, 0, 0)
  try:
    process = process_lib.build_federated_averaging_process_attacked(
        models.build_model_fn('small_cnn'),
        client_update_tf=attack_base.OnUnion(
            boosting.ClientExplicitBoosting(4.0)))
    state = process.initialize()
    first, second = (
        [np.asarray(w) for w in process.get_model_weights(
            process.next(state, client_data).state).trainable]
        for _ in range(2))
  finally:
    runtime.set_local_execution_context()
  for u, v in zip(first, second):
    np.testing.assert_array_equal(u, v)


def test_two_clients_with_the_same_data_draw_different_masks():
  # Before 0.7 every client's pass restarted one stateful stream: two clients
  # with the same data sent the same update. Now each draws from its seed.
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(20, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, (20, 1)).astype(np.int32)
  dataset = lambda: tf.data.Dataset.from_tensor_slices(dict(x=x, y=y)).batch(10)
  process = process_lib.build_federated_averaging_process_attacked(
      models.build_model_fn('small_cnn'))
  data = process_lib.build_client_data([dataset(), dataset()], [None, None],
                                       seeds=[[1, 7], [2, 9]])
  clients = process.next(process.initialize(),
                         data).metrics['client_work']['clients']
  # ‖Δ₁‖ ≠ ‖Δ₂‖: their max exceeds their mean.
  assert clients['benign_update_norm_max'] > (
      clients['benign_update_norm_mean'] * (1 + 1e-4))
