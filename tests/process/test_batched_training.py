"""The benign clients trained together (`process.batched_training`): SGD and
momentum against NumPy on uneven clients, the stacked forward pass and
dropout against each client's own Keras model and layer, and whole rounds
against the per-client computation (the tolerance the docs state)."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import process as process_lib
from targeted_attack import runtime
from targeted_attack.attacks import base as attack_base
from targeted_attack.attacks import boosting
from targeted_attack.attacks import omniscient
from targeted_attack.backdoors import semantic
from targeted_attack.data import federated
from targeted_attack.defenses import dp_sgd
from targeted_attack.process import batched_training
from targeted_attack.process import dataset_arrays
from targeted_attack.process import models
from targeted_attack.process import round_data
import builders
import reference

# Batched against per-client: the largest difference of any weight after a
# round from the same state, as the docs state it.
TOLERANCE = 1e-6


@pytest.fixture(autouse=True, scope='module')
def in_process_context():
  """Clients are batched under the in-process context only (CI also runs
  this directory under TFF's C++ one): set it here, and restore after."""
  runtime.set_local_execution_context(kind='in_process')
  yield
  runtime.set_local_execution_context()


def _numpy_momentum_pass(weights, x, y, lr, momentum, batch_size):
  """Heavy-ball SGD over (x, y) in order: a ← μa + g, w ← w − ηa (μ = 0:
  plain SGD), in float64, from `reference.ce_gradients`."""
  weights = [w.astype(np.float64) for w in weights]
  accumulators = [np.zeros_like(w) for w in weights]
  for start in range(0, len(x), batch_size):
    gradients = reference.ce_gradients(weights, x[start:start + batch_size],
                                       y[start:start + batch_size])
    accumulators = [momentum * a + g for a, g in zip(accumulators, gradients)]
    weights = [w - lr * a for w, a in zip(weights, accumulators)]
  return weights


@pytest.mark.parametrize('momentum', [None, 0.9])
def test_uneven_clients_train_as_numpy_sgd(momentum):
  sizes = [5, 0, 2, 7]  # batches of 2: 3, 0, 1 and 4 steps, partial last ones
  optimizer = tff.learning.optimizers.build_sgdm(0.1, momentum=momentum)
  trainer = batched_training.BatchedBenignTrainer(builders.model_fn,
                                                  optimizer)
  datasets = [builders.make_dataset(seed, n) for seed, n in enumerate(sizes)]
  x, y, rows = batched_training.pad_client_batches(
      datasets, trainer.x_spec, trainer.y_spec)
  assert rows.tolist() == [[2, 2, 1, -1], [-1, -1, -1, -1], [2, -1, -1, -1],
                           [2, 2, 2, 1]]
  initial = [reference.INITIAL_KERNEL, reference.INITIAL_BIAS]
  deltas, metrics, norms = trainer.train(initial, x, y, rows,
                                         np.zeros([4, 2], np.int64))
  for k, n in enumerate(sizes):
    x_k, y_k = reference.make_examples(k, n)
    expected = reference.delta(
        _numpy_momentum_pass(initial, x_k, y_k, 0.1, momentum or 0.0, 2),
        initial)
    for got, want in zip(deltas, expected):
      np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(norms[k], reference.global_norm(expected),
                               rtol=1e-5, atol=1e-7)
    assert int(metrics.examples[k]) == n
    assert int(metrics.batches[k]) == -(-n // 2)
  # The loss metric sums each batch's mean loss times its rows, at the
  # weights before the step: client 2 has one batch, at the initial weights.
  x_2, y_2 = reference.make_examples(2, 2)
  logits = x_2 @ reference.INITIAL_KERNEL + reference.INITIAL_BIAS
  loss = np.mean(np.log(np.exp(logits).sum(1)) - logits[[0, 1], y_2[:, 0]])
  np.testing.assert_allclose(metrics.loss_sum[2], 2 * loss, rtol=1e-5)
  np.testing.assert_allclose(metrics.loss_weight, sizes)
  assert float(metrics.loss_sum[1]) == 0.0


def test_a_batch_without_rows_is_a_step_as_per_client():
  # Batches of 2, 0 and 2 rows: the empty one is a momentum step with g = 0
  # (a ← μa, w ← w − ηa) and a counted batch, as per-client training has it.
  x, y = reference.make_examples(3, 4)
  parts = [(x[:2], y[:2]), (x[:0], y[:0]), (x[2:], y[2:])]
  dataset = tf.data.Dataset.from_generator(
      lambda: iter([collections.OrderedDict(x=a, y=b) for a, b in parts]),
      output_signature=builders.INPUT_SPEC)
  trainer = batched_training.BatchedBenignTrainer(
      builders.model_fn, tff.learning.optimizers.build_sgdm(0.1, momentum=0.9))
  padded = batched_training.pad_client_batches([dataset], trainer.x_spec,
                                               trainer.y_spec)
  assert padded[2].tolist() == [[2, 0, 2]]
  initial = [reference.INITIAL_KERNEL, reference.INITIAL_BIAS]
  deltas, metrics, _ = trainer.train(initial, *padded,
                                     np.zeros([1, 2], np.int64))
  weights = [w.astype(np.float64) for w in initial]
  accumulators = [np.zeros_like(w) for w in weights]
  for xb, yb in parts:
    gradients = (reference.ce_gradients(weights, xb, yb) if len(xb) else
                 [np.zeros_like(w) for w in weights])
    accumulators = [0.9 * a + g for a, g in zip(accumulators, gradients)]
    weights = [w - 0.1 * a for w, a in zip(weights, accumulators)]
  for got, want in zip(deltas, reference.delta(weights, initial)):
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-7)
  assert int(metrics.batches[0]) == 3 and int(metrics.examples[0]) == 4


def test_recorded_arrays_read_as_the_datasets_yield():
  # The builders record the arrays a dataset is made of; the batched reader
  # takes them instead of iterating. Each client's batches must be what the
  # dataset itself yields, read here element by element.
  rng = np.random.default_rng(4)
  sizes = [47, 0, 20, 3]  # batches of 20: a partial last one, none, one, one
  datasets = [round_data.client_dataset(
      rng.random([n, 28, 28], np.float32), rng.integers(0, 10, n), 2, 20,
      shuffle_seed=k) for k, n in enumerate(sizes)]
  assert all(dataset_arrays.batches_of(d) is not None for d in datasets)
  x_spec = tf.TensorSpec([None, 28, 28, 1], tf.float32)
  y_spec = tf.TensorSpec([None, 1], tf.int32)
  x, y, rows = batched_training.pad_client_batches(datasets, x_spec, y_spec)
  for k, dataset in enumerate(datasets):
    batches = list(dataset.as_numpy_iterator())
    assert rows[k].tolist() == ([len(b['x']) for b in batches] +
                                [-1] * (rows.shape[1] - len(batches)))
    for s, batch in enumerate(batches):
      n = len(batch['x'])
      np.testing.assert_array_equal(x[k, s, :n], batch['x'])
      np.testing.assert_array_equal(y[k, s, :n], batch['y'])
      assert not x[k, s, n:].any() and not y[k, s, n:].any()
  # A dataset derived from a recorded one carries no record: it is read.
  derived = [d.map(lambda b: b) for d in datasets]
  assert all(dataset_arrays.batches_of(d) is None for d in derived)
  for got, want in zip(batched_training.pad_client_batches(
      derived, x_spec, y_spec), (x, y, rows)):
    np.testing.assert_array_equal(got, want)
  context = process_lib.client_context([3, 4], 0.5, client_id=7)
  read = batched_training._read_context(context)  # pylint: disable=protected-access
  assert (read['seed'].tolist(), float(read['boost_share']),
          int(read['client_id'])) == ([3, 4], 0.5, 7)
  unrecorded = batched_training._read_context(context.map(lambda e: e))  # pylint: disable=protected-access
  assert unrecorded['seed'].tolist() == [3, 4]
  assert batched_training._is_empty(  # pylint: disable=protected-access
      process_lib.client_data.empty_like(datasets[0]))
  assert not batched_training._is_empty(datasets[0])  # pylint: disable=protected-access
  assert batched_training._is_empty(datasets[1])  # pylint: disable=protected-access


def _convolution_layouts():
  """Both layouts of a batched convolution where this TensorFlow has both:
  one grouped convolution needs oneDNN's or cuDNN's kernels."""
  return [False, pytest.param(True, marks=pytest.mark.skipif(
      not batched_training.grouped_convolution_supported(),
      reason='no grouped convolution kernels here (TensorFlow\'s own CPU '
      'kernels, without oneDNN)'))]


@pytest.mark.parametrize('grouped', _convolution_layouts())
@pytest.mark.parametrize('name, image_shape', [
    ('small_cnn', (28, 28)), ('linear', (28, 28)),
    ('cifar_cnn', (32, 32, 3))])  # colour: a grouped convolution of 3 inputs
def test_stacked_forward_pass_is_each_clients_keras_model(name, image_shape,
                                                          grouped):
  rng = np.random.default_rng(1)
  keras_models = [models.create_keras_model(name, seed=s,
                                            image_shape=image_shape)
                  for s in range(3)]
  network = batched_training.StackedSequential(keras_models[0], grouped)
  x = rng.uniform(size=(3, 4, *models.input_shape(image_shape))).astype(
      np.float32)
  params = [tf.stack(ws) for ws in zip(*(m.trainable_weights
                                        for m in keras_models))]
  # Traced, as in training: Grappler fuses the convolutions there.
  logits = tf.function(network)(params, tf.constant(x))
  for k, model in enumerate(keras_models):
    np.testing.assert_allclose(logits[k], model(x[k], training=False),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('grouped', _convolution_layouts())
def test_stacked_gradients_are_each_clients_keras_gradients(grouped):
  # ∇ of Σ_k L_k with respect to client k's weights is ∇ L_k alone, as
  # Keras's own layers compute it for that client.
  rng = np.random.default_rng(3)
  keras_models = [models.create_keras_model('small_cnn', seed=s)
                  for s in range(3)]
  network = batched_training.StackedSequential(keras_models[0], grouped)
  x = rng.uniform(size=(3, 4, *models.input_shape((28, 28)))).astype(
      np.float32)
  y = rng.integers(0, 10, size=(3, 4))
  params = [tf.stack(ws) for ws in zip(*(m.trainable_weights
                                        for m in keras_models))]
  @tf.function  # traced, as in training: Grappler fuses the convolutions
  def gradients(params, x):
    with tf.GradientTape() as tape:
      tape.watch(params)
      total = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=y, logits=network(params, x)))
    return tape.gradient(total, params)

  stacked = gradients(params, tf.constant(x))
  for k, model in enumerate(keras_models):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=y[k], logits=model(x[k], training=False)))
    for got, want in zip(stacked, tape.gradient(loss,
                                                model.trainable_weights)):
      np.testing.assert_allclose(got[k], want, rtol=1e-4, atol=1e-5)


