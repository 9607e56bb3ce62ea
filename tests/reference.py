"""Independent NumPy computations the tests compare against.

A one-layer softmax model, logits = x W + b, trained by plain SGD on the mean
cross-entropy of each batch: ∂L/∂W = xᵀ(softmax − onehot)/B, ∂L/∂b = mean(softmax − onehot).
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

NUM_FEATURES = 3
NUM_CLASSES = 2
INITIAL_KERNEL = np.array([[0.1, -0.2], [0.3, 0.05], [-0.1, 0.2]], np.float32)
INITIAL_BIAS = np.array([0.05, -0.05], np.float32)
INPUT_SPEC = collections.OrderedDict(
    x=tf.TensorSpec([None, NUM_FEATURES], tf.float32),
    y=tf.TensorSpec([None, 1], tf.int32))


def model_fn():
  """One dense layer, deterministic initial weights, no dropout."""
  keras_model = tf.keras.Sequential([
      tf.keras.layers.Dense(
          NUM_CLASSES, input_shape=(NUM_FEATURES,),
          kernel_initializer=tf.keras.initializers.Constant(INITIAL_KERNEL),
          bias_initializer=tf.keras.initializers.Constant(INITIAL_BIAS))
  ])
  return tff.learning.models.from_keras_model(
      keras_model,
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      input_spec=INPUT_SPEC,
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


def make_examples(seed: int, n: int):
  rng = np.random.RandomState(seed)
  x = rng.randn(n, NUM_FEATURES).astype(np.float32)
  y = rng.randint(0, NUM_CLASSES, size=(n, 1)).astype(np.int32)
  return x, y


def make_dataset(seed: int, n: int, batch_size: int = 2) -> tf.data.Dataset:
  x, y = make_examples(seed, n)
  return tf.data.Dataset.from_tensor_slices(
      collections.OrderedDict(x=x, y=y)).batch(batch_size)


def sgd_pass(weights, x, y, learning_rate, batch_size=2):
  """One pass of minibatch SGD over (x, y), in order; returns new (W, b)."""
  kernel, bias = (w.astype(np.float64) for w in weights)
  for start in range(0, len(x), batch_size):
    xb = x[start:start + batch_size].astype(np.float64)
    yb = y[start:start + batch_size, 0]
    logits = xb @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[np.arange(len(yb)), yb] -= 1.0
    kernel = kernel - learning_rate * xb.T @ probs / len(yb)
    bias = bias - learning_rate * probs.mean(axis=0)
  return [kernel, bias]


def delta(new, old):
  return [a - b for a, b in zip(new, old)]


def global_norm(arrays):
  return float(np.sqrt(sum(np.sum(np.square(a)) for a in arrays)))


def initial_weights():
  return [INITIAL_KERNEL.astype(np.float64), INITIAL_BIAS.astype(np.float64)]


def ce_gradients(weights, x, y):
  """∂/∂(W, b) of the mean cross-entropy of logits x W + b on one batch."""
  kernel, bias = weights
  xb = x.astype(np.float64)
  logits = xb @ kernel + bias
  logits -= logits.max(axis=1, keepdims=True)
  probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  probs[np.arange(len(y)), y[:, 0]] -= 1.0
  return [xb.T @ probs / len(y), probs.mean(axis=0)]


def union_examples(benign: tf.data.Dataset, malicious: tf.data.Dataset,
                   seed: int = 0):
  """(x, y) of D_trn ∪ D_mal in the order `local_training.union` yields them.

  Only the order comes from the library (its seeded shuffle); the tests check
  separately that the union holds exactly the examples of both.
  """
  from targeted_attack import local_training  # pylint: disable=g-import-not-at-top
  batches = list(local_training.union(benign, malicious,
                                      tf.constant(seed, tf.int64)))
  x = np.concatenate([b['x'].numpy() for b in batches])
  y = np.concatenate([b['y'].numpy() for b in batches])
  return x, y



def attacked_process(aggregator, boost_factor: float = 10.0):
  """The attacked process on `model_fn`: client SGD 0.1, server SGD 1.0,
  the unconstrained attack with β = `boost_factor`, `aggregator` plugged in."""
  from targeted_attack import attacked_fedavg  # pylint: disable=g-import-not-at-top
  return attacked_fedavg.build_federated_averaging_process_attacked(
      model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      model_update_aggregation_factory=aggregator,
      client_update_tf=attacked_fedavg.ClientExplicitBoosting(boost_factor))

# --- Privacy: the Poisson-subsampled Gaussian in NumPy ----------------------


def poisson_gaussian_log_a(q, z, alphas):
  """log A_α, A_α = E_{x~N(0,z²)}[((1 − q) + q·exp((2x − 1)/(2z²)))^α]: the
  Poisson-subsampled Gaussian's moment (Mironov, Talwar, Zhang 2019, Sec. 3),
  by a Riemann sum in log space on a fine grid (any real α > 1)."""
  from scipy.special import logsumexp  # pylint: disable=g-import-not-at-top
  alphas = np.asarray(alphas, float)
  x = np.linspace(-12 * z - 1, alphas.max() + 12 * z + 1, 8001)
  log_mu0 = -x**2 / (2 * z**2) - np.log(np.sqrt(2 * np.pi) * z)
  log_ratio = np.logaddexp(np.log1p(-q) if q < 1 else -np.inf,
                           np.log(q) + (2 * x - 1) / (2 * z**2))
  return logsumexp(log_mu0 + alphas[:, None] * log_ratio,
                   axis=1) + np.log(x[1] - x[0])


def poisson_gaussian_epsilon(q, z, steps, delta):
  """RDP(α) = steps · log A_α / (α − 1) on α ∈ [1.02, 128], then ε =
  min_α RDP(α) + log((α−1)/α) − (log δ + log α)/(α − 1) (Balle et al. 2020)."""
  alphas = np.concatenate([np.linspace(1.02, 12, 221), np.arange(13, 129)])
  rdp = steps * poisson_gaussian_log_a(q, z, alphas) / (alphas - 1)
  eps = rdp + np.log((alphas - 1) / alphas) - (
      np.log(delta) + np.log(alphas)) / (alphas - 1)
  return eps.min()
