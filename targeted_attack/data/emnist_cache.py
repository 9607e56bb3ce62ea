"""A federated-EMNIST cache in TFF 0.87's own format, written from arrays.

What `tff.simulation.datasets.emnist.load_data(only_digits, cache_dir)` reads
(TFF 0.87, `emnist.py` → `download.get_compressed_file` → `SqlClientData`):

  1. `<cache_dir>/emnist_all.sqlite` (the DEcompressed file). If it exists it
     is used as is, with no network access and no check of its contents.
  2. Otherwise TFF downloads `TFF_EMNIST_ORIGIN`
     (https://storage.googleapis.com/tff-datasets-public/emnist_all.sqlite.lzma)
     and LZMA-decompresses the stream into `<cache_dir>/emnist_all.sqlite`.
     A local `emnist_all.sqlite.lzma` is never looked at: placing only the
     compressed file in `cache_dir` still triggers the download.

`cache_dir=None` means `~/.tff` (TFF's `download.py`; its `load_data`
docstring wrongly says Keras' cache directory). `cache_dir` is used verbatim
through `tf.io.gfile`, which does not expand `~` (spell it out).
An interrupted download leaves a truncated `emnist_all.sqlite` that later
calls use as is (delete it and retry).

The file is one SQLite database holding both variants, told apart by split:

  examples(split_name TEXT, client_id TEXT, serialized_example_proto BLOB)
  client_metadata(client_id TEXT, split_name TEXT, num_examples INTEGER)
  split_name ∈ {digits_only_train, digits_only_test, all_train, all_test}

A client's ids come from `client_metadata` (sorted by TFF); its examples are
`SELECT serialized_example_proto FROM examples WHERE client_id = '<id>' and
split_name = '<split>'` (no ORDER BY; SQLite returns insertion order in
practice). Each blob is a `tf.train.Example` with features
`pixels`: FloatList of 28·28 values (row-major, [0, 1], background 1.0) and
`label`: Int64List of one value (0–9 digits, 10–35 A–Z, 36–61 a–z), parsed
into `OrderedDict(label=int32[], pixels=float32[28, 28])`.

Fetching the real cache once, on a machine with internet and TFF 0.87:

  python -c "import tensorflow_federated as tff; tff.simulation.datasets.emnist.load_data(cache_dir='/data/emnist')"

(any directory spelled without `~`; `cache_dir` omitted: ~/.tff), then copy
`/data/emnist/emnist_all.sqlite` into a directory on the offline machine and
pass that directory as `--emnist_cache_dir`. With only the `.lzma` at hand:
`xz -dk emnist_all.sqlite.lzma` (or Python's `lzma` module) first.

`write_emnist_cache` writes the same format from given arrays, so the real
loader path runs offline (tests, small experiments).
"""

import os
import sqlite3
import tempfile
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

TFF_EMNIST_ORIGIN = (
    'https://storage.googleapis.com/tff-datasets-public/emnist_all.sqlite.lzma')
# The only file `load_data` reads from `cache_dir`, digits or all.
TFF_EMNIST_FILE = 'emnist_all.sqlite'
TFF_EMNIST_FILES = (TFF_EMNIST_FILE,)
TFF_DEFAULT_CACHE_DIR = os.path.join('~', '.tff')
IMAGE_SHAPE = (28, 28)


def split_names(only_digits: bool = True) -> tuple:
  """(train split, test split) that `load_data(only_digits)` selects."""
  prefix = 'digits_only' if only_digits else 'all'
  return f'{prefix}_train', f'{prefix}_test'


def tff_cache_path(cache_dir: Optional[str], file_name: str) -> str:
  """<cache_dir or ~/.tff>/`file_name`: where TFF's dataset loaders look
  for a decompressed file first."""
  if cache_dir is None:
    cache_dir = os.path.expanduser(TFF_DEFAULT_CACHE_DIR)
  return os.path.join(cache_dir, file_name)


def load_tff_dataset(load_data, cache_dir: Optional[str], file_name: str,
                     title: str, setting: str, stand_in: str,
                     also: str = ''):
  """`load_data(cache_dir)` (a TFF loader; `~` expanded) and the directory;
  any failure a `federated.DatasetUnavailableError` saying where TFF reads
  the decompressed `file_name` (and `also` beside it), the `setting` that
  names its directory and the offline `stand_in`."""
  from targeted_attack.data import federated  # pylint: disable=g-import-not-at-top
  if cache_dir is not None:
    cache_dir = os.path.expanduser(cache_dir)
  try:
    return load_data(cache_dir)
  except Exception as e:  # pylint: disable=broad-except
    where = tff_cache_path(cache_dir, file_name)
    raise federated.DatasetUnavailableError(
        f'could not load TFF\'s federated {title} ({type(e).__name__}: {e}); '
        f'TFF reads {where} (the decompressed {file_name}.lzma){also}; put '
        f'{"them" if also else "it"} in the directory given as `{setting}`, '
        f'or use `dataset`={stand_in}') from e


def tff_emnist_path(cache_dir: Optional[str] = None) -> str:
  """<cache_dir or ~/.tff>/emnist_all.sqlite: the path TFF checks first."""
  return tff_cache_path(cache_dir, TFF_EMNIST_FILE)


def missing_cache_hint(cache_dir: Optional[str] = None) -> str:
  """One sentence for error messages: which file to put where."""
  return (f'TFF reads federated EMNIST from {tff_emnist_path(cache_dir)} '
          f'(the decompressed {TFF_EMNIST_ORIGIN}; a local .lzma is not '
          'read); put that file in the directory given as `emnist_cache_dir`')


