"""An in-process TFF execution context: TFF's language interpreted in Python,
every TensorFlow computation run by TensorFlow's own runtime in this process.

TFF 0.87's only local context sends every computation and every client's data
over gRPC to a C++ `worker_binary` built without CUDA. This context runs the
same compiled form in this process instead, so TensorFlow places the work on
the GPU when it sees one, and client datasets never leave the process.

Pipeline of `InProcessContext.invoke(comp, arg)`:
1. TFF's native compilation, the one the C++ context applies
   (`compiler.desugar_and_transform_to_native`: mean, weighted mean, sum,
   min, max and generic maths become `federated_aggregate` and TF graphs;
   call-dominant form; Grappler on the graphs; cache ids), cached per
   computation.
2. The compiled building block is turned, once, into a tree of Python
   closures (`_Program`): `Lambda` → a closure over its environment, `Block` →
   sequential bindings, `Call`, `Reference`, `Selection`, `Struct`,
   `Literal` → an eager tensor, `Intrinsic` → the federated implementation
   below, `CompiledComputation` → `_TFComputation`, a TF concrete function.
3. The argument is embedded by its TFF type (federated values as per-client
   Python lists), the closure is called, and the result is converted back to
   numpy / Python containers as the C++ context returns it.

TensorFlow computations: the serialized GraphDef is imported into a
`tf.compat.v1.wrap_function` graph and pruned to a concrete function whose
inputs and outputs are the computation's parameter and result bindings
(sequence bindings are dataset variant tensors: `tf.data.experimental.
to_variant` / `from_variant`), as TFF's removed eager executor did. The
graph's init op is pruned to a function of its own, called before each call
with the same inputs (the C++ executor runs it in a `Session.run` of its own
before each call). Library functions are renamed per computation (TF has one
function library per process). Calls pass the C++ executor's session
settings (no Grappler, graph optimisations at L0). Graphs that hold
named resources (variables, tables: nodes with a `shared_name`) get one
instance per thread, their shared names made unique, so concurrent clients
never share a variable; other graphs have one instance for all threads.

Federated values: a `_Federated(placement, value)`, where `value` is the list
of the clients' values (CLIENTS; an all-equal value is the same object n
times) or the single server value. Intrinsics: federated_aggregate (zero,
then `accumulate` client by client in client order, then `report`; `merge`
unused, as in the C++ executor, so results agree to the bit),
federated_apply, federated_broadcast, federated_eval (server, clients),
federated_map and its all-equal variant, federated_value (server, clients),
federated_zip (server, clients), federated_select and secure select,
federated_sum, federated_mean, federated_weighted_mean, federated_min,
federated_max, federated_secure_sum, federated_secure_sum_bitwidth (as
plain sums: no secure aggregation here), generic_plus/multiply/divide/zero,
sequence_map, sequence_reduce, sequence_sum. Most of the second half is desugared away by step 1; they are
here for computations compiled otherwise.

Randomness: a graph's op-seeded random ops (not the stateless ones this
project uses) keep their state per graph instance, so their draws would
depend on the threads' scheduling; TFF's C++ worker rebuilds such state at
every call.

Concurrency: the clients of a `federated_map` (and of `federated_eval` at
clients) run on a `concurrent.futures.ThreadPoolExecutor` of
`max_concurrency` threads (default: the number of CPUs); TensorFlow releases
the GIL while it runs a function. Work that is already on a pool thread runs
serially (no nested pools, no deadlock). With `max_concurrency=1` everything
runs in the calling thread.

Number of clients: inferred from the CLIENTS-placed parts of the argument (as
TFF's contexts do), else `default_num_clients`.

Errors: an error TensorFlow raises in a computation propagates as that
`tf.errors.OpError` class (the first one in client order), its message cut to
TF's own lines (the graph-import stack TF prepends would point into this
module), raised `from None`, with a note naming the intrinsic and client.

Not supported: `tff.framework.Data` blocks (external data), non-TensorFlow
compiled computations (XLA). Secure intrinsics are plain sums. A dataset is
passed to each call as the same variant, not rebuilt from a serialized graph
as the C++ executor does, so a dataset with stateful randomness (an unseeded
or `reshuffle_each_iteration` shuffle) can give another order per call than
the C++ context gives (the project's datasets use NumPy and stateless seeds).
"""

