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
  """Clients' train arrays (loaded lazily, cached) and a pooled test split.

  `root`: the server's clean root dataset (pixels, labels), held out of the
  clients' arrays (`hold_out_root`), or None; when set, every round gets a
  trusted root client appended last (`round_client_data`).

  `writers`: for a dataset re-partitioned from writers' data
  (`repartition_dirichlet`), the writer-partitioned dataset it pools (the
  semantic backdoor's target writers are chosen there), else None.
  """

  def __init__(self, client_ids: Sequence[str],
               load_client: Callable[[str], tuple], test_pixels: np.ndarray,
               test_labels: np.ndarray, name: str,
               root: Optional[tuple] = None,
               writers: Optional['FederatedDigits'] = None):
    self.client_ids = list(client_ids)
    self._load_client = load_client
    self._cache = {}
    self.test_pixels = test_pixels
    self.test_labels = test_labels
    self.name = name
    self.root = root
    self.writers = writers

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


# The Dirichlet partition's random stream: SeedSequence spawn key b'dir'.
DIRICHLET_STREAM = 0x646972


def dirichlet_partition(labels: np.ndarray, num_clients: int, alpha: float,
                        rng: np.random.Generator) -> list:
  """Non-IID label partition: `num_clients` index arrays, each example once.

  For each class c, with its n_c examples in a random order:
      p_c ~ Dir(α · 1_N),  N = `num_clients`,
  and client k receives the examples between positions round(n_c · S_{k−1})
  and round(n_c · S_k), S_k = p_c,1 + … + p_c,k: a count within 1 of
  n_c · p_c,k, the counts summing to n_c exactly. Small α puts most of each
  class on few clients; α → ∞ gives every client a share 1/N of every class.
  The per-class scheme of Yurochkin et al. (ICML 2019) and Wang et al.
  (FedMA, ICLR 2020), used by Bagdasaryan et al.'s and DBA's (Xie et al.,
  ICLR 2020: α = 0.5) experiments and usually cited with Hsu et al. (2019),
  whose own draw is per client, q ~ Dir(α·p) over classes. Clients may get
  no example (likely for small α and many clients). Indices are sorted.
  """
  if not alpha > 0:
    raise ValueError(f'`dirichlet_alpha` must be > 0, got {alpha}.')
  labels = np.asarray(labels)
  parts = [[] for _ in range(num_clients)]
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    shares = rng.dirichlet(np.full(num_clients, float(alpha)))
    bounds = np.round(np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
    for k, piece in enumerate(np.split(members, bounds)):
      parts[k].append(piece)
  return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def repartition_dirichlet(writers: FederatedDigits, num_clients: int,
                          alpha: float, seed: int) -> FederatedDigits:
  """`writers`' training examples pooled, then split by `dirichlet_partition`.

  The pool is every writer's train arrays, writer after writer; the test
  split is `writers`' own. Seeded by (seed, `DIRICHLET_STREAM`): the same
  partition for every run of a seed. Clients left without an example are not
  part of the population (`num_clients` is then smaller); a client's id names
  its index k in the partition, 'dirichlet_client_{k}'. The result keeps
  `writers` (the semantic backdoor chooses its target writers there).
  """
  pieces = [writers.client_arrays(i) for i in range(writers.num_clients)]
  pixels = np.concatenate([p for p, _ in pieces])
  labels = np.concatenate([y for _, y in pieces])
  rng = np.random.default_rng(
      np.random.SeedSequence(seed, spawn_key=(DIRICHLET_STREAM,)))
  parts = dirichlet_partition(labels, num_clients, alpha, rng)
  by_id = {f'dirichlet_client_{k:05d}': part
           for k, part in enumerate(parts) if len(part)}
  return FederatedDigits(
      list(by_id), lambda cid: (pixels[by_id[cid]], labels[by_id[cid]]),
      writers.test_pixels, writers.test_labels, 'dirichlet', writers=writers)


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
  `eval_part_stamps`: K functions, stamp k putting local trigger k on images;
  the evaluator then also measures backdoor accuracy part k on
  `eval_part_stamps[k](eval_source_pixels)` (the evaluation images before
  any trigger; DBA's per-part attack success, Xie et al. 2020, Sec. 4).
  `target_clients`: the target clients' indices (the semantic backdoor on a
  re-partitioned dataset: the target writers' indices in `data.writers`).
  """
  name: str
  train_pixels: np.ndarray
  eval_pixels: np.ndarray
  target_label: int = BACKDOOR_TARGET_LABEL
  target_clients: tuple = ()
  train_parts: tuple = ()
  eval_source_pixels: Optional[np.ndarray] = None
  eval_part_stamps: tuple = ()

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

  The targets are writers: on a dataset re-partitioned from writers' data
  (`data.writers`, e.g. `repartition_dirichlet`) they are chosen among the
  writers, and their images lie, correctly labelled, on whichever clients
  the partition gave them to.
  Raises ValueError naming `task_num` when fewer clients hold that label.
  """
  if data.writers is not None:
    data = data.writers
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


# The root dataset's random stream (and the root client's seed key): b'root'.
ROOT_STREAM = 0x726F6F74


def hold_out_root(data: FederatedDigits, size: int,
                  seed: int) -> FederatedDigits:
  """`data` with `size` training examples moved to the server's root dataset.

  FLTrust's root dataset (Cao et al., NDSS 2021: a small clean
  training set the server collects, sampled from the learning task's
  distribution; 100 examples in their experiments). Taken one example per
  client: clients in a seeded random order, each giving one seeded random
  example of its own per pass, passes repeated until `size` are taken; a
  client always keeps at least one example. Seeded by (seed, `ROOT_STREAM`),
  so the same for every run of a seed. The examples are removed from their
  clients (held out: the server's data and the clients' are disjoint), and are
  clean: the backdoor task, built afterwards, never adds to them. Only the
  clients drawn are loaded. Raises ValueError when the clients cannot give
  `size` examples.
  """
  rng = np.random.default_rng(
      np.random.SeedSequence(seed, spawn_key=(ROOT_STREAM,)))
  order = rng.permutation(data.num_clients)
  orders, held, pixels, labels = {}, {}, [], []
  while len(labels) < size:
    gave = False
    for k in order:
      k = int(k)
      if k not in orders:
        orders[k] = rng.permutation(len(data.client_arrays(k)[1]))
        held[k] = []
      if len(orders[k]) - len(held[k]) <= 1:
        continue
      index = int(orders[k][len(held[k])])
      held[k].append(index)
      client_pixels, client_labels = data.client_arrays(k)
      pixels.append(client_pixels[index])
      labels.append(client_labels[index])
      gave = True
      if len(labels) == size:
        break
    if not gave:
      raise ValueError(
          f'the clients can give only {len(labels)} examples to a root '
          f'dataset of {size} (each keeps at least one).')
  dropped = {data.client_ids[k]: np.asarray(v, np.int64)
             for k, v in held.items() if v}
  index_of = {cid: i for i, cid in enumerate(data.client_ids)}

  def load(cid):
    client_pixels, client_labels = data.client_arrays(index_of[cid])
    if cid not in dropped:
      return client_pixels, client_labels
    keep = np.ones(len(client_labels), bool)
    keep[dropped[cid]] = False
    return client_pixels[keep], client_labels[keep]

  return FederatedDigits(
      data.client_ids, load, data.test_pixels, data.test_labels, data.name,
      root=(np.stack(pixels).astype(np.float32),
            np.asarray(labels, np.int32)), writers=data.writers)


def round_client_data(data: FederatedDigits, task: BackdoorTask,
                      sampled: np.ndarray, is_malicious: np.ndarray,
                      num_epochs: int, batch_size: int, run_seed: int,
                      round_num: int, split_boost: bool = True) -> list:
  """The one place a round's client data is assembled.

  For each sampled client: its benign dataset D_trn (shuffled with a seed
  derived from (run_seed, round, client)), D_mal when it is malicious (part
  k mod K, for client k, of a task with K `train_parts`), and its context
  (seed, boost share, client id k: its index in the population, which
  aggregators keyed by client read); see `attacked_fedavg.build_client_data`.

  When `data.root` is set (the chosen defense asked for a root dataset,
  `registry.load_data`), one more client is appended LAST: the server's
  trusted root client, whose benign dataset is the root dataset (same epochs,
  batch size and local training as the clients; its own seed, key
  `ROOT_STREAM`), never malicious and never given D_mal. It is not one of
  `sampled`: `is_malicious` keeps one entry per sampled client, and so do the
  rule's per-client measurements (`kept_mask`) and the row's counts. The
  process cannot tell it apart, though: its training enters `client_work`'s
  measurements (train loss and accuracy, benign update norms) as a benign
  client's would, and an omniscient attack (ALIE, IPM) sees its update among
  the round's.
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
  if data.root is not None:
    seeds.append(client_seed(run_seed, round_num, ROOT_STREAM))
    benign.append(client_dataset(*data.root, num_epochs, batch_size,
                                 int(seeds[-1][0])))
    malicious.append(None)
  # Clients past the sampled ones (the root client) have no identity: -1.
  client_ids = [int(k) for k in sampled] + [-1] * (len(benign) - len(sampled))
  return attacked_fedavg.build_client_data(benign, malicious, seeds=seeds,
                                           split_boost=split_boost,
                                           client_ids=client_ids)


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


# The fixed pool's random stream: SeedSequence spawn key b'pool'.
POOL_STREAM = 0x706F6F6C


class FixedPoolAttackers(AttackerModel):
  """`attacker_pool_size` fixed malicious clients in the population, sampled
  like every other client (Wang et al. 2020, "fixed pool")."""

  def __init__(self, attacker_pool_size: int, population: int, seed: int):
    if not 1 <= attacker_pool_size <= population:
      raise ValueError(
          f'`attacker_pool_size` must be in [1, {population}] (the '
          f'population), got {attacker_pool_size}.')
    # Its own stream: [seed, 2] was round 2's client sample (that round's
    # sample then began with the pool).
    rng = np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(POOL_STREAM,)))
    self.pool = frozenset(
        int(k) for k in rng.choice(population, attacker_pool_size,
                                   replace=False))

  def malicious_mask(self, sampled, round_num, seed):
    del round_num, seed
    return np.array([int(k) in self.pool for k in sampled], bool)
