"""Defense factories fed known client updates, against NumPy/SciPy."""


import numpy as np
import pytest
import scipy.optimize
import tensorflow_federated as tff

from targeted_attack import aggregate_fn
from targeted_attack import process as process_lib
import builders
import reference as ref
from builders import flat as _flat
from builders import run_aggregator as _run
from builders import updates_with_norms as _updates


def test_stateless_mean_is_weighted_mean():
  updates, weights = _updates([1.0, 2.0, 3.0]), [1.0, 2.0, 5.0]
  got = _flat(_run(aggregate_fn.build_stateless_mean(), updates, weights).result)
  expected = np.average([_flat(u) for u in updates], axis=0, weights=weights)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_clip_per_client_scales_exactly_the_over_bound_updates():
  norms, bound = [0.5, 1.0, 3.0, 10.0], 2.0
  updates, weights = _updates(norms), [1.0, 3.0, 2.0, 4.0]
  output = _run(aggregate_fn.build_clip_per_client(bound), updates, weights)
  clipped = [_flat(u) / max(1.0, n / bound) for u, n in zip(updates, norms)]
  np.testing.assert_allclose(
      _flat(output.result), np.average(clipped, axis=0, weights=weights),
      rtol=1e-5, atol=1e-6)
  clip = output.measurements['clip']
  assert clip['fraction'] == pytest.approx(0.5)
  assert clip['norm_max'] == pytest.approx(10.0, rel=1e-5)
  assert clip['norm_mean'] == pytest.approx(np.mean(norms), rel=1e-5)


def test_clip_per_client_under_bound_is_identity():
  updates = _updates([0.1, 0.2])
  output = _run(
      aggregate_fn.build_clip_per_client(1.0,
                                         inner=tff.aggregators.SumFactory()),
      updates)
  np.testing.assert_allclose(
      _flat(output.result), sum(_flat(u) for u in updates), rtol=1e-6)


def test_aggregate_and_clip_clips_the_mean():
  norms, weights, bound = [4.0, 6.0], [1.0, 1.0], 1.0
  updates = _updates(norms)
  mean = np.average([_flat(u) for u in updates], axis=0, weights=weights)
  got = _flat(_run(aggregate_fn.build_aggregate_and_clip(bound), updates,
                   weights).result)
  np.testing.assert_allclose(
      got, mean / max(1.0, np.linalg.norm(mean) / bound), rtol=1e-5)


def test_dp_aggregate_mean_and_noise_stddev():
  # C ≠ 1, so σ = mul_factor·C (the README's convention) cannot pass for
  # σ = mul_factor: here 0.25 vs 0.1 on the mean.
  clip, mul, n_expected = 2.5, 0.4, 4
  norms = [0.5, 3.0, 2.0]
  updates = _updates(norms)
  clipped_sum = sum(_flat(u) / max(1.0, n / clip) for u, n in zip(updates, norms))
  factory = aggregate_fn.build_dp_aggregate(clip, mul, n_expected, seed=3)
  outputs = _run(factory, updates, rounds=60)
  draws = np.stack([_flat(o.result) for o in outputs])  # 60 rounds × 10 coords
  noise = draws - clipped_sum / n_expected
  # 600 draws of N(0, (mul·clip/N)²): mean within ±4σ/√600, stddev within 12%.
  sigma = mul * clip / n_expected
  assert abs(noise.mean()) < 4 * sigma / np.sqrt(noise.size)
  assert noise.std() == pytest.approx(sigma, rel=0.12)
  # Per coordinate too: each of the 10 has mean ≈ 0 and stddev ≈ σ.
  assert np.all(np.abs(noise.mean(axis=0)) < 4 * sigma / np.sqrt(60))
  np.testing.assert_allclose(noise.std(axis=0), sigma, rtol=0.35)
  measured = outputs[0].measurements['inner']['dp_query_metrics']
  assert measured['noise_stddev'] == pytest.approx(sigma, rel=1e-6)
  assert outputs[0].measurements['clip']['fraction'] == pytest.approx(1 / 3)


def test_dp_aggregate_is_repeatable_with_a_seed():
  updates = _updates([1.0, 2.0])
  a = _run(aggregate_fn.build_dp_aggregate(1.0, 1.0, 2, seed=7), updates)
  b = _run(aggregate_fn.build_dp_aggregate(1.0, 1.0, 2, seed=7), updates)
  c = _run(aggregate_fn.build_dp_aggregate(1.0, 1.0, 2, seed=8), updates)
  np.testing.assert_array_equal(_flat(a.result), _flat(b.result))
  assert not np.allclose(_flat(a.result), _flat(c.result))


def _numpy_krum_scores(points, f):
  n = len(points)
  scores = []
  for i in range(n):
    d = sorted(np.sum((points[i] - points[j])**2) for j in range(n) if j != i)
    scores.append(sum(d[:n - f - 2]))
  return np.array(scores)


def test_krum_picks_lowest_score_and_multi_krum_averages_lowest():
  rng = np.random.RandomState(1)
  updates = _updates([1.0, 1.1, 0.9, 1.2, 8.0, 1.0, 7.0], seed=2)
  points = np.stack([_flat(u) for u in updates])
  scores = _numpy_krum_scores(points, f=2)
  krum = _run(aggregate_fn.build_krum(2), updates)
  np.testing.assert_allclose(_flat(krum.result), points[np.argmin(scores)],
                             rtol=1e-6)
  multi = _run(aggregate_fn.build_multi_krum(2, 3), updates)
  lowest = np.argsort(scores)[:3]
  np.testing.assert_allclose(_flat(multi.result), points[lowest].mean(axis=0),
                             rtol=1e-5)
  np.testing.assert_allclose(np.sort(multi.measurements['multi_krum']['selected_scores']),
                             np.sort(scores)[:3], rtol=1e-4)
  del rng


