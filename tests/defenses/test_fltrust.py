"""FLTrust (Cao et al., NDSS 2021): the rule, the root dataset, a tiny run.

The rule is compared with an independent NumPy computation of
g = Σ_i ReLU(cos(g_i, g0)) (‖g0‖/‖g_i‖) g_i / Σ_i ReLU(cos(g_i, g0)), g0 the
last row (the server's root client).
"""

import collections

import numpy as np
import pytest

from targeted_attack import aggregate_fn
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import registry
from targeted_attack.backdoors import base as backdoor_base
from targeted_attack.experiment import build
from targeted_attack.data import federated
from targeted_attack.data import root_dataset
from targeted_attack.process import round_data
from targeted_attack.experiment import run as run_lib
from builders import flat as _flat
from builders import run_aggregator as _run
from builders import tiny_config as tiny

DIM = 10  # test_aggregate_fn.VALUE_TYPE: a [2, 3] and a [4] tensor.


def _as_updates(points):
  return [collections.OrderedDict(a=np.asarray(p[:6], np.float32).reshape(2, 3),
                                  b=np.asarray(p[6:], np.float32))
          for p in points]


def _numpy_fltrust(points):
  """(aggregate, trust scores) of the client rows, g0 the last row."""
  clients, g0 = points[:-1], points[-1]
  trust, rescaled = [], []
  for g in clients:
    cosine = g @ g0 / (np.linalg.norm(g) * np.linalg.norm(g0))
    trust.append(max(0.0, cosine))
    rescaled.append(np.linalg.norm(g0) / np.linalg.norm(g) * g)
  trust = np.array(trust)
  if trust.sum() == 0:
    return np.zeros(points.shape[1]), trust
  return (trust[:, None] * np.array(rescaled)).sum(0) / trust.sum(), trust


def _float32_exact(points):
  return np.asarray(points, np.float32).astype(np.float64)


def _aggregate(points):
  output = _run(aggregate_fn.build_fltrust(), _as_updates(points))
  return _flat(output.result).astype(np.float64), output.measurements['fltrust']


def test_fltrust_matches_numpy_on_random_updates():
  rng = np.random.RandomState(0)
  points = _float32_exact(rng.randn(6, DIM))  # 5 clients, then g0
  expected, trust = _numpy_fltrust(points)
  got, measured = _aggregate(points)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(measured['trust_scores'], trust, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(measured['kept_mask'],
                                (trust > 0).astype(np.float32))
  assert measured['num_clients'] == 5
  assert measured['kept_clients'] == np.sum(trust > 0)
  assert measured['root_norm'] == pytest.approx(np.linalg.norm(points[-1]),
                                                rel=1e-6)


def test_negative_client_gets_no_weight_and_a_scaled_one_is_rescaled():
  rng = np.random.RandomState(1)
  g0 = rng.randn(DIM)
  benign = g0 + 0.3 * rng.randn(DIM)
  opposed = -2.0 * g0 + 0.1 * rng.randn(DIM)       # cos < 0: trust 0
  boosted = 50.0 * (g0 + 0.3 * rng.randn(DIM))      # large, same direction
  points = _float32_exact([benign, opposed, boosted, g0])
  expected, trust = _numpy_fltrust(points)
  assert trust[1] == 0.0 and trust[0] > 0 and trust[2] > 0
  got, measured = _aggregate(points)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(measured['kept_mask'], [1.0, 0.0, 1.0])
  # The boosted client enters with norm ‖g0‖: the aggregate is a convex
  # combination of vectors of norm ‖g0‖, so its norm is at most ‖g0‖.
  rescaled = [np.linalg.norm(g0) / np.linalg.norm(p) * p for p in points[[0, 2]]]
  by_hand = (trust[0] * rescaled[0] + trust[2] * rescaled[1]) / (
      trust[0] + trust[2])
  np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-6)
  assert np.linalg.norm(got) <= np.linalg.norm(points[-1]) * (1 + 1e-6)


def test_all_distrusted_gives_zero_and_the_root_row_is_not_aggregated():
  rng = np.random.RandomState(2)
  g0 = rng.randn(DIM)
  points = _float32_exact([-g0, -3.0 * g0, np.zeros(DIM), g0])
  got, measured = _aggregate(points)
  np.testing.assert_array_equal(got, np.zeros(DIM))
  np.testing.assert_array_equal(measured['trust_scores'], [0.0, 0.0, 0.0])
  assert measured['kept_clients'] == 0


