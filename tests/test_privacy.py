"""Client-level (ε, δ) of the DP defenses against the RDP formulas in NumPy."""

import numpy as np
import pytest

from targeted_attack import privacy


def _gaussian_epsilon(z, rounds, delta):
  """No subsampling: RDP(α) = t·α/(2z²); ε = min_α RDP(α) + log((α−1)/α)
  − (log δ + log α)/(α − 1) (Balle et al. 2020's conversion), on a fine grid."""
  alphas = np.linspace(1.01, 2000, 400_000)
  rdp = rounds * alphas / (2 * z**2)
  eps = rdp + np.log((alphas - 1) / alphas) - (
      np.log(delta) + np.log(alphas)) / (alphas - 1)
  return eps.min()


@pytest.mark.parametrize('z, rounds', [(1.0, 1), (2.0, 10), (5.0, 100)])
def test_full_participation_matches_the_gaussian_rdp_bound(z, rounds):
  accountant = privacy.ClientLevelAccountant(z, 1.0, 1e-5)
  expected = _gaussian_epsilon(z, rounds, 1e-5)
  # The library's α grid is coarser, so it can only be slightly above.
  assert expected <= accountant.epsilon(rounds) * (1 + 1e-6)
  assert accountant.epsilon(rounds) == pytest.approx(expected, rel=0.03)


def test_weak_dp_of_sun_et_al_gives_almost_no_privacy():
  # σ = 0.025 on the sum of updates clipped to 5: z = 0.005, 30 of 3,383.
  accountant = privacy.accountant_for(0.005, 30, 3383)
  assert accountant.sampling_rate == pytest.approx(30 / 3383)
  assert accountant.delta == pytest.approx(1 / 3383)
  assert accountant.epsilon(1) > 1e3
  assert accountant.epsilon(0) == 0.0
  assert privacy.ClientLevelAccountant(0.0, 0.1, 1e-5).epsilon(3) == np.inf


def test_subsampling_and_fewer_rounds_spend_less():
  full = privacy.ClientLevelAccountant(1.0, 1.0, 1e-5)
  sampled = privacy.ClientLevelAccountant(1.0, 0.01, 1e-5)
  assert sampled.epsilon(100) < full.epsilon(100)
  assert sampled.epsilon(10) < sampled.epsilon(100)