def test_stacked_dropout_draws_each_clients_own_mask():
  # Client k's rows of a padded batch get exactly the mask that
  # StepSeededDropout draws for its real rows alone, under its step seed.
  rng = np.random.default_rng(2)
  x = rng.uniform(1, 2, size=(3, 5, 6, 6, 4)).astype(np.float32)
  seeds = np.array([[1, 2], [3, 4], [5, 6]], np.int64)
  real_rows = [5, 2, 3]
  for merged in (False, True):
    stacked = tf.constant(x)
    if merged:
      stacked = batched_training._merge_clients(stacked)
    out = batched_training._stacked_dropout(
        stacked, 0.25, 7, tf.constant(seeds), 3 if merged else None)
    if merged:
      out = batched_training._split_clients(out, 3)
    for k, n in enumerate(real_rows):
      layer = models.StepSeededDropout(0.25, seed=7)
      with models.step_seed(tf.Variable(seeds[k])):
        alone = layer(x[k, :n], training=True)
      np.testing.assert_array_equal(out[k, :n], alone)


def test_step_seeds_are_tensorflows_fold_in_of_each_clients_pass_seed():
  # The batched trainer draws fold_in's seed-only half once per pass; each
  # step's seed must still be TensorFlow's own fold_in(pass seed, step).
  seeds = np.random.default_rng(3).integers(-2**31, 2**31, size=(4, 2))
  for dtype in (tf.int32, tf.int64):
    pass_seeds = tf.constant(seeds, dtype)
    heads = batched_training.fold_in_heads(pass_seeds)
    for step in (0, 1, 7, 1000):
      expected = [tf.random.experimental.stateless_fold_in(
          pass_seeds[k], tf.constant(step, tf.int64)) for k in range(4)]
      np.testing.assert_array_equal(
          batched_training.folded_in(heads, tf.constant(step)), expected)


