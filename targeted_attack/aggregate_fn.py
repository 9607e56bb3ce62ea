"""Defenses as `tff.aggregators` factories, composable through `inner`.

Every builder returns a `tff.aggregators` factory usable as
`model_update_aggregation_factory` of
`attacked_fedavg.build_federated_averaging_process_attacked` or as the
`model_aggregator` of any `tff.learning` algorithm. Wrappers take an `inner`
factory that receives their output (default: the weighted mean) and take their
weightedness from it. Compose, e.g. "clip, then noise, then average":

    build_clip_per_client(5.0, inner=build_gaussian_noise(0.025))

Each reports its measurements (fraction clipped, norms, Krum's choice, …) with
the inner factory's under `inner`.

Robust aggregators (Krum, Multi-Krum, median, trimmed mean, geometric median)
see every client's update in the clear at the server, which secure aggregation
would forbid; they are unweighted (every client counts once).
"""

import collections
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import checks

_F32 = np.float32


# ---------------------------------------------------------------------------
# Plumbing shared by the wrappers.


def _is_weighted(factory) -> bool:
  if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
    return True
  if isinstance(factory, tff.aggregators.UnweightedAggregationFactory):
    return False
  raise TypeError(f'`inner` must be a tff.aggregators factory, got {factory!r}.')


class _WeightedFactory(tff.aggregators.WeightedAggregationFactory):

  def __init__(self, build):
    self._build = build

  def create(self, value_type, weight_type):
    return self._build(value_type, weight_type)


class _UnweightedFactory(tff.aggregators.UnweightedAggregationFactory):

  def __init__(self, build):
    self._build = build

  def create(self, value_type):
    return self._build(value_type, None)


def _factory(build, weighted: bool):
  """A factory whose `create(value_type[, weight_type])` calls `build`."""
  return _WeightedFactory(build) if weighted else _UnweightedFactory(build)


def _create(factory, value_type, weight_type):
  if weight_type is None:
    return factory.create(value_type)
  return factory.create(value_type, weight_type)


def _process(init_fn, state_type, value_type, weight_type, body):
  """An AggregationProcess whose `next` calls `body(state, value, weight)`."""
  value_at_clients = tff.FederatedType(value_type, tff.CLIENTS)
  if weight_type is None:

    @tff.federated_computation(state_type, value_at_clients)
    def next_fn(state, value):
      return body(state, value, None)
  else:

    @tff.federated_computation(state_type, value_at_clients,
                               tff.FederatedType(weight_type, tff.CLIENTS))
    def next_fn(state, value, weight):
      return body(state, value, weight)

  return tff.templates.AggregationProcess(init_fn, next_fn)


def _inner_next(process, state, value, weight):
  if weight is None:
    return process.next(state, value)
  return process.next(state, value, weight)


def global_l2_norm(structure) -> tf.Tensor:
  """‖x‖₂ of all tensors of `structure` taken as one vector."""
  return tf.linalg.global_norm(
      [tf.cast(t, tf.float32) for t in tf.nest.flatten(structure)])


def _norm_summary(norms, flags):
  """Over clients: count, sum of `flags`, mean and max of `norms` (federated)."""

  @tff.tensorflow.computation
  def summarize(count, flagged, norm_sum, norm_max):
    return collections.OrderedDict(
        num_clients=count,
        fraction=tf.math.divide_no_nan(flagged, count),
        norm_mean=tf.math.divide_no_nan(norm_sum, count),
        norm_max=norm_max)

  ones = tff.federated_map(tff.tensorflow.computation(lambda x: tf.ones_like(x)), norms)
  return tff.federated_map(
      summarize, (tff.federated_sum(ones), tff.federated_sum(flags),
                  tff.federated_sum(norms), tff.federated_max(norms)))


# ---------------------------------------------------------------------------
# Means.


def build_stateless_mean() -> tff.aggregators.WeightedAggregationFactory:
  """The weighted mean Σ n_k Δ_k / Σ n_k (`tff.aggregators.MeanFactory`)."""
  return tff.aggregators.MeanFactory()


def build_fixed_denominator_mean(
    denominator: float) -> tff.aggregators.UnweightedAggregationFactory:
  """Σ_k Δ_k / `denominator` (unweighted), e.g. the expected clients per round."""
  denominator = checks.number('denominator', denominator, 0.0, strict=True)
  return build_server_transform(
      lambda value, round_num: (tf.nest.map_structure(
          lambda t: t / tf.cast(denominator, t.dtype), value),
                                collections.OrderedDict()),
      inner=tff.aggregators.SumFactory(), name='fixed_denominator')


