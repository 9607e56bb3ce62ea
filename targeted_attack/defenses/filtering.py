"""Filtering and reweighting defenses over the stacked client updates.

Like `robust`, each rule is unweighted (every client counts once) and sees
every client's update in the clear at the server; rows of X ∈ ℝ^{n×d} are the
clients in the order given to `process.next`. Measurements, under the rule's
name:
- `rlr`: `flipped_fraction`, the fraction of coordinates whose learning rate
  is negated;
- `flame`: `kept_clients` (count), `kept_mask` (float32 [n], 1 for the rows of
  the majority cluster), `clip_norm` S, `noise_stddev` λ·S;
- `fltrust`: `num_clients` n (the root row excluded), `trust_scores`
  (float32 [n], TS_i), `kept_mask` (float32 [n], 1 where TS_i > 0),
  `kept_clients` (count), `root_norm` ‖g0‖.

FLAME's clustering is HDBSCAN, written here in TF: TFF's C++ runtime runs the
server computation in its `worker_binary`, which has no Python, so
`tf.numpy_function` / `tf.py_function` (and so scikit-learn) cannot be called
from it ("No OpKernel was registered to support Op 'PyFunc'").
"""

import collections
from typing import Optional

import tensorflow as tf

from targeted_attack import checks
from targeted_attack.defenses import clipping
from targeted_attack.defenses import plumbing


def build_robust_learning_rate(threshold: int):
  """Robust learning rate (Ozdayi et al., AAAI 2021), on the unweighted mean.

  Per coordinate c, the server learning rate is η if |Σ_i sgn(x_{i,c})| ≥ θ
  and −η otherwise; as the server optimizer applies η, the aggregate is
  x̄ ⊙ s with x̄ = (1/n) Σ_i x_i and s_c = +1 where |Σ_i sgn(x_{i,c})| ≥ θ,
  −1 elsewhere (sgn(0) = 0). θ = `threshold`. The paper weights the mean by
  the clients' example counts; here every client counts once. The authors'
  runs use θ = 4 for Fashion-MNIST (10 agents per round, 1 corrupt) and
  θ = 8 for CIFAR-10 (40 agents, 4 corrupt) and Fed-EMNIST (~34 agents per
  round, 10% corrupt): θ between the corrupt and the honest agents of a
  round. With θ > n every coordinate is negated.
  """
  threshold = checks.integer('threshold', threshold, 0)

  def robust_learning_rate(matrix):
    votes = tf.abs(tf.reduce_sum(tf.sign(matrix), axis=0))
    flip = votes < threshold
    mean = tf.reduce_mean(matrix, axis=0)
    return tf.where(flip, -mean, mean), collections.OrderedDict(
        flipped_fraction=tf.reduce_mean(tf.cast(flip, tf.float32)))

  return plumbing.build_stacked_aggregator(robust_learning_rate, 'rlr')


# Cosine distances below this are rounding of the Gram matrix (an angle under
# 5e-5 rad): such updates point the same way, and count as distance 0.
SAME_DIRECTION = 1e-9


def cosine_distances(matrix):
  """D_ij = 1 − ⟨x_i, x_j⟩ / (‖x_i‖ ‖x_j‖) in float64, as scikit-learn's.

  Clipped to [0, 2], D_ii = 0, exactly symmetric; a zero row has similarity 0
  (distance 1) to every other row. Values below `SAME_DIRECTION` are set to
  0, so that identical updates are at distance 0 whatever the matmul's
  rounding.
  """
  x = tf.cast(matrix, tf.float64)
  unit = tf.math.divide_no_nan(x, tf.norm(x, axis=1, keepdims=True))
  distances = tf.clip_by_value(
      1.0 - tf.matmul(unit, unit, transpose_b=True), 0.0, 2.0)
  distances = (distances + tf.transpose(distances)) / 2.0
  distances = tf.where(distances < SAME_DIRECTION,
                       tf.zeros_like(distances), distances)
  return tf.linalg.set_diag(distances,
                            tf.zeros([tf.shape(x)[0]], tf.float64))


