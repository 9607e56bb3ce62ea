"""The in-process execution context against TFF's C++ context and NumPy.

Each test runs the same TFF computations under the C++ context (the one
conftest sets: an independent implementation, a separate TF build in its
`worker_binary`) and under `kind='in_process'`, and compares. Equality is
exact wherever the two agree to the bit (everything here on the tiny
`builders.model_fn` model: same compiled graphs, the same sequential client
order in `federated_aggregate`); the experiment runs on the 784-input linear
model may differ in the last bits of a float (the worker's TF kernels are a
different build of TF; seen: relative differences up to 1e-6 in update norms
and the training loss, on some configurations), so they are compared to 1e-5
relative. TFF's DP noise has no seed, so that factory is compared by
statistics.
"""

import collections
import gc
import csv
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import aggregate_fn
from targeted_attack import process as process_lib
from targeted_attack.runtime import in_process as in_process_context
from targeted_attack import runtime
from targeted_attack.attacks import base as attack_base
from targeted_attack.experiment import run as run_lib
from targeted_attack.runtime import devices
import builders

C, S = tff.CLIENTS, tff.SERVER
F32 = np.float32


_CPP = []  # TFF's C++ context, made once (`_cpp_context`)


@pytest.fixture(autouse=True)
def _restore_context():
  """Every test leaves conftest's default context as it found it."""
  previous = tff.framework.get_context_stack().current
  yield
  tff.framework.set_default_context(previous)


@pytest.fixture(autouse=True, scope='module')
def _release_cpp_context():
  """Drops the C++ context while its worker lives (TFF kills the worker in
  the context's `__del__`; at exit the reaper would have killed it first)."""
  yield
  _CPP.clear()
  gc.collect()


def _cpp_context():
  """TFF's C++ context (made once), whatever conftest's default is."""
  if not _CPP:
    previous = tff.framework.get_context_stack().current
    runtime.set_local_execution_context(kind='tff_cpp')
    _CPP.append(tff.framework.get_context_stack().current)
    tff.framework.set_default_context(previous)
  return _CPP[0]


def _under(kind, fn, max_concurrency=None):
  """fn() with the default context of `kind`."""
  if kind == 'tff_cpp':
    tff.framework.set_default_context(_cpp_context())
  else:
    runtime.set_local_execution_context(kind=kind,
                                        max_concurrency=max_concurrency)
    assert isinstance(tff.framework.get_context_stack().current,
                      in_process_context.InProcessContext)
  return fn()


def _both(fn, **kwargs):
  return _under('tff_cpp', fn), _under('in_process', fn, **kwargs)


def _assert_same(a, b, rtol=0.0):
  """Same structure; leaves bit-equal (rtol 0) or to `rtol`."""
  fa, fb = tf.nest.flatten(a), tf.nest.flatten(b)
  assert tf.nest.map_structure(lambda _: 0, a) == tf.nest.map_structure(
      lambda _: 0, b)
  assert len(fa) == len(fb)
  for x, y in zip(fa, fb):
    if rtol:
      np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)
    else:
      np.testing.assert_array_equal(x, y)


def _assert_trained_alike(cpp, ours):
  """Training under both contexts: bit-equal where this process runs
  oneDNN's kernels (so does the C++ worker: observed on an Intel CPU with
  AVX-512 and on an AMD EPYC with TF_ENABLE_ONEDNN_OPTS=1); TensorFlow's own
  CPU kernels here round the last bit differently from the worker's (the
  AMD EPYC, AVX2: 1 ulp in a round's update), so to float rounding there."""
  if devices.numerics()['onednn']:
    _assert_same(cpp, ours)
  else:
    _assert_same(cpp, ours, rtol=1e-6)


# ---------------------------------------------------------------------------
# Intrinsics on small values.


@tff.tensorflow.computation
def _three():
  return F32(3.0)