# ---------------------------------------------------------------------------
# Per-client transforms.


def clip_by_global_norm(value, norm_bound):
  """(x / max(1, ‖x‖₂ / M), ‖x‖₂), ‖·‖₂ the global norm over all tensors."""
  norm = global_l2_norm(value)
  divisor = tf.maximum(1.0, norm / norm_bound)
  clipped = tf.nest.map_structure(lambda t: t / tf.cast(divisor, t.dtype),
                                  value)
  return clipped, norm


def build_client_transform(preprocess: Callable, inner=None):
  """Per-client preprocessing at CLIENTS, then `inner`.

  `preprocess(value_type, weight_type)` returns a federated function
  `(value, weight) -> (value, weight, measurements)`; `weight` is None for an
  unweighted `inner`, and `measurements` an OrderedDict of SERVER-placed
  values reported next to `inner`'s.
  """
  inner = build_stateless_mean() if inner is None else inner

  def build(value_type, weight_type):
    inner_process = _create(inner, value_type, weight_type)
    federated_preprocess = preprocess(value_type, weight_type)

    def body(state, value, weight):
      value, weight, own = federated_preprocess(value, weight)
      inner_output = _inner_next(inner_process, state, value, weight)
      measurements = tff.federated_zip(
          collections.OrderedDict(own, inner=inner_output.measurements))
      return tff.templates.MeasuredProcessOutput(inner_output.state,
                                                 inner_output.result,
                                                 measurements)

    return _process(inner_process.initialize, inner_process.state_type,
                    value_type, weight_type, body)

  return _factory(build, _is_weighted(inner))


def build_zero_non_finite(inner=None):
  """Zeroes any client update holding a NaN or Inf, then `inner`.

  For a weighted `inner`, the client's weight is zeroed too, so it is left out
  of the mean rather than pulling it towards zero. Measurement:
  `num_non_finite_clients`.
  """

  def preprocess(value_type, weight_type):

    @tff.tensorflow.computation(value_type)
    def zero_if_non_finite(value):
      finite = tf.reduce_all(
          [tf.reduce_all(tf.math.is_finite(t)) for t in tf.nest.flatten(value)])
      zeroed = tf.nest.map_structure(
          lambda t: tf.where(finite, t, tf.zeros_like(t)), value)
      return zeroed, tf.cast(tf.logical_not(finite), _F32)

    if weight_type is not None:

      @tff.tensorflow.computation(weight_type, _F32)
      def zero_weight(weight, non_finite):
        return weight * tf.cast(1.0 - non_finite, weight.dtype)

    def federated_preprocess(value, weight):
      zeroed, non_finite = tff.federated_map(zero_if_non_finite, value)
      if weight is not None:
        weight = tff.federated_map(zero_weight, (weight, non_finite))
      return zeroed, weight, collections.OrderedDict(
          num_non_finite_clients=tff.federated_sum(non_finite))

    return federated_preprocess

  return build_client_transform(preprocess, inner)


def build_default_aggregation() -> tff.aggregators.WeightedAggregationFactory:
  """The weighted mean, with non-finite client updates zeroed and counted."""
  return build_zero_non_finite(build_stateless_mean())


def build_clip_per_client(norm_bound: float, inner=None):
  """Norm clipping (Sun et al. 2019, Sec. 4): Δ_k / max(1, ‖Δ_k‖₂ / M), then `inner`.

  ‖·‖₂ is the global norm over all tensors of the update; M = `norm_bound`.
  Measurements (`clip`): fraction of clients clipped, mean and max of the norms
  before clipping.
  """
  norm_bound = checks.number('norm_bound', norm_bound, 0.0, strict=True)

  def preprocess(value_type, weight_type):
    del weight_type

    @tff.tensorflow.computation(value_type)
    def clip(value):
      clipped, norm = clip_by_global_norm(value, norm_bound)
      return clipped, norm, tf.cast(norm > norm_bound, _F32)

    def federated_preprocess(value, weight):
      clipped, norms, was_clipped = tff.federated_map(clip, value)
      return clipped, weight, collections.OrderedDict(
          clip=_norm_summary(norms, was_clipped))

    return federated_preprocess

  return build_client_transform(preprocess, inner)


