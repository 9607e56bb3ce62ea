"""A round's client data, from the dataset, the backdoor task and the sample.

Every client's local shuffles are NumPy permutations seeded from
(run seed, round, client), fixed when its dataset is built.
"""

import collections
from typing import Optional

import numpy as np
import tensorflow as tf

from targeted_attack.data import root_dataset
from targeted_attack.process import client_data as client_data_lib
from targeted_attack.process import dataset_arrays
from targeted_attack.process import models


def client_dataset(pixels: np.ndarray, labels: np.ndarray, num_epochs: int,
                   batch_size: int, shuffle_seed: int,
                   local_steps: int = 0) -> tf.data.Dataset:
  """EMNIST preprocessing: x = `models.model_input(pixels)` (a channel axis
  for grayscale [n, H, W]), y = [label] (a sentence: its next tokens [T]);
  `num_epochs` passes, each in its own order, batched; with `local_steps` >
  0 only the first local_steps · batch_size examples of that order (FedSGD:
  1).

  The orders are NumPy permutations drawn from `shuffle_seed`, fixed when the
  dataset is built: every iteration of the dataset (a strategy may read it more
  than once) yields the same sequence, whatever TensorFlow's random state.
  """
  rng = np.random.default_rng(shuffle_seed)
  order = np.concatenate(
      [rng.permutation(len(pixels)) for _ in range(num_epochs)]).astype(
          np.int64)
  if local_steps > 0:
    order = order[:local_steps * batch_size]
  x = models.model_input(pixels[order])
  y = _as_targets(labels[order])
  ds = tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y))
  return dataset_arrays.record_batches(ds.batch(batch_size), x, y, batch_size)


def _as_targets(labels: np.ndarray) -> np.ndarray:
  """int32 [n, 1] of class labels [n]; sequences' next tokens [n, T] as they
  are."""
  labels = np.asarray(labels, np.int32)
  return labels[:, np.newaxis] if labels.ndim == 1 else labels


def malicious_dataset(task, num_epochs: int, batch_size: int,
                      shuffle_seed: int, part: Optional[int] = None,
                      local_steps: int = 0) -> tf.data.Dataset:
  """D_mal: the backdoor training images, all labelled `task.target_label`
  (or `task.train_labels`: the next tokens of a word backdoor's sentences).

  With `part` (the client's index) and a task with K `train_parts`: part
  `part` mod K only. Strategies that train on D_trn ∪ D_mal (the paper's
  unconstrained attacker, Sun et al. 2019, Sec. 3) form the union themselves.
  """
  pixels = task.train_pixels
  if task.train_parts and part is not None:
    pixels = task.train_parts[part % len(task.train_parts)]
  if task.train_labels is not None:
    labels = task.train_labels
  else:
    labels = np.full(len(pixels), task.target_label, np.int32)
  return client_dataset(pixels, labels, num_epochs, batch_size, shuffle_seed,
                        local_steps)


def client_seed(run_seed: int, round_num: int, client: int) -> np.ndarray:
  """int64[2] seed of one client in one round, derived from the run's seed."""
  return np.random.SeedSequence([run_seed, round_num, client]).generate_state(
      2, np.uint32).astype(np.int64)


def round_client_data(data, task,
                      sampled: np.ndarray, is_malicious: np.ndarray,
                      num_epochs: int, batch_size: int, run_seed: int,
                      round_num: int, split_boost: bool = True,
                      attacker_identity=int, local_steps: int = 0) -> list:
  """The one place a round's client data is assembled.

  For each sampled client: its benign dataset D_trn (shuffled with a seed
  derived from (run_seed, round, client)), D_mal when it is malicious (part
  i mod K of a task with K `train_parts`, i = `attacker_identity(k)` for
  client k: its index in a pool of attackers, else k), and its context
  (seed, boost share, client id k: its index in the population, which
  aggregators keyed by client read); every dataset cut to `local_steps`
  batches when > 0 (`client_dataset`); see `client_data_lib.build_client_data`.

  When `data.root` is set (the chosen defense asked for a root dataset,
  `experiment.build.load_data`), one more client is appended LAST: the server's
  trusted root client, whose benign dataset is the root dataset (same epochs,
  batch size and local training as the clients; its own seed, key
  `root_dataset.ROOT_STREAM`), never malicious and never given D_mal. It is not one of
  `sampled`: `is_malicious` keeps one entry per sampled client, and so do the
  rule's per-client measurements (`kept_mask`) and the row's counts. The
  process cannot tell it apart, though: its training enters `client_work`'s
  measurements (train loss and accuracy, benign update norms) as a benign
  client's would, and an omniscient attack (ALIE, IPM) sees its update among
  the round's.
  """
  seeds = [client_seed(run_seed, round_num, int(k)) for k in sampled]
  benign, malicious = [], []
  for i, k in enumerate(sampled):
    pixels, labels = data.client_arrays(int(k))
    shuffle_seed = int(seeds[i][0])
    benign.append(client_dataset(pixels, labels, num_epochs, batch_size,
                                 shuffle_seed, local_steps))
    malicious.append(
        malicious_dataset(task, num_epochs, batch_size, shuffle_seed,
                          part=attacker_identity(int(k)),
                          local_steps=local_steps)
        if is_malicious[i] else None)
  if data.root is not None:
    seeds.append(client_seed(run_seed, round_num, root_dataset.ROOT_STREAM))
    benign.append(client_dataset(*data.root, num_epochs, batch_size,
                                 int(seeds[-1][0]), local_steps))
    malicious.append(None)
  # Clients past the sampled ones (the root client) have no identity: -1.
  client_ids = [int(k) for k in sampled] + [-1] * (len(benign) - len(sampled))
  return client_data_lib.build_client_data(benign, malicious, seeds=seeds,
                                           split_boost=split_boost,
                                           client_ids=client_ids)
