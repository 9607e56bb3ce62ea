"""Which clients take part in a round, and which of them are malicious.

`sample_clients` draws a round's clients; an `AttackerModel` marks the
malicious ones (Sun et al. 2019, Sec. 2: fixed frequency, random sampling;
Wang et al. 2020: a fixed pool; Xie et al. 2020: a pool forced into every
round, or each of its attackers into one round of its own), within the attack
window.
"""

import numpy as np


def sample_clients(num_clients: int, clients_per_round: int, seed: int,
                   round_num: int) -> np.ndarray:
  """Uniform sample without replacement, O(clients_per_round), seeded by round."""
  rng = np.random.default_rng([seed, round_num])
  return rng.choice(num_clients, size=clients_per_round, replace=False)


class AttackerModel:
  """Which of a round's sampled clients are malicious: `malicious_mask`.

  Two optional hooks: `include` may put attackers into the round's sample
  (a model whose attackers are forced in; default: the sample as drawn), and
  `identity` gives a malicious client's fixed index among the attackers (a
  pool's), which a backdoor with parts uses to hand each attacker its own
  part (default: the client's index in the population).
  """

  def malicious_mask(self, sampled: np.ndarray, round_num: int,
                     seed: int) -> np.ndarray:
    raise NotImplementedError

  def include(self, sampled: np.ndarray, round_num: int,
              seed: int) -> np.ndarray:
    del round_num, seed
    return sampled

  def identity(self, client: int) -> int:
    return int(client)


class FixedFrequencyAttackers(AttackerModel):
  """One attacker in every `attack_freq`-th round (Sun et al. 2019, Sec. 2):
  the rounds t with t mod f = `phase` mod f (f = `attack_freq`; rounds
  counted from 1). The original binary attacked in its (0-based) rounds r
  with r mod f = ⌊f/2⌋, i.e. phase ⌊f/2⌋ + 1."""

  def __init__(self, attack_freq: int, phase: int = 0):
    if attack_freq < 1:
      raise ValueError(f'`attack_freq` must be >= 1, got {attack_freq}.')
    if phase < 0:
      raise ValueError(f'`attack_phase` must be >= 0, got {phase}.')
    self.attack_freq = attack_freq
    self.phase = phase % attack_freq

  def malicious_mask(self, sampled, round_num, seed):
    del seed
    mask = np.zeros(len(sampled), bool)
    mask[0] = round_num % self.attack_freq == self.phase
    return mask


class AttackWindow(AttackerModel):
  """`attackers` only in rounds start ≤ t ≤ end (end 0: to the last round)."""

  def __init__(self, attackers: AttackerModel, start_round: int,
               end_round: int = 0):
    self.attackers = attackers
    self.start_round = start_round
    self.end_round = end_round

  def active(self, round_num: int) -> bool:
    return round_num >= self.start_round and (
        self.end_round == 0 or round_num <= self.end_round)

  def malicious_mask(self, sampled, round_num, seed):
    if not self.active(round_num):
      return np.zeros(len(sampled), bool)
    return self.attackers.malicious_mask(sampled, round_num, seed)

  def include(self, sampled, round_num, seed):
    if not self.active(round_num):
      return sampled
    return self.attackers.include(sampled, round_num, seed)

  def identity(self, client):
    return self.attackers.identity(client)


class NoAttackers(AttackerModel):
  """Nobody attacks (`--attack=none`)."""

  def malicious_mask(self, sampled, round_num, seed):
    del round_num, seed
    return np.zeros(len(sampled), bool)


def num_malicious_clients(malicious_fraction: float, population: int) -> int:
  """round(ε · N), halves rounded up.

  Sun et al.'s "ε = 3.3%" is one attacker per round on average with 30 clients
  per round, i.e. ε = 1/30: 3,383 / 30 = 112.8 → 113 malicious writers
  (and ε = 1/300, "0.33%": 11.3 → 11).
  """
  return int(np.floor(malicious_fraction * population + 0.5))


class RandomSamplingAttackers(AttackerModel):
  """A fraction ε of the population is malicious; rounds sample uniformly.

  M = `num_malicious_clients(ε, N)` malicious clients; the number among C
  sampled clients is then hypergeometric: K ~ Hypergeometric(N, M, C) (Sun et
  al. 2019, Sec. 2); the sample is uniform, so the first K sampled clients
  attack.
  """

  def __init__(self, malicious_fraction: float, population: int,
               clients_per_round: int):
    if not 0.0 <= malicious_fraction <= 1.0:
      raise ValueError('`malicious_fraction` must be in [0, 1], got '
                       f'{malicious_fraction}.')
    self.num_malicious = num_malicious_clients(malicious_fraction, population)
    self.population = population
    self.clients_per_round = clients_per_round

  def malicious_mask(self, sampled, round_num, seed):
    rng = np.random.default_rng([seed, round_num, 1])
    k = int(rng.hypergeometric(self.num_malicious,
                               self.population - self.num_malicious,
                               len(sampled)))
    return np.arange(len(sampled)) < k


