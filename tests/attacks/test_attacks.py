"""Literature attacks (Bagdasaryan et al., Wang et al.) against NumPy SGD."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import attacked_fedavg
from targeted_attack import process as process_lib
from targeted_attack.attacks import bagdasaryan
from targeted_attack.attacks import pgd
import builders
import reference as ref

LR = 0.1


def _attacker_delta(strategy, benign=(1, 4), malicious=(9, 6), momentum=0.0):
  """Δ sent by a lone malicious client (mean of one update, server η = 1);
  clients train by SGD at rate LR with `momentum` (TFF's heavy ball)."""
  process = process_lib.build_federated_averaging_process_attacked(
      builders.model_fn,
      client_optimizer_fn=process_lib.build_sgdm(LR, momentum),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      client_update_tf=strategy)
  data = process_lib.build_client_data([builders.make_dataset(*benign)],
                                           [builders.make_dataset(*malicious)],
                                           [True])
  state = process.next(process.initialize(), data).state
  new = [np.asarray(w, np.float64)
         for w in process.get_model_weights(state).trainable]
  return ref.delta(new, ref.initial_weights())


def _batches(x, y, size=2):
  return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def _sgd(w, batches, lr_fn, alpha=1.0, reg_grad=None, after_step=None, t=0):
  """Plain SGD on α·CE + R(w), one step per batch (NumPy)."""
  for xb, yb in batches:
    grad_w, grad_b = ref.ce_gradients(w, xb, yb)
    grads = [alpha * grad_w, alpha * grad_b]
    if reg_grad is not None:
      grads = [g + r for g, r in zip(grads, reg_grad(w))]
    rate = lr_fn(t)
    w = [a - rate * g for a, g in zip(w, grads)]
    t += 1
    if after_step is not None:
      w = after_step(w, t)
  return w, t


def _poisoned(benign, poison, c):
  """Benign batches with their first c items replaced, poison cycling."""
  xp, yp = poison
  out, k = [], 0
  for xb, yb in _batches(*benign):
    idx = [(k + i) % len(xp) for i in range(c)]
    k += c
    out.append((np.concatenate([xp[idx], xb[c:]]),
                np.concatenate([yp[idx], yb[c:]])))
  return out


def test_data_poisoning_is_ordinary_training_on_poisoned_batches():
  benign, poison = ref.make_examples(1, 4), ref.make_examples(9, 6)
  w0 = ref.initial_weights()
  w, _ = _sgd(w0, _poisoned(benign, poison, 1), lambda t: LR)
  got = _attacker_delta(bagdasaryan.DataPoisoning(poison_per_batch=1))
  for a, b in zip(got, ref.delta(w, w0)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # Three passes (DBA's attackers train longer): the same batches again,
  # from where the last pass ended.
  for _ in range(2):
    w, _ = _sgd(w, _poisoned(benign, poison, 1), lambda t: LR)
  got = _attacker_delta(bagdasaryan.DataPoisoning(poison_per_batch=1,
                                                  num_passes=3))
  for a, b in zip(got, ref.delta(w, w0)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_data_poisoning_trains_with_the_client_momentum():
  # RLR's attackers poison with local momentum 0.9 (Ozdayi et al.): the
  # poisoned training is the client optimizer's, NumPy's heavy ball
  # a ← μ·a + g, w ← w − η·a, a = 0 at the start of the pass.
  benign, poison = ref.make_examples(1, 6), ref.make_examples(9, 6)
  w0 = ref.initial_weights()
  w, accumulator = w0, [np.zeros_like(v) for v in w0]
  for xb, yb in _poisoned(benign, poison, 1):
    accumulator = [0.9 * a + g for a, g in
                   zip(accumulator, ref.ce_gradients(w, xb, yb))]
    w = [v - LR * a for v, a in zip(w, accumulator)]
  got = _attacker_delta(bagdasaryan.DataPoisoning(poison_per_batch=1),
                        benign=(1, 6), momentum=0.9)
  for a, b in zip(got, ref.delta(w, w0)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  # The momentum mattered: plain SGD ends elsewhere.
  plain, _ = _sgd(w0, _poisoned(benign, poison, 1), lambda t: LR)
  assert ref.global_norm(ref.delta(plain, w)) > 1e-3


def test_a3fl_attack_boosts_the_poisoned_update():
  # `--attack=a3fl`: DataPoisoning with β; Δ = β · (w − w_t), one attacker
  # (boost share 1).
  benign, poison = ref.make_examples(1, 4), ref.make_examples(9, 6)
  w0 = ref.initial_weights()
  w, _ = _sgd(w0, _poisoned(benign, poison, 2), lambda t: LR)
  got = _attacker_delta(bagdasaryan.DataPoisoning(poison_per_batch=2,
                                                  boost_factor=2.5))
  for a, b in zip(got, ref.delta(w, w0)):
    np.testing.assert_allclose(a, 2.5 * b, rtol=1e-4, atol=1e-6)


def test_anomaly_terms_match_numpy():
  w0 = ref.initial_weights()
  w = [a + 0.3 * np.ones_like(a) for a in w0]
  flat_d = np.concatenate([np.ravel(a - b) for a, b in zip(w, w0)])
  flat_0 = np.concatenate([np.ravel(b) for b in w0])
  to_tf = lambda ws: [tf.constant(a, tf.float32) for a in ws]
  l2 = bagdasaryan.anomaly_loss(to_tf(w), to_tf(w0), 'l2')
  cos = bagdasaryan.anomaly_loss(to_tf(w), to_tf(w0), 'cosine')
  assert float(l2) == pytest.approx(np.linalg.norm(flat_d), rel=1e-5)
  flat_w = np.concatenate([np.ravel(a) for a in w])
  assert float(cos) == pytest.approx(
      1 - flat_w @ flat_0 / (np.linalg.norm(flat_w) * np.linalg.norm(flat_0)),
      rel=1e-4)


def test_cosine_anomaly_has_a_finite_gradient_at_the_start():
  # Bagdasaryan's cosine between models: at X = w_t, ∇(1 − cos) = 0.
  w0 = [tf.constant(a, tf.float32) for a in ref.initial_weights()]
  x = [tf.Variable(a) for a in w0]
  with tf.GradientTape() as tape:
    loss = bagdasaryan.anomaly_loss(x, w0, 'cosine')
  grads = tape.gradient(loss, x)
  flat = np.concatenate([np.ravel(g.numpy()) for g in grads])
  assert np.all(np.isfinite(flat)) and np.abs(flat).max() < 1e-5
  # Near the start, the gradient matches the NumPy derivative of 1 − cos.
  w = [a + 0.01 * np.arange(a.size).reshape(a.shape) for a in
       ref.initial_weights()]
  xv = [tf.Variable(tf.constant(a, tf.float32)) for a in w]
  with tf.GradientTape() as tape:
    loss = bagdasaryan.anomaly_loss(xv, w0, 'cosine')
  got = np.concatenate([np.ravel(g.numpy()) for g in tape.gradient(loss, xv)])
  u = np.concatenate([np.ravel(a) for a in w])
  r = np.concatenate([np.ravel(a) for a in ref.initial_weights()])
  nu, nr = np.linalg.norm(u), np.linalg.norm(r)
  expected = -(r / (nu * nr) - (u @ r) * u / (nu**3 * nr))
  np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize('early_stop_loss, epochs', [(0.0, 2), (1e9, 1)])
def test_constrain_and_scale_loss_schedule_early_stop_and_scaling(
    early_stop_loss, epochs):
  alpha, gamma, c = 0.7, 3.0, 1
  benign, poison = ref.make_examples(1, 4), ref.make_examples(9, 6)
  w0 = ref.initial_weights()

  def reg_grad(w):  # ∇ (1 − α)·sqrt(‖w − w0‖² + 1e-12)
    d = ref.delta(w, w0)
    norm = np.sqrt(sum(np.sum(x**2) for x in d) + 1e-12)
    return [(1 - alpha) * x / norm for x in d]

  lr_fn = lambda t: 0.2 * 0.5**(t // 3)
  w, t = w0, 0
  for _ in range(epochs):
    w, t = _sgd(w, _poisoned(benign, poison, c), lr_fn, alpha, reg_grad, t=t)
  expected = [gamma * d for d in ref.delta(w, w0)]
  strategy = bagdasaryan.ConstrainAndScale(
      alpha=alpha, gamma=gamma, anomaly='l2', poison_per_batch=c,
      learning_rate=0.2, lr_decay=0.5, lr_step_size=3, max_epochs=2,
      early_stop_loss=early_stop_loss)
  got = _attacker_delta(strategy)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_train_and_scale_sends_an_update_of_norm_exactly_s():
  bound = 0.37
  x, y = builders.union_examples(builders.make_dataset(1, 4), builders.make_dataset(9, 6))
  w0 = ref.initial_weights()
  w = w0
  for _ in range(2):
    w = ref.sgd_pass(w, x, y, LR)
  direction = ref.delta(w, w0)
  scale = bound / ref.global_norm(direction)
  got = _attacker_delta(bagdasaryan.TrainAndScale(norm_bound=bound, num_passes=2))
  assert ref.global_norm(got) == pytest.approx(bound, rel=1e-5)
  for a, b in zip(got, direction):
    np.testing.assert_allclose(a, scale * b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('frequency, replacement', [(1, 1.0), (2, 1.0),
                                                    (2, 5.0)])
def test_pgd_projects_every_k_steps_then_scales(frequency, replacement):
  eps = 0.05
  x, y = builders.union_examples(builders.make_dataset(1, 4), builders.make_dataset(9, 6))
  w0 = ref.initial_weights()

  def project(w):
    d = ref.delta(w, w0)
    s = min(1.0, eps / ref.global_norm(d))
    return [a + s * b for a, b in zip(w0, d)]

  w, _ = _sgd(w0, _batches(x, y), lambda t: LR,
              after_step=lambda w, t: project(w) if t % frequency == 0 else w)
  expected = [replacement * d for d in ref.delta(project(w), w0)]
  got = _attacker_delta(pgd.PGDAttack(
      eps=eps, project_frequency=frequency, learning_rate=LR,
      replacement_scale=replacement))
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert ref.global_norm(got) <= replacement * eps * (1 + 1e-5)


@pytest.mark.parametrize('build, name', [
    (lambda: bagdasaryan.ConstrainAndScale(alpha=1.5, gamma=1.0), 'alpha'),
    (lambda: bagdasaryan.ConstrainAndScale(alpha=-0.1, gamma=1.0), 'alpha'),
    (lambda: bagdasaryan.ConstrainAndScale(alpha=0.5, gamma=0.0), 'gamma'),
    (lambda: bagdasaryan.ConstrainAndScale(alpha=0.5, gamma=-2.0), 'gamma'),
    (lambda: bagdasaryan.ConstrainAndScale(0.5, 1.0, anomaly='kl'), 'anomaly'),
    (lambda: bagdasaryan.TrainAndScale(norm_bound=0.0), 'norm_bound'),
    (lambda: pgd.PGDAttack(eps=-1.0), 'eps'),
    (lambda: pgd.PGDAttack(eps=1.0, project_frequency=0),
     'project_frequency'),
    (lambda: bagdasaryan.DataPoisoning(poison_per_batch=0), 'poison_per_batch'),
    (lambda: bagdasaryan.DataPoisoning(1, num_passes=0), 'poison_passes'),
])
def test_bad_parameters_fail_early_naming_them(build, name):
  with pytest.raises(ValueError, match=name):
    build()


def _benign_delta_with_dp(dp, seed=1, n=4):
  process = process_lib.build_federated_averaging_process_attacked(
      builders.model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(LR),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      client_dp_sgd=dp)
  data = process_lib.build_client_data([builders.make_dataset(seed, n)], [None],
                                           [False])
  state = process.next(process.initialize(), data).state
  return ref.delta([np.asarray(w, np.float64)
                    for w in process.get_model_weights(state).trainable],
                   ref.initial_weights())


def test_dp_sgd_clips_each_example_gradient():
  clip = 0.05
  x, y = ref.make_examples(1, 4)
  w = ref.initial_weights()
  for xb, yb in _batches(x, y):
    per_example = [ref.ce_gradients(w, xb[i:i + 1], yb[i:i + 1])
                   for i in range(len(xb))]
    clipped = [[g * min(1.0, clip / ref.global_norm(grads)) for g in grads]
               for grads in per_example]
    mean = [sum(c[k] for c in clipped) / len(xb) for k in range(2)]
    w = [a - LR * g for a, g in zip(w, mean)]
  expected = ref.delta(w, ref.initial_weights())
  got = _benign_delta_with_dp(attacked_fedavg.DPSGD(clip, 0.0))
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


_DP_MODEL = []


def _dp_gradients_fn(dp):
  """seed → the flattened privatized gradient of one batch (traced once)."""
  if not _DP_MODEL:
    _DP_MODEL.append(builders.model_fn())
  keras_model = _DP_MODEL[0]
  x, y = ref.make_examples(1, 4)
  batch = {'x': tf.constant(x), 'y': tf.constant(y)}
  trainable = keras_model.trainable_variables
  compiled = tf.function(lambda seed: dp.gradients_and_outputs(
      keras_model, batch, trainable, seed)[0])
  return lambda seed: np.concatenate([
      np.ravel(g.numpy())
      for g in compiled(tf.constant([seed, 7], tf.int64))])


def _dp_gradients(dp, seed):
  return _dp_gradients_fn(dp)(seed)


def test_dp_sgd_noise_has_the_stated_scale_and_follows_the_seed():
  # One batch of B = 4: g = (Σ clip(∇ℓ_i) + z) / B, z ~ N(0, (σC)²) per
  # coordinate, so noise = noisy − clean has stddev σ·C/B.
  clip, sigma, batch = 0.05, 2.0, 4
  clean = _dp_gradients(attacked_fedavg.DPSGD(clip, 0.0), 0)
  noisy = _dp_gradients_fn(attacked_fedavg.DPSGD(clip, sigma))
  noise = np.concatenate([noisy(s) - clean for s in range(100)])
  # 800 draws: sample stddev within ±7.5% (3σ).
  expected_sd = sigma * clip / batch
  assert 0.85 * expected_sd < noise.std() < 1.15 * expected_sd
  assert abs(noise.mean()) < 0.15 * expected_sd
  same = _dp_gradients(attacked_fedavg.DPSGD(clip, sigma), 3)
  np.testing.assert_array_equal(
      same, _dp_gradients(attacked_fedavg.DPSGD(clip, sigma), 3))
  assert not np.allclose(
      same, _dp_gradients(attacked_fedavg.DPSGD(clip, sigma), 4))


def test_dp_sgd_rejects_bad_parameters():
  with pytest.raises(ValueError, match='l2_norm_clip'):
    attacked_fedavg.DPSGD(0.0, 1.0)
  with pytest.raises(ValueError, match='noise_multiplier'):
    attacked_fedavg.DPSGD(1.0, -1.0)


@pytest.mark.parametrize('strategy', [
    bagdasaryan.DataPoisoning(2), bagdasaryan.DataPoisoning(2, 3.0),
    attacked_fedavg.ClientProjectBoost(2.0, 0.5, 1),
    attacked_fedavg.ClientExplicitBoosting(2.0)],
    ids=['data_poisoning', 'a3fl', 'norm_bounded', 'unconstrained'])
def test_attackers_ignore_client_dp_sgd(strategy):
  # Under DP-SGD with a tiny clip and huge noise, an honest client's update
  # is noise; a malicious client's is exactly its update without DP-SGD
  # (the README: a malicious client has no reason to add noise).
  def attacker_delta(dp_sgd):
    process = process_lib.build_federated_averaging_process_attacked(
        builders.model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(LR),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
        client_update_tf=strategy, client_dp_sgd=dp_sgd)
    data = process_lib.build_client_data(
        [builders.make_dataset(1, 4)], [builders.make_dataset(9, 6)], [True])
    state = process.next(process.initialize(), data).state
    return np.concatenate([np.ravel(w) for w in
                           process.get_model_weights(state).trainable])

  noisy = attacked_fedavg.DPSGD(l2_norm_clip=1e-3, noise_multiplier=1e4)
  np.testing.assert_array_equal(attacker_delta(noisy), attacker_delta(None))