@tff.federated_computation(tff.FederatedType(F32, C), tff.FederatedType(F32, C),
                           tff.FederatedType(F32, S))
def _intrinsics(x, w, s):
  product = tff.federated_map(
      tff.tensorflow.computation(lambda a, b: a * b, F32, F32),
      tff.federated_zip((x, tff.federated_broadcast(s))))
  return collections.OrderedDict(
      sum=tff.federated_sum(x), mean=tff.federated_mean(x),
      weighted_mean=tff.federated_mean(x, w),
      broadcast_product=tff.federated_sum(product),
      max=tff.federated_max(x), min=tff.federated_min(x),
      eval_server=tff.federated_eval(_three, S),
      eval_clients=tff.federated_sum(tff.federated_eval(_three, C)),
      value=tff.federated_value(F32(2.0), S),
      zip_server=tff.federated_zip((s, tff.federated_value(np.int32(1), S))),
      applied=tff.federated_map(
          tff.tensorflow.computation(lambda v: v + 1.0, F32), s),
      clients=tff.federated_map(
          tff.tensorflow.computation(lambda v: v * 10.0, F32), x),
      root_sum_squares=tff.federated_aggregate(
          x, F32(0.0),
          tff.tensorflow.computation(lambda a, v: a + v * v, F32, F32),
          tff.tensorflow.computation(lambda a, b: a + b, F32, F32),
          tff.tensorflow.computation(lambda a: tf.sqrt(a), F32)))  # pylint: disable=unnecessary-lambda


def test_intrinsics_on_floats_match_numpy_and_cpp():
  x, w, s = [1.0, 2.0, 4.0], [1.0, 1.0, 2.0], 10.0
  cpp, ours = _both(lambda: _intrinsics(x, w, s))
  _assert_same(cpp, ours)
  xs = np.array(x, np.float32)
  expected = dict(
      sum=xs.sum(), mean=xs.mean(), weighted_mean=(xs * w).sum() / sum(w),
      broadcast_product=(xs * s).sum(), max=4.0, min=1.0, eval_server=3.0,
      eval_clients=9.0, value=2.0, applied=11.0,
      root_sum_squares=np.sqrt((xs**2).sum()))
  for key, value in expected.items():
    np.testing.assert_allclose(ours[key], value, rtol=1e-6, err_msg=key)
  assert ours['zip_server'] == (10.0, 1)
  assert ours['clients'] == [10.0, 20.0, 40.0]


_VALUE = tff.StructWithPythonType(
    [('a', tff.TensorType(np.int32, [2])), ('b', np.float32)],
    collections.OrderedDict)


@tff.federated_computation(tff.FederatedType(_VALUE, C),
                           tff.FederatedType(np.float32, C))
def _structures(v, w):
  zipped = tff.federated_zip(collections.OrderedDict(v=v, w=w))
  return (tff.federated_sum(v), tff.federated_mean(
      tff.federated_map(tff.tensorflow.computation(
          lambda d: d['b'] * 2.0, _VALUE), v), w),
          tff.federated_map(tff.tensorflow.computation(
              lambda d: tf.cast(tf.reduce_sum(d['v']['a']), tf.float32) *
              d['w']), zipped))


def test_structures_match_numpy_and_cpp():
  v = [collections.OrderedDict(a=np.array([1, 2], np.int32), b=F32(0.5)),
       collections.OrderedDict(a=np.array([3, 4], np.int32), b=F32(1.5))]
  w = [1.0, 3.0]
  cpp, ours = _both(lambda: _structures(v, w))
  _assert_same(cpp, ours)
  total, weighted, per_client = ours
  np.testing.assert_array_equal(total['a'], [4, 6])
  assert total['b'] == 2.0
  assert weighted == pytest.approx((1.0 * 1 + 3.0 * 3) / 4)
  assert per_client == [3.0, 21.0]