import collections
import concurrent.futures
import functools
import os
import threading
import uuid
from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context as tf_context

from tensorflow_federated.proto.v0 import computation_pb2
from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.backends.native import compiler
from tensorflow_federated.python.core.environments.tensorflow_frontend import tensorflow_computation
from tensorflow_federated.python.core.impl.compiler import intrinsic_defs
from tensorflow_federated.python.core.impl.computation import computation_impl
from tensorflow_federated.python.core.impl.context_stack import context_base
from tensorflow_federated.python.core.impl.execution_contexts import compiler_pipeline
from tensorflow_federated.python.core.impl.executors import cardinalities_utils
from tensorflow_federated.python.core.impl.types import computation_types
from tensorflow_federated.python.core.impl.types import placements
from tensorflow_federated.python.core.impl.types import type_conversions
from tensorflow_federated.python.core.impl.utils import tensorflow_utils
from tensorflow_federated.python.tensorflow_libs import serialization_utils

_CLIENTS = placements.CLIENTS
_SERVER = placements.SERVER
# Resource-holding ops whose state must not be shared between threads.
_TABLE_OPS = frozenset({'HashTableV2', 'MutableHashTableV2',
                        'MutableHashTableOfTensorsV2', 'MutableDenseHashTableV2'})


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
# TensorFlow computations.


def _node_name(tensor_name: str) -> str:
  name = tensor_name[1:] if tensor_name.startswith('^') else tensor_name
  return name.split(':')[0]


def _rename_functions(graph_def, suffix: str) -> None:
  """Appends `suffix` to every library function's name, and to every use.

  TF keeps one function library per process: graphs of different TFF
  computations carry functions of the same name with different bodies (after
  TFF's Grappler pass, or its rewriting of call ops), which TF refuses to
  register twice. (The C++ executor has a library per session.)
  """
  names = {f.signature.name for f in graph_def.library.function}
  if not names:
    return

  def fix_func(func):
    if func.name in names:
      func.name += suffix
    for value in func.attr.values():
      fix_attr(value)

  def fix_attr(value):
    kind = value.WhichOneof('value')
    if kind == 'func':
      fix_func(value.func)
    elif kind == 'list':
      for func in value.list.func:
        fix_func(func)

  def fix_node(node):
    if node.op in names:
      node.op += suffix
    for value in node.attr.values():
      fix_attr(value)

  for node in graph_def.node:
    fix_node(node)
  for function in graph_def.library.function:
    function.signature.name += suffix
    for node in function.node_def:
      fix_node(node)
    for value in function.attr.values():
      fix_attr(value)
  for gradient in graph_def.library.gradient:
    if gradient.function_name in names:
      gradient.function_name += suffix
    if gradient.gradient_func in names:
      gradient.gradient_func += suffix


def _leaf_types(type_spec) -> list:
  """The tensor and sequence types of `type_spec`, in binding order."""
  if type_spec is None:
    return []
  if isinstance(type_spec, computation_types.StructType):
    return [leaf for _, t in structure.iter_elements(type_spec)
            for leaf in _leaf_types(t)]
  if isinstance(type_spec, (computation_types.TensorType,
                            computation_types.SequenceType)):
    return [type_spec]
  raise TypeError(f'Not a TensorFlow parameter or result type: {type_spec}.')


def _flatten_value(value, type_spec) -> list:
  """The tensors and datasets of `value`, in binding order."""
  if isinstance(type_spec, computation_types.StructType):
    if not isinstance(value, structure.Struct):
      raise TypeError(f'Expected a struct of type {type_spec}, got {value!r}.')
    return [leaf for i, (_, t) in enumerate(structure.iter_elements(type_spec))
            for leaf in _flatten_value(value[i], t)]
  return [value]


