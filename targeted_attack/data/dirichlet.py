"""Non-IID re-partitioning of the writers' data by a Dirichlet draw per class."""

import numpy as np

from targeted_attack.data import federated


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


def repartition_dirichlet(writers: federated.FederatedDigits, num_clients: int,
                          alpha: float, seed: int) -> federated.FederatedDigits:
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
  return federated.FederatedDigits(
      list(by_id), lambda cid: (pixels[by_id[cid]], labels[by_id[cid]]),
      writers.test_pixels, writers.test_labels, 'dirichlet', writers=writers,
      num_classes=writers.num_classes, trigger_value=writers.trigger_value)
