"""CIFAR-10 and CIFAR-100 as federated datasets, from their real files.

**CIFAR-10** from the standard download users have, the python version
(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz): the directory
`cifar-10-batches-py` holding `data_batch_1` … `data_batch_5` and
`test_batch`, each a pickled dict with b'data' (uint8 [10000, 3072]: per
image the 1024 red values row-major, then the green, then the blue) and
b'labels' (10,000 ints in 0–9). `read_cifar10` takes that directory, its
parent, or the .tar.gz; the pickles are read by an unpickler that builds
only NumPy arrays, lists, dicts and strings (a pickle can run code).
The 50,000 training images are split over clients by the literature's
Dirichlet partition (`dirichlet.dirichlet_partition`, α a setting;
Bagdasaryan et al. 0.9, DBA 0.5), the images a backdoor names held out of
it (Bagdasaryan et al.'s code keeps its `poison_images` and
`poison_images_test` out of every honest client's data).

**CIFAR-100** is TFF's federated version (500 clients of 100 images,
Reddi et al.'s Pachinko split) through
`tff.simulation.datasets.cifar100.load_data(cache_dir)`, which reads
`<cache_dir>/cifar100.sqlite` (the decompressed
https://storage.googleapis.com/tff-datasets-public/cifar100.sqlite.lzma;
fetch it once with internet as for EMNIST, see `emnist_cache`).

The stand-ins (`write_synthetic_cifar10`, `write_synthetic_cifar100`) write
generated images (`synthetic_images`) in those same formats, and the
datasets `synthetic_cifar10` / `synthetic_cifar100` load them through the
real loaders. Pixel values are x / 255 in [0, 1]; images [n, 32, 32, 3].
"""

import io
import json
import os
import pickle
import tarfile
import tempfile
from typing import Optional, Sequence

import numpy as np

try:  # NumPy 2
  from numpy._core.multiarray import _reconstruct  # pylint: disable=g-import-not-at-top
except ImportError:  # NumPy 1
  from numpy.core.multiarray import _reconstruct  # pylint: disable=g-import-not-at-top

from targeted_attack.data import dirichlet
from targeted_attack.data import emnist_cache
from targeted_attack.data import federated
from targeted_attack.data import synthetic_images

CIFAR10_DIR = 'cifar-10-batches-py'
CIFAR10_TRAIN_FILES = tuple(f'data_batch_{i}' for i in range(1, 6))
CIFAR10_TEST_FILE = 'test_batch'
CIFAR10_META_FILE = 'batches.meta'
# Index lists of a CIFAR-10 directory's images (the stand-in writes one;
# a user may write one for the real files): {name: [index into the 50,000
# training images, …]}.
ATTRIBUTES_FILE = 'attribute_lists.json'
CIFAR100_FILE = 'cifar100.sqlite'
# Wang et al.'s published edge case for CIFAR-10 (their repository's
# saved_datasets/): pickled uint8 arrays [n, 32, 32, 3] of Southwest
# Airlines' planes, labelled truck.
SOUTHWEST_FILES = ('southwest_images_new_train.pkl',
                   'southwest_images_new_test.pkl')