def _pack_value(leaves, type_spec):
  """The inverse of `_flatten_value`, from an iterator over the leaves."""
  if isinstance(type_spec, computation_types.StructType):
    return structure.Struct([(name, _pack_value(leaves, t))
                             for name, t in structure.iter_elements(type_spec)])
  return next(leaves)


def _session_like_call_options():
  """Function-call options with the C++ executor's session settings.

  TFF's C++ executor runs each graph in a `Session` with Grappler's meta
  optimizer off and graph optimizations at L0 (TFF has already run Grappler
  on the graph at compile time); these are passed with each call (TF keeps
  them per thread), so TF does not re-optimise the graphs here, and the
  results agree with the C++ context's.
  """
  config = config_pb2.ConfigProto(allow_soft_placement=True)
  config.graph_options.rewrite_options.disable_meta_optimizer = True
  config.graph_options.rewrite_options.min_graph_nodes = -1
  config.graph_options.optimizer_options.opt_level = (
      config_pb2.OptimizerOptions.L0)
  config.graph_options.optimizer_options.global_jit_level = (
      config_pb2.OptimizerOptions.OFF)
  return tf_context.FunctionCallOptions(config_proto=config)


_CALL_OPTIONS = _session_like_call_options()


class _call_options:  # pylint: disable=invalid-name
  """Sets this thread's TF function-call options for the `with` block
  (None: TF's own, with its run-time Grappler pass)."""

  def __init__(self, options):
    self._options = options

  def __enter__(self):
    if self._options is None:
      return
    ctx = tf_context.context()
    self._saved = ctx.function_call_options
    ctx.function_call_options = self._options

  def __exit__(self, *exc):
    if self._options is not None:
      tf_context.context().function_call_options = self._saved
    return False


