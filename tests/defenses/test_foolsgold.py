"""FoolsGold (Fung et al., RAID 2020): learning rates, histories by identity.

Every result is compared with an independent NumPy computation of Algorithm 1
(written from the paper and the authors' `foolsgold(grads)` loops), with the
histories kept in a dict keyed by client id.
"""

import collections

import numpy as np
import pytest
import tensorflow as tf

from targeted_attack import aggregate_fn
from targeted_attack import process as process_lib
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import registry
from targeted_attack.defenses import foolsgold
from targeted_attack.experiment import build
from targeted_attack.experiment import run as run_lib
import builders
import reference as ref
from builders import flat as _flat
from builders import VALUE_TYPE
from builders import WEIGHT_TYPE
from builders import tiny_config as tiny

# VALUE_TYPE is a [2, 3] and a [4] tensor: 'output_layer' keeps the [2, 3]
# one (the first 6 of the 10 flattened columns), 'all' every column.
COLUMNS = {'output_layer': slice(0, 6), 'all': slice(0, 10)}


# ---------------------------------------------------------------------------
# NumPy reference.


def _numpy_learning_rates(histories, kappa=1.0):
  """Fung et al., Algorithm 1, with loops as the authors' code."""
  h = np.asarray(histories, np.float64)
  n = len(h)
  cs = np.zeros((n, n))
  for i in range(n):
    for j in range(n):
      ni, nj = np.linalg.norm(h[i]), np.linalg.norm(h[j])
      cs[i, j] = h[i] @ h[j] / (ni * nj) if ni > 0 and nj > 0 else 0.0
    cs[i, i] = 0.0 if np.linalg.norm(h[i]) > 0 else -1.0  # cos(H_i, H_i) − 1
  cs[cs > 1.0 - 1e-9] = 1.0  # one direction, whatever the rounding
  v = cs.max(axis=1)
  for i in range(n):
    for j in range(n):
      if i != j and v[j] > v[i]:
        cs[i, j] *= v[i] / v[j]
  alpha = np.clip(1.0 - cs.max(axis=1), 0.0, 1.0)
  if alpha.max() == 0:  # every history alike: nobody moves the model
    return np.zeros(n)
  alpha = alpha / alpha.max()
  alpha[alpha == 1.0] = 0.99
  with np.errstate(divide='ignore'):
    alpha = kappa * (np.log(alpha / (1.0 - alpha)) + 0.5)
  return np.clip(np.nan_to_num(alpha, neginf=0.0), 0.0, 1.0)


class _NumpyFoolsGold:
  """Histories in a dict keyed by client id; (1/n) Σ α_i x_i."""

  def __init__(self, columns, kappa=1.0):
    self.columns = columns
    self.kappa = kappa
    self.history = collections.defaultdict(lambda: 0.0)

  def round(self, points, ids):
    known = [k for k, c in enumerate(ids) if c >= 0]
    for k in known:
      self.history[ids[k]] = self.history[ids[k]] + points[k][self.columns]
    alpha = np.zeros(len(points))
    if known:
      alpha[known] = _numpy_learning_rates(
          [self.history[ids[k]] for k in known], self.kappa)
    result = (alpha[:, None] * points).sum(axis=0) / max(len(known), 1)
    return result, alpha


def _as_updates(points):
  return [collections.OrderedDict(
      a=np.asarray(p[:6], np.float32).reshape(2, 3),
      b=np.asarray(p[6:], np.float32)) for p in points]


def _f32(x):
  return np.asarray(x, np.float32).astype(np.float64)


# ---------------------------------------------------------------------------
# The learning rates alone.


def test_learning_rates_match_numpy_on_random_histories():
  rates = tf.function(foolsgold.foolsgold_learning_rates,
                      input_signature=[tf.TensorSpec([None, None],
                                                     tf.float64)])
  rng = np.random.RandomState(0)
  for trial in range(60):
    n, d = rng.randint(1, 9), rng.randint(2, 8)
    h = rng.randn(n, d)
    if n > 2 and trial % 3 == 0:
      h[1] = 2.5 * h[0]               # two alike: pardoning matters
    if n > 3 and trial % 4 == 0:
      h[2] = 0.0                       # a zero history
    if trial % 5 == 0:
      h += 2.0                         # mostly positive similarities
    np.testing.assert_allclose(rates(h).numpy(), _numpy_learning_rates(h),
                               rtol=1e-9, atol=1e-9, err_msg=f'trial {trial}')