def _components(distances, threshold):
  """R_ij = 1 where i, j are linked by edges D ≤ `threshold` (float32 n×n)."""
  adjacency = tf.cast(distances <= threshold, tf.float32)

  def square(reach, _):
    closed = tf.cast(tf.matmul(reach, reach) > 0.0, tf.float32)
    return closed, tf.reduce_any(tf.not_equal(closed, reach))

  # Each squaring doubles the path length covered; stop at the fixed point.
  reach, _ = tf.while_loop(lambda reach, changed: changed, square,
                           (adjacency, tf.constant(True)))
  return reach


def majority_cluster(distances):
  """The cluster HDBSCAN keeps with min_cluster_size m = ⌊n/2⌋ + 1.

  As `sklearn.cluster.HDBSCAN(min_cluster_size=m, min_samples=1,
  metric='precomputed', allow_single_cluster=True)` on D (bool [n], True for
  label 0). With min_samples = 1 the mutual-reachability distance is D
  itself, so the hierarchy is single linkage; as m > n/2 no split yields two
  clusters, the root is the only (selected) cluster, and its members are the
  points that fall out of it last: the component C* of the graph {D_ij ≤ t*},
  t* the least threshold at which some component has ≥ m points (unique as
  m > n/2). t* is found by bisection over the entries of D. Never empty, so
  FLAME implementations' fallback "all noise: keep all" never triggers
  (without allow_single_cluster, scikit-learn labels every point noise when
  m > n/2).
  """
  n = tf.shape(distances)[0]
  m = tf.cast(n // 2 + 1, tf.float32)
  candidates = tf.sort(tf.reshape(distances, [-1]))

  def largest(threshold):
    return tf.reduce_max(
        tf.reduce_sum(_components(distances, threshold), axis=1))

  def bisect(low, high):
    middle = (low + high) // 2
    enough = largest(candidates[middle]) >= m
    return (tf.where(enough, low, middle + 1), tf.where(enough, middle, high))

  # The largest entry links everything (n ≥ m points): the search is bounded.
  low, _ = tf.while_loop(lambda low, high: low < high, bisect,
                         (tf.constant(0), tf.size(candidates) - 1))
  reach = _components(distances, candidates[low])
  return tf.gather(reach, tf.argmax(tf.reduce_sum(reach, axis=1))) > 0.0


FLAME_CLUSTER_ON = ('models', 'updates')


def build_flame(noise_lambda: float = 0.001, seed: Optional[int] = None,
                cluster_on: str = 'models'):
  """FLAME (Nguyen et al., USENIX Security 2022, Algorithm 1).

  1. Filtering: HDBSCAN on the pairwise cosine distances of the clients'
     local models W_i = w_t − x_i (x_i = w_t − W_i, TFF's wire convention),
     D_ij = 1 − cos(W_i, W_j), min_cluster_size = ⌊n/2⌋ + 1,
     min_samples = 1, single cluster allowed (as the public FLAME
     implementations); K = the majority cluster (see `majority_cluster`).
     `cluster_on='updates'` clusters the updates x_i instead (this project's
     rule before 0.4.0; not FLAME's: a boosted update pointing the honest
     clients' way is never filtered by it, and the local model it gives is
     far from theirs).
  2. Clipping: S = median_{i=1..n} ‖x_i‖₂ = ‖W_i − w_t‖₂ over ALL n clients
     (`numpy.median`); x_i ← x_i · min(1, S / ‖x_i‖₂) for i ∈ K.
  3. Aggregation and noise: (1/|K|) Σ_{i ∈ K} x_i + z, z ~ N(0, (λ·S)²) per
     coordinate, λ = `noise_lambda` (the paper's 0.001 for image
     classification). The paper adds z to the global model; added to the
     aggregate update it is the same for server learning rate 1 (else scaled
     by the rate).
  Round t's noise is drawn with the stateless seed (seed, t), as in
  `clipping.build_gaussian_noise`; `seed=None` picks a fresh seed. With
  `cluster_on='models'` the factory takes the global model (`plumbing`'s
  `takes_global_model`), so it runs in this project's attacked process, not
  in TFF's own.
  """
  noise_lambda = checks.number('noise_lambda', noise_lambda, 0.0)
  seed = clipping.resolve_seed(seed)
  if cluster_on not in FLAME_CLUSTER_ON:
    raise ValueError(f'`cluster_on` must be one of {FLAME_CLUSTER_ON}, got '
                     f'{cluster_on!r}.')

  def flame(matrix, round_num, global_model=None):
    x = tf.cast(matrix, tf.float64)
    points = matrix if global_model is None else (
        tf.cast(global_model, tf.float64)[tf.newaxis] - x)
    kept = majority_cluster(cosine_distances(points))
    norms = tf.norm(x, axis=1)
    ordered = tf.sort(norms)
    n = tf.shape(norms)[0]
    clip_norm = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2.0
    scale = tf.math.divide_no_nan(clip_norm, tf.maximum(norms, clip_norm))
    kept_rows = tf.boolean_mask(x * scale[:, tf.newaxis], kept)
    stddev = noise_lambda * clip_norm
    noise = tf.random.stateless_normal(
        tf.shape(x)[1:], seed=tf.stack([tf.constant(seed, tf.int64),
                                        round_num]), dtype=tf.float64)
    result = tf.reduce_mean(kept_rows, axis=0) + stddev * noise
    kept_mask = tf.cast(kept, tf.float32)
    return tf.cast(result, tf.float32), collections.OrderedDict(
        kept_clients=tf.reduce_sum(kept_mask), kept_mask=kept_mask,
        clip_norm=tf.cast(clip_norm, tf.float32),
        noise_stddev=tf.cast(stddev, tf.float32))

  return plumbing.build_stacked_aggregator(
      flame, 'flame', stateful=True, global_model=cluster_on == 'models')


def build_fltrust():
  """FLTrust (Cao, Fang, Liu, Gong, NDSS 2021): trust bootstrapping.

  The server's update g0 is its own local training of w_t on a small clean
  root dataset; here it is the LAST row of X (the round's clients are rows
  0..n−1, the trusted root client appended after them: see
  `data.root_dataset.hold_out_root` and `process.round_data`). For the n clients:
    TS_i = ReLU(cos(g_i, g0)) = max(0, ⟨g_i, g0⟩ / (‖g_i‖ ‖g0‖)),
    ḡ_i = (‖g0‖ / ‖g_i‖) · g_i,
    g = Σ_i TS_i ḡ_i / Σ_i TS_i   (g = 0 when every TS_i = 0).
  A zero update (g_i or g0) has cosine 0, so trust 0. Computed in float64.
  The server optimizer applies g (the paper's global learning rate α is the
  server learning rate). Unweighted: a client's number of examples plays no
  part; the root row only provides g0 and is never aggregated itself.
  TFF's wire convention (w_t − w_k) negates every row, g0 too, which changes
  neither the cosines nor the norms.
  """

  def fltrust(matrix):
    x = tf.cast(matrix, tf.float64)
    clients, root = x[:-1], x[-1]
    norms = tf.norm(clients, axis=1)
    root_norm = tf.norm(root)
    cosines = tf.math.divide_no_nan(
        tf.linalg.matvec(clients, root), norms * root_norm)
    trust = tf.nn.relu(cosines)
    weights = trust * tf.math.divide_no_nan(root_norm, norms)
    result = tf.math.divide_no_nan(
        tf.linalg.matvec(clients, weights, transpose_a=True),
        tf.reduce_sum(trust))
    kept_mask = tf.cast(trust > 0.0, tf.float32)
    return tf.cast(result, tf.float32), collections.OrderedDict(
        num_clients=tf.cast(tf.shape(clients)[0], tf.float32),
        trust_scores=tf.cast(trust, tf.float32), kept_mask=kept_mask,
        kept_clients=tf.reduce_sum(kept_mask),
        root_norm=tf.cast(root_norm, tf.float32))

  return plumbing.build_stacked_aggregator(fltrust, 'fltrust')