def test_number_of_clients_from_argument_or_default():
  @tff.federated_computation(tff.FederatedType(F32, C))
  def count(x):
    one = tff.federated_value(F32(1.0), C)
    return tff.federated_sum(x), tff.federated_sum(one)

  @tff.federated_computation
  def count_default():
    return tff.federated_sum(tff.federated_value(F32(1.0), C))

  assert _under('in_process', lambda: count([1.0] * 5)) == (5.0, 5.0)
  runtime.set_local_execution_context(kind='in_process', default_num_clients=4)
  assert count_default() == 4.0


# ---------------------------------------------------------------------------
# Sequences (tf.data).


@tff.tensorflow.computation(tff.SequenceType(collections.OrderedDict(
    x=tff.TensorType(np.float32, [None]), y=tff.TensorType(np.int32, [None]))))
def _dataset_sums(ds):
  return ds.reduce((F32(0), np.int32(0)), lambda acc, b: (
      acc[0] + tf.reduce_sum(b['x']), acc[1] + tf.reduce_sum(b['y'])))


@tff.tensorflow.computation(np.float32)
def _make_dataset(scale):
  return tf.data.Dataset.range(4).map(lambda i: tf.cast(i, tf.float32) * scale)


@tff.tensorflow.computation(tff.SequenceType(np.float32))
def _sum_floats(ds):
  return ds.reduce(F32(0), lambda a, b: a + b)


@tff.federated_computation(
    tff.FederatedType(_dataset_sums.type_signature.parameter, C),
    tff.FederatedType(np.float32, C))
def _sequences(datasets, scales):
  made = tff.federated_map(_make_dataset, scales)  # a sequence result
  return (tff.federated_map(_dataset_sums, datasets),
          tff.federated_sum(tff.federated_map(_sum_floats, made)))


def test_dataset_arguments_and_results_per_client():
  rng = np.random.RandomState(0)
  arrays = [(rng.randn(n).astype(np.float32), rng.randint(0, 9, n, np.int32))
            for n in (5, 3, 8)]
  datasets = [tf.data.Dataset.from_tensor_slices(
      collections.OrderedDict(x=x, y=y)).batch(2) for x, y in arrays]
  scales = [1.0, 2.0, 0.5]
  cpp, ours = _both(lambda: _sequences(datasets, scales))
  _assert_same(cpp, ours)
  for (x, y), (sx, sy) in zip(arrays, ours[0]):
    np.testing.assert_allclose(sx, x.sum(), rtol=1e-6)
    assert sy == y.sum()
  assert ours[1] == pytest.approx(6.0 * sum(scales))


def test_sequence_intrinsics():
  # The C++ executor has no sequence_sum; checked against NumPy.
  seq = tff.SequenceType(np.float32)

  @tff.federated_computation(tff.FederatedType(seq, C))
  def reduce_map_sum(ds):
    times = tff.tensorflow.computation(lambda a, b: a * b, F32, F32)
    double = tff.tensorflow.computation(lambda v: v * 2.0, F32)
    return (
        tff.federated_map(tff.federated_computation(
            lambda d: tff.sequence_reduce(d, F32(1.0), times), seq), ds),
        tff.federated_map(tff.federated_computation(
            lambda d: tff.sequence_sum(tff.sequence_map(double, d)), seq), ds))

  values = [np.array([1.0, 2.0, 3.0], np.float32), np.array([4.0], np.float32)]
  datasets = [tf.data.Dataset.from_tensor_slices(v) for v in values]
  products, doubled = _under('in_process', lambda: reduce_map_sum(datasets))
  assert products == [6.0, 4.0]
  assert doubled == [12.0, 8.0]


