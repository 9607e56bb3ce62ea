"""A3FL (Zhang et al. 2023): the trigger step, the unlearning, a tiny run.

Each expectation is computed in NumPy (a linear softmax model's gradients in
closed form), never read off the code under test.
"""

import dataclasses

import numpy as np
import pytest

from targeted_attack.backdoors import a3fl
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import evaluation
from targeted_attack.process import models
from targeted_attack.experiment import registry
from targeted_attack.backdoors import triggers
from targeted_attack.experiment import build
from targeted_attack.experiment import run as run_lib
from builders import tiny_config as tiny

TARGET = 1


def _linear(rng, scale=0.05):
  model = models.create_keras_model('linear')
  kernel = rng.normal(0, scale, (784, 10)).astype(np.float32)
  bias = rng.normal(0, scale, 10).astype(np.float32)
  model.set_weights([kernel, bias])
  return model, kernel, bias


def _softmax(z):
  z = z - z.max(axis=1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=1, keepdims=True)


def _np_stamp(x, mask, delta):
  return np.where(mask, delta, x).astype(np.float32)


def _grad_wrt_delta(x, mask, delta, kernel, bias, target):
  """∇_δ of mean_n CE(softmax(W·(x_n ⊕ δ) + b), target), closed form.

  ∂CE_n/∂x̃_n = W (p_n − e_target); ∂x̃/∂δ = m (elementwise).
  """
  n = len(x)
  flat = _np_stamp(x, mask, delta).reshape(n, -1).astype(np.float64)
  p = _softmax(flat @ kernel + bias)
  p[:, target] -= 1.0
  grad_x = (p @ kernel.T / n).reshape(x.shape)
  return (grad_x * mask).sum(axis=0)


def _success(x, mask, delta, kernel, bias, target):
  flat = _np_stamp(x, mask, delta).reshape(len(x), -1)
  return float(np.mean(np.argmax(flat @ kernel + bias, axis=1) == target))


def test_trigger_step_is_a_clipped_sign_gradient_step_on_the_mask():
  rng = np.random.default_rng(0)
  model, w, b = _linear(rng, 0.3)
  adversarial, w_adv, b_adv = _linear(rng, 0.3)
  mask, _ = triggers.global_trigger(28, 'four_corners')
  x = rng.uniform(0, 1, (16, 28, 28)).astype(np.float32)
  delta = rng.uniform(0, 1, (28, 28)).astype(np.float32)
  # Pixels at the edges of [0, 1], so that the step is clipped on some.
  delta[mask] = np.where(rng.uniform(size=mask.sum()) < 0.5, 0.005, 0.995)
  lam, alpha = 0.7, 0.02

  result = np.asarray(a3fl.trigger_step(model, adversarial, x, delta,
                                        mask.astype(np.float32), TARGET, lam,
                                        alpha))

  grad = (_grad_wrt_delta(x, mask, delta, w, b, TARGET) +
          lam * _grad_wrt_delta(x, mask, delta, w_adv, b_adv, TARGET))
  unclipped = delta - alpha * np.sign(grad)
  expected = np.clip(unclipped, 0.0, 1.0)
  decided = np.abs(grad) > 1e-6      # where float32 and float64 signs agree
  assert decided[mask].mean() > 0.9
  np.testing.assert_allclose(result[decided], expected[decided], atol=1e-6)
  # Clipping acted, and the pattern left the mask untouched.
  assert ((unclipped < 0) | (unclipped > 1))[mask & decided].any()
  np.testing.assert_array_equal(result[~mask], delta[~mask])
  assert result.min() >= 0.0 and result.max() <= 1.0

  # Without the adversarial model: the global model's gradient alone.
  alone = np.asarray(a3fl.trigger_step(model, None, x, delta,
                                       mask.astype(np.float32), TARGET, lam,
                                       alpha))
  grad = _grad_wrt_delta(x, mask, delta, w, b, TARGET)
  decided = np.abs(grad) > 1e-6
  np.testing.assert_allclose(
      alone[decided],
      np.clip(delta - alpha * np.sign(grad), 0, 1)[decided], atol=1e-6)


