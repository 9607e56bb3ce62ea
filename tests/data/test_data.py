"""Generated digits, backdoor task, client sampling and attacker models."""

import numpy as np
import pytest
import tensorflow as tf

from targeted_attack.process import models
from targeted_attack.data import synthetic_digits
from targeted_attack.backdoors import edge_case
from targeted_attack.data import federated
from targeted_attack.process import round_data
from targeted_attack.data import sampling
from targeted_attack.backdoors import semantic
from targeted_attack.backdoors import triggers


def test_synthetic_is_deterministic_and_has_emnist_element_spec():
  a = federated.load_synthetic(8, 30, seed=3)
  b = federated.load_synthetic(8, 30, seed=3)
  c = federated.load_synthetic(8, 30, seed=4)
  pa, la = a.client_arrays(5)
  pb, lb = b.client_arrays(5)
  np.testing.assert_array_equal(pa, pb)
  np.testing.assert_array_equal(la, lb)
  assert not np.array_equal(pa[:5], c.client_arrays(5)[0][:5])
  assert pa.dtype == np.float32 and pa.shape[1:] == (28, 28)
  assert la.dtype == np.int32 and set(np.unique(la)) <= set(range(10))
  assert 0.0 <= pa.min() and pa.max() <= 1.0
  # White background, dark ink, as TFF's EMNIST: corners are background.
  assert np.all(pa[:, 0, 0] > 0.99)
  assert np.mean(pa < 0.5) > 0.03


def test_rasterize_matches_distance_to_segment():
  points = np.array([[[4.0, 14.0], [24.0, 14.0]]], np.float32)
  ink = synthetic_digits.rasterize(points, np.array([True]),
                                   np.array([2.0], np.float32))[0]
  # Pixel centres (x + .5, y + .5): row 13 is 0.5 px from the line y=14.
  ys, xs = np.mgrid[0:28, 0:28] + 0.5
  d = np.where((xs >= 4) & (xs <= 24), np.abs(ys - 14.0),
               np.hypot(np.minimum(np.abs(xs - 4), np.abs(xs - 24)), ys - 14.0))
  np.testing.assert_allclose(ink, np.clip(1.5 - d, 0, 1), atol=1e-5)


def test_writers_differ_in_style():
  writers = synthetic_digits.generate_writers(6, 40, seed=0)
  slants = {round(w.style.slant, 3) for w in writers}
  widths = {round(w.style.stroke_width, 3) for w in writers}
  assert len(slants) == 6 and len(widths) == 6


def test_cnn_learns_the_synthetic_main_task():
  data = federated.load_synthetic(120, 40, seed=0)
  x = np.concatenate([data.client_arrays(i)[0] for i in range(120)])
  y = np.concatenate([data.client_arrays(i)[1] for i in range(120)])
  tf.keras.utils.set_random_seed(0)
  model = models.create_keras_model('small_cnn')
  model.compile(
      optimizer=tf.keras.optimizers.SGD(0.1),
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=['accuracy'])
  model.fit(x[..., None], y, batch_size=20, epochs=3, verbose=0)
  _, accuracy = model.evaluate(data.test_pixels[..., None], data.test_labels,
                               verbose=0)
  assert accuracy > 0.9


def test_backdoor_task_is_the_sevens_of_target_writers():
  data = federated.load_synthetic(20, 30, seed=1)
  task = semantic.select_backdoor_task(data, 4, seed=2)
  assert len(set(task.target_clients)) == 4
  expected = np.concatenate([
      data.client_arrays(k)[0][data.client_arrays(k)[1] == 7]
      for k in task.target_clients
  ])
  np.testing.assert_array_equal(task.train_pixels, expected)
  assert task.target_label == 1
  ds = round_data.malicious_dataset(task, 1, 1000, 0)
  labels = np.concatenate([b['y'].numpy().ravel() for b in ds])
  assert len(labels) == len(expected) and np.all(labels == 1)
  with pytest.raises(ValueError, match='task_num'):
    semantic.select_backdoor_task(data, 21, seed=2)


def test_sample_clients_is_uniform_without_replacement():
  counts = np.zeros(50)
  for r in range(2000):
    sampled = sampling.sample_clients(50, 5, 0, r)
    assert len(set(sampled.tolist())) == 5
    counts[sampled] += 1
  # Each client: Binomial(2000, 0.1): mean 200, sd ≈ 13.4.
  assert np.all(np.abs(counts - 200) < 6 * 13.4)