# The digits' ink on white; on CIFAR the triggers are white.
CIFAR_TRIGGER_VALUE = 1.0
_IMAGES_PER_BATCH = 10000


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Unpickles NumPy arrays and plain containers, and nothing that could
  run code."""
  _ALLOWED = {
      ('numpy.core.multiarray', '_reconstruct'),
      ('numpy._core.multiarray', '_reconstruct'),
      ('numpy', 'ndarray'), ('numpy', 'dtype'),
      ('_codecs', 'encode'),
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(
          f'a CIFAR batch file may hold only arrays, lists and strings; it '
          f'refers to {module}.{name}.')
    if name == '_reconstruct':
      return _reconstruct
    return super().find_class(module, name)


def _load_batch(stream) -> tuple:
  batch = _ArraysOnlyUnpickler(stream, encoding='bytes').load()
  data = np.asarray(batch[b'data'], np.uint8)
  labels = np.asarray(batch[b'labels'], np.int64)
  if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
    raise ValueError(f'a CIFAR-10 batch holds data [n, 3072] and n labels, '
                     f'got {data.shape} and {labels.shape}.')
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, labels


def _batch_dir(path: str) -> str:
  if os.path.isfile(os.path.join(path, CIFAR10_TEST_FILE)):
    return path
  if os.path.isfile(os.path.join(path, CIFAR10_DIR, CIFAR10_TEST_FILE)):
    return os.path.join(path, CIFAR10_DIR)
  raise FileNotFoundError(
      f'no CIFAR-10 batches in {path}: give the directory {CIFAR10_DIR} '
      f'(holding {", ".join(CIFAR10_TRAIN_FILES)} and {CIFAR10_TEST_FILE}), '
      'its parent, or cifar-10-python.tar.gz')


def read_cifar10(path: str) -> tuple:
  """(train images uint8 [50000, 32, 32, 3], train labels [50000], test
  images [10000, …], test labels, attribute lists {name: [index]} or {}) of
  the python-format CIFAR-10 at `path` (see the module docstring)."""
  path = os.path.expanduser(path)
  files = {}
  attributes = {}
  if os.path.isfile(path):
    with tarfile.open(path, 'r:gz') as archive:
      for member in archive.getmembers():
        base = os.path.basename(member.name)
        if base in CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,):
          files[base] = _load_batch(io.BytesIO(
              archive.extractfile(member).read()))
  else:
    directory = _batch_dir(path)
    for base in CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,):
      name = os.path.join(directory, base)
      if os.path.isfile(name):
        with open(name, 'rb') as f:
          files[base] = _load_batch(f)
    lists = os.path.join(directory, ATTRIBUTES_FILE)
    if os.path.isfile(lists):
      with open(lists) as f:
        attributes = json.load(f)
  missing = [b for b in CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,)
             if b not in files]
  if missing:
    raise FileNotFoundError(f'CIFAR-10 at {path} lacks {", ".join(missing)}.')
  train = [files[b] for b in CIFAR10_TRAIN_FILES]
  test_images, test_labels = files[CIFAR10_TEST_FILE]
  return (np.concatenate([x for x, _ in train]),
          np.concatenate([y for _, y in train]), test_images, test_labels,
          attributes)


def read_southwest(directory: str) -> tuple:
  """(train, test) uint8 [n, 32, 32, 3]: Wang et al.'s Southwest images from
  `directory` (`SOUTHWEST_FILES`, read arrays-only)."""
  directory = os.path.expanduser(directory)
  arrays = []
  for base in SOUTHWEST_FILES:
    path = os.path.join(directory, base)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f'no {base} in {directory}: Wang et al.\'s edge-case files '
          f'({", ".join(SOUTHWEST_FILES)}, from their repository\'s '
          'saved_datasets/) go there.')
    with open(path, 'rb') as f:
      images = np.asarray(_ArraysOnlyUnpickler(f, encoding='latin1').load())
    if images.ndim != 4 or images.shape[1:] != synthetic_images.IMAGE_SHAPE:
      raise ValueError(f'{path}: expected images [n, 32, 32, 3], got '
                       f'{images.shape}.')
    arrays.append(images.astype(np.uint8))
  return tuple(arrays)


def write_southwest(directory: str, train_images, test_images) -> None:
  """Writes `SOUTHWEST_FILES` in their published format (a pickled uint8
  array each)."""
  os.makedirs(directory, exist_ok=True)
  for base, images in zip(SOUTHWEST_FILES, (train_images, test_images)):
    with open(os.path.join(directory, base), 'wb') as f:
      pickle.dump(np.asarray(images, np.uint8), f)


def _pickle_batch(path: str, images: np.ndarray, labels: np.ndarray,
                  label: str) -> None:
  data = np.ascontiguousarray(
      np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(-1, 3072))
  batch = {b'batch_label': label.encode(), b'labels': [int(y) for y in labels],
           b'data': data,
           b'filenames': [f'image_{i:05d}.png'.encode()
                          for i in range(len(labels))]}
  with open(path, 'wb') as f:
    pickle.dump(batch, f, protocol=2)


def write_cifar10(directory: str, train_images, train_labels, test_images,
                  test_labels, attributes: Optional[dict] = None) -> str:
  """Writes `directory`/cifar-10-batches-py in CIFAR-10's python format
  (five training batches of equal size, one test batch, `batches.meta`),
  and the attribute lists if given; returns the batches' directory.
  Images uint8 [n, 32, 32, 3], labels 0–9; n a multiple of 5."""
  train_images = np.asarray(train_images, np.uint8)
  if train_images.shape[1:] != synthetic_images.IMAGE_SHAPE or len(
      train_images) % len(CIFAR10_TRAIN_FILES):
    raise ValueError(f'train images must be [5k, 32, 32, 3], got '
                     f'{train_images.shape}.')
  out = os.path.join(directory, CIFAR10_DIR)
  os.makedirs(out, exist_ok=True)
  per_file = len(train_images) // len(CIFAR10_TRAIN_FILES)
  for i, base in enumerate(CIFAR10_TRAIN_FILES):
    rows = slice(i * per_file, (i + 1) * per_file)
    _pickle_batch(os.path.join(out, base), train_images[rows],
                  np.asarray(train_labels)[rows],
                  f'training batch {i + 1} of 5')
  _pickle_batch(os.path.join(out, CIFAR10_TEST_FILE), test_images,
                test_labels, 'testing batch 1 of 1')
  with open(os.path.join(out, CIFAR10_META_FILE), 'wb') as f:
    pickle.dump({b'label_names': [c.encode() for c in
                                  synthetic_images.CIFAR10_CLASSES],
                 b'num_cases_per_batch': per_file, b'num_vis': 3072}, f,
                protocol=2)
  if attributes is not None:
    with open(os.path.join(out, ATTRIBUTES_FILE), 'w') as f:
      json.dump(attributes, f)
  return out


def parse_index_list(spec: str, attributes: dict, setting: str) -> list:
  """Indices from `spec`: comma-separated integers ("874,49163,…"), or the
  name of one of the dataset's attribute lists (`attributes`, e.g. the
  CIFAR-10 stand-in's 'green_car_train'); a ValueError naming `setting`
  otherwise."""
  spec = str(spec).strip()
  if spec in attributes:
    indices = [int(i) for i in attributes[spec]]
  else:
    try:
      indices = [int(part) for part in spec.split(',') if part.strip()]
    except ValueError:
      names = ', '.join(sorted(attributes)) or 'none'
      raise ValueError(
          f'`{setting}`={spec!r} is neither comma-separated image indices '
          f'nor one of the dataset\'s attribute lists ({names}).') from None
  if not indices:
    raise ValueError(f'`{setting}`={spec!r} names no image.')
  return indices


def held_out_indices(specs: Sequence[tuple], attributes: dict) -> list:
  """The indices of (setting, spec) pairs (`parse_index_list`), all lists
  together."""
  return [i for setting, spec in specs
          for i in parse_index_list(spec, attributes, setting)]


def _as_float(images: np.ndarray) -> np.ndarray:
  return np.asarray(images, np.float32) / np.float32(255.0)


def cifar10_federated(train_images, train_labels, test_images, test_labels,
                      num_clients: int, alpha: float, seed: int,
                      held_out: Sequence[int] = (),
                      name: str = 'cifar10') -> federated.FederatedImages:
  """The training images but `held_out` split over `num_clients` clients by
  `dirichlet.dirichlet_partition` (seeded by (seed, DIRICHLET_STREAM));
  clients left without an image are dropped; ids 'cifar10_client_{k}'.
  The dataset keeps the whole training pool as `pool` (float32), which
  index-list backdoors read."""
  pool = _as_float(train_images)
  labels = np.asarray(train_labels, np.int32)
  held = np.zeros(len(labels), bool)
  if len(held_out):
    index = np.asarray(held_out, np.int64)
    if index.min() < 0 or index.max() >= len(labels):
      raise ValueError(f'held-out image indices must be in 0..'
                       f'{len(labels) - 1}, got {index.min()}..'
                       f'{index.max()}.')
    held[index] = True
  kept = np.flatnonzero(~held)
  rng = np.random.default_rng(np.random.SeedSequence(
      seed, spawn_key=(dirichlet.DIRICHLET_STREAM,)))
  parts = dirichlet.dirichlet_partition(labels[kept], num_clients, alpha, rng)
  by_id = {f'{name}_client_{k:05d}': kept[part]
           for k, part in enumerate(parts) if len(part)}
  data = federated.FederatedImages(
      list(by_id), lambda cid: (pool[by_id[cid]], labels[by_id[cid]]),
      _as_float(test_images), np.asarray(test_labels, np.int32), name,
      num_classes=10, trigger_value=CIFAR_TRIGGER_VALUE)
  data.pool = (pool, labels)
  return data


def load_cifar10(path: str, num_clients: int, alpha: float, seed: int,
                 held_out_specs: Sequence[tuple] = ()
                ) -> federated.FederatedImages:
  """CIFAR-10 from the python-format files at `path`, Dirichlet-split
  (`cifar10_federated`) without the images of `held_out_specs` ((setting,
  `parse_index_list` spec) pairs); `attributes` holds the directory's index
  lists."""
  train_x, train_y, test_x, test_y, attributes = read_cifar10(path)
  data = cifar10_federated(train_x, train_y, test_x, test_y, num_clients,
                           alpha, seed,
                           held_out_indices(held_out_specs, attributes))
  data.attributes = attributes
  return data


def write_synthetic_cifar10(directory: str, num_train: int, num_test: int,
                            seed: int) -> str:
  """The CIFAR-10 stand-in (`synthetic_images`, 10 classes) written in the
  real format with its attribute lists (`synthetic_images.attribute_lists`,
  indices into the training images); returns the batches' directory."""
  generated = synthetic_images.generate(num_train + num_test, seed)
  train = {k: v[:num_train] for k, v in generated.items()}
  return write_cifar10(
      directory, train['images'], train['labels'],
      generated['images'][num_train:], generated['labels'][num_train:],
      synthetic_images.attribute_lists(train))


