"""A round's client data, as the attacked process takes it.

Each client's input is `OrderedDict(benign=<dataset>, malicious=<dataset>,
context=<one-element dataset: seed, boost_share, client_id>)`; a client is
malicious exactly when its malicious dataset is non-empty (`ClientWorkProcess`
only takes sequences, so flags and seeds travel as data). `build_client_data`
builds this from the lists of the original research code.
"""

import collections
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from targeted_attack.process import dataset_arrays


def client_context(seed, boost_share: float,
                   client_id: int = -1) -> tf.data.Dataset:
  """A client's one-element context dataset: its int64[2] seed, boost share
  and int64 client id (its index in the population; -1: none)."""
  element = collections.OrderedDict(
      seed=np.array(seed, np.int64).reshape([2]),  # a copy: the record
      boost_share=np.float32(boost_share),
      client_id=np.int64(client_id))
  return dataset_arrays.record_elements(
      tf.data.Dataset.from_tensors(element), [element])


def empty_like(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """An empty dataset with `dataset`'s element spec, holding none of its data.

  `dataset.take(0)` would do, but it serializes all of `dataset`'s pipeline,
  its arrays included, with every round's client data. With batches whose
  only unknown dimension is the first, this is one row of zeros, unbatched,
  rebatched and cut to nothing.
  """
  specs = tf.nest.flatten(dataset.element_spec)
  if not all(isinstance(s, tf.TensorSpec) and s.shape.rank and
             s.shape[0] is None and s.shape[1:].is_fully_defined()
             for s in specs):
    return dataset.take(0)
  key = repr(dataset.element_spec)
  eager = tf.executing_eagerly()
  empty = _EMPTY_DATASETS.get(key) if eager else None
  if empty is None:
    row = tf.nest.map_structure(
        lambda s: tf.zeros([1] + s.shape[1:].as_list(), s.dtype),
        dataset.element_spec)
    empty = dataset_arrays.record_elements(
        tf.data.Dataset.from_tensors(row).unbatch().batch(1).take(0), [])
    if eager:
      _EMPTY_DATASETS[key] = empty
  return empty


_EMPTY_DATASETS = {}  # eager datasets are immutable: one per element spec


def build_client_data(
    benign_datasets: Sequence[tf.data.Dataset],
    malicious_datasets: Sequence[Optional[tf.data.Dataset]],
    client_is_malicious: Optional[Sequence[bool]] = None,
    seeds: Optional[Sequence[Sequence[int]]] = None,
    split_boost: bool = True,
    client_ids: Optional[Sequence[int]] = None) -> list:
  """Per-client `OrderedDict(benign=, malicious=, context=)` for `process.next`.

  A client is malicious when its entry of `malicious_datasets` is a dataset
  (None: benign); `client_is_malicious`, the original code's third list, may
  mark a client with a dataset as benign. A benign client's malicious dataset
  is replaced by an empty one (`empty_like`), which is how the process tells
  them apart. `seeds`: one int64 pair per client (local shuffles, DP-SGD noise);
  default (0, k). With `split_boost`, the k malicious clients of the round
  divide the boost evenly (each `boost_share` = 1/k, Sun et al. Sec. 3);
  otherwise each sends the full boost. `client_ids`: each client's identity
  (its index in the population; -1: none), read by aggregators keyed by
  client (FoolsGold's histories); default k, as the original code's fixed
  lists of clients.
  """
  n = len(benign_datasets)
  if len(malicious_datasets) != n:
    raise ValueError(
        f'`malicious_datasets` has {len(malicious_datasets)} entries but '
        f'`benign_datasets` has {n}; they must have one entry per client.')
  if client_is_malicious is None:
    client_is_malicious = [m is not None for m in malicious_datasets]
  if len(client_is_malicious) != n:
    raise ValueError(
        f'`client_is_malicious` has {len(client_is_malicious)} entries but '
        f'`benign_datasets` has {n}; they must have one entry per client.')
  if seeds is None:
    seeds = [(0, k) for k in range(n)]
  if len(seeds) != n:
    raise ValueError(f'`seeds` has {len(seeds)} entries but '
                     f'`benign_datasets` has {n}.')
  if client_ids is None:
    client_ids = range(n)
  if len(client_ids) != n:
    raise ValueError(f'`client_ids` has {len(client_ids)} entries but '
                     f'`benign_datasets` has {n}.')
  num_malicious = sum(bool(m) for m in client_is_malicious)
  share = 1.0 / num_malicious if split_boost and num_malicious else 1.0
  client_data = []
  for k, (benign, malicious, is_malicious) in enumerate(
      zip(benign_datasets, malicious_datasets, client_is_malicious)):
    if malicious is None:
      if is_malicious:
        raise ValueError(
            f'`malicious_datasets[{k}]` is None but `client_is_malicious[{k}]`'
            ' is True: a malicious client needs a malicious dataset.')
      malicious = benign
    client_data.append(
        collections.OrderedDict(
            benign=benign,
            malicious=malicious if is_malicious else empty_like(malicious),
            context=client_context(seeds[k], share, client_ids[k])))
  return client_data
