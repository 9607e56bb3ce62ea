"""The NumPy arrays a client dataset was built from, kept beside it.

A client's datasets are built from NumPy arrays (`round_data.client_dataset`,
`client_data.client_context`). Batched client training reads them back as
arrays; reading a `tf.data.Dataset` element by element in Python costs a few
milliseconds per client (an iterator per dataset, a conversion per batch),
which at `small` is as long as the clients' arithmetic. The builders record
the arrays here, keyed by the dataset object itself (weakly: the record goes
with the dataset); a dataset derived from a recorded one (`map`, `take`,
...) is a new object with no record, and is read element by element.
"""

import weakref
from typing import Optional

import numpy as np
import tensorflow as tf

# dataset → its `Batches`, or its list of elements (weakly: the record goes
# with the dataset).
_RECORDS = weakref.WeakKeyDictionary()


class Batches:
  """`from_tensor_slices(dict(x=x, y=y)).batch(batch_size)`, as arrays."""

  def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int):
    if len(x) != len(y) or batch_size < 1:
      raise ValueError(f'{len(x)} inputs, {len(y)} labels, batch size '
                       f'{batch_size}')
    self.x, self.y, self.batch_size = x, y, int(batch_size)

  def row_counts(self) -> list:
    """The rows of each batch: B, …, B, then the remainder (none when n = 0)."""
    n, b = len(self.x), self.batch_size
    return [min(b, n - start) for start in range(0, n, b)]


def _record(dataset: tf.data.Dataset, record) -> tf.data.Dataset:
  _RECORDS[dataset] = record
  return dataset


def _record_of(dataset, kind):
  """`dataset`'s record if it is a `kind`, else None (a tensor, which has no
  weak reference, has none)."""
  try:
    record = _RECORDS.get(dataset)
  except TypeError:
    return None
  return record if isinstance(record, kind) else None


def record_batches(dataset: tf.data.Dataset, x: np.ndarray, y: np.ndarray,
                   batch_size: int) -> tf.data.Dataset:
  """Records that `dataset` is `x`, `y` in batches of `batch_size`."""
  return _record(dataset, Batches(x, y, batch_size))


def batches_of(dataset) -> Optional[Batches]:
  """The recorded arrays of `dataset`, or None."""
  return _record_of(dataset, Batches)


def record_elements(dataset: tf.data.Dataset, elements: list) -> tf.data.Dataset:
  """Records that `dataset`'s elements are `elements` (dicts of arrays)."""
  return _record(dataset, list(elements))


def elements_of(dataset) -> Optional[list]:
  """The recorded elements of `dataset`, or None."""
  return _record_of(dataset, list)
