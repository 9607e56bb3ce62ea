"""Independent NumPy computations the tests compare against.

A one-layer softmax model, logits = x W + b, trained by plain SGD on the mean
cross-entropy of each batch: ∂L/∂W = xᵀ(softmax − onehot)/B, ∂L/∂b = mean(softmax − onehot).
The privacy references: the Poisson-subsampled Gaussian's RDP in NumPy.
No module of the library is imported here.
"""

import numpy as np


NUM_FEATURES = 3


NUM_CLASSES = 2


INITIAL_KERNEL = np.array([[0.1, -0.2], [0.3, 0.05], [-0.1, 0.2]], np.float32)


INITIAL_BIAS = np.array([0.05, -0.05], np.float32)


def make_examples(seed: int, n: int):
  rng = np.random.RandomState(seed)
  x = rng.randn(n, NUM_FEATURES).astype(np.float32)
  y = rng.randint(0, NUM_CLASSES, size=(n, 1)).astype(np.int32)
  return x, y


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
