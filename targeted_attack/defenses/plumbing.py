"""The plumbing every defense shares, written once.

Three shapes of defense, each a builder that takes a function of TF code and
an `inner` factory (the factory's weightedness is taken from `inner`):
- `build_client_transform`: per-client work at CLIENTS, then `inner`;
- `build_server_transform`: `inner`, then work on the aggregate at SERVER;
- `build_stacked_aggregator`: a robust rule over all n updates stacked into a
  matrix X ∈ ℝ^{n×d} at the server (unweighted).

Measurement scheme: each builder reports its own measurements under its
`name` (e.g. `clip/fraction`), and its inner factory's under `inner`.

The global model. A rule that needs w_t (FLAME clusters the local models
W_k = w_t − x_k, not the updates x_k) is built with `takes_global_model`: its
factory's processes take one more argument, `next(state, value[, weight],
global_model)`, `global_model` the SERVER-placed trainable weights w_t (the
value's structure). The wrappers here pass it through to their `inner`, and
the attacked process (`process.learning_process`) supplies it; TFF's own
processes and wrappers do not, so such a factory runs only in this project's
process.
"""

import collections
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import update_math

F32 = np.float32


def is_weighted(factory) -> bool:
  if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
    return True
  if isinstance(factory, tff.aggregators.UnweightedAggregationFactory):
    return False
  raise TypeError(f'`inner` must be a tff.aggregators factory, got {factory!r}.')


def takes_global_model(factory) -> bool:
  """Whether `factory`'s processes take w_t as `next`'s last argument."""
  return bool(getattr(factory, 'takes_global_model', False))


class _WeightedFactory(tff.aggregators.WeightedAggregationFactory):

  def __init__(self, build, global_model: bool = False):
    self._build = build
    self.takes_global_model = global_model

  def create(self, value_type, weight_type):
    return self._build(value_type, weight_type)


class _UnweightedFactory(tff.aggregators.UnweightedAggregationFactory):

  def __init__(self, build, global_model: bool = False):
    self._build = build
    self.takes_global_model = global_model

  def create(self, value_type):
    return self._build(value_type, None)


def factory(build, weighted: bool, global_model: bool = False):
  """A factory whose `create(value_type[, weight_type])` calls `build`;
  `global_model`: its processes take w_t (see the module docstring)."""
  return (_WeightedFactory(build, global_model) if weighted else
          _UnweightedFactory(build, global_model))


def create(inner, value_type, weight_type):
  if weight_type is None:
    return inner.create(value_type)
  return inner.create(value_type, weight_type)


def default_inner(inner):
  """`inner`, or the weighted mean when None."""
  return tff.aggregators.MeanFactory() if inner is None else inner


def aggregation_process(init_fn, state_type, value_type, weight_type, body,
                        global_model: bool = False):
  """An AggregationProcess whose `next` calls `body(state, value, weight,
  global_model)`: `weight` None when `weight_type` is; `global_model` (w_t at
  SERVER, of `value_type`) a last parameter when asked for, else None."""
  value_at_clients = tff.FederatedType(value_type, tff.CLIENTS)
  model_at_server = tff.FederatedType(value_type, tff.SERVER)
  if weight_type is None:
    weight_at_clients = None
  else:
    weight_at_clients = tff.FederatedType(weight_type, tff.CLIENTS)
  if weight_type is None and not global_model:

    @tff.federated_computation(state_type, value_at_clients)
    def next_fn(state, value):
      return body(state, value, None, None)
  elif weight_type is None:

    @tff.federated_computation(state_type, value_at_clients, model_at_server)
    def next_fn(state, value, model):
      return body(state, value, None, model)
  elif not global_model:

    @tff.federated_computation(state_type, value_at_clients,
                               weight_at_clients)
    def next_fn(state, value, weight):
      return body(state, value, weight, None)
  else:

    @tff.federated_computation(state_type, value_at_clients,
                               weight_at_clients, model_at_server)
    def next_fn(state, value, weight, model):
      return body(state, value, weight, model)

  return tff.templates.AggregationProcess(init_fn, next_fn)


def inner_next(process, state, value, weight, global_model=None):
  args = [state, value]
  if weight is not None:
    args.append(weight)
  if global_model is not None:
    args.append(global_model)
  return process.next(*args)


