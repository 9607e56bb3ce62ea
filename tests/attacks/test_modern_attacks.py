"""DBA triggers, Neurotoxin, ALIE and IPM against independent NumPy."""

import statistics

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import process as process_lib
from targeted_attack.attacks import omniscient
from targeted_attack.backdoors import triggers
from targeted_attack.data import federated
from targeted_attack.data import sampling
from targeted_attack.attacks import pgd
from targeted_attack.process import round_data
import builders
import reference as ref

LR = 0.1


def _flat(arrays):
  return np.concatenate([np.ravel(a) for a in arrays])


def _unflat(vector, like):
  out, start = [], 0
  for a in like:
    out.append(vector[start:start + a.size].reshape(a.shape))
    start += a.size
  return out


def _run_round(strategy, benign, malicious):
  """(Δ of the global model, metrics): one round, weighted mean, server η = 1.

  `benign`: (seed, n) per client; `malicious`: (seed, n) or None per client.
  """
  process = process_lib.build_federated_averaging_process_attacked(
      builders.model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(LR),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      client_update_tf=strategy)
  data = process_lib.build_client_data(
      [builders.make_dataset(*b) for b in benign],
      [None if m is None else builders.make_dataset(*m) for m in malicious])
  output = process.next(process.initialize(), data)
  new = [np.asarray(w, np.float64)
         for w in process.get_model_weights(output.state).trainable]
  return ref.delta(new, ref.initial_weights()), output.metrics


# ---------------------------------------------------------------------------
# Neurotoxin.


def test_top_k_mask_zeroes_the_largest_magnitudes_over_all_tensors():
  rng = np.random.RandomState(0)
  arrays = [rng.randn(4, 3).astype(np.float32), rng.randn(5).astype(np.float32)]
  for ratio in (0.0, 0.1, 0.5, 0.99):
    got = pgd.top_k_mask([tf.constant(a) for a in arrays], ratio)
    flat = _flat(arrays)
    k = int(ratio * flat.size)
    expected = np.ones(flat.size)
    expected[np.argsort(-np.abs(flat))[:k]] = 0.0
    np.testing.assert_array_equal(_flat([g.numpy() for g in got]), expected)
    assert [g.shape for g in got] == [a.shape for a in arrays]


# The attacker's D_trn: on it the two sources rank different top-2 sets (a
# test below checks), so the Neurotoxin test tells them apart.
_NEUROTOXIN_BENIGN = (2, 8)


def _neurotoxin_estimate(source, w0):
  """e: the global model's gradient summed over D_trn's batches (the
  authors' `grad_mask_cv`), or the attacker's benign SGD pass from w_t."""
  xb, yb = ref.make_examples(*_NEUROTOXIN_BENIGN)
  if source == 'benign_update':
    return _flat(ref.delta(ref.sgd_pass(w0, xb, yb, LR), w0))
  total = [np.zeros_like(a) for a in w0]
  for start in range(0, len(xb), 2):
    grads = ref.ce_gradients(w0, xb[start:start + 2], yb[start:start + 2])
    total = [t + g for t, g in zip(total, grads)]
  return _flat(total)


@pytest.mark.parametrize('ratio, frequency, source', [
    (0.25, 1, 'global_gradient'), (0.5, 2, 'global_gradient'),
    (0.25, 1, 'benign_update')])
def test_neurotoxin_is_pgd_with_gradients_masked_off_the_top_k(
    ratio, frequency, source):
  eps = 0.05
  w0 = ref.initial_weights()
  # The mask: top ⌊ρ·d⌋ coordinates of |e|, zeroed.
  estimate = _neurotoxin_estimate(source, w0)
  k = int(ratio * estimate.size)
  mask = np.ones(estimate.size)
  mask[np.argsort(-np.abs(estimate))[:k]] = 0.0
  mask = _unflat(mask, w0)

  def project(w):
    d = ref.delta(w, w0)
    s = min(1.0, eps / ref.global_norm(d))
    return [a + s * b for a, b in zip(w0, d)]

  x, y = builders.union_examples(builders.make_dataset(*_NEUROTOXIN_BENIGN),
                                 builders.make_dataset(9, 6))
  w = w0
  for t, start in enumerate(range(0, len(x), 2), start=1):
    grads = ref.ce_gradients(w, x[start:start + 2], y[start:start + 2])
    w = [a - LR * m * g for a, m, g in zip(w, mask, grads)]
    if t % frequency == 0:
      w = project(w)
  expected = ref.delta(project(w), w0)

  got, metrics = _run_round(
      pgd.Neurotoxin(mask_ratio=ratio, eps=eps, project_frequency=frequency,
                     learning_rate=LR, mask_source=source),
      [_NEUROTOXIN_BENIGN], [(9, 6)])
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # Only unmasked coordinates move; the update is inside the ball.
  moved = _flat(got)
  assert np.all(moved[_flat(mask) == 0.0] == 0.0)
  assert np.count_nonzero(moved) == estimate.size - k
  assert ref.global_norm(got) <= eps * (1 + 1e-5)
  clients = metrics['client_work']['clients']
  assert float(clients['malicious_update_norm_max']) == pytest.approx(
      ref.global_norm(got), rel=1e-4)