def test_federated_select_matches_cpp():
  @tff.tensorflow.computation(tff.TensorType(np.float32, [4]), np.int32)
  def pick(values, key):
    return tf.gather(values, key)

  @tff.federated_computation(
      tff.FederatedType(tff.TensorType(np.int32, [2]), C),
      tff.FederatedType(tff.TensorType(np.float32, [4]), S))
  def select_and_sum(keys, values):
    selected = tff.federated_select(
        keys, tff.federated_value(np.int32(4), S), values, pick)
    return tff.federated_map(_sum_floats, selected)

  keys = [np.array(k, np.int32) for k in ([0, 2], [3, 3], [1, 0])]
  values = np.array([1.0, 10.0, 100.0, 1000.0], np.float32)
  cpp, ours = _both(lambda: select_and_sum(keys, values))
  _assert_same(cpp, ours)
  assert ours == [101.0, 2000.0, 11.0]


def test_uncompiled_intrinsics_match_compiled():
  # Without TFF's compilation, mean/weighted mean/sum/max run as such.
  raw = in_process_context.InProcessContext(compiler_fn=None)
  args = ([1.0, 2.0, 4.0], [1.0, 1.0, 2.0], 10.0)
  tff.framework.set_default_context(raw)
  uncompiled = _intrinsics(*args)
  compiled = _under('in_process', lambda: _intrinsics(*args))
  _assert_same(compiled, uncompiled, rtol=1e-6)


@pytest.mark.parametrize('intrinsic', ['mean', 'weighted_mean', 'min', 'max'])
def test_uncompiled_reductions_over_zero_clients_raise(intrinsic):
  @tff.federated_computation(tff.FederatedType(F32, C),
                             tff.FederatedType(F32, C))
  def reduce(x, w):
    return {'mean': lambda: tff.federated_mean(x),
            'weighted_mean': lambda: tff.federated_mean(x, w),
            'min': lambda: tff.federated_min(x),
            'max': lambda: tff.federated_max(x)}[intrinsic]()

  tff.framework.set_default_context(
      in_process_context.InProcessContext(compiler_fn=None))
  with pytest.raises(ValueError, match='over zero clients'):
    reduce([], [])
  # Compiled (mean → aggregate), the mean of none is NaN, as the C++ one.
  if intrinsic == 'mean':
    cpp, ours = _both(lambda: reduce([], []))
    assert np.isnan(cpp) and np.isnan(ours)


@tff.federated_computation(tff.FederatedType(np.int32, C))
def _secure_sums(x):
  return (tff.federated_secure_sum(x, 3),
          tff.federated_secure_sum_bitwidth(x, 2))


def test_secure_sums_are_sums_of_values_within_their_bounds():
  # TFF: values in [0, max_input] (bitwidth b: [0, 2^b - 1]); a value
  # outside fails at that client.
  assert _under('in_process', lambda: _secure_sums([1, 2, 3])) == (6, 6)
  with pytest.raises(ValueError, match=r"client 1's value .* outside \[0, 3\]"):
    _secure_sums([1, 5, 2])
  with pytest.raises(ValueError, match="client 0's value"):
    _secure_sums([-1, 1, 1])


@tff.tensorflow.computation
def _op_seeded_draw():
  return tf.random.uniform([], seed=7)


@tff.federated_computation
def _draw_at_server():
  return tff.federated_eval(_op_seeded_draw, S)


def test_op_seeded_random_state_persists_across_calls_under_both():
  # The package docstring's statement: repeated calls draw the next numbers
  # of one stream, the same sequence at the server under both contexts.
  cpp = _under('tff_cpp', lambda: [float(_draw_at_server()) for _ in range(3)])
  ours = _under('in_process',
                lambda: [float(_draw_at_server()) for _ in range(3)])
  assert cpp == ours
  assert len(set(ours)) == 3


# ---------------------------------------------------------------------------
# Learning processes.


def _rounds(process, data, rounds):
  """(trainable weights, each round's metrics) after `rounds` rounds."""
  state = process.initialize()
  metrics = []
  for _ in range(rounds):
    output = process.next(state, data)
    state = output.state
    metrics.append(output.metrics)
  return list(process.get_model_weights(state).trainable), metrics