def _round_data(num_clients, num_attackers, epochs=2, batch=7):
  pool = federated.load_synthetic(16, 20, seed=0)
  task = semantic.select_backdoor_task(pool, 2, seed=0)
  return round_data.round_client_data(
      pool, task, np.arange(num_clients),
      np.arange(num_clients) < num_attackers, epochs, batch, 0, 0)


@pytest.fixture(scope='module')
def processes():
  """{batched: the attacked process on small_cnn, client momentum 0.5}."""
  return {flag: process_lib.build_federated_averaging_process_attacked(
      models.build_model_fn('small_cnn'),
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1,
                                                             momentum=0.5),
      client_update_tf=attack_base.OnUnion(
          boosting.ClientExplicitBoosting(4.0)),
      client_batching='on' if flag else 'off') for flag in (False, True)}


def _weights(process, state):
  return [np.asarray(w) for w in process.get_model_weights(state).trainable]


def test_a_round_mixing_attackers_matches_the_per_client_round(processes):
  client_data = _round_data(6, 2)
  # A benign client without examples: Δ = 0, weight 0.
  empty = client_data[5]['benign'].take(0)
  client_data[5] = collections.OrderedDict(client_data[5], benign=empty)
  start = processes[False].initialize()
  a, b = (processes[flag].next(start, client_data) for flag in (False, True))
  for u, v in zip(_weights(processes[False], a.state),
                  _weights(processes[True], b.state)):
    np.testing.assert_allclose(u, v, rtol=0, atol=TOLERANCE)
  train_a, train_b = (o.metrics['client_work']['train'] for o in (a, b))
  assert train_a['num_examples'] == train_b['num_examples']
  assert train_a['num_batches'] == train_b['num_batches']
  np.testing.assert_allclose(train_a['loss'], train_b['loss'], rtol=1e-5)
  clients_a, clients_b = (o.metrics['client_work']['clients'] for o in (a, b))
  assert clients_a['num_malicious_clients'] == 2
  for key in clients_a:
    np.testing.assert_allclose(clients_a[key], clients_b[key], rtol=1e-5)


