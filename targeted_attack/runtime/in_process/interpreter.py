"""The in-process interpreter: a compiled TFF building block turned, once,
into a tree of Python closures `f(env, run) -> value`.
"""

import functools
from typing import Any, Callable


import tensorflow as tf
from tensorflow_federated.python.common_libs import structure
from tensorflow_federated.python.core.impl.types import computation_types
from tensorflow_federated.python.core.impl.types import placements

from targeted_attack.runtime.in_process.intrinsics import _INTRINSICS
from targeted_attack.runtime.in_process.intrinsics import _Run


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