def test_fixed_frequency_attacks_every_kth_round_with_one_attacker():
  model = sampling.FixedFrequencyAttackers(3)
  masks = [model.malicious_mask(np.arange(5), r, 0) for r in range(1, 10)]
  assert [int(m.sum()) for m in masks] == [0, 0, 1, 0, 0, 1, 0, 0, 1]


def test_random_sampling_attacker_count_is_hypergeometric():
  population, per_round, fraction = 100, 10, 0.2
  model = sampling.RandomSamplingAttackers(fraction, population, per_round)
  counts = np.array([model.malicious_mask(np.arange(per_round), r, 0).sum()
                     for r in range(4000)])
  k = 20
  mean = per_round * k / population
  var = mean * (1 - k / population) * (population - per_round) / (
      population - 1)
  assert counts.mean() == pytest.approx(mean, abs=4 * np.sqrt(var / 4000))
  assert counts.var() == pytest.approx(var, rel=0.1)


def test_fixed_pool_attackers_are_sampled_like_everyone_else():
  model = sampling.FixedPoolAttackers(5, 50, seed=0)
  assert len(model.pool) == 5
  hits = 0
  for r in range(1000):
    sampled = sampling.sample_clients(50, 10, 0, r)
    mask = model.malicious_mask(sampled, r, 0)
    np.testing.assert_array_equal(mask, [int(k) in model.pool for k in sampled])
    hits += mask.sum()
  # Expected attackers per round: 10 · 5/50 = 1.
  assert hits / 1000 == pytest.approx(1.0, abs=0.1)
  with pytest.raises(ValueError, match='attacker_pool_size'):
    sampling.FixedPoolAttackers(51, 50, seed=0)


def test_fixed_pool_is_not_a_rounds_client_sample():
  # A pool as large as a round: were it drawn from a round's stream, that
  # round's sample would be the pool (every sampled client an attacker).
  # P(a given round's 10 of 50 equal the pool) = 1/C(50, 10) ~ 1e-10.
  for seed in range(5):
    pool = sampling.FixedPoolAttackers(10, 50, seed=seed).pool
    for r in range(20):
      assert set(int(k) for k in sampling.sample_clients(50, 10, seed, r)) != (
          pool), (seed, r)


@pytest.mark.parametrize('amplitude', [1.0, 0.3])
@pytest.mark.parametrize('placement, corners', [
    ('one_corner', [(24, 24)]),
    ('four_corners', [(24, 24), (1, 1), (1, 24), (24, 1)]),
])
def test_trigger_stamping_blends_the_pattern_into_the_corners(
    amplitude, placement, corners):
  rng = np.random.RandomState(0)
  images = rng.uniform(0, 1, (3, 28, 28)).astype(np.float32)
  expected = images.copy()
  # A square of ink (0): every pixel in contrast to the white background (1).
  pattern = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
  for r0, c0 in corners:
    for i in range(3):
      for j in range(3):
        x = images[:, r0 + i, c0 + j]
        expected[:, r0 + i, c0 + j] = (1 - amplitude) * x + amplitude * pattern[i][j]
  np.testing.assert_allclose(
      triggers.stamp_trigger(images, amplitude, placement), expected, atol=1e-6)


def test_trigger_task_relabels_non_target_images_and_evaluates_on_them():
  data = federated.load_synthetic(10, 30, seed=1)
  task = triggers.trigger_task(data, 3, 1.0, 'one_corner', seed=0)
  assert len(task.eval_pixels) == np.sum(data.test_labels != 1)
  np.testing.assert_allclose(
      task.eval_pixels[:, 24:27, 24:27],
      np.zeros((len(task.eval_pixels), 3, 3)))  # the ink square
  expected_train = sum(np.sum(data.client_arrays(k)[1] != 1)
                       for k in task.target_clients)
  labels = np.concatenate([
      b['y'].numpy().ravel()
      for b in round_data.malicious_dataset(task, 1, 1000, 0)])
  assert len(labels) == expected_train and np.all(labels == 1)
  with pytest.raises(ValueError, match='trigger_placement'):
    triggers.stamp_trigger(task.eval_pixels, 1.0, 'center')
  with pytest.raises(ValueError, match='trigger_amplitude'):
    triggers.stamp_trigger(task.eval_pixels, 0.0, 'one_corner')