# The fixed pool's random stream: SeedSequence spawn key b'pool'.
POOL_STREAM = 0x706F6F6C


def draw_pool(attacker_pool_size: int, population: int, seed: int) -> tuple:
  """The pool: `attacker_pool_size` distinct clients, in the order drawn from
  the pool's own stream (`POOL_STREAM`)."""
  if not 1 <= attacker_pool_size <= population:
    raise ValueError(
        f'`attacker_pool_size` must be in [1, {population}] (the '
        f'population), got {attacker_pool_size}.')
  # Its own stream: [seed, 2] was round 2's client sample (that round's
  # sample then began with the pool).
  rng = np.random.default_rng(
      np.random.SeedSequence(seed, spawn_key=(POOL_STREAM,)))
  return tuple(int(k) for k in rng.choice(population, attacker_pool_size,
                                          replace=False))


class FixedPoolAttackers(AttackerModel):
  """`attacker_pool_size` fixed malicious clients in the population, sampled
  like every other client (Wang et al. 2020, "fixed pool"). Attacker i of
  the pool (in its drawn order) has identity i."""

  def __init__(self, attacker_pool_size: int, population: int, seed: int):
    self.order = draw_pool(attacker_pool_size, population, seed)
    self.pool = frozenset(self.order)

  def malicious_mask(self, sampled, round_num, seed):
    del round_num, seed
    return np.array([int(k) in self.pool for k in sampled], bool)

  def identity(self, client):
    return self.order.index(int(client)) if int(client) in self.pool else (
        int(client))


def _forced_first(sampled, forced) -> np.ndarray:
  """`forced` (in order), then the drawn clients not among them, cut to the
  round's size."""
  others = [int(k) for k in sampled if int(k) not in forced]
  return np.array(list(forced) + others[:len(sampled) - len(forced)],
                  dtype=np.asarray(sampled).dtype)


class ForcedPoolAttackers(FixedPoolAttackers):
  """The fixed pool, every attacker forced into every round (of the window).

  DBA's multi-shot attack (Xie et al. 2020; `is_random_adversary: false`):
  the round's sample is the pool, in its order, then the drawn clients that
  are not in it, cut to the round's size; so each attacker, with its
  identity, takes part every round.
  """

  def __init__(self, attacker_pool_size: int, population: int, seed: int,
               clients_per_round: int):
    if attacker_pool_size > clients_per_round:
      raise ValueError(
          f'`attacker_pool_size` must be at most the clients per round '
          f'({clients_per_round}) to force them all in, got '
          f'{attacker_pool_size}.')
    super().__init__(attacker_pool_size, population, seed)

  def include(self, sampled, round_num, seed):
    del round_num, seed
    return _forced_first(sampled, self.order)


class StaggeredPoolAttackers(FixedPoolAttackers):
  """The fixed pool, each attacker forced into one round only: attacker i
  (of the pool, in its drawn order) in round `first_round` + i·`stagger`.

  DBA's single shot (Xie et al. 2020, `is_random_adversary: false`; MNIST's
  four attackers in rounds 12, 14, 16, 18): the round's sample is that
  attacker, then the drawn clients, cut to the round's size. Outside its
  round a pool member that is drawn follows the protocol.
  """

  def __init__(self, attacker_pool_size: int, population: int, seed: int,
               first_round: int, stagger: int):
    if stagger < 1:
      raise ValueError(f'`attack_stagger` must be >= 1, got {stagger}.')
    super().__init__(attacker_pool_size, population, seed)
    self.first_round = first_round
    self.stagger = stagger

  def shooter(self, round_num: int):
    """The client whose single shot is `round_num`, or None."""
    offset = round_num - self.first_round
    if offset < 0 or offset % self.stagger:
      return None
    i = offset // self.stagger
    return self.order[i] if i < len(self.order) else None

  def include(self, sampled, round_num, seed):
    del seed
    shooter = self.shooter(round_num)
    if shooter is None:
      return sampled
    return _forced_first(sampled, (shooter,))

  def malicious_mask(self, sampled, round_num, seed):
    del seed
    shooter = self.shooter(round_num)
    return np.array([int(k) == shooter for k in sampled], bool)