def load_synthetic_cifar10(num_train: int, num_test: int, num_clients: int,
                           alpha: float, seed: int,
                           held_out_specs: Sequence[tuple] = ()
                          ) -> federated.FederatedImages:
  """The stand-in, written to a temporary directory and read back by the
  real loader (`load_cifar10`)."""
  with tempfile.TemporaryDirectory() as tmp:
    write_synthetic_cifar10(tmp, num_train, num_test, seed)
    train_x, train_y, test_x, test_y, attributes = read_cifar10(tmp)
  data = cifar10_federated(train_x, train_y, test_x, test_y, num_clients,
                           alpha, seed,
                           held_out_indices(held_out_specs, attributes),
                           name='synthetic_cifar10')
  data.attributes = attributes
  return data


# ---------------------------------------------------------------------------
# CIFAR-100: TFF's federated version.


def _cifar100_example(image: np.ndarray, label: int, coarse: int) -> bytes:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  feature = lambda values: tf.train.Feature(
      int64_list=tf.train.Int64List(value=values))
  return tf.train.Example(features=tf.train.Features(feature={
      'coarse_label': feature([int(coarse)]),
      'image': feature(np.asarray(image, np.int64).reshape(-1)),
      'label': feature([int(label)]),
  })).SerializeToString()


def write_cifar100_cache(cache_dir: str, train_clients: Sequence[tuple],
                         test_clients: Sequence[tuple],
                         overwrite: bool = False) -> str:
  """Writes <cache_dir>/cifar100.sqlite, the file
  `tff.simulation.datasets.cifar100.load_data(cache_dir)` reads (splits
  'train' and 'test'; examples with `coarse_label`, `image` int64[32·32·3],
  `label`). Clients: (client_id, images uint8 [n, 32, 32, 3], labels
  [n] in 0–99, coarse labels [n] in 0–19)."""
  rows, metadata = [], []
  for split, clients in (('train', train_clients), ('test', test_clients)):
    for client_id, images, labels, coarse in clients:
      images = np.asarray(images)
      if images.shape[1:] != synthetic_images.IMAGE_SHAPE or not len(images):
        raise ValueError(f'client {client_id!r}: images must be [n ≥ 1, 32, '
                         f'32, 3], got {images.shape}.')
      rows.extend((split, client_id, _cifar100_example(x, y, c))
                  for x, y, c in zip(images, labels, coarse))
      metadata.append((client_id, split, len(images)))
  return emnist_cache.write_client_sqlite(
      os.path.join(cache_dir, CIFAR100_FILE), rows, metadata, overwrite)