def test_neurotoxin_mask_sources_rank_different_coordinates():
  # The test above can tell the two sources apart only if they mask
  # different coordinates on its data.
  w0 = ref.initial_weights()
  k = int(0.25 * sum(a.size for a in w0))
  assert k == 2
  tops = [set(np.argsort(-np.abs(_neurotoxin_estimate(s, w0)))[:k])
          for s in pgd.NEUROTOXIN_MASK_SOURCES]
  assert tops[0] != tops[1]


# ---------------------------------------------------------------------------
# ALIE and IPM: 2 benign clients, 2 attackers (n = 4, f = 2).

_BENIGN = [(1, 4), (2, 6), (3, 4), (4, 2)]
_MALICIOUS = [None, None, (9, 6), (8, 4)]


def _benign_deltas():
  w0 = ref.initial_weights()
  return [_flat(ref.delta(ref.sgd_pass(w0, *ref.make_examples(*b), LR), w0))
          for b in _BENIGN]


def _expected_round(malicious_delta, deltas):
  """The weighted mean (weights: benign example counts) of the sent Δs."""
  sent = [d if m is None else malicious_delta
          for d, m in zip(deltas, _MALICIOUS)]
  weights = np.array([n for _, n in _BENIGN], np.float64)
  return weights @ np.stack(sent) / weights.sum()


def test_alie_z_max_is_the_papers_normal_quantile():
  for n, f in ((3, 1), (4, 2), (30, 1), (30, 5), (50, 24), (10, 9)):
    s = max(int(np.floor(n / 2 + 1)) - f, 1)
    expected = statistics.NormalDist().inv_cdf((n - s) / n)
    assert float(omniscient.alie_z_max(n, f)) == pytest.approx(
        expected, abs=1e-5), (n, f)
  assert float(omniscient.alie_z_max(30, 1)) == pytest.approx(0.0,
                                                                  abs=1e-6)


@pytest.mark.parametrize('knowledge, z', [('benign', None),
                                          ('attackers', 1.5)])
def test_alie_sends_mean_minus_z_std_of_the_round(knowledge, z):
  deltas = _benign_deltas()
  sample = [d for d, m in zip(deltas, _MALICIOUS)
            if (m is None) == (knowledge == 'benign')]
  # The population standard deviation (ddof 0), as the ALIE authors' code.
  mu, sigma = np.mean(sample, axis=0), np.std(sample, axis=0, ddof=0)
  if z is None:  # n = 4, f = 2: s = 1, z = Φ⁻¹(3/4)
    z_used = statistics.NormalDist().inv_cdf(3 / 4)
  else:
    z_used = z
  crafted = mu - z_used * sigma
  got, metrics = _run_round(omniscient.ALIE(z=z, knowledge=knowledge),
                            _BENIGN, _MALICIOUS)
  np.testing.assert_allclose(_flat(got), _expected_round(crafted, deltas),
                             rtol=1e-4, atol=1e-6)
  clients = metrics['client_work']['clients']
  assert float(clients['malicious_update_norm_max']) == pytest.approx(
      np.linalg.norm(crafted), rel=1e-4)
  assert float(clients['num_malicious_clients']) == 2


