"""Values in the in-process interpreter: federated values (`_Federated`: a
list of client values or the server's value), their arithmetic, and the
embedding of Python values by their TFF type and back (as the C++ context
returns them).
"""


import numpy as np
import tensorflow as tf
from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.impl.computation import computation_impl
from tensorflow_federated.python.core.impl.types import computation_types
from tensorflow_federated.python.core.impl.types import placements
from tensorflow_federated.python.core.impl.utils import tensorflow_utils


_CLIENTS = placements.CLIENTS
_SERVER = placements.SERVER

# ---------------------------------------------------------------------------
# Values.


class _Federated:
  """A placed value: `value` is a list (CLIENTS) or the server's value."""

  __slots__ = ('placement', 'value')

  def __init__(self, placement, value):
    self.placement = placement
    self.value = value

  def __repr__(self):
    return f'_Federated({self.placement}, {self.value!r})'


def _is_clients(value) -> bool:
  return isinstance(value, _Federated) and value.placement is _CLIENTS


def _zeros(type_spec):
  """The zero of `type_spec` (tensors and structs of tensors)."""
  if isinstance(type_spec, computation_types.TensorType):
    return tf.zeros(type_spec.shape, tf.as_dtype(type_spec.dtype))
  if isinstance(type_spec, computation_types.StructType):
    return structure.Struct([(n, _zeros(t))
                             for n, t in structure.iter_elements(type_spec)])
  if isinstance(type_spec, computation_types.FederatedType):
    return _zeros(type_spec.member)
  raise TypeError(f'No zero for type {type_spec}.')


def _map_leaves(fn, *values):
  """`fn` over the tensors of equally structured `Struct`s of tensors."""
  first = values[0]
  if isinstance(first, structure.Struct):
    return structure.Struct([
        (name, _map_leaves(fn, *[v[i] for v in values]))
        for i, (name, _) in enumerate(structure.iter_elements(first))])
  return fn(*values)


def _add(a, b):
  return _map_leaves(tf.add, a, b)


def _sum_values(values, member_type):
  """Client values summed in client order (the zero where there is none)."""
  if not values:
    return _zeros(member_type)
  total = values[0]
  for v in values[1:]:
    total = _add(total, v)
  return total


# ---------------------------------------------------------------------------
# Embedding Python values, and back.


def _to_tensor(value, type_spec):
  dtype = tf.as_dtype(type_spec.dtype)
  if isinstance(value, tf.Variable):
    value = value.read_value()
  if not tf.is_tensor(value):
    value = tf.convert_to_tensor(value, dtype=dtype)
  elif value.dtype != dtype:  # as TFF's contexts do: via numpy
    value = tf.convert_to_tensor(value.numpy(), dtype=dtype)
  if not tf.TensorShape(type_spec.shape).is_compatible_with(value.shape):
    raise TypeError(f'Expected a {type_spec} tensor, got shape {value.shape}.')
  return value


def _to_dataset(value, type_spec):
  if isinstance(value, tf.data.Dataset):
    return value
  if isinstance(value, list):
    return tensorflow_utils.make_data_set_from_elements(None, value,
                                                        type_spec.element)
  raise TypeError(f'Expected a tf.data.Dataset for {type_spec}, got '
                  f'{type(value).__name__}.')


def _dataset_element(element, element_type):
  """A dataset element (nested dicts/tuples of tensors) as a value."""
  return _embed(element, element_type, run=None)


def _embed(value, type_spec, run):
  """`value` (Python, numpy, eager TF) as a value of `type_spec`."""
  if isinstance(type_spec, computation_types.FederatedType):
    if type_spec.placement is _CLIENTS:
      if type_spec.all_equal:
        member = _embed(value, type_spec.member, run)
        return _Federated(_CLIENTS, [member] * run.num_clients)
      if not isinstance(value, (list, tuple)):
        raise TypeError(f'Expected a list of client values for {type_spec}, '
                        f'got {type(value).__name__}.')
      return _Federated(_CLIENTS, [
          _embed(v, type_spec.member, run) for v in value])
    return _Federated(type_spec.placement,
                      _embed(value, type_spec.member, run))
  if isinstance(type_spec, computation_types.StructType):
    if isinstance(value, structure.Struct):
      elements = structure.to_elements(value)
    else:
      elements = structure.to_elements(structure.from_container(value))
    type_elements = structure.to_elements(type_spec)
    if len(elements) != len(type_elements):
      raise TypeError(f'Value {value!r} does not match type {type_spec}.')
    out = []
    for (name, v), (type_name, t) in zip(elements, type_elements):
      if name is not None and type_name is not None and name != type_name:
        raise TypeError(f'Element {name!r} of {value!r} where the type '
                        f'{type_spec} has {type_name!r}.')
      out.append((type_name, _embed(v, t, run)))
    return structure.Struct(out)
  if isinstance(type_spec, computation_types.TensorType):
    return _to_tensor(value, type_spec)
  if isinstance(type_spec, computation_types.SequenceType):
    return _to_dataset(value, type_spec)
  if isinstance(type_spec, computation_types.FunctionType):
    if isinstance(value, computation_impl.ConcreteComputation) and run:
      return run.context.function_value(value, run)
    raise TypeError(f'Cannot embed {value!r} as a function {type_spec}.')
  raise TypeError(f'Cannot embed a value of type {type_spec}.')


def _to_python(value, type_spec):
  """A value as the C++ context returns it: numpy, lists, `Struct`s."""
  if isinstance(type_spec, computation_types.FederatedType):
    if not isinstance(value, _Federated):
      raise TypeError(f'Expected a federated value for {type_spec}.')
    if type_spec.placement is _CLIENTS:
      members = [_to_python(v, type_spec.member) for v in value.value]
      if type_spec.all_equal:
        return members[0] if members else None
      return members
    return _to_python(value.value, type_spec.member)
  if isinstance(type_spec, computation_types.StructType):
    return structure.Struct([
        (name, _to_python(value[i], t))
        for i, (name, t) in enumerate(structure.iter_elements(type_spec))])
  if isinstance(type_spec, computation_types.TensorType):
    return value.numpy() if tf.is_tensor(value) else np.asarray(value)
  if isinstance(type_spec, computation_types.SequenceType):
    return value
  raise TypeError(f'Cannot return a value of type {type_spec}.')
