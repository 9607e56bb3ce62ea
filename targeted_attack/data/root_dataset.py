"""The server's clean root dataset, held out of the clients' data (FLTrust)."""

import copy

import numpy as np

from targeted_attack.data import federated


# The root dataset's random stream (and the root client's seed key): b'root'.
ROOT_STREAM = 0x726F6F74


def hold_out_root(data: federated.FederatedDigits, size: int,
                  seed: int) -> federated.FederatedDigits:
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

  # A copy of `data` (its kind, vocabulary or training pool kept) whose
  # clients lack the held-out examples.
  held_out = copy.copy(data)
  held_out._load_client = load  # pylint: disable=protected-access
  held_out._cache = {}  # pylint: disable=protected-access
  held_out.root = (np.stack(pixels), np.asarray(labels, np.int32))
  if held_out.root[0].dtype.kind == 'f':
    held_out.root = (held_out.root[0].astype(np.float32), held_out.root[1])
  return held_out
