"""Means, non-finite zeroing, norm clipping, Gaussian noise and weak DP.

Measurements (each under the builder's name, the inner factory's under
`inner`):
- `zero_non_finite/num_non_finite_clients`;
- `clip/{num_clients, fraction, norm_mean, norm_max}`: clients clipped, norms
  before clipping;
- `aggregate_clip/{aggregate_norm, clipped}`;
- `gaussian_noise/noise_stddev`;
- `fixed_denominator/denominator`;
- `build_dp_aggregate`: `clip/…` as above, then
  `inner/dp_query_metrics/{noise_stddev, denominator}` (stddev of the noise on
  the mean, σ/N, and N) and `inner/dp` (TFF's DifferentiallyPrivateFactory).
"""

import collections
from typing import Optional

import dp_accounting
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff
import tensorflow_privacy as tfp

from targeted_attack import checks
from targeted_attack import update_math
from targeted_attack.defenses import plumbing

_F32 = plumbing.F32


def build_stateless_mean() -> tff.aggregators.WeightedAggregationFactory:
  """The weighted mean Σ n_k Δ_k / Σ n_k (`tff.aggregators.MeanFactory`)."""
  return tff.aggregators.MeanFactory()


def build_zero_non_finite(inner=None):
  """Zeroes any client update holding a NaN or Inf, then `inner`.

  For a weighted `inner`, the client's weight is zeroed too, so it is left out
  of the mean rather than pulling it towards zero.
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
          zero_non_finite=tff.federated_zip(collections.OrderedDict(
              num_non_finite_clients=tff.federated_sum(non_finite))))

    return federated_preprocess

  return plumbing.build_client_transform(preprocess, inner)


def build_default_aggregation() -> tff.aggregators.WeightedAggregationFactory:
  """The weighted mean, with non-finite client updates zeroed and counted."""
  return build_zero_non_finite(build_stateless_mean())


def build_clip_per_client(norm_bound: float, inner=None):
  """Norm clipping (Sun et al. 2019, Sec. 4): Δ_k / max(1, ‖Δ_k‖₂ / M), then `inner`.

  ‖·‖₂ is the global norm over all tensors of the update; M = `norm_bound`.
  """
  norm_bound = checks.positive('norm_bound', norm_bound)

  def preprocess(value_type, weight_type):
    del weight_type

    @tff.tensorflow.computation(value_type)
    def clip(value):
      clipped, norm = update_math.clip_by_global_norm(value, norm_bound)
      return clipped, norm, tf.cast(norm > norm_bound, _F32)

    def federated_preprocess(value, weight):
      clipped, norms, was_clipped = tff.federated_map(clip, value)
      return clipped, weight, collections.OrderedDict(
          clip=plumbing.norm_summary(norms, was_clipped))

    return federated_preprocess

  return plumbing.build_client_transform(preprocess, inner)


def build_aggregate_and_clip(norm_bound: float, inner=None):
  """The (weighted) mean first, then the mean clipped to ‖·‖₂ ≤ `norm_bound`.

  The original research code's variant: x̄ / max(1, ‖x̄‖₂ / M).
  """
  norm_bound = checks.positive('norm_bound', norm_bound)

  def clip_aggregate(value, round_num):
    del round_num
    clipped, norm = update_math.clip_by_global_norm(value, norm_bound)
    return clipped, collections.OrderedDict(
        aggregate_norm=norm, clipped=tf.cast(norm > norm_bound, _F32))

  return plumbing.build_server_transform(clip_aggregate, inner,
                                         name='aggregate_clip')


def resolve_seed(seed: Optional[int]) -> int:
  if seed is None:
    return int(np.random.SeedSequence().entropy % (2**31 - 1))
  return checks.integer('seed', seed, 0)


def build_gaussian_noise(stddev: float, inner=None, seed: Optional[int] = None):
  """`inner`, then z ~ N(0, stddev²) added to every coordinate of its result.

  Noise of round t is drawn with the stateless seed (seed, t), so a run with a
  given `seed` repeats exactly; `seed=None` picks a fresh seed per factory.
  """
  stddev = checks.number('stddev', stddev, 0.0)
  seed = resolve_seed(seed)

  def add_noise(value, round_num):
    base_seed = tf.stack([tf.constant(seed, tf.int64), round_num])
    noised = update_math.add_stateless_gaussian_noise(value, stddev, base_seed)
    return noised, collections.OrderedDict(
        noise_stddev=tf.constant(stddev, _F32))

  return plumbing.build_server_transform(add_noise, inner,
                                         name='gaussian_noise')


class SeededGaussianSumQuery(tfp.GaussianSumQuery):
  """tensorflow_privacy's `GaussianSumQuery`, its noise drawn from a seed.

  The library's mechanism: each record clipped to ‖·‖₂ ≤ C (its
  `preprocess_record`), the records summed, z ~ N(0, stddev²) added to every
  coordinate of the sum, and the `GaussianDpEvent(stddev / C)` released.
  tensorflow_privacy 0.9 draws z from an unseeded `tf.random_normal_initializer`,
  so a run would not repeat; this subclass changes only that: z is drawn with
  the stateless int64[2] seed held in the global state
  (`update_math.add_stateless_gaussian_noise`), and the next global state's
  seed is [s, t + 1] for [s, t]. A stateful aggregator (TFF's
  `DifferentiallyPrivateFactory` keeps the query's global state as its own)
  thus draws round t's noise with [s, t]; DP-SGD builds one query per step
  with that step's seed.
  """

  # pylint: disable=invalid-name
  _GlobalState = collections.namedtuple('_GlobalState',
                                        ['l2_norm_clip', 'stddev', 'seed'])

  def __init__(self, l2_norm_clip, stddev, seed):
    """`seed`: int64[2] (or an int s, for [s, 0])."""
    super().__init__(l2_norm_clip, stddev)
    self._seed = seed

  def initial_global_state(self):
    seed = tf.cast(self._seed, tf.int64)
    if seed.shape.rank == 0:
      seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return self._GlobalState(tf.cast(self._l2_norm_clip, tf.float32),
                             tf.cast(self._stddev, tf.float32), seed)

  def get_noised_result(self, sample_state, global_state):
    noised = update_math.add_stateless_gaussian_noise(
        sample_state, global_state.stddev, global_state.seed)
    next_state = global_state._replace(
        seed=global_state.seed + tf.constant([0, 1], tf.int64))
    event = dp_accounting.GaussianDpEvent(
        global_state.stddev / global_state.l2_norm_clip)
    return noised, next_state, event


class _MeasuredNormalizedQuery(tfp.NormalizedQuery):
  """`NormalizedQuery` that reports the noise on the mean and the denominator."""

  def derive_metrics(self, global_state):
    return collections.OrderedDict(
        noise_stddev=global_state.numerator_state.stddev /
        global_state.denominator,
        denominator=global_state.denominator)


def _measure_clipping(norm_bound: float, inner):
  """`clip/{num_clients, fraction, norm_mean, norm_max}` of the updates, passed
  on unchanged to `inner` (which clips them itself)."""

  def preprocess(value_type, weight_type):
    del weight_type

    @tff.tensorflow.computation(value_type)
    def measure(value):
      norm = update_math.global_norm(value)
      return norm, tf.cast(norm > norm_bound, _F32)

    def federated_preprocess(value, weight):
      norms, over = tff.federated_map(measure, value)
      return value, weight, collections.OrderedDict(
          clip=plumbing.norm_summary(norms, over))

    return federated_preprocess

  return plumbing.build_client_transform(preprocess, inner)


def build_dp_aggregate(l2_norm_clip: float, mul_factor: float,
                       num_clients: int, seed: Optional[int] = None):
  """Weak DP (Sun et al. 2019, Sec. 4): clip, sum, add noise, divide.

  (Σ_k clip(Δ_k, C) + z) / N with clip(v, C) = v · min(1, C / ‖v‖₂) (global
  norm over all tensors), z ~ N(0, σ²) per coordinate of the sum,
  σ = mul_factor · C, C = `l2_norm_clip`, N = `num_clients`. Unweighted.
  `mul_factor` is a noise multiplier, as in
  `tff.aggregators.DifferentiallyPrivateFactory.gaussian_fixed`; the paper
  states σ itself (Fig. 4b: C = 5, σ = 0.025, i.e. mul_factor = 0.005), and the
  original research code passed σ as `mul_factor`.

  Built as TFF's own `gaussian_fixed` is: `tff.aggregators.
  DifferentiallyPrivateFactory` over tensorflow_privacy's
  `NormalizedQuery(GaussianSumQuery(C, σ), denominator=N)`, the sum query
  being `SeededGaussianSumQuery`, so that round t's z is drawn with the
  stateless seed (`seed`, t) and a run with a given `seed` repeats exactly
  (`seed=None` picks a fresh seed per factory). The aggregator's state holds
  the query's state (C, σ, the seed) and the round's `GaussianDpEvent(
  mul_factor)` (`tff.aggregators.differential_privacy.
  extract_dp_event_from_state`).
  """
  l2_norm_clip = checks.positive('l2_norm_clip', l2_norm_clip)
  mul_factor = checks.number('mul_factor', mul_factor, 0.0)
  num_clients = checks.integer('num_clients', num_clients, 1)
  query = _MeasuredNormalizedQuery(
      SeededGaussianSumQuery(l2_norm_clip, mul_factor * l2_norm_clip,
                             resolve_seed(seed)),
      denominator=num_clients)
  return _measure_clipping(
      l2_norm_clip, inner=tff.aggregators.DifferentiallyPrivateFactory(query))