# ---------------------------------------------------------------------------
# Server-side transforms of the aggregate.


def build_server_transform(transform: Callable, inner=None,
                           name: str = 'transform'):
  """`inner`, then `transform(aggregate, round_num) -> (aggregate, measurements)`.

  `transform` is TF code run at the server; `round_num` (int64, from 0) counts
  the calls of `next`, for seeding. Its measurements appear under `name`, next
  to `inner`'s.
  """
  inner = build_stateless_mean() if inner is None else inner

  def build(value_type, weight_type):
    inner_process = _create(inner, value_type, weight_type)

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

    def body(state, value, weight):
      inner_output = _inner_next(inner_process, state.inner, value, weight)
      result, own = tff.federated_map(server_fn,
                                      (inner_output.result, state.round_num))
      new_state = tff.federated_zip(
          collections.OrderedDict(
              inner=inner_output.state,
              round_num=tff.federated_map(increment, state.round_num)))
      measurements = tff.federated_zip(
          collections.OrderedDict([(name, own), ('inner', inner_output.measurements)]))
      return tff.templates.MeasuredProcessOutput(new_state, result,
                                                 measurements)

    return _process(init_fn, state_type, value_type, weight_type, body)

  return _factory(build, _is_weighted(inner))


def build_aggregate_and_clip(norm_bound: float, inner=None):
  """The (weighted) mean first, then the mean clipped to ‖·‖₂ ≤ `norm_bound`.

  The original research code's variant: x̄ / max(1, ‖x̄‖₂ / M). Measurement:
  the norm of the mean before clipping.
  """
  norm_bound = checks.number('norm_bound', norm_bound, 0.0, strict=True)

  def clip_aggregate(value, round_num):
    del round_num
    clipped, norm = clip_by_global_norm(value, norm_bound)
    return clipped, collections.OrderedDict(
        aggregate_norm=norm, clipped=tf.cast(norm > norm_bound, _F32))

  return build_server_transform(clip_aggregate, inner, name='aggregate_clip')


def _resolve_seed(seed: Optional[int]) -> int:
  if seed is None:
    return int(np.random.SeedSequence().entropy % (2**31 - 1))
  return checks.integer('seed', seed, 0)


def build_gaussian_noise(stddev: float, inner=None, seed: Optional[int] = None):
  """`inner`, then z ~ N(0, stddev²) added to every coordinate of its result.

  Noise of round t is drawn with the stateless seed (seed, t), so a run with a
  given `seed` repeats exactly; `seed=None` picks a fresh seed per factory.
  """
  stddev = checks.number('stddev', stddev, 0.0)
  seed = _resolve_seed(seed)

  def add_noise(value, round_num):
    base_seed = tf.stack([tf.constant(seed, tf.int64), round_num])
    flat = tf.nest.flatten(value)
    noised = [
        t + tf.random.stateless_normal(
            tf.shape(t),
            seed=tf.random.experimental.stateless_fold_in(base_seed, i),
            stddev=stddev,
            dtype=t.dtype) for i, t in enumerate(flat)
    ]
    return tf.nest.pack_sequence_as(value, noised), collections.OrderedDict(
        noise_stddev=tf.constant(stddev, _F32))

  return build_server_transform(add_noise, inner, name='gaussian_noise')


def build_dp_aggregate(l2_norm_clip: float, mul_factor: float,
                       num_clients: int, seed: Optional[int] = None):
  """Weak DP (Sun et al. 2019, Sec. 4): clip, sum, add noise, divide.

  (Σ_k clip(Δ_k, C) + z) / N with z ~ N(0, (mul_factor · C)²) per coordinate,
  C = `l2_norm_clip`, N = `num_clients`. Unweighted. `mul_factor` is a noise
  multiplier, as in `tff.aggregators.DifferentiallyPrivateFactory
  .gaussian_fixed`; the original research code passed it as the raw standard
  deviation of z (there: z ~ N(0, mul_factor²)). Implemented as clip, then the
  sum divided by N, then noise of stddev mul_factor · C / N: the same
  distribution.
  """
  l2_norm_clip = checks.number('l2_norm_clip', l2_norm_clip, 0.0, strict=True)
  mul_factor = checks.number('mul_factor', mul_factor, 0.0)
  num_clients = checks.integer('num_clients', num_clients, 1)
  return build_clip_per_client(
      l2_norm_clip,
      inner=build_gaussian_noise(
          mul_factor * l2_norm_clip / num_clients,
          inner=build_fixed_denominator_mean(num_clients),
          seed=seed))


