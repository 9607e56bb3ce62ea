"""FoolsGold (Fung, Yoon, Beschastnikh, RAID 2020, Algorithm 1).

FoolsGold keeps, per client i, the history H_i = Σ_t Δ_{i,t} of its updates,
and gives each client of a round a learning rate α_i that is low when its
history points the same way as another client's: sybils pushing one
(poisoning) objective share a direction that honest clients, with diverse
data, do not. The history is keyed by CLIENT IDENTITY, so the aggregator must
know which client sent which update; see "Identity" below.

Measurements, under `foolsgold`: `learning_rates` (α, float32 [n], in the
order of the round's clients), `kept_mask` (float32 [n], 1 where α_i > 1/2,
read by the experiment's detection metrics), `kept_clients` (their count),
`identified_clients` (the clients with an identity, see below).

Identity. A `tff.aggregators` factory receives only (update, weight) per
client, so the identity travels in the weight channel, as a declared
client-weighting policy of the process (TFF's idiom for what the weight
means): `process.build_federated_averaging_process_attacked(...,
client_weighting=ClientWeighting.CLIENT_ID)` has every client send
`update_weight = client_id + 1` (float32, exact below 2^24) instead of its
example count; the experiment sets it for `--defense=foolsgold`. The client
id is the `client_id` of the client's `context`
(`process.build_client_data(client_ids=...)`;
`process.round_data.round_client_data` passes the sampled clients' indices
into the population). A weight of 0 means "no identity": `build_zero_non_finite`
zeroes the weight of a client whose update is non-finite, and a client built
with `client_id=-1` (FLTrust's root client) has none; such a client gets
α = 0, takes no part in the similarities and leaves every history unchanged.
FoolsGold itself uses no example counts (the reference code neither).
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import checks
from targeted_attack import update_math
from targeted_attack.defenses import filtering
from targeted_attack.defenses import plumbing

F32 = plumbing.F32

# The values `features` takes.
FEATURES = ('output_layer', 'all')

# Ids travel as float32 weights (id + 1): exact up to 2^24.
MAX_POPULATION = 2**24 - 1


def feature_columns(specs, features: str):
  """(start, size): the columns of the flattened update that FoolsGold's
  histories keep.

  'output_layer': the last tensor of rank >= 2 of the update, i.e. the
  output layer's kernel (Keras lists a layer's kernel then its bias, so this
  is the tensor before the last bias), as the authors' deep-learning code
  (`deep-fg/fg/trainer.py`: `client_grads[i][-2]`), and the paper's Sec. 5:
  the output layer holds the features that indicate a class, which a
  targeted poisoning attack must move; all columns when no tensor has rank
  >= 2. 'all': every weight.
  """
  checks.choice('features', features, FEATURES)
  sizes = [int(np.prod(s.shape)) for s in specs]
  if features == 'all':
    return 0, sum(sizes)
  ranked = [i for i, s in enumerate(specs) if len(s.shape) >= 2]
  if not ranked:
    return 0, sum(sizes)
  last = ranked[-1]
  return sum(sizes[:last]), sizes[last]


def foolsgold_learning_rates(histories, confidence=1.0):
  """α ∈ [0, 1]^n from the round's clients' histories H ∈ ℝ^{n×f} (float64).

  Fung et al., Algorithm 1, as the authors' `foolsgold(grads)`
  (`deep-fg/fg/foolsgold.py`):
  1. cs_ij = cos(H_i, H_j) for i ≠ j, and cs_ii = cos(H_i, H_i) − 1 (the
     reference's `cosine_similarity(H) − I`: 0, or −1 for a zero history; a
     zero history has similarity 0 to every other, as scikit-learn's);
     a similarity within `filtering.SAME_DIRECTION` (1e-9) of 1 is 1: two
     histories of one direction give α = 0 exactly, rather than a rounding
     error that step 5 would scale up to 1;
  2. v_i = max_j cs_ij (≥ 0 for n ≥ 2, by the diagonal, which is set
     exactly, so v_j > v_i implies v_j > 0);
  3. pardoning: for i ≠ j with v_j > v_i, cs_ij ← cs_ij · v_i / v_j;
  4. α_i = 1 − max_j cs_ij, clipped to [0, 1];
  5. α ← α / max_i α_i (all α = 0, every history alike: α stays 0, where the
     reference divides by 0); α_i = 1 → 0.99;
  6. α_i ← κ (ln(α_i / (1 − α_i)) + 0.5), κ = `confidence`, clipped to
     [0, 1] (ln 0 = −∞ → 0).
  """
  h = tf.cast(histories, tf.float64)
  norms = tf.norm(h, axis=1)
  unit = tf.math.divide_no_nan(h, norms[:, tf.newaxis])
  # The diagonal exactly: cos(H_i, H_i) − 1 is 0 (−1 for a zero history), not
  # the rounding of the matmul (which could make v_i < 0 and divide by 0).
  cs = tf.matmul(unit, unit, transpose_b=True)
  cs = tf.where(cs > 1.0 - filtering.SAME_DIRECTION,
                tf.constant(1.0, tf.float64), cs)
  cs = tf.linalg.set_diag(
      cs, tf.where(norms > 0.0, tf.constant(0.0, tf.float64), -1.0))
  n = tf.shape(h)[0]
  v = tf.reduce_max(cs, axis=1)
  pardon = tf.logical_and(v[tf.newaxis, :] > v[:, tf.newaxis],
                          tf.logical_not(tf.eye(n, dtype=tf.bool)))
  cs = tf.where(pardon,
                cs * tf.math.divide_no_nan(v[:, tf.newaxis], v[tf.newaxis, :]),
                cs)
  alpha = tf.clip_by_value(1.0 - tf.reduce_max(cs, axis=1), 0.0, 1.0)
  alpha = tf.math.divide_no_nan(alpha, tf.reduce_max(alpha))
  alpha = tf.where(tf.equal(alpha, 1.0), tf.constant(0.99, tf.float64), alpha)
  logit = confidence * (tf.math.log(alpha / (1.0 - alpha)) + 0.5)
  return tf.clip_by_value(logit, 0.0, 1.0)


def build_foolsgold(population: int, features: str = 'output_layer',
                    confidence: float = 1.0):
  """FoolsGold (Fung et al., RAID 2020, Algorithm 1) as a weighted factory.

  Round t, clients i = 1..n with identities c_i and updates x_i:
  1. H_{c_i} ← H_{c_i} + x_i[F] (the history, kept in the state as a
     [`population`, |F|] float32 table, zero at start; F the columns of
     `features`, see `feature_columns`);
  2. α = `foolsgold_learning_rates`(H_{c_1}, ..., H_{c_n}; κ = `confidence`);
  3. result (1/n) Σ_i α_i x_i.
  The normalisation 1/n is the authors' deep-learning code's
  (`deep-fg/fg/trainer.py`, `aggregate_gradients`: Σ_c wv[c]·g_c /
  len(client_grads)): with every α = 1 it is the plain (unweighted) mean,
  and a sybil's α ≈ 0 removes it without boosting the others. (Their earlier
  softmax code, `ML/code/model_aggregator.py`, returns Σ_i α_i x_i, i.e. n
  times this.) n counts the clients with an identity.

  The weight of each client is its identity plus one (see the module
  docstring): build the process with `client_weighting=
  ClientWeighting.CLIENT_ID`.
  An id outside [0, `population`) is an error at run time. Like the robust
  rules it sees every client's update in the clear. Not implemented: the
  paper's optional feature-importance weighting of the histories.
  """
  population = checks.integer('population', population, 1, MAX_POPULATION)
  checks.choice('features', features, FEATURES)
  confidence = checks.positive('confidence', confidence)

  def build(value_type, weight_type):
    specs = tf.nest.flatten(tff.types.type_to_tf_tensor_specs(value_type))
    dim = sum(int(np.prod(s.shape)) for s in specs)
    start, width = feature_columns(specs, features)
    # One row per client: its flattened update, then its weight (id + 1).
    matrix_type = tff.TensorType(F32, [None, dim + 1])
    history_type = tff.TensorType(F32, [population, width])

    @tff.tensorflow.computation(value_type, weight_type)
    def to_row(value, weight):
      return tf.concat([update_math.flatten_to_vector(value),
                        tf.reshape(tf.cast(weight, tf.float32), [1])], axis=0)

    @tff.tensorflow.computation
    def zero_history():
      return tf.zeros([population, width], tf.float32)

    @tff.tensorflow.computation(matrix_type, history_type)
    def server_fn(matrix, history):
      x = matrix[:, :dim]
      ids = tf.cast(tf.round(matrix[:, dim]), tf.int64) - 1
      identified = ids >= 0
      with tf.control_dependencies([
          tf.debugging.assert_less(
              ids, tf.constant(population, tf.int64),
              message=f'foolsgold: a client id is >= population '
              f'({population})')]):
        known = tf.where(identified)  # [k, 1]
      known_ids = tf.gather_nd(ids, known)
      history = tf.tensor_scatter_nd_add(
          history, known_ids[:, tf.newaxis],
          tf.gather_nd(x[:, start:start + width], known))
      known_alpha = foolsgold_learning_rates(
          tf.gather(history, known_ids), confidence)
      n = tf.shape(x)[0]
      alpha = tf.scatter_nd(known, known_alpha, [n])
      count = tf.cast(tf.size(known_ids), tf.float64)
      vector = tf.math.divide_no_nan(
          tf.linalg.matvec(tf.cast(x, tf.float64), alpha, transpose_a=True),
          count)
      result = update_math.unflatten_like(
          tf.cast(vector, tf.float32),
          tff.types.type_to_tf_tensor_specs(value_type))
      kept_mask = tf.cast(alpha > 0.5, tf.float32)
      measurements = collections.OrderedDict(foolsgold=collections.OrderedDict(
          learning_rates=tf.cast(alpha, tf.float32), kept_mask=kept_mask,
          kept_clients=tf.reduce_sum(kept_mask),
          identified_clients=tf.cast(count, tf.float32)))
      return result, history, measurements

    @tff.federated_computation
    def init_fn():
      return tff.federated_eval(zero_history, tff.SERVER)

    def body(state, value, weight, model):
      del model
      matrix = plumbing.stack_rows(tff.federated_map(to_row, (value, weight)),
                                   dim + 1)
      result, state, measurements = tff.federated_map(server_fn,
                                                      (matrix, state))
      return tff.templates.MeasuredProcessOutput(state, result, measurements)

    return plumbing.aggregation_process(
        init_fn, init_fn.type_signature.result, value_type, weight_type, body)

  return plumbing.factory(build, weighted=True)