def test_krum_rejects_too_many_byzantine_for_the_round():
  with pytest.raises(Exception, match='num_byzantine'):
    _run(aggregate_fn.build_krum(2), _updates([1.0, 2.0, 3.0, 4.0]))


@pytest.mark.parametrize('num_clients', [5, 6])
def test_coordinate_median_matches_numpy(num_clients):
  updates = _updates(np.linspace(1, 3, num_clients), seed=num_clients)
  got = _flat(_run(aggregate_fn.build_coordinate_median(), updates).result)
  np.testing.assert_allclose(
      got, np.median([_flat(u) for u in updates], axis=0), rtol=1e-6)


@pytest.mark.parametrize('trim_fraction', [0.0, 0.2, 0.45])
def test_trimmed_mean_matches_numpy(trim_fraction):
  updates = _updates(np.linspace(1, 4, 7), seed=4)
  points = np.sort(np.stack([_flat(u) for u in updates]), axis=0)
  k = int(np.floor(trim_fraction * len(points)))
  got = _flat(_run(aggregate_fn.build_trimmed_mean(trim_fraction),
                   updates).result)
  np.testing.assert_allclose(got, points[k:len(points) - k].mean(axis=0),
                             rtol=1e-5)


def test_geometric_median_minimizes_sum_of_distances():
  updates = _updates([1.0, 2.0, 1.5, 9.0, 1.2], seed=5)
  points = np.stack([_flat(u) for u in updates]).astype(np.float64)
  objective = lambda v: np.sum(np.linalg.norm(points - v, axis=1))
  best = scipy.optimize.minimize(objective, points.mean(axis=0),
                                 method='Powell',
                                 options=dict(xtol=1e-10, ftol=1e-12,
                                              maxiter=100000)).x
  output = _run(aggregate_fn.build_geometric_median(max_iters=200, eps=1e-8),
                updates)
  got = _flat(output.result)
  assert objective(got) <= objective(best) + 1e-5
  np.testing.assert_allclose(got, best, atol=1e-3)


def test_non_finite_updates_are_zeroed_and_counted():
  updates = _updates([1.0, 2.0, 3.0])
  updates[1]['b'][0] = np.nan
  updates[2]['a'][0, 0] = np.inf
  output = _run(aggregate_fn.build_default_aggregation(), updates,
                [1.0, 2.0, 3.0])
  # The non-finite clients drop out of the weighted mean entirely.
  np.testing.assert_allclose(_flat(output.result), _flat(updates[0]),
                             rtol=1e-6)
  assert output.measurements['zero_non_finite']['num_non_finite_clients'] == 2.0


@pytest.mark.parametrize('build, name', [
    (lambda: aggregate_fn.build_clip_per_client(0.0), 'norm_bound'),
    (lambda: aggregate_fn.build_clip_per_client(-1.0), 'norm_bound'),
    (lambda: aggregate_fn.build_aggregate_and_clip(0.0), 'norm_bound'),
    (lambda: aggregate_fn.build_gaussian_noise(-0.1), 'stddev'),
    (lambda: aggregate_fn.build_dp_aggregate(1.0, -1.0, 3), 'mul_factor'),
    (lambda: aggregate_fn.build_dp_aggregate(0.0, 1.0, 3), 'l2_norm_clip'),
    (lambda: aggregate_fn.build_trimmed_mean(0.5), 'trim_fraction'),
    (lambda: aggregate_fn.build_trimmed_mean(-0.1), 'trim_fraction'),
    (lambda: aggregate_fn.build_krum(-1), 'num_byzantine'),
    (lambda: aggregate_fn.build_multi_krum(1, 0), 'num_selected'),
])
def test_bad_arguments_fail_early_naming_them(build, name):
  with pytest.raises(ValueError, match=name):
    build()


def test_composed_defense_end_to_end_in_attacked_process():
  clip, sigma = 0.05, 1e-3
  factory = aggregate_fn.build_zero_non_finite(
      aggregate_fn.build_clip_per_client(
          clip, inner=aggregate_fn.build_gaussian_noise(sigma, seed=1)))
  process = builders.attacked_process(factory)
  data = process_lib.build_client_data(
      [builders.make_dataset(1, 4), builders.make_dataset(2, 6)],
      [builders.make_dataset(9, 6), None], [True, False])
  output = process.next(process.initialize(), data)
  w0 = ref.initial_weights()
  new = [np.asarray(w) for w in process.get_model_weights(output.state).trainable]
  step = ref.global_norm(ref.delta(new, w0))
  # A convex combination of clipped updates, plus small noise (10 coords).
  assert step <= clip + 6 * sigma * np.sqrt(10)
  measured = output.metrics['aggregator']['inner']['clip']
  assert measured['fraction'] == 1.0
  assert measured['norm_max'] == pytest.approx(
      output.metrics['client_work']['clients']['malicious_update_norm_max'],
      rel=1e-5)
