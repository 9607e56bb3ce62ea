"""Bulyan, robust learning rate, FLAME and TFF's robust/DP factories.

Each rule is fed hand-made updates and compared with an independent NumPy
computation; FLAME's clustering with scikit-learn's HDBSCAN.
"""

import collections
import dataclasses

import numpy as np
import pytest
from sklearn.cluster import HDBSCAN
from sklearn.metrics.pairwise import cosine_distances as sk_cosine_distances
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import aggregate_fn
from targeted_attack import process as process_lib
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import registry
from targeted_attack.defenses import filtering
from targeted_attack.defenses import plumbing
from targeted_attack.experiment import build
import builders
import reference as ref
from builders import flat as _flat
from builders import run_aggregator as _run

DIM = 10  # test_aggregate_fn.VALUE_TYPE: a [2, 3] and a [4] tensor.


def _as_updates(points):
  return [collections.OrderedDict(a=np.asarray(p[:6], np.float32).reshape(2, 3),
                                  b=np.asarray(p[6:], np.float32))
          for p in points]


def _points(n, seed=0, spread=0.1):
  """n updates around one direction (benign clients agree), float32-exact."""
  rng = np.random.RandomState(seed)
  base = rng.randn(DIM)
  return (base + spread * rng.randn(n, DIM)).astype(np.float32).astype(
      np.float64)


def _result(output):
  return _flat(output.result).astype(np.float64)


# ---------------------------------------------------------------------------
# NumPy references.


def _numpy_bulyan(points, f):
  """El Mhamdi et al. 2018: θ = n − 2f Krum picks, then β = θ − 2f closest."""
  n = len(points)
  theta, beta = n - 2 * f, n - 4 * f
  remaining, selected = list(range(n)), []
  for _ in range(theta):
    k = max(len(remaining) - f - 2, 1)
    scores = []
    for i in remaining:
      d = sorted(np.sum((points[i] - points[j])**2)
                 for j in remaining if j != i)
      scores.append(sum(d[:k]))
    winner = remaining[int(np.argmin(scores))]
    remaining.remove(winner)
    selected.append(winner)
  chosen = points[selected]
  closest = np.argsort(np.abs(chosen - np.median(chosen, axis=0)), axis=0,
                       kind='stable')[:beta]
  return np.take_along_axis(chosen, closest, axis=0).mean(axis=0), selected


def _numpy_rlr(points, threshold):
  flip = np.abs(np.sign(points).sum(axis=0)) < threshold
  return np.where(flip, -1.0, 1.0) * points.mean(axis=0), flip.mean()


def _sklearn_majority(points):
  n = len(points)
  labels = HDBSCAN(min_cluster_size=n // 2 + 1, min_samples=1,
                   metric='precomputed', allow_single_cluster=True).fit(
                       sk_cosine_distances(points)).labels_
  assert labels.max() <= 0  # m > n/2: at most one cluster
  return labels == 0 if labels.max() == 0 else np.ones(n, bool)


def _numpy_flame(points, global_model=None):
  """Nguyen et al. 2022 without noise: majority cluster of the local models
  W_i = w − x_i (of the updates x_i when `global_model` is None), clip the
  updates to their median norm, mean of the kept."""
  kept = _sklearn_majority(points if global_model is None else
                           global_model[np.newaxis] - points)
  norms = np.linalg.norm(points, axis=1)
  median = np.median(norms)
  scale = np.where(norms > median, median / np.maximum(norms, 1e-300), 1.0)
  return (points * scale[:, None])[kept].mean(axis=0), kept, median


# ---------------------------------------------------------------------------
# Aggregation order: rows of the stacked matrix are the clients, in order.


def test_stacked_rows_follow_the_order_of_the_clients():
  probe = plumbing.build_stacked_aggregator(
      lambda x: (tf.reduce_mean(x, axis=0), collections.OrderedDict(rows=x)),
      'probe')
  values = np.random.RandomState(0).permutation(33).astype(np.float32)
  points = np.outer(values, np.ones(DIM))
  output = _run(probe, _as_updates(points))
  np.testing.assert_array_equal(output.measurements['probe']['rows'], points)


# ---------------------------------------------------------------------------
# Bulyan.


