"""Client-level privacy spent by a DP defense, from `dp_accounting`.

A server-side Gaussian mechanism with noise multiplier z (noise stddev z·C on
the sum of updates clipped to C) applied once per round, each round sampling
clients at rate q = clients per round / population, composed over t rounds:
ε(δ) of `PoissonSampledDpEvent(q, GaussianDpEvent(z))` self-composed t times,
by the RDP accountant. Rounds sample a fixed number of clients without
replacement; Poisson sampling at the same rate is the usual stand-in (as in
TFF's DP tutorials). δ defaults to 1/population.
"""

import dataclasses

import dp_accounting


@dataclasses.dataclass(frozen=True)
class ClientLevelAccountant:
  noise_multiplier: float
  sampling_rate: float
  delta: float

  def epsilon(self, rounds: int) -> float:
    """ε after `rounds` rounds (inf when z = 0, 0 before the first round)."""
    if rounds <= 0:
      return 0.0
    if self.noise_multiplier <= 0:
      return float('inf')
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            self.sampling_rate,
            dp_accounting.GaussianDpEvent(self.noise_multiplier)), rounds))
    return float(accountant.get_epsilon(self.delta))


def accountant_for(noise_multiplier: float, clients_per_round: int,
                   population: int) -> ClientLevelAccountant:
  return ClientLevelAccountant(noise_multiplier,
                               min(1.0, clients_per_round / population),
                               1.0 / population)
