"""Client-level (ε, δ) of the DP defenses against the RDP formulas in NumPy."""

import numpy as np
import pytest

from targeted_attack.experiment import privacy
import reference


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
  assert accountant.delta == pytest.approx(3383**-1.1)  # δ < 1/N
  assert accountant.epsilon(1) > 1e3
  assert accountant.epsilon(0) == 0.0
  assert privacy.ClientLevelAccountant(0.0, 0.1, 1e-5).epsilon(3) == np.inf


def test_subsampling_and_fewer_rounds_spend_less():
  full = privacy.ClientLevelAccountant(1.0, 1.0, 1e-5)
  sampled = privacy.ClientLevelAccountant(1.0, 0.01, 1e-5)
  assert sampled.epsilon(100) < full.epsilon(100)
  assert sampled.epsilon(10) < sampled.epsilon(100)


# --- Example-level ε of client DP-SGD ---------------------------------------


def test_the_reference_moment_is_the_binomial_sum_at_integer_orders():
  from scipy.special import comb  # pylint: disable=g-import-not-at-top
  q, z = 0.3, 1.2
  for alpha in (2, 5, 9):
    k = np.arange(alpha + 1)
    binomial = np.sum(comb(alpha, k) * (1 - q)**(alpha - k) * q**k *
                      np.exp((k**2 - k) / (2 * z**2)))
    assert reference.poisson_gaussian_log_a(q, z, [alpha])[0] == pytest.approx(
        np.log(binomial), rel=1e-9)


def test_dp_sgd_steps_and_rate_follow_the_batches_of_a_pass():
  accountant = privacy.DpSgdAccountant(1.0, batch_size=20, num_epochs=5)
  # 5 shuffles of 47 examples, batched by 20 across the shuffles: ⌈235/20⌉.
  assert accountant.steps(47) == 12
  assert accountant.sampling_rate(47) == pytest.approx(20 / 47)
  assert accountant.sampling_rate(10) == 1.0
  assert accountant.delta_for(47) == pytest.approx(47**-1.1)  # < 1/n
  assert privacy.DpSgdAccountant(1.0, 20, 5, delta=1e-5).delta_for(47) == 1e-5
  assert accountant.epsilon(47, 0) == 0.0
  assert privacy.DpSgdAccountant(0.0, 20, 5).epsilon(47, 1) == np.inf


@pytest.mark.parametrize('z, epochs, participations', [(1.0, 2, 1),
                                                        (3.0, 5, 4)])
def test_dp_sgd_full_batch_is_the_gaussian_composed_per_step(
    z, epochs, participations):
  # n = B: q = 1, E steps per participation, each a Gaussian of multiplier z.
  accountant = privacy.DpSgdAccountant(z, batch_size=16, num_epochs=epochs)
  expected = _gaussian_epsilon(z, epochs * participations, 16**-1.1)
  got = accountant.epsilon(16, participations)
  assert expected <= got * (1 + 1e-6)
  assert got == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize('n, z, participations', [(100, 1.1, 3), (60, 2.0, 10)])
def test_dp_sgd_subsampled_matches_the_numpy_rdp(n, z, participations):
  accountant = privacy.DpSgdAccountant(z, batch_size=20, num_epochs=2)
  steps = participations * int(np.ceil(2 * n / 20))
  expected = reference.poisson_gaussian_epsilon(20 / n, z, steps, n**-1.1)
  got = accountant.epsilon(n, participations)
  # The library's α grid (1.1, 1.2, …, 11, 12, …) is coarser than ours.
  assert expected <= got * (1 + 1e-3)
  assert got == pytest.approx(expected, rel=0.01)


def test_dp_sgd_agrees_with_tensorflow_privacy_statement_of_steps():
  lib = pytest.importorskip(
      'tensorflow_privacy.privacy.analysis.compute_dp_sgd_privacy_lib')
  # P participations of E epochs = P·E epochs; E·n/B integral, so the steps
  # ⌈P·E·n/B⌉ of tensorflow_privacy are P·⌈E·n/B⌉.
  n, batch, epochs, z, participations = 100, 20, 2, 1.1, 3
  theirs, _ = lib.compute_dp_sgd_privacy(n, batch, z, epochs * participations,
                                         n**-1.1)
  ours = privacy.DpSgdAccountant(z, batch, epochs).epsilon(n, participations)
  # Their α grid (1.25, 1.5, …) is coarser: ours can only be slightly lower.
  assert ours <= theirs * (1 + 1e-9)
  assert ours == pytest.approx(theirs, rel=0.03)


