"""Privacy spent by the DP defenses, from `dp_accounting`'s RDP accountant.

Client-level (server DP: weak_dp, tff_dp_*), `ClientLevelAccountant`:
a server-side Gaussian mechanism with noise multiplier z (noise stddev z·C on
the sum of updates clipped to C) applied once per round, each round sampling
clients at rate q = clients per round / population, composed over t rounds:
ε(δ) of `PoissonSampledDpEvent(q, GaussianDpEvent(z))` self-composed t times,
by the RDP accountant. Rounds sample a fixed number of clients without
replacement; Poisson sampling at the same rate is the usual stand-in (as in
TFF's DP tutorials). δ = 1/N^e, N the population and e = `delta_exponent`
(default 1.1): below 1/N, the bound at which releasing one client's data
outright would still satisfy the guarantee.

Example-level (client DP-SGD), `DpSgdAccountant` and `DpSgdTracker`: a
client k with n_k examples runs, each round it takes part in, one pass over
`num_epochs` E shuffles of its data in batches of B, i.e. s_k = ⌈E·n_k/B⌉
steps, each a Gaussian mechanism of noise multiplier z on the sum of
per-example gradients clipped to C (`defenses.dp_sgd.DPSGD`). Batches are
shuffled and of fixed size; Poisson sampling at rate q_k = min(1, B/n_k) is
the stand-in, as in tensorflow_privacy's `compute_dp_sgd_privacy_lib`
(without microbatching). After P_k participations: ε_k(δ_k) of
`PoissonSampledDpEvent(q_k, GaussianDpEvent(z))` self-composed P_k·s_k
times, with δ_k = 1/n_k^e (e = `delta_exponent`, as above) unless a δ is
given. The guarantee is for one
example of one client's data, add-or-remove-one adjacency, and covers every
model the client sends; it says nothing about a client's data as a whole
(client-level), which DP-SGD alone does not bound. Like tensorflow_privacy's
statement, it is a stand-in, not a proof for the batches actually drawn: a
batch that straddles two shuffles (E·n_k/B not an integer) can hold one
example twice, and with n_k < B a batch holds every example up to ⌈B/n_k⌉
times (sensitivity up to that multiple of C), which the Poisson model
ignores.
"""

import dataclasses
import functools
import math
from typing import Callable, Iterable, Optional

import dp_accounting
import numpy as np


@functools.lru_cache(maxsize=None)
def _poisson_gaussian_rdp(noise_multiplier: float, sampling_rate: float):
  """(orders, RDP of one PoissonSampled(q, Gaussian(z)) step): computed once
  per (z, q); RDP composes additively, so t steps have t times it."""
  accountant = dp_accounting.rdp.RdpAccountant()
  accountant.compose(dp_accounting.PoissonSampledDpEvent(
      sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)))
  return accountant.orders, accountant.rdp


def _poisson_gaussian_epsilon(noise_multiplier: float, sampling_rate: float,
                              steps: int, delta: float) -> float:
  """ε(δ) of PoissonSampled(q, Gaussian(z)) self-composed `steps` times."""
  if steps <= 0:
    return 0.0
  if noise_multiplier <= 0:
    return float('inf')
  orders, rdp = _poisson_gaussian_rdp(noise_multiplier, sampling_rate)
  return float(dp_accounting.rdp.compute_epsilon(orders, steps * rdp,
                                                 delta)[0])


@dataclasses.dataclass(frozen=True)
class ClientLevelAccountant:
  noise_multiplier: float
  sampling_rate: float
  delta: float

  def epsilon(self, rounds: int) -> float:
    """ε after `rounds` rounds (inf when z = 0, 0 before the first round)."""
    return _poisson_gaussian_epsilon(float(self.noise_multiplier),
                                     self.sampling_rate, rounds, self.delta)


DELTA_EXPONENT = 1.1  # δ = 1/N^1.1 < 1/N


def accountant_for(noise_multiplier: float, clients_per_round: int,
                   population: int,
                   delta_exponent: float = DELTA_EXPONENT
                  ) -> ClientLevelAccountant:
  """Sampling rate q = clients per round / N, δ = 1/N^`delta_exponent`."""
  return ClientLevelAccountant(noise_multiplier,
                               min(1.0, clients_per_round / population),
                               float(population)**-delta_exponent)