def test_unlearning_removes_the_backdoor_from_the_copy_only():
  rng = np.random.default_rng(1)
  mask, _ = triggers.global_trigger(28, 'one_corner')
  # On these dark images, a bright square on the mask (the unlearning does
  # not depend on the pattern).
  pattern = mask.astype(np.float32)
  x = rng.uniform(0, 0.3, (64, 28, 28)).astype(np.float32)
  labels = rng.choice([0, 2, 3, 4, 5, 6, 7, 8, 9], 64)
  # A backdoored linear model: the pattern's lit pixels vote for TARGET.
  kernel = rng.normal(0, 0.05, (784, 10)).astype(np.float32)
  kernel[mask.reshape(-1), TARGET] += 1.5
  bias = np.zeros(10, np.float32)
  before = _success(x, mask, pattern, kernel, bias, TARGET)
  assert before == 1.0

  # Iteration 0 has no θ'; iteration 1 trains it: 10 passes of 2 batches.
  settings = a3fl.A3FLSettings(outer_iterations=2, trigger_passes=1,
                               trigger_lr=1e-6, lam=1.0, unlearn_passes=10,
                               unlearn_lr=0.5, batch_size=32)
  adaptive = a3fl.AdaptiveTrigger('linear', x, labels, x[:4], mask, pattern,
                                  TARGET, settings, seed=0)
  adaptive.model.set_weights([kernel, bias])
  adaptive.search(pattern, round_num=1)

  adv_kernel, adv_bias = adaptive.adversarial_model.get_weights()
  after = _success(x, mask, pattern, adv_kernel, adv_bias, TARGET)
  assert after < 0.2, after
  # θ_t itself is untouched: the unlearning trains a copy.
  np.testing.assert_array_equal(adaptive.model.get_weights()[0], kernel)
  np.testing.assert_array_equal(adaptive.model.get_weights()[1], bias)


def _np_cross_entropy_grads(x, labels, mask, delta, kernel, bias):
  """(∂/∂W, ∂/∂b) of mean_n CE(softmax(W·(x_n ⊕ δ) + b), labels_n)."""
  n = len(x)
  flat = _np_stamp(x, mask, delta).reshape(n, -1).astype(np.float64)
  p = _softmax(flat @ kernel + bias)
  p[np.arange(n), labels] -= 1.0
  return flat.T @ p / n, p.mean(axis=0)


def _cosine(a, b):
  a, b = np.ravel(a), np.ravel(b)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize('weighted', [True, False])