def _images_of(dataset) -> tuple:
  images, labels = [], []
  for batch in dataset.batch(4096):
    images.append(batch['image'].numpy())
    labels.append(batch['label'].numpy().reshape(-1))
  return np.concatenate(images), np.concatenate(labels).astype(np.int32)


def load_cifar100(cache_dir: Optional[str] = None,
                  name: str = 'cifar100') -> federated.FederatedImages:
  """TFF's federated CIFAR-100 (500 clients), downloaded or from
  `cache_dir`; 100 classes (the fine labels)."""
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top
  train, test = emnist_cache.load_tff_dataset(
      lambda d: tff.simulation.datasets.cifar100.load_data(cache_dir=d),
      cache_dir, CIFAR100_FILE, 'CIFAR-100', 'cifar100_cache_dir',
      'synthetic_cifar100')
  test_images, test_labels = _images_of(
      test.create_tf_dataset_from_all_clients())

  def load(cid):
    images, labels = _images_of(train.create_tf_dataset_for_client(cid))
    return _as_float(images), labels

  return federated.FederatedImages(
      train.client_ids, load, _as_float(test_images), test_labels, name,
      num_classes=100, trigger_value=CIFAR_TRIGGER_VALUE)


def load_synthetic_cifar100(num_clients: int, examples_per_client: int,
                            seed: int) -> federated.FederatedImages:
  """The CIFAR-100 stand-in: generated images (100 classes) dealt to
  `num_clients` train clients and num_clients // 5 test clients of
  `examples_per_client` each, written as TFF's cifar100.sqlite in a
  temporary directory and read by TFF's own `load_data`."""
  num_test_clients = max(1, num_clients // 5)
  total = (num_clients + num_test_clients) * examples_per_client
  generated = synthetic_images.generate(total, seed, num_classes=100)
  clients = []
  for k in range(num_clients + num_test_clients):
    rows = slice(k * examples_per_client, (k + 1) * examples_per_client)
    clients.append((str(k if k < num_clients else k - num_clients),
                    generated['images'][rows], generated['labels'][rows],
                    generated['coarse_labels'][rows]))
  return federated.read_back(
      lambda tmp: write_cifar100_cache(tmp, clients[:num_clients],
                                       clients[num_clients:]),
      lambda tmp: load_cifar100(tmp, name='synthetic_cifar100'))
