"""The Dirichlet(α) label partition (`dataset='dirichlet'`) against NumPy."""

import csv
import os

import numpy as np
import pytest

from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import build
from targeted_attack.data import dirichlet
from targeted_attack.data import federated
from targeted_attack.experiment import run as run_lib
from targeted_attack.backdoors import semantic


def _shares(parts, labels):
  """shares[c, k]: the fraction of class c's examples on client k."""
  classes = np.unique(labels)
  counts = np.array([[np.sum(labels[p] == c) for p in parts]
                     for c in classes], np.float64)
  return counts / counts.sum(axis=1, keepdims=True)


def test_partition_is_a_partition_and_deterministic_from_the_seed():
  labels = np.random.default_rng(0).integers(0, 10, size=3000)
  split = lambda seed: dirichlet.dirichlet_partition(
      labels, 25, 0.3, np.random.default_rng(seed))
  parts = split(7)
  assert len(parts) == 25
  everything = np.concatenate(parts)
  np.testing.assert_array_equal(np.sort(everything), np.arange(len(labels)))
  for a, b in zip(parts, split(7)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(parts, split(8)))
  with pytest.raises(ValueError, match='dirichlet_alpha'):
    dirichlet.dirichlet_partition(labels, 25, 0.0, np.random.default_rng(0))


@pytest.mark.parametrize('alpha', [0.1, 1.0, 10.0])
def test_class_shares_are_dirichlet_alpha(alpha):
  # Many classes, so the per-class statistics average over many draws.
  num_classes, per_class, n = 300, 2000, 10
  labels = np.repeat(np.arange(num_classes), per_class)
  parts = dirichlet.dirichlet_partition(labels, n, alpha,
                                       np.random.default_rng(1))
  shares = _shares(parts, labels)
  # NumPy's Dirichlet draws of the same shape, for the reference statistics.
  draws = np.random.default_rng(2).dirichlet(np.full(n, alpha), size=20000)
  tolerance = lambda stat: 5 * stat.std() / np.sqrt(num_classes) + 2 / per_class
  # Mean largest share of a class (small α: most of a class on one client).
  sim_max = draws.max(axis=1)
  assert abs(shares.max(axis=1).mean() - sim_max.mean()) < tolerance(sim_max)
  # E Σ_k p_k² = (α + 1) / (Nα + 1) for p ~ Dir(α·1_N).
  sim_sq = (draws ** 2).sum(axis=1)
  expected = (alpha + 1) / (n * alpha + 1)
  assert abs(sim_sq.mean() - expected) < tolerance(sim_sq)
  assert abs((shares ** 2).sum(axis=1).mean() - expected) < tolerance(sim_sq)
  # Each client's mean share is 1/N.
  np.testing.assert_allclose(shares.mean(axis=0), 1 / n,
                             atol=5 * np.sqrt(1 / n / (n * alpha + 1) /
                                              num_classes))
  if alpha == 0.1:
    assert shares.max(axis=1).mean() > 0.5
  if alpha == 10.0:
    assert shares.max(axis=1).mean() < 0.25


def test_repartition_keeps_every_writer_example_once_and_the_test_split():
  writers = federated.load_synthetic(12, 20, seed=0)
  data = dirichlet.repartition_dirichlet(writers, 12, 0.5, seed=1)
  again = dirichlet.repartition_dirichlet(writers, 12, 0.5, seed=1)
  other = dirichlet.repartition_dirichlet(writers, 12, 0.5, seed=2)
  pool_x = np.concatenate([writers.client_arrays(i)[0] for i in range(12)])
  pool_y = np.concatenate([writers.client_arrays(i)[1] for i in range(12)])
  got_x = np.concatenate([data.client_arrays(i)[0]
                          for i in range(data.num_clients)])
  got_y = np.concatenate([data.client_arrays(i)[1]
                          for i in range(data.num_clients)])
  key = lambda x, y: np.lexsort(np.c_[x.reshape(len(x), -1), y].T)
  np.testing.assert_array_equal(got_x[key(got_x, got_y)],
                                pool_x[key(pool_x, pool_y)])
  np.testing.assert_array_equal(got_y[key(got_x, got_y)],
                                pool_y[key(pool_x, pool_y)])
  assert all(len(data.client_arrays(i)[1]) > 0
             for i in range(data.num_clients))
  for i in range(data.num_clients):
    np.testing.assert_array_equal(data.client_arrays(i)[1],
                                  again.client_arrays(i)[1])
  assert data.client_ids != other.client_ids or any(
      not np.array_equal(data.client_arrays(i)[1], other.client_arrays(i)[1])
      for i in range(data.num_clients))
  np.testing.assert_array_equal(data.test_labels, writers.test_labels)
  assert data.writers is writers and data.name == 'dirichlet'


def test_semantic_backdoor_targets_writers_whose_sevens_stay_with_clients():
  writers = federated.load_synthetic(20, 30, seed=1)
  data = dirichlet.repartition_dirichlet(writers, 20, 0.3, seed=1)
  task = semantic.select_backdoor_task(data, 4, seed=2)
  expected = np.concatenate([
      writers.client_arrays(k)[0][writers.client_arrays(k)[1] == 7]
      for k in task.target_clients])
  np.testing.assert_array_equal(task.train_pixels, expected)
  # Each target seven is held, labelled 7, by some client of the partition.
  sevens = np.concatenate([
      data.client_arrays(i)[0][data.client_arrays(i)[1] == 7]
      for i in range(data.num_clients)]).reshape(-1, 28 * 28)
  held = {row.tobytes() for row in sevens}
  assert all(img.tobytes() in held for img in expected.reshape(-1, 28 * 28))


def test_a_tiny_run_on_the_dirichlet_dataset(tmp_path):
  config = config_lib.ExperimentConfig(
      root_output_dir=str(tmp_path), experiment_name='dirichlet',
      random_seed=1, dataset='dirichlet', dirichlet_alpha=0.5,
      synthetic_num_clients=12, synthetic_examples_per_client=20,
      model='linear', num_clients_per_round=3, num_rounds=2, num_epochs=1,
      batch_size=10, task_num=2, attack='unconstrained', attack_freq=2,
      defense='clip', norm_bound=1.0)
  data = build.load_data(config)
  assert data.name == 'dirichlet'
  run_lib.run(config, progress=False)
  with open(os.path.join(config.output_dir, 'metrics.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  assert [int(r['round']) for r in rows] == [1, 2]
  assert [int(r['num_attackers']) for r in rows] == [0, 1]
  for r in rows:
    assert 0.0 <= float(r['main_task_accuracy']) <= 1.0
    assert 0.0 <= float(r['backdoor_accuracy']) <= 1.0
  # Not DBA: no per-part columns.
  assert not any(k.startswith('backdoor_accuracy_part_') for k in rows[0])
