"""Federated digits data, the backdoor task, client sampling and attackers.

Two sources share one interface (`FederatedDigits`): TFF's federated EMNIST
(`load_emnist`) and the generated writer-style digits (`load_synthetic`).
Per-client arrays are cached, so a round's client datasets are cheap views.

Backdoor task (Sun et al. 2019, Sec. 5): the 7s of `task_num` target writers,
labelled 1. The attacker trains on them; every benign client, the target
writers included, keeps its correctly labelled 7s.
"""

import collections
import dataclasses
import os
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from targeted_attack import synthetic_digits

BACKDOOR_SOURCE_LABEL = 7
BACKDOOR_TARGET_LABEL = 1


class FederatedDigits:
  """Clients' train arrays (loaded lazily, cached) and a pooled test split."""

  def __init__(self, client_ids: Sequence[str],
               load_client: Callable[[str], tuple], test_pixels: np.ndarray,
               test_labels: np.ndarray, name: str):
    self.client_ids = list(client_ids)
    self._load_client = load_client
    self._cache = {}
    self.test_pixels = test_pixels
    self.test_labels = test_labels
    self.name = name

  @property
  def num_clients(self) -> int:
    return len(self.client_ids)

  def client_arrays(self, index: int) -> tuple:
    """(pixels [n, 28, 28] float32, labels [n] int32) of client `index`."""
    if index not in self._cache:
      self._cache[index] = self._load_client(self.client_ids[index])
    return self._cache[index]


def load_synthetic(num_clients: int, examples_per_client: int, seed: int,
                   crossbar_seven_rate: float = 0.03) -> FederatedDigits:
  """The generated dataset (see `synthetic_digits`), deterministic from seed.

  `crossbar_seven_rate`: the fraction of writers whose 7 has a crossbar (the
  edge-case style; 0 makes it a pure tail the honest clients never hold).
  """
  writers = synthetic_digits.generate_writers(
      num_clients, examples_per_client, seed,
      crossbar_seven_rate=crossbar_seven_rate)
  ids = [f'synthetic_writer_{i:05d}' for i in range(num_clients)]
  by_id = {cid: (w.train_pixels, w.train_labels) for cid, w in zip(ids, writers)}
  return FederatedDigits(
      ids, by_id.__getitem__,
      np.concatenate([w.test_pixels for w in writers]),
      np.concatenate([w.test_labels for w in writers]), 'synthetic')


class DatasetUnavailableError(RuntimeError):
  pass


def _to_arrays(dataset: tf.data.Dataset) -> tuple:
  pixels, labels = [], []
  for batch in dataset.batch(4096):
    pixels.append(batch['pixels'].numpy())
    labels.append(batch['label'].numpy())
  return (np.concatenate(pixels).astype(np.float32),
          np.concatenate(labels).astype(np.int32))


def load_emnist(only_digits: bool = True,
                cache_dir: Optional[str] = None) -> FederatedDigits:
  """TFF's federated EMNIST (3,383 writers for digits), downloaded or cached."""
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top
  from targeted_attack import emnist_cache  # pylint: disable=g-import-not-at-top
  if cache_dir is not None:
    cache_dir = os.path.expanduser(cache_dir)
  try:
    train, test = tff.simulation.datasets.emnist.load_data(
        only_digits=only_digits, cache_dir=cache_dir)
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetUnavailableError(
        f'could not load federated EMNIST ({type(e).__name__}: {e}); '
        f'{emnist_cache.missing_cache_hint(cache_dir)}, or use the generated '
        'dataset (`dataset`=synthetic)') from e
  test_pixels, test_labels = _to_arrays(
      test.create_tf_dataset_from_all_clients())
  return FederatedDigits(
      train.client_ids,
      lambda cid: _to_arrays(train.create_tf_dataset_for_client(cid)),
      test_pixels, test_labels, 'emnist')


@dataclasses.dataclass(frozen=True)
class BackdoorTask:
  """What the attacker wants: `train_pixels` (its D_mal) and `eval_pixels`
  (on which backdoor accuracy is measured) classified as `target_label`.

  `train_parts`: K arrays, one per attacker group (DBA's local triggers):
  malicious client k trains on part k mod K; empty: all use `train_pixels`.
  """
  name: str
  train_pixels: np.ndarray
  eval_pixels: np.ndarray
  target_label: int = BACKDOOR_TARGET_LABEL
  target_clients: tuple = ()
  train_parts: tuple = ()

  @property
  def pixels(self) -> np.ndarray:
    return self.train_pixels