def test_search_is_the_authors_loop_on_a_linear_model(weighted):
  # D_att in one minibatch, so the passes' shuffles do not matter. NumPy: K
  # iterations; from the second, θ' ← θ_t trained `unlearn_passes` SGD steps
  # on the true labels, s = cos of θ''s last gradient and θ_t's backdoor
  # gradient (the kernel: the linear model's only rank-2 weight), then sign
  # steps on CE(θ_t) + λ·s·CE(θ') (λ alone when not weighted).
  rng = np.random.default_rng(3)
  model, kernel, bias = _linear(rng, 0.3)
  mask, pattern = triggers.global_trigger(28, 'one_corner')
  x = rng.uniform(0, 1, (24, 28, 28)).astype(np.float32)
  labels = rng.choice([0, 2, 3, 4, 5, 6, 7, 8, 9], 24)
  settings = a3fl.A3FLSettings(outer_iterations=4, trigger_passes=2,
                               trigger_lr=0.01, lam=0.5,
                               similarity_weighted=weighted,
                               unlearn_passes=3, unlearn_lr=0.2,
                               batch_size=64)
  adaptive = a3fl.AdaptiveTrigger('linear', x, labels, x[:2], mask, pattern,
                                  TARGET, settings, seed=0)
  adaptive.model.set_weights([kernel, bias])
  got = np.asarray(adaptive.search(pattern, round_num=1))

  w, b = kernel.astype(np.float64), bias.astype(np.float64)
  delta, weights = pattern.astype(np.float64), []
  targets = np.full(len(x), TARGET)
  for k in range(4):
    adversarial = None
    if k > 0:
      w_adv, b_adv = w.copy(), b.copy()
      for _ in range(3):
        g_w, g_b = _np_cross_entropy_grads(x, labels, mask, delta, w_adv,
                                           b_adv)
        w_adv, b_adv = w_adv - 0.2 * g_w, b_adv - 0.2 * g_b
      backdoor_w, _ = _np_cross_entropy_grads(x, targets, mask, delta, w, b)
      weight = 0.5 * (_cosine(g_w, backdoor_w) if weighted else 1.0)
      weights.append(weight)
      adversarial = (w_adv, b_adv)
    for _ in range(2):
      grad = _grad_wrt_delta(x, mask, delta, w, b, TARGET)
      if adversarial is not None:
        grad += weight * _grad_wrt_delta(x, mask, delta, *adversarial, TARGET)
      delta = np.clip(delta - 0.01 * np.sign(grad), 0.0, 1.0)
  if weighted:
    assert all(0.0 < abs(v) < 0.5 for v in weights)  # s scaled λ
  assert np.abs(delta - pattern)[mask].max() > 0.05
  np.testing.assert_allclose(got, delta, atol=1e-5)
  np.testing.assert_array_equal(got[~mask], pattern[~mask])


def test_a3fl_attack_needs_the_a3fl_backdoor(tmp_path):
  config = tiny(tmp_path, attack='a3fl', backdoor='trigger')
  with pytest.raises(config_lib.ConfigError) as e:
    registry.validate(config)
  assert e.value.field == 'backdoor'


def test_tiny_run_evaluates_the_optimised_trigger(tmp_path, monkeypatch):
  config = tiny(tmp_path, attack='a3fl', backdoor='a3fl', num_rounds=2,
                attack_freq=1, poison_per_batch=5, a3fl_boost_factor=1.5,
                defense='none', a3fl_outer_iterations=2, a3fl_trigger_passes=2,
                a3fl_unlearn_passes=1, a3fl_trigger_lr=0.05)
  registry.validate(config)
  built, evaluated = [], []
  real_trigger = a3fl.adaptive_trigger
  real_set = evaluation.Evaluator.set_backdoor_images

  def keep_trigger(*args, **kwargs):
    built.append(real_trigger(*args, **kwargs))
    return built[-1]

  def keep_images(self, task):
    evaluated.append(np.array(task.eval_pixels))
    real_set(self, task)

  monkeypatch.setattr(a3fl, 'adaptive_trigger', keep_trigger)
  monkeypatch.setattr(evaluation.Evaluator, 'set_backdoor_images',
                      keep_images)
  rows = run_lib.run(config, progress=False)

  assert [int(r['num_attackers']) for r in rows] == [1, 1]
  (adaptive,) = built
  mask, pattern = triggers.global_trigger(28, config.trigger_placement)
  delta = np.asarray(adaptive.delta)
  assert np.abs(delta - pattern)[mask].max() > 0.04   # it was optimised
  assert delta.min() >= 0.0 and delta.max() <= 1.0

  # The evaluator measured, after the last attack round, the non-target
  # test images stamped with the last optimised trigger.
  data = build.load_data(config)
  eval_x = data.test_pixels[data.test_labels != TARGET]
  assert len(evaluated) == 3      # at construction, then each attack round
  np.testing.assert_allclose(evaluated[0], _np_stamp(eval_x, mask, pattern),
                             atol=1e-6)
  np.testing.assert_allclose(evaluated[-1], _np_stamp(eval_x, mask, delta),
                             atol=1e-6)
  # Its backdoor accuracy of the final model, recomputed in NumPy.
  with np.load(f'{config.output_dir}/checkpoint.npz') as f:
    kernel, bias = f['model_trainable_0'], f['model_trainable_1']
  expected = _success(eval_x, mask, delta, kernel, bias, TARGET)
  assert float(rows[-1]['backdoor_accuracy']) == pytest.approx(expected)
  assert 0.0 <= float(rows[-1]['main_task_accuracy']) <= 1.0