def test_ipm_sends_minus_epsilon_times_the_benign_mean():
  deltas = _benign_deltas()
  mu = np.mean([d for d, m in zip(deltas, _MALICIOUS) if m is None], axis=0)
  got, _ = _run_round(omniscient.IPM(epsilon=3.0), _BENIGN, _MALICIOUS)
  np.testing.assert_allclose(_flat(got), _expected_round(-3.0 * mu, deltas),
                             rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('build, name', [
    (lambda: pgd.Neurotoxin(mask_ratio=1.0, eps=1.0), 'mask_ratio'),
    (lambda: pgd.Neurotoxin(mask_ratio=-0.1, eps=1.0),
     'mask_ratio'),
    (lambda: pgd.Neurotoxin(mask_ratio=0.1, eps=0.0), 'eps'),
    (lambda: pgd.Neurotoxin(mask_ratio=0.1, eps=1.0, mask_source='own'),
     'mask_source'),
    (lambda: omniscient.ALIE(z=-1.0), 'z'),
    (lambda: omniscient.ALIE(knowledge='oracle'), 'knowledge'),
    (lambda: omniscient.IPM(epsilon=0.0), 'epsilon'),
    (lambda: triggers.split_trigger(triggers.global_trigger(28)[0], 37),
     'dba_parts'),
])
def test_bad_parameters_fail_early_naming_them(build, name):
  with pytest.raises(ValueError, match=name):
    build()


# ---------------------------------------------------------------------------
# DBA.


def _corner_masks(size=28):
  """The four 3×3 corner patches, 1 pixel from the border: TL, TR, BL, BR."""
  masks = []
  for r, c in ((1, 1), (1, size - 4), (size - 4, 1), (size - 4, size - 4)):
    m = np.zeros([size, size], bool)
    m[r:r + 3, c:c + 3] = True
    masks.append(m)
  return masks


def _corner_pattern(size=28):
  """The trigger on each corner patch, a square of ink (0: every pixel in
  contrast to the white background), and 0 elsewhere: 0 everywhere."""
  return np.zeros([size, size], np.float32)


def test_dba_parts_partition_the_global_four_corner_trigger():
  corners = _corner_masks()
  mask, pattern = triggers.global_trigger(28)
  np.testing.assert_array_equal(mask, np.any(corners, axis=0))
  np.testing.assert_array_equal(pattern, _corner_pattern())
  for parts in (1, 2, 3, 4, 5, 36):
    local = triggers.split_trigger(mask, parts)
    assert len(local) == parts
    np.testing.assert_array_equal(np.sum(local, axis=0), mask.astype(int))
    sizes = [int(m.sum()) for m in local]
    assert max(sizes) - min(sizes) <= 1
  # K = 4: one corner patch each; K = 2: the top pair, the bottom pair.
  for got, expected in zip(triggers.split_trigger(mask, 4), corners):
    np.testing.assert_array_equal(got, expected)
  top, bottom = triggers.split_trigger(mask, 2)
  np.testing.assert_array_equal(top, corners[0] | corners[1])
  np.testing.assert_array_equal(bottom, corners[2] | corners[3])


def test_dba_attacker_k_trains_on_part_k_mod_K_and_eval_has_the_global_one():
  digits = federated.load_synthetic(10, 20, seed=0)
  amplitude, parts = 0.8, 4
  task = triggers.dba_task(digits, task_num=2, amplitude=amplitude,
                           parts=parts, seed=3)
  source, eval_source, _ = triggers.trigger_source_images(digits, 2, seed=3)
  corners, pattern = _corner_masks(), _corner_pattern()
  assert len(task.train_parts) == parts
  for i, part in enumerate(task.train_parts):
    expected = np.where(corners[i],
                        source + amplitude * (pattern - source), source)
    np.testing.assert_allclose(part, expected, rtol=0, atol=1e-6)
    changed = np.any(part != source, axis=0)
    assert not np.any(changed & ~corners[i])
  # Evaluated with the global trigger: the BadNets four-corner stamp.
  np.testing.assert_allclose(
      task.eval_pixels,
      triggers.stamp_trigger(eval_source, amplitude, 'four_corners'),
      atol=1e-6)
  # Malicious client k of a round gets part k mod K.
  sampled = np.array([5, 2, 7, 4])
  client_data = round_data.round_client_data(
      digits, task, sampled, np.ones(4, bool), num_epochs=1, batch_size=1000,
      run_seed=0, round_num=1)
  for k, client in zip(sampled, client_data):
    x = np.concatenate([b['x'].numpy()[..., 0] for b in client['malicious']])
    y = np.concatenate([b['y'].numpy().ravel() for b in client['malicious']])
    expected = task.train_parts[k % parts]
    assert np.all(y == task.target_label) and len(x) == len(expected)
    order = lambda a: a[np.lexsort(a.reshape(len(a), -1).T)]
    np.testing.assert_array_equal(order(x), order(expected))


def _malicious_images(client):
  return np.concatenate([b['x'].numpy()[..., 0] for b in client['malicious']])


def test_dba_attackers_of_a_pool_each_keep_their_own_part_every_round():
  # DBA's multi-shot attack: 4 attackers, each with its own local trigger in
  # every round (attacker i of the pool: part i), whatever their ids mod K.
  digits = federated.load_synthetic(40, 20, seed=0)
  parts = 4
  task = triggers.dba_task(digits, task_num=2, amplitude=1.0, parts=parts,
                           seed=3)
  model = sampling.ForcedPoolAttackers(4, 40, seed=5, clients_per_round=6)
  order = lambda a: a[np.lexsort(a.reshape(len(a), -1).T)]
  for r in (1, 2, 3):
    sampled = model.include(sampling.sample_clients(40, 6, 5, r), r, 5)
    mask = model.malicious_mask(sampled, r, 5)
    client_data = round_data.round_client_data(
        digits, task, sampled, mask, num_epochs=1, batch_size=1000,
        run_seed=0, round_num=r, attacker_identity=model.identity)
    got = [order(_malicious_images(c)) for c, m in zip(client_data, mask)
           if m]
    assert len(got) == parts
    for i, x in enumerate(got):
      np.testing.assert_array_equal(x, order(task.train_parts[i]))
  # The pool's ids collide mod K here, so k mod K would not give 4 parts.
  assert len({k % parts for k in model.order}) < parts