def as_weighted(factory):
  """`factory` as a weighted factory (TFF's `as_weighted_aggregator`, which
  drops the weights), keeping a global-model factory's extra argument."""
  if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
    return factory
  if not takes_global_model(factory):
    return tff.aggregators.as_weighted_aggregator(factory)

  def build(value_type, weight_type):
    inner_process = factory.create(value_type)

    def body(state, value, weight, model):
      del weight
      return inner_process.next(state, value, model)

    return aggregation_process(inner_process.initialize,
                               inner_process.state_type, value_type,
                               weight_type, body, global_model=True)

  return _WeightedFactory(build, global_model=True)


def norm_summary(norms, flags):
  """Over clients: count, fraction flagged, mean and max of `norms` (federated)."""

  @tff.tensorflow.computation
  def summarize(count, flagged, norm_sum, norm_max):
    return collections.OrderedDict(
        num_clients=count,
        fraction=tf.math.divide_no_nan(flagged, count),
        norm_mean=tf.math.divide_no_nan(norm_sum, count),
        norm_max=norm_max)

  ones = tff.federated_map(
      tff.tensorflow.computation(lambda x: tf.ones_like(x)), norms)
  return tff.federated_map(
      summarize, (tff.federated_sum(ones), tff.federated_sum(flags),
                  tff.federated_sum(norms), tff.federated_max(norms)))


def build_client_transform(preprocess: Callable, inner=None):
  """Per-client preprocessing at CLIENTS, then `inner`.

  `preprocess(value_type, weight_type)` returns a federated function
  `(value, weight) -> (value, weight, measurements)`; `weight` is None for an
  unweighted `inner`, and `measurements` an OrderedDict of SERVER-placed
  values (conventionally one entry, the defense's name) reported next to
  `inner`'s.
  """
  inner = default_inner(inner)

  def build(value_type, weight_type):
    inner_process = create(inner, value_type, weight_type)
    federated_preprocess = preprocess(value_type, weight_type)

    def body(state, value, weight, model):
      value, weight, own = federated_preprocess(value, weight)
      inner_output = inner_next(inner_process, state, value, weight, model)
      measurements = tff.federated_zip(
          collections.OrderedDict(own, inner=inner_output.measurements))
      return tff.templates.MeasuredProcessOutput(inner_output.state,
                                                 inner_output.result,
                                                 measurements)

    return aggregation_process(inner_process.initialize,
                               inner_process.state_type, value_type,
                               weight_type, body, takes_global_model(inner))

  return factory(build, is_weighted(inner), takes_global_model(inner))


def build_server_transform(transform: Callable, inner=None,
                           name: str = 'transform'):
  """`inner`, then `transform(aggregate, round_num) -> (aggregate, measurements)`.

  `transform` is TF code run at the server; `round_num` (int64, from 0) counts
  the calls of `next`, for seeding. Its measurements appear under `name`, next
  to `inner`'s.
  """
  inner = default_inner(inner)

  def build(value_type, weight_type):
    inner_process = create(inner, value_type, weight_type)

    @tff.tensorflow.computation(value_type, np.int64)
    def server_fn(value, round_num):
      return transform(value, round_num)

    @tff.tensorflow.computation(np.int64)
    def increment(round_num):
      return round_num + 1

    @tff.federated_computation
    def init_fn():
      return tff.federated_zip(
          collections.OrderedDict(
              inner=inner_process.initialize(),
              round_num=tff.federated_value(np.int64(0), tff.SERVER)))

    state_type = init_fn.type_signature.result

    def body(state, value, weight, model):
      inner_output = inner_next(inner_process, state.inner, value, weight,
                                model)
      result, own = tff.federated_map(server_fn,
                                      (inner_output.result, state.round_num))
      new_state = tff.federated_zip(
          collections.OrderedDict(
              inner=inner_output.state,
              round_num=tff.federated_map(increment, state.round_num)))
      measurements = tff.federated_zip(
          collections.OrderedDict([(name, own),
                                   ('inner', inner_output.measurements)]))
      return tff.templates.MeasuredProcessOutput(new_state, result,
                                                 measurements)

    return aggregation_process(init_fn, state_type, value_type, weight_type,
                               body, takes_global_model(inner))

  return factory(build, is_weighted(inner), takes_global_model(inner))