@pytest.mark.parametrize('n, f', [(3, 0), (7, 1), (11, 2)])
def test_bulyan_matches_numpy_and_drops_a_large_outlier(n, f):
  points = _points(n, seed=n)
  points[1] = np.float32(1e3 * points[1] + 50.0)  # one large outlier
  expected, selected = _numpy_bulyan(points, f)
  output = _run(aggregate_fn.build_bulyan(f), _as_updates(points))
  np.testing.assert_allclose(_result(output), expected, rtol=1e-5, atol=1e-5)
  measured = output.measurements['bulyan']
  np.testing.assert_array_equal(measured['selected_clients'], selected)
  np.testing.assert_array_equal(measured['kept_mask'],
                                np.isin(np.arange(n), selected))
  if f > 0:
    assert 1 not in selected
    benign = np.delete(points, 1, axis=0)
    assert np.all(_result(output) <= benign.max(axis=0) + 1e-6)
    assert np.all(_result(output) >= benign.min(axis=0) - 1e-6)


def test_bulyan_needs_4f_plus_3_clients_naming_num_byzantine():
  with pytest.raises(Exception, match='num_byzantine'):
    _run(aggregate_fn.build_bulyan(1), _as_updates(_points(6)))
  config = config_lib.ExperimentConfig(defense='bulyan', num_byzantine=2,
                                       num_clients_per_round=10)
  with pytest.raises(config_lib.ConfigError, match='num_byzantine') as error:
    registry.validate(config)
  assert error.value.field == 'num_byzantine'
  registry.validate(dataclasses.replace(config, num_clients_per_round=11))


def test_krum_and_multi_krum_report_the_kept_rows():
  points = _points(7, seed=4)
  points[5] *= 100.0
  multi = _run(aggregate_fn.build_multi_krum(1, 4), _as_updates(points))
  selected = multi.measurements['multi_krum']['selected_clients']
  np.testing.assert_array_equal(multi.measurements['multi_krum']['kept_mask'],
                                np.isin(np.arange(7), selected))
  assert multi.measurements['multi_krum']['kept_mask'][5] == 0.0


# ---------------------------------------------------------------------------
# Robust learning rate.


def test_robust_learning_rate_negates_the_disputed_coordinates():
  # 5 clients; sign sums per coordinate: 5, −5, 1, −1, 3, 0 (a zero), ...
  signs = np.array([[1, -1, 1, -1, 1, 0, 1, 1, -1, 1],
                    [1, -1, 1, -1, 1, 1, 1, -1, -1, 1],
                    [1, -1, -1, 1, 1, -1, -1, 1, -1, 1],
                    [1, -1, -1, 1, -1, 1, 1, -1, -1, -1],
                    [1, -1, 1, -1, 1, -1, -1, 1, 1, 1]], np.float64)
  magnitudes = np.random.RandomState(1).uniform(0.5, 2.0, signs.shape)
  points = (signs * magnitudes).astype(np.float32).astype(np.float64)
  for threshold in (0, 3, 6):
    expected, fraction = _numpy_rlr(points, threshold)
    output = _run(aggregate_fn.build_robust_learning_rate(threshold),
                  _as_updates(points))
    np.testing.assert_allclose(_result(output), expected, rtol=1e-6)
    assert output.measurements['rlr']['flipped_fraction'] == pytest.approx(
        fraction)


def test_robust_learning_rate_threshold_above_the_clients_is_an_error():
  config = config_lib.ExperimentConfig(defense='rlr', rlr_threshold=11,
                                       num_clients_per_round=10)
  with pytest.raises(config_lib.ConfigError, match='rlr_threshold') as error:
    registry.validate(config)
  assert error.value.field == 'rlr_threshold'
  with pytest.raises(ValueError, match='threshold'):
    aggregate_fn.build_robust_learning_rate(-1)


# ---------------------------------------------------------------------------
# FLAME.


