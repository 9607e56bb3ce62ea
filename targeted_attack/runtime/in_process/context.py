"""The in-process TFF context: compiles and caches computations, embeds the
argument, runs the interpreter's closure, and maps clients over a thread
pool.
"""

import concurrent.futures
import os
import threading
from typing import Optional

import tensorflow as tf
from tensorflow_federated.python.core.backends.native import compiler
from tensorflow_federated.python.core.environments.tensorflow_frontend import tensorflow_computation
from tensorflow_federated.python.core.impl.context_stack import context_base
from tensorflow_federated.python.core.impl.execution_contexts import compiler_pipeline
from tensorflow_federated.python.core.impl.executors import cardinalities_utils
from tensorflow_federated.python.core.impl.types import computation_types
from tensorflow_federated.python.core.impl.types import type_conversions

from targeted_attack.runtime.in_process.values import _CLIENTS
from targeted_attack.runtime.in_process.values import _embed
from targeted_attack.runtime.in_process.values import _to_python
from targeted_attack.runtime.in_process.graphs import _CALL_OPTIONS
from targeted_attack.runtime.in_process.graphs import _TFComputation
from targeted_attack.runtime.in_process.intrinsics import _Run
from targeted_attack.runtime.in_process.interpreter import _Program


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
               runtime_grappler: bool = False,
               client_devices: Optional[list] = None,
               batch_clients: bool = True):
    """`compiler_fn`: TFF's compilation (None: run computations as built).
    `runtime_grappler`: let TF run Grappler on each graph when it first runs
    it (off by default: as the C++ executor, which disables it; TFF's
    compilation has already run Grappler on the graphs). `client_devices`:
    the k-th item of a concurrent map (client k of a `federated_map`) runs
    under `tf.device(client_devices[k mod n])`; None: no device scope.
    `batch_clients`: a `federated_map` of a computation with a batched
    implementation (`batching`) runs the clients it takes in one call;
    False: every client by itself."""
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
    self._client_devices = list(client_devices or [])
    self.batch_clients = bool(batch_clients)

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
    devices = self._client_devices

    def call(indexed):
      index, item = indexed
      try:
        if devices:
          with tf.device(devices[index % len(devices)]):
            return fn(item)
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
                              max_concurrency: Optional[int] = None,
                              client_devices: Optional[list] = None,
                              batch_clients: bool = True
                              ) -> InProcessContext:
  """An `InProcessContext` (see the package docstring)."""
  return InProcessContext(default_num_clients=default_num_clients,
                          max_concurrency=max_concurrency,
                          client_devices=client_devices,
                          batch_clients=batch_clients)