class _TFComputation:
  """A TFF TensorFlow computation as a callable on eager values."""

  def __init__(self, proto: computation_pb2.Computation, type_signature,
               call_options=_CALL_OPTIONS):
    self._call_options = call_options
    tf_proto = proto.tensorflow
    self._graph_def = serialization_utils.unpack_graph_def(tf_proto.graph_def)
    _rename_functions(self._graph_def, '_ipc' + uuid.uuid4().hex[:12])
    self._init_op = tf_proto.initialize_op or None
    self._parameter_type = type_signature.parameter
    self._result_type = type_signature.result
    self._input_names = (
        tensorflow_utils.extract_tensor_names_from_binding(tf_proto.parameter)
        if self._parameter_type is not None else [])
    self._output_names = tensorflow_utils.extract_tensor_names_from_binding(
        tf_proto.result)
    self._input_types = _leaf_types(self._parameter_type)
    self._output_types = _leaf_types(self._result_type)
    if len(self._input_types) != len(self._input_names) or len(
        self._output_types) != len(self._output_names):
      raise ValueError('TensorFlow bindings do not match the computation type '
                       f'{type_signature}.')
    self._output_structures = [
        type_conversions.type_to_tf_structure(t.element)
        if isinstance(t, computation_types.SequenceType) else None
        for t in self._output_types]
    # Functions that produce datasets run on the CPU (TF has no GPU kernels
    # for datasets), as in TFF's eager executor.
    self._device = '/cpu:0' if any(
        s is not None for s in self._output_structures) else None
    self._per_thread = any('shared_name' in n.attr for n in self._graph_def.node)
    self._shared = None
    self._local = threading.local()
    self._lock = threading.Lock()
    self._owned = []  # resource handles of every instance built
    self._import_lock = threading.Lock()

  def _build(self):
    """(function, init function, table handles) for one graph instance."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.CopyFrom(self._graph_def)
    suffix = '_' + uuid.uuid4().hex[:12]
    for node in graph_def.node:
      if 'shared_name' in node.attr:
        shared = node.attr['shared_name'].s or node.name.encode()
        node.attr['shared_name'].s = shared + suffix.encode()

    def import_graph():
      tf.graph_util.import_graph_def(graph_def, name='')

    with tf.device(self._device) if self._device else _null():
      wrapped = tf.compat.v1.wrap_function(import_graph, signature=[])
    graph = wrapped.graph
    feeds = [graph.as_graph_element(n) for n in self._input_names]
    fn = wrapped.prune(
        feeds=feeds,
        fetches=[graph.as_graph_element(n) for n in self._output_names])
    # The init op runs as a call of its own before each call, as the C++
    # executor runs it (`Session.run` of the init op, then of the outputs).
    init = wrapped.prune(feeds=feeds, fetches=[
        graph.as_graph_element(self._init_op)]) if self._init_op else None
    tables = [op.outputs[0] for op in graph.get_operations()
              if op.type in _TABLE_OPS]
    handles = tuple(wrapped.prune(feeds=[], fetches=tables)()) if tables else ()
    # The instance's variables outlive its functions in TF's resource store
    # (their shared names are unique): `release` destroys them.
    variables = [op.outputs[0] for op in graph.get_operations()
                 if op.type == 'VarHandleOp']
    owned = handles + (tuple(wrapped.prune(feeds=[], fetches=variables)())
                       if variables else ())
    with self._lock:
      self._owned.extend(owned)
    return fn, init, handles

  def release(self) -> None:
    """Destroys every instance's resources; the next call builds afresh."""
    with self._lock:
      owned, self._owned = self._owned, []
      self._shared = None
      self._local = threading.local()
    for handle in owned:
      tf.raw_ops.DestroyResourceOp(resource=handle, ignore_lookup_error=True)

  def _instance(self):
    if not self._per_thread:
      shared = self._shared
      if shared is None:
        with self._import_lock:
          if self._shared is None:
            self._shared = self._build()
          shared = self._shared
      return shared
    local = self._local
    instance = getattr(local, 'instance', None)
    if instance is None:
      with self._import_lock:  # graph import is done one thread at a time
        instance = local.instance = self._build()
    return instance

  def __call__(self, arg=None):
    if not self._output_names:
      return _pack_value(iter(()), self._result_type)
    fn, init, tables = self._instance()
    inputs = []
    if self._parameter_type is not None:
      for leaf, t in zip(_flatten_value(arg, self._parameter_type),
                         self._input_types):
        if isinstance(t, computation_types.SequenceType):
          inputs.append(tf.data.experimental.to_variant(leaf))
        else:
          inputs.append(leaf)
    for handle in tables:  # a table is initialised afresh by every call
      tf.raw_ops.DestroyResourceOp(resource=handle, ignore_lookup_error=True)
    device = tf.device(self._device) if self._device else _null()
    with _call_options(self._call_options), device:
      try:
        if init is not None:
          _call_flat(init, inputs)
        outputs = _call_flat(fn, inputs)
      except tf.errors.OpError as e:
        raise _short_error(e) from None
    leaves = [tf.data.experimental.from_variant(out, s) if s is not None
              else out for out, s in zip(outputs, self._output_structures)]
    return _pack_value(iter(leaves), self._result_type)


def _call_flat(fn, inputs):
  """Calls a pruned concrete function on its flat inputs.

  (Its structured signature is empty; `fn(*inputs)` would first fail on it,
  formatting every input tensor into the message, then fall back to this.)
  """
  call_flat = getattr(fn, '_call_flat', None)
  if call_flat is None:
    return fn(*inputs)
  return call_flat(list(inputs), fn.captured_inputs)


# Lines TF adds around an error's own message: the graph-construction stack
# (indented), its headers, and the placeholder for a missing stack.
_STACK_LINE_PREFIXES = ('  ', 'Detected at node', 'Graph execution error',
                        '<stack traces unavailable>')


def error_message_lines(text: str) -> list:
  """The non-empty lines of a TF error message that are not its stack."""
  return [line for line in text.splitlines()
          if line.strip() and not line.startswith(_STACK_LINE_PREFIXES)]