def test_majority_cluster_matches_sklearn_hdbscan():
  cluster = tf.function(
      lambda x: filtering.majority_cluster(filtering.cosine_distances(x)),
      input_signature=[tf.TensorSpec([None, None], tf.float32)])
  rng = np.random.RandomState(0)
  for trial in range(40):
    n, d = rng.randint(2, 31), rng.randint(2, 12)
    x = rng.randn(n, d) + 3 * rng.rand()
    k = rng.randint(0, n // 2 + 1)
    x[:k] = rng.randn(k, d) * 5 * rng.rand() - 1  # a second, looser group
    x = x.astype(np.float32)
    np.testing.assert_array_equal(cluster(x).numpy(),
                                  _sklearn_majority(x.astype(np.float64)),
                                  err_msg=f'trial {trial}')


# The global model w_t the FLAME tests give: larger than the updates, as a
# trained model is.
_GLOBAL = (3.0 * np.random.RandomState(11).randn(DIM)).astype(np.float32)


def _as_model(vector):
  return _as_updates([vector])[0]


def test_flame_matches_numpy_removes_an_outlier_and_clips_a_large_one():
  points = _points(9, seed=2)
  points[3] *= -50.0  # another direction, large: filtered out
  # The benign clients' mean direction, 1.5 times longer: as an update it is
  # kept, and clipped to S; its local model is an outlier (see below).
  points[6] = np.float32(1.5 * np.delete(points, [3, 6], axis=0).mean(axis=0))
  for cluster_on, model in (('models', _GLOBAL), ('updates', None)):
    expected, kept, median = _numpy_flame(points, model)
    assert not kept[3] and kept[6] == (cluster_on == 'updates'), cluster_on
    output = _run(aggregate_fn.build_flame(0.0, seed=0, cluster_on=cluster_on),
                  _as_updates(points), global_model=_as_model(_GLOBAL))
    np.testing.assert_allclose(_result(output), expected, rtol=1e-5,
                               atol=1e-6)
    measured = output.measurements['flame']
    np.testing.assert_array_equal(measured['kept_mask'], kept)
    assert measured['kept_clients'] == kept.sum()
    assert measured['clip_norm'] == pytest.approx(median, rel=1e-5)
    assert np.linalg.norm(_result(output)) <= median * (1 + 1e-5)


def test_flame_on_local_models_filters_a_boosted_update_the_update_rule_keeps():
  # Nguyen et al.'s Algorithm 1 clusters the local models W_i = w_t − x_i: an
  # update boosted ×20 along the honest direction points the honest way (the
  # update rule keeps it) but its local model lies far from theirs.
  points = _points(7, seed=4, spread=0.3)
  points[5] = 20.0 * points[:5].mean(axis=0)
  updates = _as_updates(points)
  by_model = _run(aggregate_fn.build_flame(0.0, seed=0), updates,
                  global_model=_as_model(_GLOBAL))
  by_update = _run(aggregate_fn.build_flame(0.0, seed=0, cluster_on='updates'),
                   updates)
  _, kept_models, _ = _numpy_flame(points, _GLOBAL)
  _, kept_updates, _ = _numpy_flame(points)
  assert not kept_models[5] and kept_updates[5]
  np.testing.assert_array_equal(by_model.measurements['flame']['kept_mask'],
                                kept_models)
  np.testing.assert_array_equal(by_update.measurements['flame']['kept_mask'],
                                kept_updates)


def test_flame_kept_set_on_models_matches_sklearn_hdbscan():
  rng = np.random.RandomState(7)
  for trial in range(8):
    n = rng.randint(3, 10)
    points = _points(n, seed=20 + trial, spread=rng.rand())
    k = rng.randint(0, n // 2 + 1)
    points[:k] *= rng.uniform(-10, 10, size=(k, 1))
    model = (rng.rand() * 5 * rng.randn(DIM)).astype(np.float32)
    output = _run(aggregate_fn.build_flame(0.0, seed=0), _as_updates(points),
                  global_model=_as_model(model))
    np.testing.assert_array_equal(
        output.measurements['flame']['kept_mask'],
        _numpy_flame(points, model.astype(np.float64))[1],
        err_msg=f'trial {trial}')


def test_flame_requires_a_known_rule():
  with pytest.raises(ValueError, match='cluster_on'):
    aggregate_fn.build_flame(cluster_on='gradients')


def test_the_attacked_process_gives_the_aggregator_w_t():
  # A probe rule reports the global model it is given; through the non-finite
  # wrapper and the weighted adapter, it must be the process's w_t, each round.
  probe = plumbing.build_stacked_aggregator(
      lambda x, w: (tf.reduce_mean(x, axis=0),
                    collections.OrderedDict(model=w)),
      'probe', global_model=True)
  process = builders.attacked_process(
      aggregate_fn.build_zero_non_finite(probe))
  state = process.initialize()
  clients = process_lib.build_client_data(
      [builders.make_dataset(s, 4) for s in range(3)], [None] * 3)
  for _ in range(2):
    w_t = process.get_model_weights(state).trainable
    output = process.next(state, clients)
    measured = output.metrics['aggregator']['inner']['probe']['model']
    np.testing.assert_array_equal(
        measured, np.concatenate([np.ravel(t) for t in w_t]))
    state = output.state
  assert not np.array_equal(
      measured, np.concatenate([np.ravel(t) for t in
                                process.get_model_weights(state).trainable]))


def test_flame_keeps_identical_updates():
  points = np.tile(_points(1, seed=3), (5, 1))
  output = _run(aggregate_fn.build_flame(0.0, seed=0), _as_updates(points),
                global_model=_as_model(_GLOBAL))
  np.testing.assert_allclose(_result(output), points[0], rtol=1e-5)
  assert output.measurements['flame']['kept_clients'] == 5.0


def test_flame_noise_is_seeded_by_round_with_stddev_lambda_times_median():
  dim, noise_lambda = 2000, 0.5
  value_type = tff.TensorType(np.float32, [dim])
  rng = np.random.RandomState(5)
  points = (rng.randn(4, dim) + 1.0).astype(np.float32)
  model = rng.randn(dim).astype(np.float32)
  clean, kept, median = _numpy_flame(points.astype(np.float64),
                                     model.astype(np.float64))

  def rounds(seed, count):
    process = aggregate_fn.build_flame(noise_lambda, seed=seed).create(
        value_type)
    state, results = process.initialize(), []
    for _ in range(count):
      output = process.next(state, list(points), model)
      state = output.state
      results.append(np.asarray(output.result, np.float64))
    np.testing.assert_array_equal(
        output.measurements['flame']['kept_mask'], kept)
    return results

  first, second = rounds(seed=3, count=2)
  noise = first - clean
  sigma = noise_lambda * median
  assert abs(noise.mean()) < 4 * sigma / np.sqrt(dim)
  assert noise.std() == pytest.approx(sigma, rel=0.1)
  again, = rounds(seed=3, count=1)
  other, = rounds(seed=4, count=1)
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, second) and not np.allclose(first, other)


# ---------------------------------------------------------------------------
# Non-finite updates through `build.build_defense`'s wrapping.


_SMALL = dict(num_clients_per_round=7, num_byzantine=1, rlr_threshold=3,
              flame_noise_lambda=0.0, tff_dp_noise_multiplier=0.0,
              l2_norm_clip=1.0)
_REFERENCES = {
    'bulyan': lambda x: _numpy_bulyan(x, 1)[0],
    'rlr': lambda x: _numpy_rlr(x, 3)[0],
    'flame': lambda x: _numpy_flame(x, _GLOBAL)[0],
}


@pytest.mark.parametrize('defense', ['bulyan', 'rlr', 'flame', 'tff_robust',
                                     'tff_dp_fixed'])
def test_non_finite_updates_are_zeroed_before_the_defense(defense):
  config = config_lib.ExperimentConfig(defense=defense, **_SMALL)
  registry.validate(config)
  aggregator, _ = build.build_defense(config, population=100)
  points = _points(7, seed=6)
  updates = _as_updates(points)
  updates[2]['a'][0, 1] = np.nan
  updates[4]['b'][3] = -np.inf
  result = _result(_run(aggregator, updates, global_model=_as_model(_GLOBAL)))
  assert np.all(np.isfinite(result))
  if defense in _REFERENCES:
    points[[2, 4]] = 0.0
    np.testing.assert_allclose(result, _REFERENCES[defense](points),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# TFF's own factories, unchanged, in the attacked process.


def _benign_deltas(clients):
  w0 = ref.initial_weights()
  return [np.concatenate([np.ravel(t) for t in ref.delta(
      ref.sgd_pass(w0, *ref.make_examples(seed, n), 0.1), w0)])
          for seed, n in clients]


def _clip(delta, bound):
  return delta * min(1.0, bound / np.linalg.norm(delta))


@pytest.mark.parametrize('defense, expected', [
    # Weighted by examples; adaptive clip starts at TFF's 1.0, zeroing at 10.
    ('tff_robust', lambda deltas, sizes: np.average(
        [_clip(d, 1.0) for d in deltas], axis=0, weights=sizes)),
    # Σ clip(Δ_k, C) / clients_per_round (C = l2_norm_clip; no noise).
    ('tff_dp_fixed', lambda deltas, sizes: sum(
        _clip(d, 0.05) for d in deltas) / 3),
    # The adaptive clip starts at TFF's initial_l2_norm_clip = 0.1.
    ('tff_dp_adaptive', lambda deltas, sizes: sum(
        _clip(d, 0.1) for d in deltas) / 3),
])
def test_tff_factories_run_a_round_of_the_attacked_process(defense, expected):
  config = config_lib.ExperimentConfig(
      defense=defense, num_clients_per_round=3, tff_dp_noise_multiplier=0.0,
      l2_norm_clip=0.05)
  registry.validate(config)
  aggregator, _ = build.build_defense(config, population=100)
  process = builders.attacked_process(aggregator)
  clients = [(1, 4), (2, 6), (3, 8)]
  data = process_lib.build_client_data(
      [builders.make_dataset(*c) for c in clients], [None] * 3, [False] * 3)
  output = process.next(process.initialize(), data)
  new = process.get_model_weights(output.state).trainable
  step = np.concatenate([np.ravel(t) for t in ref.delta(
      [np.asarray(w, np.float64) for w in new], ref.initial_weights())])
  want = expected(_benign_deltas(clients), [n for _, n in clients])
  np.testing.assert_allclose(step, want, rtol=1e-4, atol=1e-6)
  assert 'zero_non_finite' in output.metrics['aggregator']