def test_dp_sgd_tracker_reports_the_worst_client_so_far():
  sizes = {0: 100, 1: 100, 2: 40, 3: 100}
  accountant = privacy.DpSgdAccountant(1.5, batch_size=20, num_epochs=1)
  tracker = privacy.DpSgdTracker(accountant, sizes.__getitem__)
  # Worst: client 2 (fewest examples), then 1 (P = 2), then 0 (P = 3).
  rounds = [[2, 1], [0, 1], [0, 3], [0, 3]]
  counts = {}
  epsilons = []
  for sampled in rounds:
    tracker.record(np.array(sampled))
    for k in sampled:
      counts[k] = counts.get(k, 0) + 1
    expected = {
        k: reference.poisson_gaussian_epsilon(20 / sizes[k], 1.5,
                                     p * int(np.ceil(sizes[k] / 20)),
                                     sizes[k]**-1.1) for k, p in counts.items()
    }
    worst = max(expected, key=expected.get)
    m = tracker.metrics()
    assert m['dp_sgd_example_epsilon'] == pytest.approx(expected[worst],
                                                        rel=0.01)
    assert m['dp_sgd_example_delta'] == pytest.approx(sizes[worst]**-1.1)
    assert m['dp_sgd_worst_case_participations'] == counts[worst]
    assert m['dp_sgd_worst_case_examples'] == sizes[worst]
    epsilons.append(m['dp_sgd_example_epsilon'])
  assert tracker.participations == {0: 3, 1: 2, 2: 1, 3: 2}
  assert epsilons == sorted(epsilons)


@pytest.mark.parametrize('defense, settings, z', [
    # Weak DP: σ = mul_factor · C per coordinate of the sum, so z = σ / C =
    # mul_factor (C = 2: z·C = 1.2 would show).
    ('weak_dp', dict(l2_norm_clip=2.0, mul_factor=0.6), 0.6),
    # TFF's DP factories: z is tff_dp_noise_multiplier, whatever C.
    ('tff_dp_fixed', dict(l2_norm_clip=2.0, tff_dp_noise_multiplier=0.8), 0.8),
    # (Adaptive clipping spends some of z on the clipped count: with 3
    # clients per round TFF admits z < 2 · 0.05 · 3.)
    ('tff_dp_adaptive', dict(tff_dp_noise_multiplier=0.25), 0.25),
])
def test_each_rows_epsilon_is_the_subsampled_gaussian_rdp(tmp_path, defense,
                                                          settings, z):
  from targeted_attack.experiment import run as run_lib  # pylint: disable=g-import-not-at-top
  from builders import tiny_config  # pylint: disable=g-import-not-at-top
  rows = run_lib.run(tiny_config(tmp_path, defense=defense, num_rounds=3,
                                 **settings), progress=False)
  delta = 12**-1.1                     # 12 clients, δ = N^−1.1
  for t, row in enumerate(rows, start=1):
    expected = reference.poisson_gaussian_epsilon(3 / 12, z, t, delta)
    # The library's RDP orders are coarser than the reference's: its ε is
    # the same bound, at most a little looser.
    epsilon = float(row['privacy_epsilon'])
    assert expected * (1 - 1e-3) <= epsilon <= expected * 1.03, (t, epsilon)
    assert float(row['privacy_delta']) == pytest.approx(delta)


def test_weak_dp_of_sun_et_al_after_500_emnist_rounds_is_about_1e7():
  # The README: z = 0.005, 30 of 3,383 writers per round, 500 rounds.
  epsilon = privacy.accountant_for(0.005, 30, 3383).epsilon(500)
  expected = reference.poisson_gaussian_epsilon(30 / 3383, 0.005, 500,
                                                3383**-1.1)
  # At so small a z, ε is set by the lowest RDP order of the grid: the
  # library's (dp_accounting's) and the reference's differ there, by < 10%.
  assert expected * 0.99 < epsilon < expected * 1.15
  assert 10**6.5 < epsilon < 10**7.5   # "ε ≈ 10⁷", within half a decade