def test_non_finite_client_is_zeroed_and_distrusted_through_the_registry():
  config = config_lib.ExperimentConfig(defense='fltrust')
  registry.validate(config)
  aggregator, client_dp_sgd = build.build_defense(config, population=100)
  assert client_dp_sgd is None
  rng = np.random.RandomState(3)
  points = _float32_exact(rng.randn(5, DIM))
  updates = _as_updates(points)
  updates[1]['a'][0, 0] = np.nan
  got = _flat(_run(aggregator, updates).result).astype(np.float64)
  points[1] = 0.0
  kept = [0, 2, 3]  # a zero update has cosine 0: trust 0
  expected, _ = _numpy_fltrust(points[kept + [4]])
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# The root dataset and the root client.


def _population(num_clients=6, per_client=5):
  rng = np.random.RandomState(4)
  arrays = {f'c{k}': (rng.rand(per_client, 28, 28).astype(np.float32),
                      np.arange(per_client, dtype=np.int32) + 10 * k)
            for k in range(num_clients)}
  return federated.FederatedDigits(list(arrays), arrays.__getitem__,
                                  np.zeros((1, 28, 28), np.float32),
                                  np.zeros(1, np.int32), 'test')


def test_root_is_held_out_of_the_clients_deterministically():
  data = _population()
  held = root_dataset.hold_out_root(data, 8, seed=5)
  root_pixels, root_labels = held.root
  assert root_pixels.shape == (8, 28, 28) and root_labels.shape == (8,)
  # Labels are unique per example (10·client + index): count where they went.
  remaining = np.concatenate(
      [held.client_arrays(k)[1] for k in range(held.num_clients)])
  everything = np.concatenate(
      [data.client_arrays(k)[1] for k in range(data.num_clients)])
  assert not set(root_labels) & set(remaining)
  assert sorted(np.concatenate([root_labels, remaining])) == sorted(everything)
  # One example from each client in a pass: 6 clients give 1, then 2 give 2.
  per_client = np.bincount(root_labels // 10, minlength=6)
  assert sorted(per_client) == [1, 1, 1, 1, 2, 2]
  again = root_dataset.hold_out_root(_population(), 8, seed=5)
  np.testing.assert_array_equal(again.root[1], root_labels)
  other = root_dataset.hold_out_root(_population(), 8, seed=6)
  assert not np.array_equal(other.root[1], root_labels)
  with pytest.raises(ValueError, match='only 24 examples'):
    root_dataset.hold_out_root(_population(), 25, seed=5)  # each keeps one


def test_round_appends_one_benign_root_client_last():
  held = root_dataset.hold_out_root(_population(), 4, seed=5)
  task = backdoor_base.BackdoorTask('t', np.ones((3, 28, 28), np.float32),
                               np.ones((3, 28, 28), np.float32))
  sampled, malicious = np.array([2, 0, 5]), np.array([False, True, False])
  clients = round_data.round_client_data(held, task, sampled, malicious,
                                       num_epochs=1, batch_size=100,
                                       run_seed=1, round_num=1)
  assert len(clients) == 4
  root = clients[-1]
  assert len(list(root['malicious'])) == 0
  labels = np.concatenate([b['y'].numpy().ravel() for b in root['benign']])
  assert sorted(labels) == sorted(held.root[1])
  assert len(list(clients[1]['malicious'])) == 1  # the attacker's D_mal
  plain = round_data.round_client_data(_population(), task, sampled, malicious,
                                     1, 100, 1, 1)
  assert len(plain) == 3


def test_root_size_beyond_the_data_names_the_setting(tmp_path):
  config = tiny(tmp_path, defense='fltrust', fltrust_root_size=10_000)
  with pytest.raises(config_lib.ConfigError) as error:
    build.load_data(config)
  assert error.value.field == 'fltrust_root_size'


def test_fltrust_run_counts_only_the_sampled_clients(tmp_path):
  config = tiny(tmp_path, defense='fltrust', num_clients_per_round=3,
                num_rounds=2, attack_freq=1, fltrust_root_size=12)
  rows = run_lib.run(config, progress=False)
  assert [r['round'] for r in rows] == [1, 2]
  for r in rows:
    assert r['num_attackers'] == 1
    prefix = next(k for k in r if k.endswith('fltrust/num_clients'))
    assert r[prefix] == 3.0  # the root client is not one of the round's
    assert 0.0 <= r[prefix.replace('num_clients', 'kept_clients')] <= 3.0
    # kept_mask has one entry per sampled client: detection is reported.
    assert r['detection_tpr'] in (0.0, 1.0)
    assert r['detection_fpr'] in (0.0, 0.5, 1.0)