def stack_rows(rows, dim: int):
  """The clients' float32 [dim] rows stacked at SERVER into X ∈ ℝ^{n×dim}.

  Row i is the i-th client given to `process.next` (TFF's aggregation keeps
  the order; a test checks it).
  """
  matrix_type = tff.TensorType(F32, [None, dim])

  @tff.tensorflow.computation
  def zero():
    return tf.zeros([0, dim], tf.float32)

  @tff.tensorflow.computation(matrix_type, tff.TensorType(F32, [dim]))
  def accumulate(matrix, row):
    return tf.concat([matrix, row[tf.newaxis]], axis=0)

  @tff.tensorflow.computation(matrix_type, matrix_type)
  def merge(a, b):
    return tf.concat([a, b], axis=0)

  @tff.tensorflow.computation(matrix_type)
  def report(matrix):
    return matrix

  return tff.federated_aggregate(rows, zero(), accumulate, merge, report)


def build_stacked_aggregator(robust_fn: Callable, name: str,
                             stateful: bool = False,
                             global_model: bool = False):
  """Unweighted factory: the server sees all n updates as a matrix X ∈ ℝ^{n×d}.

  `robust_fn(X) -> (x ∈ ℝ^d, measurements)` is TF code; with `stateful`,
  `robust_fn(X, round_num)`, `round_num` (int64, from 0) counting the calls of
  `next`, for seeding (the state is that counter; otherwise it is empty);
  with `global_model`, a last argument w ∈ ℝ^d, the global model's trainable
  weights w_t flattened as the rows (the process's `next` then takes w_t: see
  the module docstring). Each update is flattened to one float32 vector; rows
  follow TFF's aggregation order, which in TFF 0.87's C++ runtime is the
  order of the clients in the list given to `process.next` (checked in
  tests/defenses/test_filtering.py), so a per-row measurement (`kept_mask`)
  lines up with that list. The measurements are reported under `name`. Such
  a rule sees every client's update in the clear, which secure aggregation
  would forbid.
  """

  def build(value_type, weight_type):
    del weight_type
    specs = tf.nest.flatten(tff.types.type_to_tf_tensor_specs(value_type))
    dim = sum(int(np.prod(s.shape)) for s in specs)
    matrix_type = tff.TensorType(F32, [None, dim])

    @tff.tensorflow.computation(value_type)
    def flatten(value):
      return update_math.flatten_to_vector(value)

    def unflatten(outputs):
      vector, measurements = outputs
      structure = tff.types.type_to_tf_tensor_specs(value_type)
      return update_math.unflatten_like(vector, structure), (
          collections.OrderedDict([(name, measurements)]))

    vector_type = tff.TensorType(F32, [dim])
    if stateful and global_model:

      @tff.tensorflow.computation(matrix_type, np.int64, vector_type)
      def server_fn(matrix, round_num, model):
        return unflatten(robust_fn(matrix, round_num, model))
    elif stateful:

      @tff.tensorflow.computation(matrix_type, np.int64)
      def server_fn(matrix, round_num):
        return unflatten(robust_fn(matrix, round_num))
    elif global_model:

      @tff.tensorflow.computation(matrix_type, vector_type)
      def server_fn(matrix, model):
        return unflatten(robust_fn(matrix, model))
    else:

      @tff.tensorflow.computation(matrix_type)
      def server_fn(matrix):
        return unflatten(robust_fn(matrix))

    @tff.tensorflow.computation(np.int64)
    def increment(round_num):
      return round_num + 1

    @tff.federated_computation
    def init_fn():
      return tff.federated_value(np.int64(0) if stateful else (), tff.SERVER)

    def body(state, value, weight, model):
      del weight
      matrix = stack_rows(tff.federated_map(flatten, value), dim)
      args = [matrix] + ([state] if stateful else []) + (
          [tff.federated_map(flatten, model)] if global_model else [])
      result, measurements = tff.federated_map(
          server_fn, tuple(args) if len(args) > 1 else matrix)
      if stateful:
        state = tff.federated_map(increment, state)
      return tff.templates.MeasuredProcessOutput(state, result, measurements)

    return aggregation_process(init_fn, init_fn.type_signature.result,
                               value_type, None, body, global_model)

  return _UnweightedFactory(build, global_model)


def find_kept_mask(measurements):
  """The `kept_mask` a filtering rule reports, or None.

  Every rule that keeps some clients and drops others (Krum, Multi-Krum,
  Bulyan, FLAME, FLTrust, FoolsGold) reports `kept_mask` (float32 [n], 1 for
  a kept client, in the order of the round's clients) among its measurements
  under its own name; wrappers nest their inner factory's measurements under
  `inner`. The first one found, depth first, is returned.
  """
  if isinstance(measurements, dict):
    if 'kept_mask' in measurements:
      return measurements['kept_mask']
    for value in measurements.values():
      found = find_kept_mask(value)
      if found is not None:
        return found
  return None