@dataclasses.dataclass(frozen=True)
class DpSgdAccountant:
  """Example-level (ε, δ) of one client's DP-SGD (see the module docstring).

  After P participations of a client with n examples: s = ⌈E·n/B⌉ steps per
  participation at rate q = min(1, B/n), ε(δ) of P·s compositions of the
  Poisson-subsampled Gaussian of noise multiplier z; δ = `delta`, or
  1/n^`delta_exponent` when None. One step's RDP is memoized on (z, q).
  """
  noise_multiplier: float
  batch_size: int
  num_epochs: int
  delta: Optional[float] = None
  delta_exponent: float = DELTA_EXPONENT

  def steps(self, num_examples: int) -> int:
    """s = ⌈E·n/B⌉: the batches of one pass over E shuffles of n examples."""
    return math.ceil(self.num_epochs * num_examples / self.batch_size)

  def sampling_rate(self, num_examples: int) -> float:
    return min(1.0, self.batch_size / num_examples)

  def delta_for(self, num_examples: int) -> float:
    if self.delta is not None:
      return self.delta
    return float(num_examples)**-self.delta_exponent

  def epsilon(self, num_examples: int, participations: int) -> float:
    """ε of a client with n examples after P participations (0 for P = 0)."""
    if participations <= 0 or num_examples <= 0:
      return 0.0
    return _poisson_gaussian_epsilon(
        float(self.noise_multiplier), self.sampling_rate(num_examples),
        participations * self.steps(num_examples),
        self.delta_for(num_examples))


class DpSgdTracker:
  """Participation counts of the clients, and the worst-case client's ε.

  `record(clients)` counts one participation for each client sampled in a
  round (every sampled client, attacker or not: the count of an honest client
  is exact, and an attacker's data needs no guarantee). `metrics()` gives
  the largest ε_k over the clients that took part so far, with that client's
  δ_k and P_k: a guarantee for every client's examples. ε grows with P at a
  fixed n, so only the most frequent client of each size n is a candidate;
  one step's RDP is computed once per size.
  """

  def __init__(self, accountant: DpSgdAccountant,
               num_examples: Callable[[int], int]):
    """`num_examples(k)`: the number of training examples of client k."""
    self.accountant = accountant
    self._num_examples = num_examples
    self.participations = {}  # client → P_k
    self._most_by_size = {}  # n → max P_k over the clients with n examples

  def record(self, clients: Iterable[int]) -> None:
    for k in clients:
      k = int(k)
      count = self.participations.get(k, 0) + 1
      self.participations[k] = count
      n = int(self._num_examples(k))
      self._most_by_size[n] = max(self._most_by_size.get(n, 0), count)

  def get_state(self, population: int) -> np.ndarray:
    """P_k of clients k = 0..population−1 (int64), for a checkpoint."""
    counts = np.zeros([population], np.int64)
    for k, count in self.participations.items():
      counts[k] = count
    return counts

  def restore(self, counts) -> None:
    """Sets P_k from `get_state`'s array (a resumed run)."""
    self.participations, self._most_by_size = {}, {}
    for k in np.flatnonzero(counts):
      count = int(counts[k])
      self.participations[int(k)] = count
      n = int(self._num_examples(int(k)))
      self._most_by_size[n] = max(self._most_by_size.get(n, 0), count)

  def metrics(self) -> dict:
    """`dp_sgd_example_{epsilon, delta}`, `dp_sgd_worst_case_participations`,
    `dp_sgd_worst_case_examples` of the worst-case client (ε = 0 before any
    round)."""
    worst = (0.0, None, 0, 0)
    for n, count in sorted(self._most_by_size.items()):
      eps = self.accountant.epsilon(n, count)
      if worst[1] is None or eps > worst[0]:
        worst = (eps, self.accountant.delta_for(n), count, n)
    eps, delta, count, n = worst
    return dict(dp_sgd_example_epsilon=eps,
                dp_sgd_example_delta=delta if delta is not None else '',
                dp_sgd_worst_case_participations=count,
                dp_sgd_worst_case_examples=n)
