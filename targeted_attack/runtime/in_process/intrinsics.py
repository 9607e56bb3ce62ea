"""The federated intrinsics of the in-process interpreter. Each takes (run,
intrinsic type, argument value) and returns a value (`values._Federated`
for a placed one).
"""

import collections


import numpy as np
import tensorflow as tf
from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.impl.compiler import intrinsic_defs
from tensorflow_federated.python.core.impl.types import computation_types
from tensorflow_federated.python.core.impl.types import type_conversions
from tensorflow_federated.python.core.impl.utils import tensorflow_utils

from targeted_attack.runtime.in_process.values import _CLIENTS
from targeted_attack.runtime.in_process.values import _Federated
from targeted_attack.runtime.in_process.values import _SERVER
from targeted_attack.runtime.in_process.values import _add
from targeted_attack.runtime.in_process.values import _dataset_element
from targeted_attack.runtime.in_process.values import _is_clients
from targeted_attack.runtime.in_process.values import _map_leaves
from targeted_attack.runtime.in_process.values import _sum_values
from targeted_attack.runtime.in_process.values import _zeros


# ---------------------------------------------------------------------------
# Intrinsics. Each takes (run, intrinsic type, argument value).


class _Run:
  """What an invocation's intrinsics need: the number of clients, the pool."""

  __slots__ = ('num_clients', 'context')

  def __init__(self, num_clients: int, context: 'InProcessContext'):
    self.num_clients = num_clients
    self.context = context

  def map(self, fn, items, what: str) -> list:
    return self.context.parallel_map(fn, items, what)


def _server(value):
  if not isinstance(value, _Federated) or value.placement is not _SERVER:
    raise TypeError(f'Expected a SERVER-placed value, got {value!r}.')
  return value.value


def _clients(value):
  if not _is_clients(value):
    raise TypeError(f'Expected a CLIENTS-placed value, got {value!r}.')
  return value.value


def _value_at_clients(run, type_spec, arg):
  del type_spec
  return _Federated(_CLIENTS, [arg] * run.num_clients)


def _value_at_server(run, type_spec, arg):
  del run, type_spec
  return _Federated(_SERVER, arg)


def _eval_at_server(run, type_spec, fn):
  del run, type_spec
  return _Federated(_SERVER, fn(None))


def _eval_at_clients(run, type_spec, fn):
  del type_spec
  return _Federated(_CLIENTS, run.map(lambda _: fn(None),
                                      range(run.num_clients),
                                      'federated_eval_at_clients'))


def _apply(run, type_spec, arg):
  del run, type_spec
  fn, value = arg[0], arg[1]
  return _Federated(_SERVER, fn(_server(value)))


def _map(run, type_spec, arg):
  del type_spec
  fn, value = arg[0], arg[1]
  if not isinstance(value, _Federated):
    raise TypeError(f'federated_map of a non-federated value {value!r}.')
  if value.placement is _SERVER:
    return _Federated(_SERVER, fn(value.value))
  if run.context.batch_clients and getattr(fn, 'batched_map', None):
    return _Federated(_CLIENTS, fn.map_clients(
        value.value, lambda f, items: run.map(f, items, 'federated_map')))
  return _Federated(_CLIENTS, run.map(fn, value.value, 'federated_map'))


def _map_all_equal(run, type_spec, arg):
  """One call for the all-equal value, its result placed at every client."""
  del type_spec
  fn, value = arg[0], arg[1]
  members = _clients(value)
  if not members:
    return _Federated(_CLIENTS, [])
  return _Federated(_CLIENTS, [fn(members[0])] * run.num_clients)


def _broadcast(run, type_spec, arg):
  del type_spec
  return _Federated(_CLIENTS, [_server(arg)] * run.num_clients)


def _zip_member(value, get):
  """The struct `value` of federated values, with each replaced by `get`."""
  if isinstance(value, _Federated):
    return get(value)
  if isinstance(value, structure.Struct):
    return structure.Struct([(n, _zip_member(v, get))
                             for n, v in structure.iter_elements(value)])
  raise TypeError(f'federated_zip of a non-federated element {value!r}.')


def _zip_at_clients(run, type_spec, arg):
  del type_spec
  return _Federated(_CLIENTS, [
      _zip_member(arg, lambda f, i=i: _clients(f)[i])
      for i in range(run.num_clients)])


def _zip_at_server(run, type_spec, arg):
  del run, type_spec
  return _Federated(_SERVER, _zip_member(arg, _server))


