"""The seeded Gaussian of DP-SGD and weak DP against the normal law."""

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf

from targeted_attack import update_math


def test_stateless_normal_follows_the_standard_normal_law():
  z = update_math.stateless_standard_normal(
      [400, 501], tf.constant([3, 9], tf.int64)).numpy().ravel()
  assert z.shape == (200400,)
  # Kolmogorov–Smirnov against Φ: a wrong scale, shift or transform fails.
  assert stats.kstest(z, 'norm').pvalue > 1e-3
  assert abs(z.mean()) < 5 / np.sqrt(z.size)
  assert z.std() == pytest.approx(1.0, abs=0.01)
  # The two halves come from the same uniforms (cos and sin): uncorrelated.
  half = z.size // 2
  assert abs(np.corrcoef(z[:half], z[half:])[0, 1]) < 0.01
  assert abs(np.corrcoef(z[:half] ** 2, z[half:] ** 2)[0, 1]) < 0.01


def test_stateless_normal_is_a_function_of_the_seed():
  draw = lambda s: update_math.stateless_standard_normal(
      [7, 3], tf.constant(s, tf.int64)).numpy()
  np.testing.assert_array_equal(draw([1, 2]), draw([1, 2]))
  assert not np.allclose(draw([1, 2]), draw([1, 3]))
  assert draw([1, 2]).shape == (7, 3)
  assert update_math.stateless_standard_normal(
      [0, 4], tf.constant([1, 2], tf.int64)).shape == (0, 4)


def test_gaussian_noise_has_the_stated_stddev_per_tensor():
  structure = [tf.zeros([300, 100]), tf.zeros([50000])]
  noised = update_math.add_stateless_gaussian_noise(
      structure, 0.25, tf.constant([5, 0], tf.int64))
  for t in noised:
    assert t.numpy().std() == pytest.approx(0.25, rel=0.02)
  # Tensor i is drawn with fold_in(seed, i): the tensors differ.
  assert not np.allclose(noised[0].numpy().ravel()[:1000],
                         noised[1].numpy()[:1000])