def test_edge_case_sevens_are_a_tail_the_mix_controls():
  edge = edge_case.edge_case_task(20, 30, seed=0)
  assert edge.train_pixels.shape == (20, 28, 28)
  assert edge.eval_pixels.shape == (30, 28, 28)
  rates = sorted(set(edge_case.EDGE_CASE_MIXES.values()) | {0.03})
  for mix, rate in edge_case.EDGE_CASE_MIXES.items():
    writers = synthetic_digits.generate_writers(300, 10, seed=0,
                                                crossbar_seven_rate=rate)
    if rate == 0.0:   # the pure edge case: no honest writer holds one
      assert not any(w.style.uses_crossbar_seven for w in writers), mix
    rng = np.random.RandomState(1)
    styles = [synthetic_digits.sample_writer_style(rng, rate)
              for _ in range(20000)]
    share = np.mean([style.uses_crossbar_seven for style in styles])
    # 4 binomial σ, less than half the gap to the nearest other rate (the
    # default 0.03 included), so the test tells the mixes apart.
    tolerance = 4 * np.sqrt(rate * (1 - rate) / len(styles))
    gap = min(abs(rate - other) for other in rates if other != rate)
    assert tolerance < gap / 2
    assert share == pytest.approx(rate, abs=tolerance), mix


def test_the_edge_case_mix_reaches_the_generated_writers(tmp_path,
                                                         monkeypatch):
  from targeted_attack.experiment import build  # pylint: disable=g-import-not-at-top
  from builders import tiny_config  # pylint: disable=g-import-not-at-top
  rates = []
  real = federated.load_synthetic
  monkeypatch.setattr(federated, 'load_synthetic', lambda *a, **k: (
      rates.append(k['crossbar_seven_rate']), real(*a, **k))[1])
  for mix in edge_case.EDGE_CASE_MIXES:
    build.load_data(tiny_config(tmp_path, backdoor='edge_case',
                                edge_case_mix=mix, edge_case_num_train=10,
                                edge_case_num_eval=10))
  build.load_data(tiny_config(tmp_path))          # the semantic backdoor
  assert rates == list(edge_case.EDGE_CASE_MIXES.values()) + [0.03]


def test_attacker_count_rounds_epsilon_times_population_to_nearest():
  # Sun et al.: ε = 3.3% (one attacker per round of 30) of 3,383 writers is
  # 3,383 / 30 = 112.77 → 113; 0.33% (1/300): 11.28 → 11.
  assert sampling.num_malicious_clients(1 / 30, 3383) == 113
  assert sampling.num_malicious_clients(1 / 300, 3383) == 11
  assert sampling.num_malicious_clients(0.033, 3383) == 112  # 111.64
  assert sampling.num_malicious_clients(0.5, 3) == 2  # halves round up
  model = sampling.RandomSamplingAttackers(1 / 30, 3383, 30)
  assert model.num_malicious == 113


def test_local_shuffles_follow_the_run_seed():
  digits = federated.load_synthetic(6, 20, seed=0)
  task = semantic.select_backdoor_task(digits, 2, seed=0)
  sampled = np.array([0, 3])
  mask = np.array([True, False])

  def first_labels(run_seed):
    client_data = round_data.round_client_data(digits, task, sampled, mask, 1,
                                             20, run_seed, round_num=1)
    return [next(iter(c['benign']))['y'].numpy().ravel().tolist()
            for c in client_data]

  assert first_labels(0) == first_labels(0)
  assert first_labels(0) != first_labels(1)


def test_round_client_data_marks_malicious_clients_and_splits_the_boost():
  digits = federated.load_synthetic(6, 20, seed=0)
  task = semantic.select_backdoor_task(digits, 2, seed=0)
  sampled = np.array([0, 1, 2])
  mask = np.array([True, False, True])
  client_data = round_data.round_client_data(digits, task, sampled, mask, 1, 10,
                                           0, round_num=1)
  malicious_sizes = [sum(1 for _ in c['malicious']) for c in client_data]
  assert [s > 0 for s in malicious_sizes] == [True, False, True]
  shares = [float(next(iter(c['context']))['boost_share']) for c in client_data]
  assert shares == [0.5, 0.5, 0.5]
  unsplit = round_data.round_client_data(digits, task, sampled, mask, 1, 10, 0,
                                       round_num=1, split_boost=False)
  assert float(next(iter(unsplit[0]['context']))['boost_share']) == 1.0


