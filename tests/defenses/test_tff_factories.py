"""TFF's own robust and DP factories, where their mechanisms act, over
several rounds, against NumPy written from Andrew, Thakkar et al. (2021).

The quantile estimates follow the geometric update
  C ← C · exp(−η (b − γ)),  b = the fraction of the round's norms ≤ C
(TFF's `no_noise` estimators and DP at noise 0: no noise on b).
- `tff.learning.robust_aggregator` (weighted): zeroing first (threshold
  2·q + 1, q from 10, γ = 0.98, η = ln 10), on the updates' norms; then
  clipping to C (from 1, γ = 0.8, η = 0.2) on the zeroed values' norms;
  then the weighted mean (a zeroed update keeps its weight).
- `DifferentiallyPrivateFactory.gaussian_adaptive(0, 3)`: Σ_k clip(x_k, C) /
  3, C from 0.1, γ = 0.5, η = 0.2, on the updates' norms.
"""

import math

import numpy as np
import tensorflow_federated as tff

import builders
from builders import flat as _flat


def _geometric(estimate, norms, target, rate):
  below = np.mean(np.asarray(norms) <= estimate)
  return estimate * math.exp(-rate * (below - target))


def _clip(x, bound):
  norm = np.linalg.norm(x)
  return x * min(1.0, bound / norm) if norm > 0 else x


def test_robust_aggregator_zeroes_clips_and_adapts_both_bounds():
  norms = [0.5, 3.0, 50.0, 15.0]
  weights = [1.0, 2.0, 3.0, 4.0]
  updates = builders.updates_with_norms(norms, seed=4)
  points = [_flat(u).astype(np.float64) for u in updates]
  outputs = builders.run_aggregator(
      tff.learning.robust_aggregator(zeroing=True, clipping=True,
                                     weighted=True),
      updates, weights=weights, rounds=4)
  q, clip = 10.0, 1.0
  zeroed_somewhere = clipped_somewhere = False
  for output in outputs:
    threshold = 2.0 * q + 1.0
    zeroed = [p if np.linalg.norm(p) <= threshold else 0.0 * p
              for p in points]
    zeroed_somewhere |= any(np.linalg.norm(p) > threshold for p in points)
    clipped = [_clip(p, clip) for p in zeroed]
    clipped_somewhere |= any(np.linalg.norm(p) > clip for p in zeroed)
    expected = np.average(clipped, axis=0, weights=weights)
    np.testing.assert_allclose(_flat(output.result), expected, rtol=1e-5,
                               atol=1e-6)
    q = _geometric(q, norms, 0.98, math.log(10.0))
    clip = _geometric(clip, [np.linalg.norm(p) for p in zeroed], 0.8, 0.2)
  # Round 1: threshold 21 zeroes 50 (not 15), C = 1 clips 3 and 15.
  assert zeroed_somewhere and clipped_somewhere


def test_dp_adaptive_clip_follows_the_geometric_update_over_rounds():
  norms = [0.05, 0.3, 0.8]
  updates = builders.updates_with_norms(norms, seed=5)
  points = [_flat(u).astype(np.float64) for u in updates]
  outputs = builders.run_aggregator(
      tff.aggregators.DifferentiallyPrivateFactory.gaussian_adaptive(0.0, 3),
      updates, rounds=5)
  clip, clips = 0.1, []
  for output in outputs:
    clips.append(clip)
    expected = sum(_clip(p, clip) for p in points) / 3.0
    np.testing.assert_allclose(_flat(output.result), expected, rtol=1e-5,
                               atol=1e-7)
    clip = _geometric(clip, norms, 0.5, 0.2)
  # The clip moved toward the median norm (0.3): it grew every round.
  assert all(b > a for a, b in zip(clips, clips[1:]))
