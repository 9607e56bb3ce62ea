"""Batched client maps: a `federated_map` of a marked TF computation run for
many clients at once by a registered implementation.

A TFF computation that wants this returns, as its last result, the string
`marker(key)` (a constant: it survives TFF's compilation and Grappler as a
fetched `Const` node), where `key` is the one it registered its
implementation under. The in-process context finds the marker in the
computation's graph (`implementation_in`) and, for a `federated_map` over
the clients, calls the implementation with every client's flat argument
(`graphs._flatten_value`: tensors and datasets in binding order): its
`batchable(arguments)` says which clients it runs, and `run(arguments)`
returns, for those, each client's flat result leaves (in binding order, the
marker last). The other clients run the computation as usual, alongside.
Other contexts (TFF's C++ worker) run the computation per client and never
look.
"""

import threading
import uuid
from typing import Optional, Protocol, Sequence

import tensorflow as tf

_PREFIX = b'targeted_attack.batched_client_map:'


class BatchedMap(Protocol):
  """What a marked computation registers."""

  def batchable(self, arguments: Sequence[list]) -> list:
    """Per client (its flat argument leaves): True to run it in `run`."""

  def run(self, arguments: Sequence[list]) -> list:
    """Per client given, its flat result leaves, the marker last."""


_registry = {}
_lock = threading.Lock()


def register(implementation: BatchedMap) -> bytes:
  """Registers `implementation`; returns the marker its computation returns."""
  key = uuid.uuid4().hex
  with _lock:
    _registry[key] = implementation
  return _PREFIX + key.encode()


def marker_tensor(marker: bytes) -> tf.Tensor:
  """The constant output that marks a computation (last in its result)."""
  return tf.constant(marker, tf.string)


def implementation_in(graph_def) -> Optional[BatchedMap]:
  """The registered implementation whose marker `graph_def` holds, or None."""
  for node in graph_def.node:
    if node.op != 'Const' or node.attr['dtype'].type != tf.string.as_datatype_enum:
      continue
    values = node.attr['value'].tensor.string_val
    if len(values) == 1 and values[0].startswith(_PREFIX):
      with _lock:
        return _registry.get(values[0][len(_PREFIX):].decode())
  return None