def select_backdoor_task(data: FederatedDigits, task_num: int, seed: int,
                         source_label: int = BACKDOOR_SOURCE_LABEL,
                         target_label: int = BACKDOOR_TARGET_LABEL
                        ) -> BackdoorTask:
  """The paper's semantic backdoor: the `source_label` images of `task_num`
  target clients (seeded choice), to be classified as `target_label`; trained
  and evaluated on the same images (Sun et al. 2019, Sec. 5).

  Raises ValueError naming `task_num` when fewer clients hold that label.
  """
  order = np.random.RandomState(seed).permutation(data.num_clients)
  chosen, images = [], []
  for index in order:
    pixels, labels = data.client_arrays(int(index))
    mask = labels == source_label
    if mask.any():
      chosen.append(int(index))
      images.append(pixels[mask])
      if len(chosen) == task_num:
        images = np.concatenate(images)
        return BackdoorTask('semantic', images, images, target_label,
                            tuple(chosen))
  raise ValueError(
      f'`task_num`={task_num} but only {len(chosen)} clients hold images of '
      f'label {source_label}; allowed range: 1..{len(chosen)}.')


EDGE_CASE_MIXES = {'edge_case': 0.0, 'almost_edge_case': 0.02,
                   'normal_case': 0.25}


def edge_case_task(num_train: int, num_eval: int, seed: int,
                   target_label: int = BACKDOOR_TARGET_LABEL) -> BackdoorTask:
  """Edge-case backdoor (Wang et al. 2020): 7s with a crossbar (the European
  style, a tail of the generated writers' 7s), in fresh writer styles,
  labelled `target_label`; separate train and evaluation images."""
  rng = np.random.RandomState(seed + 7)
  styles = [synthetic_digits.sample_writer_style(rng)
            for _ in range(num_train + num_eval)]
  images = synthetic_digits.render(styles, '7_crossbar', rng)
  return BackdoorTask('edge_case', images[:num_train], images[num_train:],
                      target_label)


TRIGGER_PLACEMENTS = ('one_corner', 'four_corners')
TRIGGER_PATTERN = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)


def stamp_trigger(pixels: np.ndarray, amplitude: float,
                  placement: str) -> np.ndarray:
  """BadNets pixel pattern with Turner's amplitude a ∈ (0, 1].

  In each chosen 3×3 corner patch (1 pixel from the border; the bottom-right
  one, or all four): x ← x + a · (p − x), p the checkerboard
  `TRIGGER_PATTERN` (a = 1 pastes the pattern; small a makes it faint).
  """
  if placement not in TRIGGER_PLACEMENTS:
    raise ValueError(f'`trigger_placement` must be one of '
                     f'{", ".join(TRIGGER_PLACEMENTS)}, got {placement!r}.')
  if not 0.0 < amplitude <= 1.0:
    raise ValueError(f'`trigger_amplitude` must be in (0, 1], got {amplitude}.')
  size = pixels.shape[-1]
  corners = [(size - 4, size - 4)]
  if placement == 'four_corners':
    corners += [(1, 1), (1, size - 4), (size - 4, 1)]
  out = np.array(pixels, np.float32, copy=True)
  for r, c in corners:
    patch = out[..., r:r + 3, c:c + 3]
    out[..., r:r + 3, c:c + 3] = patch + amplitude * (TRIGGER_PATTERN - patch)
  return out


def trigger_task(data: FederatedDigits, task_num: int, amplitude: float,
                 placement: str, seed: int,
                 target_label: int = BACKDOOR_TARGET_LABEL) -> BackdoorTask:
  """Trigger backdoor: stamped images of any class but the target, relabelled.

  D_mal: the non-target images of `task_num` random clients, stamped; the
  evaluation set: the stamped test images whose true label is not the target.
  """
  train, eval_pixels, clients = trigger_source_images(data, task_num, seed,
                                                      target_label)
  return BackdoorTask(
      f'trigger_{placement}', stamp_trigger(train, amplitude, placement),
      stamp_trigger(eval_pixels, amplitude, placement), target_label, clients)


def trigger_source_images(data: FederatedDigits, task_num: int, seed: int,
                          target_label: int = BACKDOOR_TARGET_LABEL) -> tuple:
  """(train, eval, clients): the unstamped images a trigger backdoor uses.

  train: the non-target images of `task_num` seeded random clients; eval: the
  test images whose true label is not the target.
  """
  order = np.random.RandomState(seed).permutation(data.num_clients)[:task_num]
  train = []
  for index in order:
    pixels, labels = data.client_arrays(int(index))
    train.append(pixels[labels != target_label])
  eval_pixels = data.test_pixels[data.test_labels != target_label]
  return (np.concatenate(train), eval_pixels, tuple(int(i) for i in order))