@pytest.mark.parametrize('strategy', [omniscient.IPM(0.5), omniscient.ALIE(1.0)])
def test_omniscient_attackers_join_the_batch_and_match_per_client(
    strategy, monkeypatch):
  # ALIE's and IPM's attackers train as benign clients (their update is
  # crafted afterwards from the round's): batched with the benign ones,
  # flagged malicious, the round must match the per-client round.
  built = {flag: process_lib.build_federated_averaging_process_attacked(
      models.build_model_fn('small_cnn'),
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      client_update_tf=strategy, client_batching='on' if flag else 'off')
           for flag in (False, True)}
  client_data = _round_data(6, 2)
  calls = []
  start = built[False].initialize()
  a = built[False].next(start, client_data)
  original_run = batched_training.BenignClientMap.run
  monkeypatch.setattr(
      batched_training.BenignClientMap, 'run', lambda self, arguments: (
          calls.append(len(arguments)) or original_run(self, arguments)))
  b = built[True].next(start, client_data)
  assert calls == [6]  # every client in one batch, the 2 attackers too
  for u, v in zip(_weights(built[False], a.state),
                  _weights(built[True], b.state)):
    np.testing.assert_allclose(u, v, rtol=0, atol=TOLERANCE)
  clients_a, clients_b = (o.metrics['client_work']['clients'] for o in (a, b))
  assert clients_b['num_malicious_clients'] == 2
  for key in clients_a:
    np.testing.assert_allclose(clients_a[key], clients_b[key], rtol=1e-5)


def test_a_run_resumes_across_batched_and_per_client_rounds(processes):
  # Round 1 batched then round 2 per client, against both per client.
  first, second = _round_data(4, 1), _round_data(4, 0, epochs=1)
  start = processes[False].initialize()
  per_client, batched = processes[False], processes[True]
  a = per_client.next(per_client.next(start, first).state, second)
  b = per_client.next(batched.next(start, first).state, second)
  for u, v in zip(_weights(per_client, a.state), _weights(per_client, b.state)):
    np.testing.assert_allclose(u, v, rtol=0, atol=2 * TOLERANCE)