# ---------------------------------------------------------------------------
# Robust aggregators over the stacked client updates.


def build_stacked_aggregator(robust_fn: Callable):
  """Unweighted factory: the server sees all n updates as a matrix X ∈ ℝ^{n×d}.

  `robust_fn(X) -> (x ∈ ℝ^d, measurements)` is TF code. Each update is
  flattened to one float32 vector; rows follow TFF's aggregation order.
  """

  def build(value_type, weight_type):
    del weight_type
    specs = tf.nest.flatten(tff.types.type_to_tf_tensor_specs(value_type))
    sizes = [int(np.prod(s.shape)) for s in specs]
    dim = sum(sizes)
    matrix_type = tff.TensorType(_F32, [None, dim])

    @tff.tensorflow.computation(value_type)
    def flatten(value):
      return tf.concat(
          [tf.reshape(tf.cast(t, tf.float32), [-1])
           for t in tf.nest.flatten(value)], axis=0)

    @tff.tensorflow.computation
    def zero():
      return tf.zeros([0, dim], tf.float32)

    @tff.tensorflow.computation(matrix_type, tff.TensorType(_F32, [dim]))
    def accumulate(matrix, row):
      return tf.concat([matrix, row[tf.newaxis]], axis=0)

    @tff.tensorflow.computation(matrix_type, matrix_type)
    def merge(a, b):
      return tf.concat([a, b], axis=0)

    @tff.tensorflow.computation(matrix_type)
    def report(matrix):
      return matrix

    @tff.tensorflow.computation(matrix_type)
    def server_fn(matrix):
      vector, measurements = robust_fn(matrix)
      parts = tf.split(vector, sizes)
      tensors = [
          tf.cast(tf.reshape(p, s.shape), s.dtype)
          for p, s in zip(parts, specs)
      ]
      structure = tff.types.type_to_tf_tensor_specs(value_type)
      return tf.nest.pack_sequence_as(structure, tensors), measurements

    @tff.federated_computation
    def init_fn():
      return tff.federated_value((), tff.SERVER)

    def body(state, value, weight):
      del weight
      rows = tff.federated_map(flatten, value)
      matrix = tff.federated_aggregate(rows, zero(), accumulate, merge, report)
      result, measurements = tff.federated_map(server_fn, matrix)
      return tff.templates.MeasuredProcessOutput(state, result, measurements)

    return _process(init_fn, init_fn.type_signature.result, value_type, None,
                    body)

  return _UnweightedFactory(build)


def _pairwise_squared_distances(matrix):
  """D_ij = ‖x_i − x_j‖², through the Gram matrix in float64."""
  x = tf.cast(matrix, tf.float64)
  sq = tf.reduce_sum(x * x, axis=1)
  gram = tf.matmul(x, x, transpose_b=True)
  return tf.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)


def krum_scores(matrix, num_byzantine: int):
  """Krum score s(i) = Σ_{j ∈ N_i} ‖x_i − x_j‖², N_i: the n − f − 2 nearest j ≠ i."""
  n = tf.shape(matrix)[0]
  num_neighbours = n - num_byzantine - 2
  check = tf.debugging.assert_greater_equal(
      num_neighbours, 1,
      message=(f'num_byzantine={num_byzantine} is too large for the clients '
               'in this round: Krum needs n - num_byzantine - 2 >= 1.'))
  with tf.control_dependencies([check]):
    distances = _pairwise_squared_distances(matrix)
  distances = tf.linalg.set_diag(
      distances, tf.fill([n], tf.constant(np.inf, tf.float64)))
  nearest = -tf.math.top_k(-distances, k=num_neighbours).values
  return tf.reduce_sum(nearest, axis=1)