def client_dataset(pixels: np.ndarray, labels: np.ndarray, num_epochs: int,
                   batch_size: int, shuffle_seed: int) -> tf.data.Dataset:
  """EMNIST preprocessing: x = pixels[..., None], y = [label]; `num_epochs`
  passes, each in its own order, batched.

  The orders are NumPy permutations drawn from `shuffle_seed`, fixed when the
  dataset is built: every iteration of the dataset (a strategy may read it more
  than once) yields the same sequence, whatever TensorFlow's random state.
  """
  rng = np.random.default_rng(shuffle_seed)
  order = np.concatenate(
      [rng.permutation(len(pixels)) for _ in range(num_epochs)]).astype(
          np.int64)
  ds = tf.data.Dataset.from_tensor_slices(
      collections.OrderedDict(
          x=pixels[order][..., np.newaxis],
          y=labels[order][:, np.newaxis].astype(np.int32)))
  return ds.batch(batch_size)


def malicious_dataset(task: BackdoorTask, num_epochs: int, batch_size: int,
                      shuffle_seed: int,
                      part: Optional[int] = None) -> tf.data.Dataset:
  """D_mal: the backdoor training images, all labelled `task.target_label`.

  With `part` (the client's index) and a task with K `train_parts`: part
  `part` mod K only. Strategies that train on D_trn ∪ D_mal (the paper's
  unconstrained attacker, Sun et al. 2019, Sec. 3) form the union themselves.
  """
  pixels = task.train_pixels
  if task.train_parts and part is not None:
    pixels = task.train_parts[part % len(task.train_parts)]
  labels = np.full(len(pixels), task.target_label, np.int32)
  return client_dataset(pixels, labels, num_epochs, batch_size, shuffle_seed)


def client_seed(run_seed: int, round_num: int, client: int) -> np.ndarray:
  """int64[2] seed of one client in one round, derived from the run's seed."""
  return np.random.SeedSequence([run_seed, round_num, client]).generate_state(
      2, np.uint32).astype(np.int64)


def round_client_data(data: FederatedDigits, task: BackdoorTask,
                      sampled: np.ndarray, is_malicious: np.ndarray,
                      num_epochs: int, batch_size: int, run_seed: int,
                      round_num: int, split_boost: bool = True) -> list:
  """The one place a round's client data is assembled.

  For each sampled client: its benign dataset D_trn (shuffled with a seed
  derived from (run_seed, round, client)), D_mal when it is malicious (part
  k mod K, for client k, of a task with K `train_parts`), and its context
  (seed, boost share); see `attacked_fedavg.build_client_data`.
  """
  from targeted_attack import attacked_fedavg  # pylint: disable=g-import-not-at-top
  seeds = [client_seed(run_seed, round_num, int(k)) for k in sampled]
  benign, malicious = [], []
  for i, k in enumerate(sampled):
    pixels, labels = data.client_arrays(int(k))
    shuffle_seed = int(seeds[i][0])
    benign.append(client_dataset(pixels, labels, num_epochs, batch_size,
                                 shuffle_seed))
    malicious.append(
        malicious_dataset(task, num_epochs, batch_size, shuffle_seed,
                          part=int(k))
        if is_malicious[i] else None)
  return attacked_fedavg.build_client_data(benign, malicious, seeds=seeds,
                                           split_boost=split_boost)


def sample_clients(num_clients: int, clients_per_round: int, seed: int,
                   round_num: int) -> np.ndarray:
  """Uniform sample without replacement, O(clients_per_round), seeded by round."""
  rng = np.random.default_rng([seed, round_num])
  return rng.choice(num_clients, size=clients_per_round, replace=False)


class AttackerModel:
  """Which of a round's sampled clients are malicious: `malicious_mask`."""

  def malicious_mask(self, sampled: np.ndarray, round_num: int,
                     seed: int) -> np.ndarray:
    raise NotImplementedError


class FixedFrequencyAttackers(AttackerModel):
  """One attacker in every `attack_freq`-th round (Sun et al. 2019, Sec. 2)."""

  def __init__(self, attack_freq: int):
    if attack_freq < 1:
      raise ValueError(f'`attack_freq` must be >= 1, got {attack_freq}.')
    self.attack_freq = attack_freq

  def malicious_mask(self, sampled, round_num, seed):
    del seed
    mask = np.zeros(len(sampled), bool)
    mask[0] = round_num % self.attack_freq == 0
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


class FixedPoolAttackers(AttackerModel):
  """`attacker_pool_size` fixed malicious clients in the population, sampled
  like every other client (Wang et al. 2020, "fixed pool")."""

  def __init__(self, attacker_pool_size: int, population: int, seed: int):
    if not 1 <= attacker_pool_size <= population:
      raise ValueError(
          f'`attacker_pool_size` must be in [1, {population}] (the '
          f'population), got {attacker_pool_size}.')
    rng = np.random.default_rng([seed, 2])
    self.pool = frozenset(
        int(k) for k in rng.choice(population, attacker_pool_size,
                                   replace=False))

  def malicious_mask(self, sampled, round_num, seed):
    del round_num, seed
    return np.array([int(k) in self.pool for k in sampled], bool)