def test_a_setting_without_a_batched_form_says_why():
  sgd = tff.learning.optimizers.build_sgdm(0.1)
  reason = batched_training.unsupported_reason
  assert reason(builders.model_fn, sgd) is None
  assert 'DP-SGD' in reason(builders.model_fn, sgd, dp_sgd.DPSGD(1.0, 1.0))
  assert 'build_sgdm' in reason(builders.model_fn,
                                tff.learning.optimizers.build_adam(0.1))
  assert 'local_loop' in reason(builders.model_fn, sgd, local_loop='reduce')
  build = batched_training.build_trainer
  assert build(builders.model_fn, sgd, client_batching='off')[1] == (
      'client_batching=off')
  with pytest.raises(ValueError, match='client_batching'):
    build(builders.model_fn, sgd, client_batching='sometimes')
  # auto: batched where TensorFlow sees a GPU, else one by one.
  # A strategy that trains its benign clients its own way runs per client.

  class TwoPasses(attack_base.NoAttack):

    def __call__(self, trainer, initial_weights, benign, malicious,
                 is_malicious, boost_share=1.0):
      trainer.train_pass(benign)
      return super().__call__(trainer, initial_weights, benign, malicious,
                              is_malicious, boost_share)

  assert 'TwoPasses' in build(builders.model_fn, sgd, strategy=TwoPasses())[1]
  assert build(builders.model_fn, sgd, strategy=attack_base.NoAttack())[1] is (
      None)
  # auto on a CPU: batched for models of at most 1M multiply-adds per
  # example (the tests' tiny model, small_cnn), one by one above (cnn).
  on_gpu = bool(tf.config.list_logical_devices('GPU'))
  assert build(builders.model_fn, sgd, client_batching='auto')[1] is None
  assert build(models.build_model_fn('small_cnn'), sgd,
               client_batching='auto')[1] is None
  cnn_reason = build(models.build_model_fn('cnn'), sgd,
                     client_batching='auto')[1]
  if on_gpu:
    assert cnn_reason is None
  else:
    assert '11,992,448 multiply-adds' in cnn_reason

    def unbuilt_model():  # its layers' shapes unknown until called
      keras_model = tf.keras.Sequential([tf.keras.layers.Dense(2)])
      return tff.learning.models.from_keras_model(
          keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(
              from_logits=True), input_spec=builders.INPUT_SPEC)

    assert 'unknown' in build(unbuilt_model, sgd, client_batching='auto')[1]

  def batch_norm_model():
    keras_model = tf.keras.Sequential([
        tf.keras.layers.Dense(2, input_shape=(3,)),
        tf.keras.layers.BatchNormalization()])
    return tff.learning.models.from_keras_model(
        keras_model, loss=tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), input_spec=builders.INPUT_SPEC)

  assert 'BatchNormalization' in reason(batch_norm_model, sgd)


@pytest.mark.parametrize('name, image_shape', [
    ('small_cnn', (28, 28)), ('cnn', (28, 28)), ('linear', (28, 28)),
    ('cifar_cnn', (32, 32, 3))])
def test_multiply_adds_match_tensorflows_count(name, image_shape):
  # TensorFlow's profiler counts a forward pass's float operations: two per
  # multiply-add, plus the bias adds, activations and pooling (a few %).
  model = models.create_keras_model(name, image_shape=image_shape)
  forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(
      tf.TensorSpec([1] + list(models.input_shape(image_shape)), tf.float32))
  profile = tf.compat.v1.profiler.profile(
      graph=forward.graph, run_meta=tf.compat.v1.RunMetadata(), cmd='op',
      options=tf.compat.v1.profiler.ProfileOptionBuilder(
          tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
      ).with_empty_output().build())
  multiply_adds = batched_training.multiply_adds_per_example(model)
  assert 2 * multiply_adds <= profile.total_float_ops <= (
      2.06 * multiply_adds)


def test_only_benign_clients_of_the_broadcast_weights_are_batched():
  trainer = batched_training.BatchedBenignTrainer(
      builders.model_fn, tff.learning.optimizers.build_sgdm(0.1))
  batched = batched_training.BenignClientMap(trainer, False)
  broadcast = [tf.constant(reference.INITIAL_KERNEL),
               tf.constant(reference.INITIAL_BIAS)]
  other = [tf.constant(reference.INITIAL_KERNEL),
           tf.constant(reference.INITIAL_BIAS)]
  data = builders.make_dataset(0, 4)
  context = process_lib.client_context([0, 1], 1.0)
  empty = data.take(0)
  arguments = [broadcast + [data, empty, context],
               broadcast + [data, empty, context],
               other + [data, empty, context],      # other weights: alone
               broadcast + [data, data, context]]   # malicious: alone
  assert batched.batchable(arguments) == [True, True, False, False]