def _short_error(error: tf.errors.OpError) -> tf.errors.OpError:
  """The same TF error, without the graph-construction stack TF prepends
  (it would point into this module's graph import, not at the user's code)."""
  message = '\n'.join(error_message_lines(error.message)) or error.message
  try:
    return type(error)(error.node_def, error.op, message)
  except TypeError:  # an OpError subclass with another constructor
    return error


class _null:  # pylint: disable=invalid-name
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


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


def _first_of_pair_sum(run, type_spec, arg):
  """secure sums (<value, bound> → Σ value): no secure aggregation here."""
  del run
  return _Federated(_SERVER, _sum_values(_clients(arg[0]),
                                         type_spec.parameter[0].member))


def _mean(run, type_spec, arg):
  del run, type_spec
  members = _clients(arg)
  n = len(members)
  total = members[0]
  for v in members[1:]:
    total = _add(total, v)
  return _Federated(_SERVER, _map_leaves(
      lambda t: tf.math.divide(t, tf.cast(n, t.dtype)), total))


def _weighted_mean(run, type_spec, arg):
  del run, type_spec
  values, weights = _clients(arg[0]), _clients(arg[1])
  total, total_weight = None, None
  for v, w in zip(values, weights):
    term = _map_leaves(lambda t, w=w: t * tf.cast(w, t.dtype), v)
    total = term if total is None else _add(total, term)
    total_weight = w if total_weight is None else total_weight + w
  return _Federated(_SERVER, _map_leaves(
      lambda t: tf.math.divide(t, tf.cast(total_weight, t.dtype)), total))


def _extremum(reduce):
  def impl(run, type_spec, arg):
    del run, type_spec
    members = _clients(arg)
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
    intrinsic_defs.FEDERATED_MIN.uri: _extremum(tf.minimum),
    intrinsic_defs.FEDERATED_MAX.uri: _extremum(tf.maximum),
    intrinsic_defs.FEDERATED_SECURE_SUM.uri: _first_of_pair_sum,
    intrinsic_defs.FEDERATED_SECURE_SUM_BITWIDTH.uri: _first_of_pair_sum,
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


# ---------------------------------------------------------------------------
# The interpreter: building blocks → closures `f(env, run) -> value`.

_Closure = Callable[[dict, _Run], Any]


