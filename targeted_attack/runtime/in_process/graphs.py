"""TensorFlow computations in the in-process interpreter: a TFF
TensorFlow computation's serialized graph imported into a concrete function,
called with the C++ executor's session settings (see the package docstring).
"""

import threading
import uuid

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context as tf_context
from tensorflow_federated.proto.v0 import computation_pb2
from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.impl.types import computation_types
from tensorflow_federated.python.core.impl.types import type_conversions
from tensorflow_federated.python.core.impl.utils import tensorflow_utils
from tensorflow_federated.python.tensorflow_libs import serialization_utils

from targeted_attack.runtime.errors import error_message_lines
from targeted_attack.runtime.in_process import batching


# Resource-holding ops whose state must not be shared between threads.
_TABLE_OPS = frozenset({'HashTableV2', 'MutableHashTableV2',
                        'MutableHashTableOfTensorsV2', 'MutableDenseHashTableV2'})


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
    # A client computation that can also run many clients at once.
    self.batched_map = batching.implementation_in(self._graph_def)

  def map_clients(self, arguments: list, map_fn) -> list:
    """This computation over the clients' `arguments`: the clients that its
    `batched_map` takes in one call of it, the others by `map_fn(self,
    arguments)` (the context's concurrent map), the two at the same time."""
    flat = [_flatten_value(a, self._parameter_type) for a in arguments]
    selected = list(self.batched_map.batchable(flat))
    batch = [i for i, chosen in enumerate(selected) if chosen]
    if not batch:
      return map_fn(self, arguments)
    alone = [i for i, chosen in enumerate(selected) if not chosen]
    tasks = [None] + alone  # None: the batch

    def task(index):
      try:
        if index is None:
          return self.batched_map.run([flat[i] for i in batch])
        return self(arguments[index])
      except Exception as e:  # pylint: disable=broad-except
        if hasattr(e, 'add_note') and not getattr(e, '_ta_noted', False):
          where = (f'clients {batch}, trained together' if index is None
                   else f'client {index}')
          e.add_note(f'(in {where}, of a federated_map, in-process TFF '
                     'context)')
          e._ta_noted = True  # pylint: disable=protected-access
        raise

    done = map_fn(task, tasks)
    results = [None] * len(arguments)
    for i, result in zip(alone, done[1:]):
      results[i] = result
    if len(done[0]) != len(batch):
      raise ValueError(f'A batched client map returned {len(done[0])} '
                       f'results for {len(batch)} clients.')
    for i, leaves in zip(batch, done[0]):
      if len(leaves) != len(self._output_types):
        raise ValueError(
            f'A batched client map returned {len(leaves)} leaves per client; '
            f'the computation has {len(self._output_types)}.')
      results[i] = _pack_value(iter(leaves), self._result_type)
    return results

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