def _aggregate(run, type_spec, arg):
  """zero, then accumulate in client order; merge unused (as the C++ one)."""
  del run, type_spec
  value, zero, accumulate, _, report = (arg[i] for i in range(5))
  accumulator = zero
  for member in _clients(value):
    accumulator = accumulate(structure.Struct([(None, accumulator),
                                               (None, member)]))
  return _Federated(_SERVER, report(accumulator))


def _sum(run, type_spec, arg):
  del run
  return _Federated(_SERVER, _sum_values(_clients(arg),
                                         type_spec.parameter.member))


def _leaves(value) -> list:
  if isinstance(value, structure.Struct):
    return [leaf for _, v in structure.iter_elements(value)
            for leaf in _leaves(v)]
  return [value]


def _bounded_sum(name: str, bound_of):
  """A secure sum as a plain sum (no secure aggregation here), each client's
  value checked first: every entry in [0, bound], `bound_of(b)` the bound
  of the intrinsic's second argument b (one for all tensors, or one per
  tensor), as TFF specifies; a value outside fails at that client."""

  def impl(run, type_spec, arg):
    del run
    members = _clients(arg[0])
    bounds = _leaves(_server(arg[1]) if isinstance(arg[1], _Federated)
                     else arg[1])
    for index, member in enumerate(members):
      leaves = _leaves(member)
      limits = bounds * len(leaves) if len(bounds) == 1 else bounds
      for leaf, limit in zip(leaves, limits):
        values = np.asarray(leaf)
        limit = bound_of(int(np.asarray(limit)))
        if values.size and (values.min() < 0 or values.max() > limit):
          raise ValueError(
              f'{name}: client {index}\'s value has entries in '
              f'[{values.min()}, {values.max()}], outside [0, {limit}].')
    return _Federated(_SERVER, _sum_values(members,
                                           type_spec.parameter[0].member))

  return impl


def _require_clients(members, name: str) -> None:
  if not members:
    raise ValueError(f'{name} over zero clients is undefined.')


def _mean(run, type_spec, arg):
  del run, type_spec
  members = _clients(arg)
  _require_clients(members, 'federated_mean')
  n = len(members)
  total = members[0]
  for v in members[1:]:
    total = _add(total, v)
  return _Federated(_SERVER, _map_leaves(
      lambda t: tf.math.divide(t, tf.cast(n, t.dtype)), total))


def _weighted_mean(run, type_spec, arg):
  del run, type_spec
  values, weights = _clients(arg[0]), _clients(arg[1])
  _require_clients(values, 'federated_weighted_mean')
  total, total_weight = None, None
  for v, w in zip(values, weights):
    term = _map_leaves(lambda t, w=w: t * tf.cast(w, t.dtype), v)
    total = term if total is None else _add(total, term)
    total_weight = w if total_weight is None else total_weight + w
  return _Federated(_SERVER, _map_leaves(
      lambda t: tf.math.divide(t, tf.cast(total_weight, t.dtype)), total))


def _extremum(reduce, name):
  def impl(run, type_spec, arg):
    del run, type_spec
    members = _clients(arg)
    _require_clients(members, name)
    result = members[0]
    for v in members[1:]:
      result = _map_leaves(reduce, result, v)
    return _Federated(_SERVER, result)
  return impl


def _select(run, type_spec, arg):
  """Each client gets the sequence select_fn(server_val, k) for its keys."""
  keys, _, server_val, select_fn = (arg[i] for i in range(4))
  server_val = _server(server_val)
  element_type = type_spec.result.member.element
  cache = {}

  def slice_for(key):
    if key not in cache:
      cache[key] = select_fn(structure.Struct([
          (None, server_val), (None, tf.constant(key, tf.int32))]))
    return cache[key]

  def dataset_for(client_keys):
    slices = [_unembed_element(slice_for(int(k)), element_type)
              for k in np.ravel(np.asarray(client_keys))]
    specs = type_conversions.type_to_tf_tensor_specs(element_type)
    if not slices:
      return tf.data.Dataset.from_generator(lambda: iter(()),
                                            output_signature=specs)
    stacked = tf.nest.map_structure(lambda *xs: tf.stack(xs), *slices)
    return tf.data.Dataset.from_tensor_slices(stacked)

  del run
  return _Federated(_CLIENTS, [dataset_for(k) for k in _clients(keys)])