class _Program:
  """A compiled building block as a tree of Python closures."""

  def __init__(self, context: 'InProcessContext'):
    self._context = context

  def compile(self, comp) -> _Closure:
    method = getattr(self, '_' + type(comp).__name__, None)
    if method is None:
      raise NotImplementedError(
          f'The in-process context cannot run a {type(comp).__name__} '
          f'building block: {comp.compact_representation()[:200]}')
    return method(comp)

  def _Reference(self, comp):  # pylint: disable=invalid-name
    name = comp.name

    def reference(env, run):
      del run
      try:
        return env[name]
      except KeyError:
        raise NameError(f'Unbound reference {name!r}.') from None
    return reference

  def _Selection(self, comp):  # pylint: disable=invalid-name
    source = self.compile(comp.source)
    index = comp.as_index()

    def selection(env, run):
      value = source(env, run)
      if not isinstance(value, structure.Struct):
        raise TypeError(f'Selection [{index}] from a non-struct {value!r}.')
      return value[index]
    return selection

  def _Struct(self, comp):  # pylint: disable=invalid-name
    elements = [(name, self.compile(e))
                for name, e in structure.iter_elements(comp)]

    def struct(env, run):
      return structure.Struct([(name, e(env, run)) for name, e in elements])
    return struct

  def _Call(self, comp):  # pylint: disable=invalid-name
    function = self.compile(comp.function)
    argument = self.compile(comp.argument) if comp.argument is not None else None

    def call(env, run):
      fn = function(env, run)
      return fn(argument(env, run) if argument is not None else None)
    return call

  def _Lambda(self, comp):  # pylint: disable=invalid-name
    parameter = comp.parameter_name
    result = self.compile(comp.result)

    def make_lambda(env, run):
      def fn(arg=None):
        if parameter is None:
          return result(env, run)
        inner = dict(env)
        inner[parameter] = arg
        return result(inner, run)
      return fn
    return make_lambda

  def _Block(self, comp):  # pylint: disable=invalid-name
    bindings = [(name, self.compile(value)) for name, value in comp.locals]
    result = self.compile(comp.result)

    def block(env, run):
      env = dict(env)
      for name, value in bindings:
        env[name] = value(env, run)
      return result(env, run)
    return block

  def _Intrinsic(self, comp):  # pylint: disable=invalid-name
    impl = _INTRINSICS.get(comp.uri)
    if impl is None:
      raise NotImplementedError(
          f'The in-process context has no implementation of {comp.uri}.')
    type_spec = comp.type_signature

    def intrinsic(env, run):
      del env
      if not isinstance(type_spec, computation_types.FunctionType):
        return impl(run, type_spec, None)   # a value (GENERIC_ZERO: T)
      return functools.partial(impl, run, type_spec)
    return intrinsic

  def _CompiledComputation(self, comp):  # pylint: disable=invalid-name
    kind = comp.proto.WhichOneof('computation')
    if kind != 'tensorflow':
      raise NotImplementedError(
          f'The in-process context runs TensorFlow computations only, not '
          f'{kind}.')
    fn = self._context.tf_computation(comp.proto, comp.type_signature)

    def compiled(env, run):
      del env, run
      return fn
    return compiled

  def _Literal(self, comp):  # pylint: disable=invalid-name
    value = comp.value
    dtype = tf.as_dtype(comp.type_signature.dtype)

    def literal(env, run):
      del env, run
      return tf.constant(value, dtype)
    return literal

  def _Placement(self, comp):  # pylint: disable=invalid-name
    placement = comp.uri

    def place(env, run):
      del env, run
      return placements.uri_to_placement_literal(placement)
    return place

  def _Data(self, comp):  # pylint: disable=invalid-name
    raise NotImplementedError(
        'The in-process context does not resolve tff.framework.Data blocks '
        f'(external data): {comp.compact_representation()[:200]}')


# ---------------------------------------------------------------------------
# The context.

_in_pool = threading.local()


def _in_pool_thread() -> bool:
  return getattr(_in_pool, 'active', False)


def _mark_pool_thread():
  _in_pool.active = True