def _fed_avg_rounds(rounds=3):
  process = tff.learning.algorithms.build_weighted_fed_avg(
      builders.model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0))
  datasets = [builders.make_dataset(seed, n) for seed, n in
              ((1, 4), (2, 6), (3, 5))]
  return _rounds(process, datasets, rounds)


def test_tff_weighted_fed_avg_matches_cpp():
  cpp, ours = _both(_fed_avg_rounds)
  _assert_trained_alike(cpp, ours)  # weights and every metric
  assert ours[1][-1]['client_work']['train']['num_examples'] == 15


def test_concurrency_does_not_change_results():
  serial = _under('in_process', _fed_avg_rounds, max_concurrency=1)
  threaded = _under('in_process', _fed_avg_rounds, max_concurrency=2)
  _assert_same(serial, threaded)


def test_close_destroys_the_graphs_variables_and_the_next_call_rebuilds():
  runtime.set_local_execution_context(kind='in_process', max_concurrency=2)
  context = tff.framework.get_context_stack().current
  first = _fed_avg_rounds(rounds=1)
  owned = [h for c in context._tf_computations.values() for h in c._owned]  # pylint: disable=protected-access
  assert owned, 'the client update holds variables'
  context.close()
  for handle in owned:   # destroyed: a read fails
    with pytest.raises(tf.errors.NotFoundError):
      tf.raw_ops.DestroyResourceOp(resource=handle, ignore_lookup_error=False)
  _assert_same(first, _fed_avg_rounds(rounds=1))


def _attacked_rounds(aggregator, rounds=2):
  process = builders.attacked_process(aggregator, boost_factor=5.0)
  datasets = [builders.make_dataset(seed, n) for seed, n in
              ((1, 4), (2, 6), (3, 5))]
  malicious = [None, builders.make_dataset(9, 4), None]
  data = process_lib.build_client_data(datasets, malicious,
                                           [False, True, False])
  return _rounds(process, data, rounds)


@pytest.mark.parametrize('aggregator', ['clip', 'zero_non_finite_clip_noise'])
def test_attacked_process_with_clipping_and_boosting_matches_cpp(aggregator):
  factory = (aggregate_fn.build_clip_per_client(0.5) if aggregator == 'clip'
             else aggregate_fn.build_zero_non_finite(
                 aggregate_fn.build_clip_per_client(
                     0.5, inner=aggregate_fn.build_gaussian_noise(1e-3,
                                                                  seed=0))))
  cpp, ours = _both(lambda: _attacked_rounds(factory))
  _assert_trained_alike(cpp, ours)
  weights = ours[0]
  assert all(np.all(np.isfinite(w)) for w in weights)


# ---------------------------------------------------------------------------
# TFF's aggregators.


def test_tff_robust_aggregator_matches_cpp():
  factory = tff.learning.robust_aggregator(zeroing=True, clipping=True,
                                           weighted=True)
  updates = builders.updates_with_norms([0.5, 3.0, 40.0, 1.0])

  def run():
    outputs = builders.run_aggregator(factory, updates,
                                      weights=[1.0, 2.0, 1.0, 3.0], rounds=3)
    return [(o.result, o.measurements) for o in outputs]

  cpp, ours = _both(run)
  _assert_same(cpp, ours)