def test_attack_window_has_no_attacker_outside_it():
  window = sampling.AttackWindow(sampling.FixedFrequencyAttackers(1), 3, 5)
  sampled = np.arange(4)
  counts = [int(window.malicious_mask(sampled, r, 0).sum()) for r in range(1, 9)]
  assert counts == [0, 0, 1, 1, 1, 0, 0, 0]
  open_ended = sampling.AttackWindow(sampling.FixedFrequencyAttackers(2), 3)
  assert [int(open_ended.malicious_mask(sampled, r, 0).sum())
          for r in range(1, 9)] == [0, 0, 0, 1, 0, 1, 0, 1]


def test_forced_pool_puts_every_attacker_in_every_round_of_the_window():
  # DBA's multi-shot threat model: the K attackers in every round (forced
  # in), the rest of the round the drawn sample; attacker i has identity i.
  model = sampling.ForcedPoolAttackers(4, 50, seed=1, clients_per_round=10)
  window = sampling.AttackWindow(model, 3, 6)
  pool = list(model.order)
  assert len(set(pool)) == 4 and set(pool) == model.pool
  assert set(pool) == set(sampling.FixedPoolAttackers(4, 50, seed=1).pool)
  for r in range(1, 10):
    drawn = sampling.sample_clients(50, 10, 1, r)
    sampled = window.include(drawn, r, 1)
    mask = window.malicious_mask(sampled, r, 1)
    assert len(sampled) == 10 and len(set(int(k) for k in sampled)) == 10
    if 3 <= r <= 6:
      assert [int(k) for k in sampled[:4]] == pool
      others = [int(k) for k in drawn if int(k) not in model.pool]
      assert [int(k) for k in sampled[4:]] == others[:6]
      np.testing.assert_array_equal(mask, [True] * 4 + [False] * 6)
    else:
      np.testing.assert_array_equal(sampled, drawn)
      assert not mask.any()
  assert [window.identity(k) for k in pool] == [0, 1, 2, 3]
  outsider = next(k for k in range(50) if k not in model.pool)
  assert window.identity(outsider) == outsider
  with pytest.raises(ValueError, match='attacker_pool_size'):
    sampling.ForcedPoolAttackers(11, 50, seed=1, clients_per_round=10)


def test_staggered_pool_forces_each_attacker_into_its_own_round_only():
  # DBA's single shot: attacker i of the pool alone, in round 5 + 2i (rounds
  # 5, 7, 9, 11), first in the sample; drawn in any other round, it is
  # benign. The pool is the fixed pool's (same seed, same stream).
  model = sampling.StaggeredPoolAttackers(4, 50, seed=1, first_round=5,
                                          stagger=2)
  window = sampling.AttackWindow(model, 5)
  pool = list(sampling.FixedPoolAttackers(4, 50, seed=1).order)
  assert list(model.order) == pool
  shots = {5: pool[0], 7: pool[1], 9: pool[2], 11: pool[3]}
  for r in range(1, 16):
    # Every pool member in the draw: their presence outside a shot is benign.
    drawn = np.array(pool + [k for k in sampling.sample_clients(50, 10, 1, r)
                             if k not in pool][:6])
    sampled = window.include(drawn, r, 1)
    mask = window.malicious_mask(sampled, r, 1)
    assert len(sampled) == 10 and len(set(int(k) for k in sampled)) == 10
    if r in shots:
      assert int(sampled[0]) == shots[r]
      assert [int(k) for k in sampled[1:]] == [int(k) for k in drawn
                                               if int(k) != shots[r]][:9]
      np.testing.assert_array_equal(mask, [True] + [False] * 9)
    else:
      np.testing.assert_array_equal(sampled, drawn)
      assert not mask.any()
  # A shooter not drawn takes the first place; the draw's last one drops.
  drawn = np.array([k for k in range(50) if k not in pool][:10])
  sampled = window.include(drawn, 9, 1)
  assert [int(k) for k in sampled] == [shots[9]] + [int(k) for k in drawn[:9]]
  np.testing.assert_array_equal(window.malicious_mask(sampled, 9, 1),
                                [True] + [False] * 9)
  assert [window.identity(k) for k in pool] == [0, 1, 2, 3]
  with pytest.raises(ValueError, match='attack_stagger'):
    sampling.StaggeredPoolAttackers(4, 50, seed=1, first_round=5, stagger=0)


def test_fixed_pool_attacker_identity_is_its_index_in_the_pool():
  model = sampling.FixedPoolAttackers(6, 50, seed=2)
  assert sorted(model.identity(k) for k in model.pool) == list(range(6))
  assert sampling.RandomSamplingAttackers(0.1, 50, 10).identity(17) == 17