class InProcessContext(context_base.SyncContext):
  """A synchronous TFF context that runs everything in this process."""

  def __init__(self, default_num_clients: int = 0,
               max_concurrency: Optional[int] = None,
               compiler_fn=compiler.desugar_and_transform_to_native,
               runtime_grappler: bool = False):
    """`compiler_fn`: TFF's compilation (None: run computations as built).
    `runtime_grappler`: let TF run Grappler on each graph when it first runs
    it (off by default: as the C++ executor, which disables it; TFF's
    compilation has already run Grappler on the graphs)."""
    if max_concurrency is None:  # the CPUs this process may run on
      max_concurrency = len(os.sched_getaffinity(0)) if hasattr(
          os, 'sched_getaffinity') else (os.cpu_count() or 1)
    if max_concurrency < 1:
      raise ValueError(f'max_concurrency must be ≥ 1, got {max_concurrency}.')
    self._default_num_clients = int(default_num_clients)
    self._max_concurrency = int(max_concurrency)
    self._pipeline = (compiler_pipeline.CompilerPipeline(compiler_fn)
                      if compiler_fn is not None else None)
    self._programs = {}
    self._invoked = {}  # id(computation) → (it, compiled, closure)
    self._tf_computations = {}
    self._lock = threading.Lock()
    self._pool = None
    self._call_options = None if runtime_grappler else _CALL_OPTIONS

  @property
  def max_concurrency(self) -> int:
    return self._max_concurrency

  @property
  def default_num_clients(self) -> int:
    return self._default_num_clients

  def close(self):
    """Stops the thread pool (it restarts on the next concurrent map) and
    destroys the TF resources (variables, tables) of every graph instance
    (rebuilt on the next call)."""
    pool, self._pool = self._pool, None
    if pool is not None:
      pool.shutdown(wait=False, cancel_futures=True)
    with self._lock:
      computations = list(self._tf_computations.values())
    for computation in computations:
      computation.release()

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass

  # -- pieces the interpreter asks for.

  def tf_computation(self, proto, type_signature) -> _TFComputation:
    cache_id = proto.tensorflow.cache_key.id
    key = (cache_id, str(type_signature)) if cache_id else (
        proto.SerializeToString(deterministic=True))
    with self._lock:
      fn = self._tf_computations.get(key)
      if fn is None:
        fn = self._tf_computations[key] = _TFComputation(
            proto, type_signature, self._call_options)
    return fn

  def function_value(self, comp, run):
    """A `ConcreteComputation` (an argument) embedded as a function value."""
    closure, _ = self._program(self._compile(comp))
    return closure({}, run)

  def parallel_map(self, fn, items, what: str) -> list:
    items = list(items)

    def call(indexed):
      index, item = indexed
      try:
        return fn(item)
      except Exception as e:  # pylint: disable=broad-except
        if hasattr(e, 'add_note') and not getattr(e, '_ta_noted', False):
          e.add_note(f'(in client {index} of {what}, in-process TFF context)')
          e._ta_noted = True  # pylint: disable=protected-access
        raise

    if (self._max_concurrency == 1 or len(items) <= 1 or _in_pool_thread()):
      return [call(x) for x in enumerate(items)]
    with self._lock:
      if self._pool is None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._max_concurrency,
            thread_name_prefix='tff-in-process', initializer=_mark_pool_thread)
      pool = self._pool
    futures = [pool.submit(call, x) for x in enumerate(items)]
    try:
      return [f.result() for f in futures]
    except BaseException:
      for f in futures:
        f.cancel()
      raise

  # -- compilation.

  def _compile(self, comp):
    if self._pipeline is None:
      return comp
    return self._pipeline.compile(comp)

  def _program(self, compiled):
    """(closure value of the whole computation, its compiled type)."""
    with self._lock:
      entry = self._programs.get(compiled)
    if entry is None:
      block = compiled.to_building_block()
      closure = _Program(self).compile(block)
      entry = (closure, block.type_signature)
      with self._lock:
        self._programs[compiled] = entry
    return entry

  # -- the SyncContext interface.

  def invoke(self, comp, arg):
    if not isinstance(comp.type_signature, computation_types.FunctionType):
      raise ValueError(f'Expected a tff.FunctionType, found '
                       f'{comp.type_signature}.')
    result_type = comp.type_signature.result  # keeps the Python containers
    # By identity first: hashing a computation serializes its whole proto.
    with self._lock:
      known = self._invoked.get(id(comp))
    if known is not None and known[0] is comp:
      _, compiled, closure = known
    else:
      compiled = self._compile(comp)
      closure, _ = self._program(compiled)
      with self._lock:
        self._invoked[id(comp)] = (comp, compiled, closure)
    compiled_type = compiled.type_signature
    parameter_type = compiled_type.parameter

    cardinalities = {}
    if arg is not None:
      cardinalities = cardinalities_utils.infer_cardinalities(arg,
                                                              parameter_type)
    num_clients = cardinalities.get(_CLIENTS, self._default_num_clients)
    run = _Run(num_clients, self)
    fn = closure({}, run)
    if arg is None:
      if parameter_type is not None:
        raise TypeError(f'{comp} expects an argument of type '
                        f'{parameter_type}.')
      result = fn(None)
    else:
      result = fn(_embed(arg, parameter_type, run))
    result = _to_python(result, compiled_type.result)
    result = type_conversions.type_to_py_container(result, result_type)
    return tensorflow_computation.transform_result(result)


def create_in_process_context(default_num_clients: int = 0,
                              max_concurrency: Optional[int] = None
                              ) -> InProcessContext:
  """An `InProcessContext` (see the module docstring)."""
  return InProcessContext(default_num_clients=default_num_clients,
                          max_concurrency=max_concurrency)