def build_multi_krum(num_byzantine: int, num_selected: int):
  """Multi-Krum (Blanchard et al. 2017): mean of the m lowest-scoring updates.

  Scores s(i) = Σ_{j ∈ N_i} ‖x_i − x_j‖² over the n − f − 2 nearest
  neighbours j ≠ i (f = `num_byzantine`), computed once; the result is
  (1/m) Σ_{i ∈ S} x_i with S the m = `num_selected` lowest scores. Needs
  n ≥ f + 3 clients per round (checked at run time) and m ≤ n. Sees every
  client's update, which secure aggregation would forbid. Measurements:
  `selected_clients` (row indices in aggregation order), `selected_scores`.
  """
  num_byzantine = checks.integer('num_byzantine', num_byzantine, 0)
  num_selected = checks.integer('num_selected', num_selected, 1)

  def multi_krum(matrix):
    scores = krum_scores(matrix, num_byzantine)
    n = tf.shape(matrix)[0]
    check = tf.debugging.assert_less_equal(
        num_selected, n,
        message=f'num_selected={num_selected} exceeds the clients in a round.')
    with tf.control_dependencies([check]):
      lowest = tf.math.top_k(-scores, k=num_selected)
    selected = tf.gather(matrix, lowest.indices)
    return tf.reduce_mean(selected, axis=0), collections.OrderedDict(
        selected_clients=lowest.indices,
        selected_scores=tf.cast(-lowest.values, tf.float32))

  return build_stacked_aggregator(multi_krum)


def build_krum(num_byzantine: int):
  """Krum (Blanchard et al. 2017): the update x_i with the lowest score s(i).

  s(i) = Σ_{j ∈ N_i} ‖x_i − x_j‖², N_i the n − f − 2 nearest neighbours of
  x_i (j ≠ i), f = `num_byzantine`; needs n ≥ f + 3. Sees every client's
  update, which secure aggregation would forbid.
  """
  return build_multi_krum(num_byzantine, num_selected=1)


def build_coordinate_median():
  """Coordinate-wise median (Yin et al. 2018), as `numpy.median(X, axis=0)`.

  For an even count, the mean of the two middle values. Sees every client's
  update, which secure aggregation would forbid.
  """

  def median(matrix):
    ordered = tf.sort(matrix, axis=0)
    n = tf.shape(matrix)[0]
    low = ordered[(n - 1) // 2]
    high = ordered[n // 2]
    return (low + high) / 2.0, collections.OrderedDict(
        num_clients=tf.cast(n, tf.float32))

  return build_stacked_aggregator(median)


def build_trimmed_mean(trim_fraction: float):
  """Coordinate-wise trimmed mean (Yin et al. 2018).

  Per coordinate, drop k = ⌊β · n⌋ values from each end (β = `trim_fraction`
  ∈ [0, 0.5)) and average the remaining n − 2k. Sees every client's update,
  which secure aggregation would forbid.
  """
  trim_fraction = checks.number('trim_fraction', trim_fraction, 0.0,
                                maximum=0.5, strict_max=True)

  def trimmed_mean(matrix):
    n = tf.shape(matrix)[0]
    k = tf.cast(tf.floor(trim_fraction * tf.cast(n, tf.float64)), tf.int32)
    ordered = tf.sort(matrix, axis=0)
    return tf.reduce_mean(ordered[k:n - k], axis=0), collections.OrderedDict(
        num_trimmed_each_end=tf.cast(k, tf.float32))

  return build_stacked_aggregator(trimmed_mean)


def build_geometric_median(max_iters: int = 10, eps: float = 1e-6):
  """Geometric median by smoothed Weiszfeld (RFA, Pillutla et al. 2019).

  Approximates argmin_v Σ_i ‖v − x_i‖₂ (uniform weights). From v₀ = mean,
  `max_iters` times: β_i = 1 / max(ν, ‖v − x_i‖₂), v ← Σ β_i x_i / Σ β_i,
  with smoothing ν = `eps`. Sees every client's update, which secure
  aggregation would forbid. Measurement: the objective Σ_i ‖v − x_i‖₂.
  """
  max_iters = checks.integer('max_iters', max_iters, 1)
  eps = checks.number('eps', eps, 0.0, strict=True)

  def geometric_median(matrix):
    x = tf.cast(matrix, tf.float64)

    def weiszfeld_step(i, v):
      distances = tf.norm(x - v[None, :], axis=1)
      betas = 1.0 / tf.maximum(tf.constant(eps, tf.float64), distances)
      return i + 1, tf.reduce_sum(betas[:, None] * x, axis=0) / tf.reduce_sum(
          betas)

    _, v = tf.while_loop(lambda i, v: True, weiszfeld_step,
                         (tf.constant(0), tf.reduce_mean(x, axis=0)),
                         maximum_iterations=max_iters)
    objective = tf.reduce_sum(tf.norm(x - v[None, :], axis=1))
    return tf.cast(v, tf.float32), collections.OrderedDict(
        objective=tf.cast(objective, tf.float32))

  return build_stacked_aggregator(geometric_median)