def _unembed_element(value, type_spec):
  """A value as a tf.data element: OrderedDicts (all elements named) or
  tuples of tensors."""
  if not isinstance(type_spec, computation_types.StructType):
    return value
  elements = [(name, _unembed_element(value[i], t))
              for i, (name, t) in enumerate(structure.iter_elements(type_spec))]
  if elements and all(name is not None for name, _ in elements):
    return collections.OrderedDict(elements)
  return tuple(v for _, v in elements)


def _generic(op):
  def impl(run, type_spec, arg):
    del run, type_spec
    return _map_leaves(op, arg[0], arg[1])
  return impl


def _generic_zero(run, type_spec, arg):
  del run, arg
  return _zeros(type_spec)


def _sequence_elements(dataset, element_type):
  for element in dataset:
    yield _dataset_element(element, element_type)


def _sequence_reduce(run, type_spec, arg):
  del run
  dataset, zero, op = arg[0], arg[1], arg[2]
  element_type = type_spec.parameter[0].element
  accumulator = zero
  for element in _sequence_elements(dataset, element_type):
    accumulator = op(structure.Struct([(None, accumulator), (None, element)]))
  return accumulator


def _sequence_sum(run, type_spec, arg):
  del run
  element_type = type_spec.parameter.element
  return _sum_values(list(_sequence_elements(arg, element_type)), element_type)


def _sequence_map(run, type_spec, arg):
  del run
  fn, dataset = arg[0], arg[1]
  element_type = type_spec.parameter[1].element
  result_type = type_spec.result.element
  mapped = [_unembed_element(fn(e), result_type)
            for e in _sequence_elements(dataset, element_type)]
  return tensorflow_utils.make_data_set_from_elements(None, mapped,
                                                      result_type)


_INTRINSICS = {
    intrinsic_defs.FEDERATED_AGGREGATE.uri: _aggregate,
    intrinsic_defs.FEDERATED_APPLY.uri: _apply,
    intrinsic_defs.FEDERATED_BROADCAST.uri: _broadcast,
    intrinsic_defs.FEDERATED_EVAL_AT_CLIENTS.uri: _eval_at_clients,
    intrinsic_defs.FEDERATED_EVAL_AT_SERVER.uri: _eval_at_server,
    intrinsic_defs.FEDERATED_MAP.uri: _map,
    intrinsic_defs.FEDERATED_MAP_ALL_EQUAL.uri: _map_all_equal,
    intrinsic_defs.FEDERATED_MEAN.uri: _mean,
    intrinsic_defs.FEDERATED_MIN.uri: _extremum(tf.minimum, 'federated_min'),
    intrinsic_defs.FEDERATED_MAX.uri: _extremum(tf.maximum, 'federated_max'),
    intrinsic_defs.FEDERATED_SECURE_SUM.uri: _bounded_sum(
        'federated_secure_sum', lambda b: b),
    intrinsic_defs.FEDERATED_SECURE_SUM_BITWIDTH.uri: _bounded_sum(
        'federated_secure_sum_bitwidth', lambda b: 2**b - 1),
    intrinsic_defs.FEDERATED_SELECT.uri: _select,
    intrinsic_defs.FEDERATED_SECURE_SELECT.uri: _select,
    intrinsic_defs.FEDERATED_SUM.uri: _sum,
    intrinsic_defs.FEDERATED_VALUE_AT_CLIENTS.uri: _value_at_clients,
    intrinsic_defs.FEDERATED_VALUE_AT_SERVER.uri: _value_at_server,
    intrinsic_defs.FEDERATED_WEIGHTED_MEAN.uri: _weighted_mean,
    intrinsic_defs.FEDERATED_ZIP_AT_CLIENTS.uri: _zip_at_clients,
    intrinsic_defs.FEDERATED_ZIP_AT_SERVER.uri: _zip_at_server,
    intrinsic_defs.GENERIC_PLUS.uri: _generic(tf.add),
    intrinsic_defs.GENERIC_MULTIPLY.uri: _generic(tf.multiply),
    intrinsic_defs.GENERIC_DIVIDE.uri: _generic(tf.math.divide),
    intrinsic_defs.GENERIC_ZERO.uri: _generic_zero,
    intrinsic_defs.SEQUENCE_MAP.uri: _sequence_map,
    intrinsic_defs.SEQUENCE_REDUCE.uri: _sequence_reduce,
    intrinsic_defs.SEQUENCE_SUM.uri: _sequence_sum,
}