def test_confidence_scales_the_logit():
  h = np.random.RandomState(1).randn(5, 4) + 1.0
  for kappa in (0.3, 1.0, 2.0):
    np.testing.assert_allclose(
        foolsgold.foolsgold_learning_rates(h, kappa).numpy(),
        _numpy_learning_rates(h, kappa), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------
# The factory over rounds: sybils, and histories that follow identity.


def _rounds(population, features, schedule, factory=None):
  """Runs `schedule` [(points, ids)] through the factory and the reference."""
  factory = factory or aggregate_fn.build_foolsgold(population, features)
  process = factory.create(VALUE_TYPE, WEIGHT_TYPE)
  state = process.initialize()
  numpy_fg = _NumpyFoolsGold(COLUMNS[features])
  for t, (points, ids) in enumerate(schedule):
    output = process.next(state, _as_updates(points),
                          [np.float32(c + 1) for c in ids])
    state = output.state
    expected, alpha = numpy_fg.round(points, ids)
    measured = output.measurements
    while 'foolsgold' not in measured:
      measured = measured['inner']
    measured = measured['foolsgold']
    np.testing.assert_allclose(measured['learning_rates'], alpha, rtol=1e-5,
                               atol=1e-6, err_msg=f'round {t}')
    np.testing.assert_array_equal(measured['kept_mask'], alpha > 0.5)
    assert measured['identified_clients'] == sum(c >= 0 for c in ids)
    np.testing.assert_allclose(_flat(output.result), expected, rtol=1e-5,
                               atol=1e-6, err_msg=f'round {t}')
    yield alpha, state


def _sybil_schedule(rng):
  """3 sybils pushing one direction, honest clients each their own.

  Round order and membership change: client 2 sits out round 2, client 7
  joins it; in rounds 2-3 the sybils send small diverse updates, so only
  their history (by identity) gives them away.
  """
  u = np.zeros(10)
  u[3:6] = 1.0
  sybils = (3, 5, 8)

  def update(client, t):
    if client in sybils:
      if t == 0:
        return 3.0 * u + 0.01 * rng.randn(10)
      return 0.1 * rng.randn(10)
    axis = {0: 0, 1: 1, 2: 2, 7: 0, 9: 1}[client]
    x = 0.05 * rng.randn(10)
    x[axis] += 1.0 if client < 7 else -1.0  # 7, 9 opposite to 0, 1
    return x

  orders = [[0, 3, 1, 5, 2, 8], [5, 7, 1, 8, 0, 3], [8, 2, 3, 9, 5, 0, 1]]
  return [(_f32([update(c, t) for c in ids]), ids)
          for t, ids in enumerate(orders)], sybils


@pytest.mark.parametrize('features', ['output_layer', 'all'])
def test_sybils_get_zero_and_histories_follow_identity(features):
  schedule, sybils = _sybil_schedule(np.random.RandomState(2))
  for (points, ids), (alpha, _) in zip(
      schedule, _rounds(10, features, schedule)):
    for k, c in enumerate(ids):
      if c in sybils:
        assert alpha[k] < 0.01, (c, alpha)
      else:
        assert alpha[k] > 0.99, (c, alpha)


def test_history_table_holds_each_clients_sum():
  schedule, _ = _sybil_schedule(np.random.RandomState(3))
  *_, (_, state) = _rounds(10, 'output_layer', schedule)
  expected = np.zeros((10, 6))
  for points, ids in schedule:
    for k, c in enumerate(ids):
      expected[c] += points[k][:6]
  np.testing.assert_allclose(state, expected, rtol=1e-6, atol=1e-6)


def test_a_client_without_identity_takes_no_part():
  rng = np.random.RandomState(4)
  points = _f32(rng.randn(5, 10))
  points[2] *= 100.0
  list(_rounds(6, 'all', [(points, [4, 0, -1, 5, 1]),
                          (points[::-1], [1, 5, -1, 0, 4])]))


def test_all_alike_is_a_zero_step():
  point = _f32(np.random.RandomState(5).randn(10))
  for alpha, _ in _rounds(4, 'all', [(np.stack([point, 2 * point]), [0, 3])]):
    np.testing.assert_array_equal(alpha, [0.0, 0.0])


def test_an_id_outside_the_population_is_an_error():
  process = aggregate_fn.build_foolsgold(3).create(VALUE_TYPE, WEIGHT_TYPE)
  with pytest.raises(Exception, match='population'):
    process.next(process.initialize(), _as_updates(np.ones((2, 10))),
                 [np.float32(1), np.float32(4)])


def test_feature_columns_take_the_output_layers_kernel():
  specs = [tf.TensorSpec(s) for s in ([3, 3, 1, 8], [8], [72, 10], [10])]
  assert foolsgold.feature_columns(specs, 'output_layer') == (80, 720)
  assert foolsgold.feature_columns(specs, 'all') == (0, 810)
  assert foolsgold.feature_columns([tf.TensorSpec([5])],
                                   'output_layer') == (0, 5)
  with pytest.raises(ValueError, match='features'):
    aggregate_fn.build_foolsgold(3, features='first_layer')
  with pytest.raises(ValueError, match='population'):
    aggregate_fn.build_foolsgold(0)


# ---------------------------------------------------------------------------
# Through the registry and the process: identity travels in the weight.


def _config(**overrides):
  settings = dict(defense='foolsgold', foolsgold_features='all',
                  num_clients_per_round=3)
  settings.update(overrides)
  config = config_lib.ExperimentConfig(**settings)
  registry.validate(config)
  return config


def test_the_registry_defense_weights_by_client_id_and_zeroes_non_finite():
  aggregator, _ = build.build_defense(_config(), population=10)
  client_id = process_lib.ClientWeighting.CLIENT_ID
  assert registry.DEFENSES['foolsgold'].client_weighting == client_id
  assert all(entry.client_weighting != client_id
             for name, entry in registry.DEFENSES.items() if name != 'foolsgold')
  schedule, _ = _sybil_schedule(np.random.RandomState(6))
  points, ids = schedule[0]
  nan_points = points.copy()
  nan_points[1, 7] = np.nan  # client 3's update is zeroed, its weight too
  process = aggregator.create(VALUE_TYPE, WEIGHT_TYPE)
  output = process.next(process.initialize(), _as_updates(nan_points),
                        [np.float32(c + 1) for c in ids])
  expected, alpha = _NumpyFoolsGold(COLUMNS['all']).round(
      points, [-1 if k == 1 else c for k, c in enumerate(ids)])
  np.testing.assert_allclose(_flat(output.result), expected, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(
      output.measurements['inner']['foolsgold']['learning_rates'], alpha,
      rtol=1e-5, atol=1e-6)


def _benign_delta(weights, client):
  x, y = ref.make_examples(client, 4 + client % 3)
  new = ref.sgd_pass(weights, x, y, 0.1)
  return [n - w for n, w in zip(new, weights)]


def test_process_sends_client_ids_and_follows_them_across_rounds():
  population = 9
  aggregator, _ = build.build_defense(
      _config(foolsgold_features='output_layer'), population)
  process = builders.attacked_process(
      aggregator, client_weighting=process_lib.ClientWeighting.CLIENT_ID)
  state = process.initialize()
  weights = [w.astype(np.float64) for w in ref.initial_weights()]
  numpy_fg = _NumpyFoolsGold(slice(0, 6))  # the [3, 2] kernel
  for ids in ([4, 1, 7], [7, 4, 2], [2, 1, 4]):
    data = process_lib.build_client_data(
        [builders.make_dataset(c, 4 + c % 3) for c in ids], [None] * 3,
        client_ids=ids)
    state = process.next(state, data).state
    deltas = np.stack([np.concatenate([np.ravel(t) for t in
                                       _benign_delta(weights, c)])
                       for c in ids])
    step, _ = numpy_fg.round(deltas, ids)
    weights = [weights[0] + step[:6].reshape(3, 2), weights[1] + step[6:]]
    new = process.get_model_weights(state).trainable
    np.testing.assert_allclose(new[0], weights[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new[1], weights[1], rtol=1e-4, atol=1e-6)


def test_tiny_experiment_reports_learning_rates_and_detection(tmp_path):
  config = tiny(tmp_path, defense='foolsgold', num_clients_per_round=4,
                num_rounds=2, attack_freq=1, foolsgold_features='output_layer')
  rows = run_lib.run(config, progress=False)
  assert [r['round'] for r in rows] == [1, 2]
  for r in rows:
    assert 0 <= r['aggregator/inner/foolsgold/kept_clients'] <= 4
    assert r['aggregator/inner/foolsgold/identified_clients'] == 4
    assert r['detection_tpr'] in (0.0, 1.0)  # one attacker: kept or not
    assert 0.0 <= r['detection_fpr'] <= 1.0
    assert 0.0 <= r['main_task_accuracy'] <= 1.0
