"""Federated images: the dataset type, and the digits' two sources.

Every image source shares one interface (`FederatedImages`): TFF's federated
EMNIST (`load_emnist`) and the generated writer-style digits
(`load_synthetic`) here; CIFAR-10 and CIFAR-100 in `data.cifar`.
Per-client arrays are cached, so a round's client datasets are cheap views.
"""

import functools
import os
import tempfile
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from targeted_attack.data import synthetic_digits


class FederatedImages:
  """Clients' train arrays (loaded lazily, cached) and a pooled test split.

  Images are float32 in [0, 1], [n, H, W] (grayscale: the digits) or
  [n, H, W, C] (colour: CIFAR); `image_shape` is a test image's shape.
  `trigger_value`: the pixel value a trigger backdoor stamps (the contrast
  of the images' background: ink 0 on the digits' white, white 1 on CIFAR).
  `kind`: 'images' (`data.text.FederatedText`: 'text').

  `root`: the server's clean root dataset (pixels, labels), held out of the
  clients' arrays (`hold_out_root`), or None; when set, every round gets a
  trusted root client appended last (`round_client_data`).

  `num_classes`: labels are 0..num_classes − 1 (10 digits; EMNIST with
  letters: 62); the model is built with as many outputs.

  `writers`: for a dataset re-partitioned from writers' data
  (`repartition_dirichlet`), the writer-partitioned dataset it pools (the
  semantic backdoor's target writers are chosen there), else None.
  """

  kind = 'images'

  def __init__(self, client_ids: Sequence[str],
               load_client: Callable[[str], tuple], test_pixels: np.ndarray,
               test_labels: np.ndarray, name: str,
               root: Optional[tuple] = None,
               writers: Optional['FederatedImages'] = None,
               num_classes: int = 10, trigger_value: float = 0.0):
    self.client_ids = list(client_ids)
    self.trigger_value = float(trigger_value)
    self.num_classes = num_classes
    self._load_client = load_client
    self._cache = {}
    self.test_pixels = test_pixels
    self.test_labels = test_labels
    self.name = name
    self.root = root
    self.writers = writers

  @property
  def image_shape(self) -> tuple:
    """(H, W) or (H, W, C): one image's shape."""
    return tuple(self.test_pixels.shape[1:])

  @property
  def num_clients(self) -> int:
    return len(self.client_ids)

  def client_arrays(self, index: int) -> tuple:
    """(pixels [n, *image_shape] float32, labels [n] int32) of client
    `index`."""
    if index not in self._cache:
      self._cache[index] = self._load_client(self.client_ids[index])
    return self._cache[index]


# The name up to 0.9 (every dataset was digits).
FederatedDigits = FederatedImages


def load_synthetic(num_clients: int, examples_per_client: int, seed: int,
                   crossbar_seven_rate: float = 0.03) -> FederatedDigits:
  """The generated dataset (see `synthetic_digits`), deterministic from seed.

  `crossbar_seven_rate`: the fraction of writers whose 7 has a crossbar (the
  edge-case style; 0 makes it a pure tail the honest clients never hold).
  The arrays of the last two datasets generated in this process are kept
  (read-only) and shared by the next calls with the same arguments: a
  sweep's worker runs the cells of one seed one after another.
  """
  train, test_pixels, test_labels = _generated(
      num_clients, examples_per_client, seed, crossbar_seven_rate)
  ids = [f'synthetic_writer_{i:05d}' for i in range(num_clients)]
  by_id = dict(zip(ids, train))
  return FederatedDigits(ids, by_id.__getitem__, test_pixels, test_labels,
                         'synthetic')


@functools.lru_cache(maxsize=2)
def _generated(num_clients: int, examples_per_client: int, seed: int,
               crossbar_seven_rate: float) -> tuple:
  """((pixels, labels) per writer, test pixels, test labels), read-only."""
  writers = synthetic_digits.generate_writers(
      num_clients, examples_per_client, seed,
      crossbar_seven_rate=crossbar_seven_rate)
  train = tuple((_read_only(w.train_pixels), _read_only(w.train_labels))
                for w in writers)
  return (train,
          _read_only(np.concatenate([w.test_pixels for w in writers])),
          _read_only(np.concatenate([w.test_labels for w in writers])))


def _read_only(array: np.ndarray) -> np.ndarray:
  array.setflags(write=False)
  return array


def read_back(write, load):
  """A stand-in: `write(directory)` into a temporary directory, then the
  real loader's `load(directory)`, every client read before the directory
  goes."""
  with tempfile.TemporaryDirectory() as tmp:
    write(tmp)
    data = load(tmp)
    for k in range(data.num_clients):
      data.client_arrays(k)
  return data


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
  """TFF's federated EMNIST (3,383 writers for digits), downloaded or cached;
  10 classes, or 62 (digits and letters) when not `only_digits`."""
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top
  from targeted_attack.data import emnist_cache  # pylint: disable=g-import-not-at-top
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
      test_pixels, test_labels, 'emnist',
      num_classes=10 if only_digits else 62)
