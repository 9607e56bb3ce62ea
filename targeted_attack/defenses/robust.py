"""Distance- and order-based robust rules over the stacked client updates.

Each is unweighted (every client counts once) and sees every client's update
in the clear at the server, which secure aggregation would forbid. Rows of X
follow TFF's aggregation order, which is the order of the clients given to
`process.next` (see `plumbing.build_stacked_aggregator`). Measurements, under
the rule's name:
- `krum`, `multi_krum`: `selected_clients` (row indices), `selected_scores`,
  `kept_mask` (float32 [n], 1 for the selected rows);
- `bulyan`: `selected_clients` (row indices, in the order Krum picked them),
  `kept_mask` (float32 [n], 1 for the θ selected rows);
- `median`: `num_clients`;
- `trimmed_mean`: `num_trimmed_each_end`;
- `geometric_median`: `objective` Σ_i ‖v − x_i‖₂.
"""

import collections

import numpy as np
import tensorflow as tf

from targeted_attack import checks
from targeted_attack.defenses import plumbing


def pairwise_squared_distances(matrix):
  """D_ij = ‖x_i − x_j‖², through the Gram matrix in float64.

  Made exactly symmetric, so that the tie of a mutual nearest pair (Bulyan's
  last picks) is a tie, broken by row index, and not by rounding.
  """
  x = tf.cast(matrix, tf.float64)
  sq = tf.reduce_sum(x * x, axis=1)
  gram = tf.matmul(x, x, transpose_b=True)
  distances = tf.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
  return (distances + tf.transpose(distances)) / 2.0


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
  return nearest_distance_sums(distances, num_neighbours)


def nearest_distance_sums(distances, num_neighbours):
  """Σ_{j ∈ N_i} D_ij over the `num_neighbours` smallest D_ij, j ≠ i (float64)."""
  n = tf.shape(distances)[0]
  distances = tf.linalg.set_diag(
      distances, tf.fill([n], tf.constant(np.inf, tf.float64)))
  nearest = -tf.math.top_k(-distances, k=num_neighbours).values
  return tf.reduce_sum(nearest, axis=1)


def rows_mask(indices, n):
  """float32 [n]: 1 at the given row indices, 0 elsewhere."""
  return tf.scatter_nd(indices[:, tf.newaxis],
                       tf.ones_like(indices, tf.float32), [n])


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
        selected_scores=tf.cast(-lowest.values, tf.float32),
        kept_mask=rows_mask(lowest.indices, n))

  return plumbing.build_stacked_aggregator(multi_krum, name)


def build_krum(num_byzantine: int):
  """Krum (Blanchard et al. 2017): the update x_i with the lowest score s(i).

  s(i) = Σ_{j ∈ N_i} ‖x_i − x_j‖², N_i the n − f − 2 nearest neighbours of
  x_i (j ≠ i), f = `num_byzantine`; needs n ≥ f + 3.
  """
  return build_multi_krum(num_byzantine, num_selected=1, name='krum')


def build_bulyan(num_byzantine: int):
  """Bulyan (El Mhamdi et al. 2018, "The Hidden Vulnerability of Distributed
  Learning in Byzantium", ICML), with Krum as the selection rule.

  f = `num_byzantine`, θ = n − 2f, β = θ − 2f; needs n ≥ 4f + 3 (checked at
  run time).
  1. Selection: S = ∅, R = all n updates; θ times, the Krum winner of R,
     argmin_{i ∈ R} Σ_{j ∈ N_i} ‖x_i − x_j‖² over its k = max(|R| − f − 2, 1)
     nearest neighbours j ∈ R, j ≠ i (scores recomputed on R each time; the
     clamp matters only for f ≤ 1, at the last picks, where |R| − f − 2
     falls below 1), moves from R to S.
  2. Coordinate-wise: for each coordinate c, with m_c the median of
     {x_{i,c} : i ∈ S} (`numpy.median`), the result is the mean of the β values
     x_{i,c}, i ∈ S, closest to m_c.
  Krum ties go to the lowest row index.
  """
  num_byzantine = checks.integer('num_byzantine', num_byzantine, 0)
  f = num_byzantine

  def bulyan(matrix):
    n = tf.shape(matrix)[0]
    check = tf.debugging.assert_greater_equal(
        n, 4 * f + 3,
        message=(f'`num_byzantine`={f} is too large for the clients in this '
                 f'round: Bulyan needs n >= 4 * num_byzantine + 3 = '
                 f'{4 * f + 3}.'))
    with tf.control_dependencies([check]):
      distances = pairwise_squared_distances(matrix)
    num_selected = n - 2 * f
    inf = tf.constant(np.inf, tf.float64)

    def pick(i, remaining, selected):
      # Distances to removed rows are +inf, so never among the k nearest.
      masked = tf.where(remaining[tf.newaxis, :], distances, inf)
      k = tf.maximum(n - i - f - 2, 1)
      scores = nearest_distance_sums(masked, k)
      # The argmin among the remaining rows only: a lone remaining row scores
      # +inf, and TF's argmin of values that are all >= the largest float is
      # index 0, whatever they are.
      candidates = tf.cast(tf.where(remaining)[:, 0], tf.int32)
      winner = tf.gather(candidates,
                         tf.argmin(tf.gather(scores, candidates)))
      return (i + 1,
              tf.tensor_scatter_nd_update(remaining, [[winner]], [False]),
              selected.write(i, winner))

    _, _, selected = tf.while_loop(
        lambda i, remaining, selected: i < num_selected, pick,
        (tf.constant(0), tf.ones([n], tf.bool),
         tf.TensorArray(tf.int32, size=num_selected)))
    selected = selected.stack()
    chosen = tf.transpose(tf.gather(matrix, selected))  # d × θ
    ordered = tf.sort(chosen, axis=1)
    median = (ordered[:, (num_selected - 1) // 2] +
              ordered[:, num_selected // 2]) / 2.0
    closest = tf.math.top_k(-tf.abs(chosen - median[:, tf.newaxis]),
                            k=num_selected - 2 * f).indices
    result = tf.reduce_mean(tf.gather(chosen, closest, batch_dims=1), axis=1)
    return result, collections.OrderedDict(
        selected_clients=selected, kept_mask=rows_mask(selected, n))

  return plumbing.build_stacked_aggregator(bulyan, 'bulyan')


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