def test_tff_dp_gaussian_fixed_matches_cpp():
  updates = builders.updates_with_norms([0.5, 3.0, 1.0])
  # No noise: deterministic, equal to the bit.
  no_noise = tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
      0.0, 3, 1.0)
  cpp, ours = _both(lambda: builders.run_aggregator(no_noise, updates).result)
  _assert_same(cpp, ours)
  clipped = [u if np.linalg.norm(builders.flat(u)) <= 1.0 else
             {k: v / np.linalg.norm(builders.flat(u)) for k, v in u.items()}
             for u in updates]
  np.testing.assert_allclose(builders.flat(ours),
                             sum(builders.flat(u) for u in clipped) / 3,
                             rtol=1e-5, atol=1e-6)
  # With noise (TFF draws it unseeded): zero updates give noise alone, of
  # stddev clip·z / clients_per_round = 1/3 in both contexts.
  noisy = tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
      1.0, 3, 1.0)
  zeros = builders.updates_with_norms([0.0, 0.0, 0.0])

  def noise():
    outputs = builders.run_aggregator(noisy, zeros, rounds=20)
    return np.concatenate([builders.flat(o.result) for o in outputs])

  for sample in _both(noise):
    assert sample.shape == (200,)
    assert 0.25 < np.std(sample) < 0.42, np.std(sample)
    assert abs(np.mean(sample)) < 0.1


# ---------------------------------------------------------------------------
# Errors.


@tff.tensorflow.computation(np.float32)
def _checked_double(x):
  check = tf.debugging.assert_less(x, 5.0, message='x must stay below 5')
  with tf.control_dependencies([check]):
    return x * 2.0


@tff.federated_computation(tff.FederatedType(F32, C))
def _map_checked(x):
  return tff.federated_map(_checked_double, x)


@pytest.mark.parametrize('max_concurrency', [1, 2])
def test_client_error_is_the_tensorflow_error(max_concurrency):
  runtime.set_local_execution_context(kind='in_process',
                                      max_concurrency=max_concurrency)
  assert _map_checked([1.0, 2.0]) == [2.0, 4.0]
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    _map_checked([1.0, 7.0, 2.0])
  message = str(raised.value)
  assert 'x must stay below 5' in message
  assert len(message) < 600, message
  assert 'grpc' not in message.lower()
  assert raised.value.__cause__ is None and raised.value.__suppress_context__
  assert any('client 1' in note for note in raised.value.__notes__)


def test_unknown_kind_is_refused():
  with pytest.raises(ValueError, match='in_process'):
    runtime.set_local_execution_context(kind='grpc')
  assert runtime.EXECUTION_CONTEXTS == ('in_process', 'tff_cpp')


# ---------------------------------------------------------------------------
# The experiment: a few defenses end to end.


def _metrics(config):
  with open(os.path.join(config.output_dir, 'metrics.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  return [{k: float(v) for k, v in row.items()
           if v != '' and 'seconds' not in k} for row in rows]


@pytest.mark.parametrize('overrides', [
    dict(defense='foolsgold'),
    dict(defense='weak_dp'),
    dict(defense='clip', attack='pgd'),
], ids=lambda o: '-'.join(o.values()))
def test_experiment_metrics_match_cpp(tmp_path, overrides):
  def run(kind):
    config = builders.tiny_config(tmp_path / kind, num_rounds=2, **overrides)
    run_lib.run(config, progress=False)
    return _metrics(config)

  cpp = _under('tff_cpp', lambda: run('tff_cpp'))
  ours = _under('in_process', lambda: run('in_process'))
  assert [r.keys() for r in cpp] == [r.keys() for r in ours]
  for a, b in zip(cpp, ours):
    for key in a:
      assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key


def test_union_seeded_order_is_kept():
  # The attacker's D_trn ∪ D_mal (a stateless seeded shuffle) in-process.
  benign, malicious = builders.make_dataset(1, 4), builders.make_dataset(2, 3)

  element = tff.types.tensorflow_to_type(builders.INPUT_SPEC)

  @tff.tensorflow.computation(tff.SequenceType(element),
                              tff.SequenceType(element))
  def union_labels(b, m):
    union = attack_base.union(b, m, tf.constant(0, tf.int64))
    return union.unbatch().map(lambda e: e['y'][0]).batch(100).get_single_element()

  cpp, ours = _both(lambda: union_labels(benign, malicious))
  np.testing.assert_array_equal(cpp, ours)
  _, y = builders.union_examples(benign, malicious)
  np.testing.assert_array_equal(ours, y[:, 0])
