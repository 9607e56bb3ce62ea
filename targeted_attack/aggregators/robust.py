"""Distance- and order-based robust rules over the stacked client updates.

Each is unweighted (every client counts once) and sees every client's update
in the clear at the server, which secure aggregation would forbid. Rows of X
follow TFF's aggregation order. Measurements, under the rule's name:
- `krum`, `multi_krum`: `selected_clients` (row indices), `selected_scores`;
- `median`: `num_clients`;
- `trimmed_mean`: `num_trimmed_each_end`;
- `geometric_median`: `objective` Σ_i ‖v − x_i‖₂.
"""

import collections

import numpy as np
import tensorflow as tf

from targeted_attack import checks
from targeted_attack.aggregators import plumbing


def pairwise_squared_distances(matrix):
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
    distances = pairwise_squared_distances(matrix)
  distances = tf.linalg.set_diag(
      distances, tf.fill([n], tf.constant(np.inf, tf.float64)))
  nearest = -tf.math.top_k(-distances, k=num_neighbours).values
  return tf.reduce_sum(nearest, axis=1)


def build_multi_krum(num_byzantine: int, num_selected: int,
                     name: str = 'multi_krum'):
  """Multi-Krum (Blanchard et al. 2017): mean of the m lowest-scoring updates.

  Scores s(i) = Σ_{j ∈ N_i} ‖x_i − x_j‖² over the n − f − 2 nearest
  neighbours j ≠ i (f = `num_byzantine`), computed once; the result is
  (1/m) Σ_{i ∈ S} x_i with S the m = `num_selected` lowest scores. Needs
  n ≥ f + 3 clients per round (checked at run time) and m ≤ n.
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

  return plumbing.build_stacked_aggregator(multi_krum, name)


def build_krum(num_byzantine: int):
  """Krum (Blanchard et al. 2017): the update x_i with the lowest score s(i).

  s(i) = Σ_{j ∈ N_i} ‖x_i − x_j‖², N_i the n − f − 2 nearest neighbours of
  x_i (j ≠ i), f = `num_byzantine`; needs n ≥ f + 3.
  """
  return build_multi_krum(num_byzantine, num_selected=1, name='krum')


def build_coordinate_median():
  """Coordinate-wise median (Yin et al. 2018), as `numpy.median(X, axis=0)`.

  For an even count, the mean of the two middle values.
  """

  def median(matrix):
    ordered = tf.sort(matrix, axis=0)
    n = tf.shape(matrix)[0]
    low = ordered[(n - 1) // 2]
    high = ordered[n // 2]
    return (low + high) / 2.0, collections.OrderedDict(
        num_clients=tf.cast(n, tf.float32))

  return plumbing.build_stacked_aggregator(median, 'median')


def build_trimmed_mean(trim_fraction: float):
  """Coordinate-wise trimmed mean (Yin et al. 2018).

  Per coordinate, drop k = ⌊β · n⌋ values from each end (β = `trim_fraction`
  ∈ [0, 0.5)) and average the remaining n − 2k.
  """
  trim_fraction = checks.number('trim_fraction', trim_fraction, 0.0,
                                maximum=0.5, strict_max=True)

  def trimmed_mean(matrix):
    n = tf.shape(matrix)[0]
    k = tf.cast(tf.floor(trim_fraction * tf.cast(n, tf.float64)), tf.int32)
    ordered = tf.sort(matrix, axis=0)
    return tf.reduce_mean(ordered[k:n - k], axis=0), collections.OrderedDict(
        num_trimmed_each_end=tf.cast(k, tf.float32))

  return plumbing.build_stacked_aggregator(trimmed_mean, 'trimmed_mean')


def build_geometric_median(max_iters: int = 10, eps: float = 1e-6):
  """Geometric median by smoothed Weiszfeld (RFA, Pillutla et al. 2019).

  Approximates argmin_v Σ_i ‖v − x_i‖₂ (uniform weights). From v₀ = mean,
  `max_iters` times: β_i = 1 / max(ν, ‖v − x_i‖₂), v ← Σ β_i x_i / Σ β_i,
  with smoothing ν = `eps`.
  """
  max_iters = checks.integer('max_iters', max_iters, 1)
  eps = checks.positive('eps', eps)

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

  return plumbing.build_stacked_aggregator(geometric_median,
                                           'geometric_median')