def _example(pixels: np.ndarray, label: int) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      'pixels': tf.train.Feature(float_list=tf.train.FloatList(
          value=pixels.reshape(-1))),
      'label': tf.train.Feature(int64_list=tf.train.Int64List(
          value=[int(label)])),
  })).SerializeToString()


def _checked(client_id, pixels, labels, what: str, num_classes: int) -> tuple:
  pixels = np.asarray(pixels, np.float32)
  labels = np.asarray(labels)
  if pixels.ndim != 3 or pixels.shape[1:] != IMAGE_SHAPE:
    raise ValueError(f'client {client_id!r}: {what} pixels must have shape '
                     f'[n, 28, 28], got {pixels.shape}.')
  if labels.shape != (len(pixels),):
    raise ValueError(f'client {client_id!r}: {what} labels must have shape '
                     f'[{len(pixels)}], got {labels.shape}.')
  if not len(pixels):
    raise ValueError(f'client {client_id!r}: no {what} examples (every '
                     'EMNIST writer has at least one train and one test).')
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'client {client_id!r}: {what} labels must be integers, '
                     f'got {labels.dtype}.')
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f'client {client_id!r}: {what} labels must be in '
                     f'[0, {num_classes}), got {labels.min()}..{labels.max()}.')
  if not np.all(np.isfinite(pixels)):
    raise ValueError(f'client {client_id!r}: {what} pixels are not finite.')
  return pixels, labels


def write_emnist_cache(cache_dir: str, writers: Sequence[tuple],
                       only_digits: bool = True,
                       overwrite: bool = False) -> str:
  """Writes <cache_dir>/emnist_all.sqlite so that
  `tff.simulation.datasets.emnist.load_data(only_digits, cache_dir)` loads
  `writers` offline; returns that path.

  writers: (client_id, train_pixels float32[n, 28, 28], train_labels int[n],
  test_pixels float32[m, 28, 28], test_labels int[m]) per client, n, m ≥ 1;
  labels in 0–9 (`only_digits`) or 0–61. Examples keep the given order.

  Both variants are written, as in TFF's file (one file serves both, and TFF
  raises a bare StopIteration on a variant with no clients):
    all_{train,test}         = the writers as given;
    digits_only_{train,test} = their examples with label < 10, for the
                               writers holding such examples in both splits
                               (all of them when `only_digits`).

  Raises FileExistsError if the file exists and not `overwrite` (it may be
  the real cache), ValueError on malformed writers.
  """
  num_classes = 10 if only_digits else 62
  rows, metadata, seen = [], [], set()
  for client_id, train_pix, train_labels, test_pix, test_labels in writers:
    if not isinstance(client_id, str) or not client_id or "'" in client_id:
      # TFF splices the id into its SQL query between single quotes.
      raise ValueError(f'client ids must be non-empty str without "\'", got '
                       f'{client_id!r}.')
    if client_id in seen:
      raise ValueError(f'duplicate client id {client_id!r}.')
    seen.add(client_id)
    splits = {
        what: _checked(client_id, pixels, labels, what, num_classes)
        for what, pixels, labels in (('train', train_pix, train_labels),
                                     ('test', test_pix, test_labels))}
    has_digits = all(np.any(labels < 10) for _, labels in splits.values())
    for only in (False, True):
      if only and not has_digits:
        continue
      for what, split in zip(('train', 'test'), split_names(only)):
        pixels, labels = splits[what]
        if only:
          pixels, labels = pixels[labels < 10], labels[labels < 10]
        rows.extend((split, client_id, _example(p, l))
                    for p, l in zip(pixels, labels))
        metadata.append((client_id, split, len(pixels)))
  if not seen:
    raise ValueError('writers is empty.')

  return write_client_sqlite(os.path.join(cache_dir, TFF_EMNIST_FILE), rows,
                             metadata, overwrite)


def write_client_sqlite(path: str, rows: Sequence[tuple],
                        metadata: Sequence[tuple],
                        overwrite: bool = False) -> str:
  """Writes TFF's `SqlClientData` file at `path`: `rows` (split, client id,
  serialized tf.Example) into `examples`, `metadata` (client id, split,
  number of examples) into `client_metadata`; atomically (a temporary file,
  then renamed). Raises FileExistsError if `path` exists and not
  `overwrite`."""
  cache_dir = os.path.dirname(path) or '.'
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f'{path} exists; pass overwrite=True to replace it.')
  os.makedirs(cache_dir, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(suffix='.sqlite', dir=cache_dir)
  os.close(fd)
  try:
    connection = sqlite3.connect(tmp_path)
    try:
      with connection:
        connection.execute(
            'CREATE TABLE examples (split_name TEXT NOT NULL, client_id TEXT '
            'NOT NULL, serialized_example_proto BLOB NOT NULL);')
        connection.execute(
            'CREATE TABLE client_metadata (client_id TEXT NOT NULL, '
            'split_name TEXT NOT NULL, num_examples INTEGER NOT NULL);')
        connection.executemany(
            'INSERT INTO examples (split_name, client_id, '
            'serialized_example_proto) VALUES (?, ?, ?);', rows)
        connection.executemany(
            'INSERT INTO client_metadata (client_id, split_name, num_examples) '
            'VALUES (?, ?, ?);', metadata)
    finally:
      connection.close()
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise
  return path