def test_resumed_run_keeps_the_optimised_trigger(tmp_path, monkeypatch):
  # 3 rounds straight, vs 2 rounds then a resume: round 3 (no attacker) is
  # evaluated with the trigger of round 2, restored from the checkpoint.
  built = []
  real_trigger = a3fl.adaptive_trigger
  monkeypatch.setattr(
      a3fl, 'adaptive_trigger',
      lambda *a, **k: built.append(real_trigger(*a, **k)) or built[-1])
  settings = dict(attack='a3fl', backdoor='a3fl', attack_freq=2,
                  poison_per_batch=5, defense='none', checkpoint_every=1,
                  a3fl_outer_iterations=2, a3fl_trigger_passes=2,
                  a3fl_unlearn_passes=1, a3fl_trigger_lr=0.05)
  full = tiny(tmp_path, experiment_name='full', num_rounds=3, **settings)
  full_rows = run_lib.run(full, progress=False)
  assert [int(r['num_attackers']) for r in full_rows] == [0, 1, 0]
  part = tiny(tmp_path, experiment_name='part', num_rounds=2, **settings)
  run_lib.run(part, progress=False)
  resumed = run_lib.run(
      dataclasses.replace(part, num_rounds=3, resume=True), progress=False)
  assert [int(r['round']) for r in resumed] == [1, 2, 3]
  mask, pattern = triggers.global_trigger(28, full.trigger_placement)
  full_delta, resumed_delta = (np.asarray(built[0].delta),
                               np.asarray(built[2].delta))
  assert np.abs(full_delta - pattern)[mask].max() > 0.01  # optimised
  np.testing.assert_array_equal(resumed_delta, full_delta)
  assert float(resumed[-1]['backdoor_accuracy']) == pytest.approx(
      float(full_rows[-1]['backdoor_accuracy']))


def test_attackers_train_on_the_trigger_of_their_round(tmp_path, monkeypatch):
  # The round's D_mal (what `round_client_data` hands the attackers) is the
  # attackers' images stamped with the δ just re-optimised for that round.
  from targeted_attack.process import round_data  # pylint: disable=g-import-not-at-top
  config = tiny(tmp_path, attack='a3fl', backdoor='a3fl', num_rounds=3,
                attack_freq=1, poison_per_batch=5, defense='none',
                a3fl_outer_iterations=2, a3fl_trigger_passes=2,
                a3fl_unlearn_passes=1, a3fl_trigger_lr=0.05)
  built, deltas, handed = [], [], []
  real_trigger = a3fl.adaptive_trigger
  monkeypatch.setattr(
      a3fl, 'adaptive_trigger',
      lambda *a, **k: built.append(real_trigger(*a, **k)) or built[-1])
  real_call = a3fl.AdaptiveTrigger.__call__

  def adapt(self, task, weights, round_num):
    result = real_call(self, task, weights, round_num)
    deltas.append(np.array(self.delta))
    return result

  monkeypatch.setattr(a3fl.AdaptiveTrigger, '__call__', adapt)
  real_round = round_data.round_client_data
  monkeypatch.setattr(
      round_data, 'round_client_data',
      lambda data, task, *a, **k: handed.append(np.array(task.train_pixels))
      or real_round(data, task, *a, **k))
  run_lib.run(config, progress=False)
  (adaptive,) = built
  mask, _ = triggers.global_trigger(28, config.trigger_placement)
  assert len(deltas) == len(handed) == 3
  assert not np.array_equal(deltas[0], deltas[-1])   # δ moved each round
  for delta, pixels in zip(deltas, handed):
    np.testing.assert_allclose(
        pixels, _np_stamp(adaptive._pixels, mask, delta), atol=1e-6)  # pylint: disable=protected-access
