"""The benign clients of a round trained as one TensorFlow computation.

Each benign client k runs `attacks.base.benign_update`: one pass of local SGD
over its batches b_1 … b_S from w_t, Δ_k = w_k − w_t. Here the C benign
clients of a round run it together: their parameters stacked as [C, …]
(tiled from w_t), their batches padded to [C, S, B, …] with the rows of each
real batch counted, and at step s, for every client k with a batch,

    L_k = (1/n_ks) Σ_{i<n_ks} CE(f(x_ksi; w_k), y_ksi)
    g_k = ∇_{w_k} Σ_j L_j  (= ∇ L_k: no client's loss depends on another's w)
    SGD:        w_k ← w_k − η g_k
    momentum:   a_k ← μ a_k + g_k,  w_k ← w_k − η a_k   (TFF's `build_sgdm`)

and w_k, a_k unchanged for a client without one (a batch of no rows is a
step with g_k = 0, as in per-client training). Dense layers are batched
matrix products ([C, B, I] by [C, I, O]), convolutions one grouped
convolution (the clients as the groups) where TensorFlow's kernels have one
(oneDNN's, cuDNN's; `grouped_convolution_supported`), else each client's own
inside the same computation, and each dropout layer draws
client k's mask exactly as `models.StepSeededDropout` does on that client
alone: the stateless uniform of the pass's step seed
(`local_training.dropout_seed_of_pass`, pass `BENIGN_DROPOUT_PASS`, folded
with s, then with the layer's seed), as long as the padded batch (the first
rows of a stateless draw do not depend on its length). The training metrics are the TFF Keras model's (loss and accuracy
sums over the pass, examples, batches), computed from the same outputs.

The arithmetic is the per-client computation's but for the order of float
operations in the batched kernels (measured: `tests/process/
test_batched_training.py` and `benchmarks.round_time --loops_check`).
Supported: Keras `Sequential` models of Flatten, Dense, Conv2D (no dilation),
MaxPool2D and `StepSeededDropout` layers (the project's `linear`,
`small_cnn` and `cnn`), trained with sparse categorical cross-entropy on
logits; TFF's `build_sgdm` client optimizer; no client DP-SGD. Anything else
runs per client (`build_trainer` says why).
"""

import collections
import functools
from typing import Optional

import numpy as np
import tensorflow as tf

from targeted_attack.attacks import base
from targeted_attack.process import dataset_arrays
from targeted_attack.process import local_training
from targeted_attack.process import models

_LAYER_KINDS = ('InputLayer', 'Flatten', 'Dense', 'Conv2D', 'MaxPooling2D',
                'StepSeededDropout')
_ACTIVATIONS = {'linear': tf.identity, 'relu': tf.nn.relu}
_METRIC_KINDS = {  # metric class → its unfinalized values, as `_Metrics` names
    'SparseCategoricalAccuracy': ('correct', 'counted'),
    '_WeightedMeanLossMetric': ('loss_sum', 'loss_weight'),
    'NumExamplesCounter': ('examples',),
    'NumBatchesCounter': ('batches',),
}


class Unsupported(ValueError):
  """The model, loss, metrics or optimizer has no batched form here."""


def _keras_model(model):
  keras_model = getattr(model, '_keras_model', None)
  if not isinstance(keras_model, tf.keras.Sequential):
    raise Unsupported('the model is not a TFF wrapper of a Keras Sequential '
                      'model')
  return keras_model


class StackedSequential:
  """A Keras `Sequential` model's forward pass for C clients at once, each
  with its own parameters (every weight stacked on a leading axis of C)."""

  def __init__(self, keras_model: tf.keras.Sequential,
               grouped_convolutions: Optional[bool] = None):
    """`grouped_convolutions`: whether convolutions run as one grouped
    convolution (default: where this TensorFlow's kernels for the default
    device have one, `grouped_convolution_supported`), else client by client
    inside the one computation."""
    if grouped_convolutions is None:
      grouped_convolutions = grouped_convolution_supported()
    self.grouped_convolutions = grouped_convolutions
    self.layers = []
    expected = []
    for layer in keras_model.layers:
      kind = type(layer).__name__
      if kind not in _LAYER_KINDS:
        raise Unsupported(f'layer {layer.name} ({kind})')
      config = layer.get_config()
      activation = config.get('activation', 'linear')
      if activation not in _ACTIVATIONS:
        raise Unsupported(f'activation {activation!r} of {layer.name}')
      if kind == 'Conv2D' and (tuple(config['dilation_rate']) != (1, 1) or
                               config['groups'] != 1 or
                               config['data_format'] != 'channels_last'):
        raise Unsupported(f'{layer.name}: a dilated, grouped or '
                          'channels-first convolution')
      if kind == 'MaxPooling2D' and config['data_format'] != 'channels_last':
        raise Unsupported(f'{layer.name}: channels-first pooling')
      if kind == 'StepSeededDropout' and config.get('noise_shape') is not None:
        raise Unsupported(f'{layer.name}: a dropout noise shape')
      if kind == 'Dense' and len(layer.input_shape) != 2:
        raise Unsupported(f'{layer.name}: a Dense layer on inputs of rank '
                          f'{len(layer.input_shape) - 1} per example')
      self.layers.append((kind, config, layer))
      expected.extend(id(w) for w in layer.trainable_weights)
    if [id(w) for w in keras_model.trainable_weights] != expected:
      raise Unsupported('the trainable weights are not in layer order')
    if keras_model.non_trainable_weights:
      raise Unsupported('non-trainable weights')

  def __call__(self, params, x, step_seeds=None):
    """Logits [C, B, K] of inputs x [C, B, …] under params (the trainable
    weights, each [C, …]); training-mode dropout when `step_seeds` (int64
    [C, 2], each client's step seed) is given.

    Images stay, from the first convolution to the flatten, in one batch of
    B images with the clients' channels side by side ([B, H, W, C·F]): a
    convolution is then one grouped convolution, pooling acts per channel,
    and the large activations are never transposed. Without grouped
    convolutions, images stay [C, B, H, W, F]: each client's convolution is
    its own (`tf.map_fn` over the clients), pooling acts on the C·B images."""
    params = list(params)
    num_clients = tf.shape(x)[0]
    merged = False  # x is [B, H, W, C·F] (else [C, B, …])
    for kind, config, layer in self.layers:
      if kind == 'Conv2D':
        kernel = params.pop(0)
        bias = params.pop(0) if config['use_bias'] else None
        if self.grouped_convolutions:
          if not merged:
            x, merged = _merge_clients(x), True
          x = tf.nn.conv2d(x, _merge_kernel(kernel), config['strides'],
                           config['padding'].upper())
          if bias is not None:
            x = tf.nn.bias_add(x, tf.reshape(bias, [-1]))
        else:
          x = _conv2d_client_by_client(x, kernel, bias, config['strides'],
                                       config['padding'].upper())
        x = _ACTIVATIONS[config['activation']](x)
        continue
      if kind == 'MaxPooling2D':
        if self.grouped_convolutions:
          if not merged:
            x, merged = _merge_clients(x), True
          x = tf.nn.max_pool2d(x, config['pool_size'], config['strides'],
                               config['padding'].upper())
        else:
          shape = tf.shape(x)
          x = tf.nn.max_pool2d(tf.reshape(x, tf.concat([[-1], shape[2:]], 0)),
                               config['pool_size'], config['strides'],
                               config['padding'].upper())
          x = tf.reshape(x, tf.concat([shape[:2], tf.shape(x)[1:]], 0))
        continue
      if kind == 'StepSeededDropout':
        if step_seeds is not None:
          x = _stacked_dropout(x, layer.rate, layer.seed or 0, step_seeds,
                               num_clients if merged else None)
        continue
      if merged:
        x, merged = _split_clients(x, num_clients), False
      if kind == 'Flatten':
        x = tf.reshape(x, tf.concat([tf.shape(x)[:2], [-1]], 0))
      elif kind == 'Dense':
        x = tf.matmul(x, params.pop(0))  # [C, B, I] @ [C, I, O]
        if config['use_bias']:
          x += params.pop(0)[:, tf.newaxis, :]
        x = _ACTIVATIONS[config['activation']](x)
    if merged:
      x = _split_clients(x, num_clients)
    return x


def _conv2d_client_by_client(x, kernel, bias, strides, padding):
  """Client k's convolution of its images x[k] [B, H, W, I] with its kernel
  [h, w, I, O] (plus its bias [O]), for each k: [C, B, H', W', O]."""
  def one_client(args):
    y = tf.nn.conv2d(args[0], args[1], strides, padding)
    return y if bias is None else tf.nn.bias_add(y, args[2])
  elements = (x, kernel) if bias is None else (x, kernel, bias)
  return tf.map_fn(one_client, elements, fn_output_signature=x.dtype)


@functools.lru_cache(maxsize=None)
def grouped_convolution_supported() -> bool:
  """Whether this TensorFlow runs a grouped convolution (the input's
  channels a multiple of the kernel's), fused with its bias and ReLU by
  Grappler as in training, and its gradients, on the default device, and
  gets what two separate convolutions get. oneDNN's and cuDNN's kernels do;
  TensorFlow's own CPU kernels do not (2.14 without oneDNN, as on CPUs
  without AVX-512: "Fused conv implementation does not support grouped
  convolutions", and the filter gradient refuses)."""
  rng = np.random.default_rng(0)
  values = [rng.normal(size=shape).astype(np.float32)
            for shape in ((2, 5, 5, 4), (3, 3, 2, 6), (6,))]
  results = []
  # Its own graph and session (Grappler on, the default device), whatever
  # graph or tape the caller is in; fed inputs, so that Grappler cannot fold
  # the convolution into a constant before it fuses it.
  for groups in (2, 1):
    with tf.Graph().as_default() as graph:
      inputs = [tf.compat.v1.placeholder(tf.float32, v.shape) for v in values]
      x, kernel, bias = inputs
      if groups == 2:  # one convolution, 2 groups of 2 input channels
        y = tf.nn.conv2d(x, kernel, 1, 'VALID')
      else:
        y = tf.concat([tf.nn.conv2d(x[..., 2 * g:2 * g + 2],
                                    kernel[..., 3 * g:3 * g + 3], 1, 'VALID')
                       for g in range(2)], -1)
      y = tf.nn.relu(tf.nn.bias_add(y, bias))
      fetches = [y] + tf.gradients(tf.reduce_sum(y * y), [x, kernel, bias])
      with tf.compat.v1.Session(graph=graph) as session:
        try:
          results.append(session.run(fetches, dict(zip(inputs, values))))
        except tf.errors.OpError:  # no kernel, or one that refuses
          return False
  return all(np.allclose(a, b, rtol=1e-4, atol=1e-4)
             for a, b in zip(*results))


def _merge_clients(x):
  """[C, B, H, W, F] → [B, H, W, C·F] (client k's channels kF … kF+F−1)."""
  shape = tf.shape(x)
  return tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]),
                    tf.stack([shape[1], shape[2], shape[3], -1]))


def _split_clients(x, num_clients):
  """The inverse of `_merge_clients`."""
  shape = tf.shape(x)
  return tf.transpose(
      tf.reshape(x, tf.stack([shape[0], shape[1], shape[2], num_clients, -1])),
      [3, 0, 1, 2, 4])


def _merge_kernel(kernel):
  """Per-client kernels [C, h, w, I, O] as one grouped kernel [h, w, I, C·O]
  (group k: client k's)."""
  shape = tf.shape(kernel)
  return tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]),
                    tf.stack([shape[1], shape[2], shape[3], -1]))


def _stacked_dropout(x, rate, layer_seed, step_seeds, num_clients=None):
  """`StepSeededDropout` of each client's rows with its step seed:
  x·(1/(1−rate)) where u ≥ rate, else 0, client k's u = stateless_uniform(
  shape of its rows, fold_in(step_seeds[k], layer_seed)). x is [C, B, …],
  or with `num_clients` merged ([B, H, W, C·F]); the mask is drawn per
  client in its own layout and merged the same way."""
  shape = tf.shape(x)
  row_shape = (tf.concat([shape[:-1], [shape[-1] // num_clients]], 0)
               if num_clients is not None else shape[1:])
  uniform = tf.map_fn(
      lambda seed: tf.random.stateless_uniform(
          row_shape, tf.random.experimental.stateless_fold_in(
              seed, layer_seed), dtype=x.dtype),
      step_seeds, fn_output_signature=x.dtype)
  if num_clients is not None:
    uniform = _merge_clients(uniform)
  scale = tf.convert_to_tensor(1 / (1 - rate), dtype=x.dtype)
  return tf.where(uniform >= rate, x * scale, tf.zeros([], x.dtype))


def fold_in_heads(seeds):
  """int64 [C]: the first half of fold_in(seeds[k], ·), which depends on the
  seed alone: `stateless_fold_in(seed, data)` is [U(seed), data], U a full
  int64 draw (`folded_in` the whole; drawn once, not at every step)."""
  return tf.map_fn(
      lambda seed: tf.random.stateless_uniform(
          [], seed, minval=None, maxval=None, dtype=tf.int64),
      seeds, fn_output_signature=tf.int64)


def folded_in(heads, data):
  """int64 [C, 2]: stateless_fold_in(seeds[k], int64 data) for each client,
  from `fold_in_heads(seeds)` (fold_in draws its head in the dtype of the
  data: int64 here, as the per-client trainer folds in its int64 step)."""
  return tf.stack([heads, tf.fill(tf.shape(heads), tf.cast(data, tf.int64))],
                  axis=1)


class _Metrics(collections.namedtuple(
    '_Metrics', ['correct', 'counted', 'loss_sum', 'loss_weight', 'examples',
                 'batches'])):
  """Per-client sums over a pass, each [C]."""


def _sgd_settings(optimizer) -> tuple:
  """(η, μ or None) of TFF's `build_sgdm` optimizer."""
  if type(optimizer).__name__ != '_SGD' or not type(optimizer).__module__.endswith(
      'optimizers.sgdm'):
    raise Unsupported(f'client optimizer {type(optimizer).__name__} (only '
                      "TFF's build_sgdm)")
  state = optimizer.initialize(())
  return state['learning_rate'], state.get('momentum')


class BatchedBenignTrainer:
  """`benign_update` for many clients at once (the module docstring)."""

  def __init__(self, model_fn, optimizer, model=None):
    """`model`: `model_fn()`'s model if already built (in any graph)."""
    self.learning_rate, self.momentum = _sgd_settings(optimizer)
    with tf.Graph().as_default():
      model = model_fn() if model is None else model
      keras_model = _keras_model(model)
      self.network = StackedSequential(keras_model)
      if keras_model.losses:
        raise Unsupported('the model has layer losses')
      loss_fns = getattr(model, '_loss_fns', None)
      if (not loss_fns or len(loss_fns) != 1 or
          not _is_sparse_ce_on_logits(loss_fns[0])):
        raise Unsupported('the loss is not sparse categorical cross-entropy '
                          'on logits')
      self.metric_layout = []
      for metric in model.get_metrics():
        kind = type(metric).__name__
        if kind not in _METRIC_KINDS or len(metric.variables) != len(
            _METRIC_KINDS[kind]):
          raise Unsupported(f'metric {metric.name} ({kind})')
        self.metric_layout.append(
            (metric.name, _METRIC_KINDS[kind],
             [v.dtype.base_dtype for v in metric.variables]))
      input_spec = model.input_spec
      self.weight_specs = [tf.TensorSpec(v.shape, v.dtype)
                           for v in keras_model.trainable_weights]
    if not (isinstance(input_spec, collections.abc.Mapping) and
            set(input_spec) == {'x', 'y'}):
      raise Unsupported('the input is not a mapping of x and y')
    self.x_spec, self.y_spec = input_spec['x'], input_spec['y']
    if self.y_spec.shape.rank != 2 or self.y_spec.shape[1] != 1 or (
        not self.y_spec.dtype.is_integer):
      raise Unsupported('labels are not integers of shape [batch, 1]')
    if not self.x_spec.shape[1:].is_fully_defined():
      raise Unsupported('inputs of unknown shape per example')
    data_shape = [None, None, None]
    self._train = tf.function(self._train_impl, input_signature=(
        [tf.TensorSpec(s.shape, s.dtype) for s in self.weight_specs],
        tf.TensorSpec(data_shape + self.x_spec.shape[1:].as_list(),
                      self.x_spec.dtype),
        tf.TensorSpec(data_shape + [1], self.y_spec.dtype),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, 2], tf.int64)))

  def train(self, initial_weights, x, y, rows, seeds):
    """Per client k: (w_k − w_t for each weight [C, …], `_Metrics`, ‖Δ_k‖).

    x [C, S, B, …] and y [C, S, B, 1]: client k's batch s in rows
    [0, rows[k, s]) (rows[k, s] = −1: no batch s); seeds int64 [C, 2]."""
    return self._train(list(initial_weights), x, y, rows, seeds)

  def _train_impl(self, initial, x, y, rows, seeds):
    num_clients = tf.shape(x)[0]
    num_steps = tf.shape(x)[1]
    batch = tf.shape(x)[2]
    params = [tf.tile(w[tf.newaxis], tf.concat([[num_clients],
                                                 tf.ones_like(tf.shape(w))], 0))
              for w in initial]
    accumulators = ([tf.zeros_like(p) for p in params]
                    if self.momentum is not None else [])
    # fold_in's result has the dtype of the data folded in (a Python int:
    # int32), as in the per-client trainer.
    pass_seeds = tf.map_fn(
        lambda s: local_training.dropout_seed_of_pass(
            s, base.BENIGN_DROPOUT_PASS), seeds, fn_output_signature=tf.int32)
    seed_heads = fold_in_heads(pass_seeds)
    zeros = tf.zeros([num_clients], tf.float32)
    zero_counts = tf.zeros([num_clients], tf.int64)
    metrics = _Metrics(zeros, zeros, zeros, zeros, zero_counts, zero_counts)
    lr = tf.constant(self.learning_rate, tf.float32)

    def step(s, params, accumulators, metrics):
      has_batch = rows[:, s] >= 0  # a batch, perhaps of no rows
      n = tf.maximum(rows[:, s], 0)
      n_float = tf.cast(n, tf.float32)
      row_mask = tf.sequence_mask(n, batch, tf.float32)
      step_seeds = folded_in(seed_heads, s)
      labels = y[:, s, :, 0]
      with tf.GradientTape() as tape:
        tape.watch(params)
        logits = self.network(params, x[:, s], step_seeds)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits)
        losses = tf.math.divide_no_nan(
            tf.reduce_sum(cross_entropy * row_mask, axis=1), n_float)
        total = tf.reduce_sum(losses)
      gradients = tape.gradient(total, params)
      new_params, new_accumulators = [], []
      for i, (p, g) in enumerate(zip(params, gradients)):
        keep = tf.reshape(has_batch, [-1] + [1] * (p.shape.rank - 1))
        if self.momentum is None:
          # A client without a batch has a zero loss, so g = 0: w unchanged.
          new_params.append(p - lr * g)
        else:
          a = self.momentum * accumulators[i] + g
          new_accumulators.append(tf.where(keep, a, accumulators[i]))
          new_params.append(tf.where(keep, p - lr * a, p))
      predicted = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int64),
                          labels.dtype)
      correct = tf.cast(tf.equal(labels, predicted), tf.float32) * row_mask
      metrics = _Metrics(
          correct=metrics.correct + tf.reduce_sum(correct, axis=1),
          counted=metrics.counted + n_float,
          loss_sum=metrics.loss_sum + losses * n_float,
          loss_weight=metrics.loss_weight + n_float,
          examples=metrics.examples + tf.cast(n, tf.int64),
          batches=metrics.batches + tf.cast(has_batch, tf.int64))
      return s + 1, new_params, new_accumulators, metrics

    _, params, _, metrics = tf.while_loop(
        lambda s, *_: s < num_steps, step,
        (tf.constant(0), params, accumulators, metrics))
    deltas = [p - w[tf.newaxis] for p, w in zip(params, initial)]
    norms = tf.map_fn(lambda d: tf.linalg.global_norm(d), deltas,
                      fn_output_signature=tf.float32)
    return deltas, metrics, norms


def _is_sparse_ce_on_logits(loss_fn) -> bool:
  if not isinstance(loss_fn, tf.keras.losses.SparseCategoricalCrossentropy):
    return False
  config = loss_fn.get_config()
  return bool(config.get('from_logits')) and config.get(
      'ignore_class') is None and config.get('reduction') in (
          'auto', 'sum_over_batch_size')


# Built trainers, by what determines their computation: processes built in
# one Python process (a sweep's batch of runs, the tests) share one trace.
_trainers = {}


def _trainer_key(model, optimizer):
  """What determines a trainer's computation, or None (no Keras model)."""
  keras_model = getattr(model, '_keras_model', None)
  if keras_model is None:
    return None
  try:
    architecture = keras_model.to_json()
  except (NotImplementedError, TypeError, ValueError):
    return None
  loss_fns = getattr(model, '_loss_fns', None) or []
  return (architecture,
          tuple(type(m).__name__ + m.name for m in model.get_metrics()),
          tuple(repr(fn.get_config()) if hasattr(fn, 'get_config') else
                repr(fn) for fn in loss_fns),
          repr(model.input_spec), type(optimizer).__module__,
          type(optimizer).__name__, repr(optimizer.initialize(())))


# The settings of `client_batching`: auto (batched where TensorFlow sees a
# GPU, and on a CPU for models of at most `CPU_BATCHING_MAX_MULTIPLY_ADDS`
# per example), on, off.
CLIENT_BATCHING = ('auto', 'on', 'off')

# On a CPU, `auto` batches a model of at most this many multiply-adds per
# example (`multiply_adds_per_example`): there a client's step is short and
# its per-call overhead is what batching saves. Measured on 2 cores
# (`docs/PERFORMANCE.md`): `small_cnn` (0.79M) rounds 1.7–1.9× faster
# batched; `cifar_cnn` (1.24M) 5% and the paper's `cnn` (12M) 17% slower.
CPU_BATCHING_MAX_MULTIPLY_ADDS = 1_000_000


def multiply_adds_per_example(keras_model: tf.keras.Sequential) -> int:
  """Σ over Conv2D layers of H'·W'·k_h·k_w·C_in·C_out and over Dense layers
  of I·O: the forward pass's multiply-adds for one example."""
  total = 0
  for layer in keras_model.layers:
    kind = type(layer).__name__
    if kind == 'Conv2D':
      _, height, width, out_channels = layer.output_shape
      kernel_h, kernel_w = layer.kernel_size
      total += (height * width * kernel_h * kernel_w *
                int(layer.input_shape[-1]) * out_channels)
    elif kind == 'Dense':
      total += int(layer.input_shape[-1]) * layer.units
  return total


def _has_gpu() -> bool:
  return bool(tf.config.list_logical_devices('GPU'))


def build_trainer(model_fn, optimizer, client_dp_sgd=None,
                  local_loop: str = 'iterator', client_batching: str = 'on',
                  strategy=None):
  """(a `BatchedBenignTrainer`, None), or (None, why the benign clients
  are trained one by one). `strategy`: the client strategy, whose benign
  clients must run `attacks.base.benign_update` (its `__call__` is the
  base class's)."""
  if client_batching not in CLIENT_BATCHING:
    raise ValueError(f'`client_batching` must be one of {CLIENT_BATCHING}, '
                     f'got {client_batching!r}.')
  if client_batching == 'off':
    return None, 'client_batching=off'
  if strategy is not None and (type(strategy).__call__ is not
                               base.ClientUpdateStrategy.__call__):
    return None, (f'{type(strategy).__name__} overrides how a client is '
                  'trained')
  if client_dp_sgd is not None:
    return None, 'client DP-SGD trains each client by itself'
  if local_loop != 'iterator':
    return None, f'local_loop={local_loop!r} is the per-client loop'
  with tf.Graph().as_default():  # the model is built once, for both
    model = model_fn()
    key = _trainer_key(model, optimizer)
  if client_batching == 'auto' and not _has_gpu():
    keras_model = getattr(model, '_keras_model', None)
    if not isinstance(keras_model, tf.keras.Sequential):
      return None, 'client_batching=auto, no GPU, not a Keras Sequential model'
    try:
      multiply_adds = multiply_adds_per_example(keras_model)
    except (AttributeError, TypeError, ValueError):  # unbuilt, or H, W unknown
      return None, ('client_batching=auto, no GPU, and the model\'s '
                    'multiply-adds per example unknown')
    if multiply_adds > CPU_BATCHING_MAX_MULTIPLY_ADDS:
      return None, (f'client_batching=auto, no GPU, and {multiply_adds:,} '
                    'multiply-adds per example (batched on a CPU up to '
                    f'{CPU_BATCHING_MAX_MULTIPLY_ADDS:,})')
  trainer = _trainers.get(key) if key is not None else None
  if trainer is None:
    try:
      trainer = BatchedBenignTrainer(model_fn, optimizer, model)
    except Unsupported as e:
      return None, str(e)
    if key is not None:
      _trainers[key] = trainer
  return trainer, None


def unsupported_reason(model_fn, optimizer, client_dp_sgd=None,
                       local_loop: str = 'iterator') -> Optional[str]:
  """Why the benign clients cannot be trained together (None: they can)."""
  return build_trainer(model_fn, optimizer, client_dp_sgd, local_loop)[1]


def pad_client_batches(datasets, x_spec, y_spec) -> tuple:
  """(x [C, S, B, …], y [C, S, B, 1], rows int32 [C, S]): each client's
  batches, in order, zero-padded to the longest client and the largest
  batch; rows[k, s] the rows of client k's batch s (−1: no batch s; a
  batch of no rows still counts as a step, as in per-client training).

  A dataset built from arrays (`dataset_arrays.batches_of`) is read from
  them; any other, element by element."""
  clients = [_client_batches(d) for d in datasets]
  num_steps = max([len(rows) for _, _, rows in clients] + [0])
  size = max([n for _, _, rows in clients for n in rows] + [0])
  count = len(clients)
  x = np.zeros([count, num_steps, size] + x_spec.shape[1:].as_list(),
               x_spec.dtype.as_numpy_dtype)
  y = np.zeros([count, num_steps, size, 1], y_spec.dtype.as_numpy_dtype)
  rows = np.full([count, num_steps], -1, np.int32)
  for k, (client_x, client_y, client_rows) in enumerate(clients):
    start = 0
    for s, n in enumerate(client_rows):
      x[k, s, :n] = client_x[start:start + n]
      y[k, s, :n] = np.reshape(client_y[start:start + n], [n, 1])
      rows[k, s] = n
      start += n
  return x, y, rows


def _client_batches(dataset) -> tuple:
  """(x, y, rows of each batch) of one client's batched dataset: x and y its
  batches' rows concatenated."""
  recorded = dataset_arrays.batches_of(dataset)
  if recorded is not None:
    return recorded.x, recorded.y, recorded.row_counts()
  batches = list(dataset.as_numpy_iterator())
  if not batches:
    return np.zeros([0]), np.zeros([0]), []
  return (np.concatenate([b['x'] for b in batches]),
          np.concatenate([b['y'] for b in batches]),
          [len(b['x']) for b in batches])


def _is_empty(dataset) -> bool:
  recorded = dataset_arrays.elements_of(dataset)
  if recorded is not None:
    return not recorded
  recorded = dataset_arrays.batches_of(dataset)
  if recorded is not None:
    return not recorded.row_counts()
  cardinality = int(dataset.cardinality())
  if cardinality >= 0:
    return cardinality == 0
  return not any(True for _ in dataset.take(1))


def _read_context(dataset) -> dict:
  """A client's (seed, boost share, id) as `client_work`'s `read_context`
  reads it: its context dataset's last element, or (0, 0), 1, −1 when
  empty."""
  context = dict(seed=np.zeros([2], np.int64), boost_share=np.float32(1.0),
                 client_id=np.int64(-1))
  elements = dataset_arrays.elements_of(dataset)
  if elements is None:
    elements = dataset.as_numpy_iterator()
  for element in elements:
    context = element
  return context


class BenignClientMap:
  """The client-work computation's batched form (`runtime.in_process.
  batching.BatchedMap`): it takes the round's benign clients (an empty
  malicious dataset; with `malicious_train_as_benign`, the malicious ones
  too), trains them with one `BatchedBenignTrainer` call, and
  returns each one's flat result as the per-client computation's
  (`client_work.build_client_training`): the update −Δ, its weight, the
  unfinalized metrics, ‖Δ‖, the malicious flag and its boost share (0, 0 for
  a benign client), the marker."""

  def __init__(self, trainer: BatchedBenignTrainer, weight_by_client_id: bool,
               malicious_train_as_benign: bool = False):
    """`malicious_train_as_benign`: the strategy's malicious clients train
    exactly as benign ones (`attacks.base.benign_update`: ALIE's and IPM's,
    whose update is crafted later from the round's, and `NoAttack`), so they
    join the batch, flagged malicious with their boost share."""
    self.trainer = trainer
    self.weight_by_client_id = weight_by_client_id
    self.malicious_train_as_benign = malicious_train_as_benign
    self.marker = None  # set once registered
    self.num_weights = len(trainer.weight_specs)

  def _datasets(self, leaves):
    if len(leaves) != self.num_weights + 3:
      raise ValueError(f'Expected {self.num_weights} weights and 3 '
                       f'datasets, got {len(leaves)} leaves.')
    return leaves[self.num_weights:]

  def batchable(self, arguments) -> list:
    """The benign clients (an empty malicious dataset; every client with
    `malicious_train_as_benign`) whose initial weights are the first such
    client's: one broadcast value, the same objects (a client given other
    weights runs alone)."""
    chosen, reference = [], None
    for leaves in arguments:
      take = (self.malicious_train_as_benign or
              _is_empty(self._datasets(leaves)[1]))
      if take:
        weights = leaves[:self.num_weights]
        if reference is None:
          reference = weights
        take = all(a is b for a, b in zip(weights, reference))
      chosen.append(take)
    return chosen

  def run(self, arguments) -> list:
    initial = arguments[0][:self.num_weights]
    benign = [self._datasets(leaves)[0] for leaves in arguments]
    contexts = [_read_context(self._datasets(leaves)[2])
                for leaves in arguments]
    malicious = [not _is_empty(self._datasets(leaves)[1])
                 for leaves in arguments]
    seeds = np.stack([np.asarray(c['seed'], np.int64) for c in contexts])
    x, y, rows = pad_client_batches(benign, self.trainer.x_spec,
                                    self.trainer.y_spec)
    deltas, metrics, norms = self.trainer.train(initial, x, y, rows, seeds)
    deltas = [tf.unstack(-d, num=len(arguments)) for d in deltas]
    metrics = {name: tf.unstack(values, num=len(arguments))
               for name, values in metrics._asdict().items()}
    norms = tf.unstack(norms, num=len(arguments))
    results = []
    for k, context in enumerate(contexts):
      if self.weight_by_client_id:
        weight = tf.cast(context['client_id'] + 1, tf.float32)
      else:
        weight = tf.cast(metrics['examples'][k], tf.float32)
      leaves = [d[k] for d in deltas] + [weight]
      for _, names, dtypes in self.trainer.metric_layout:
        leaves += [tf.cast(metrics[n][k], dtype)
                   for n, dtype in zip(names, dtypes)]
      flag = 1.0 if malicious[k] else 0.0
      leaves += [norms[k], tf.constant(flag),
                 tf.constant(float(context['boost_share']) * flag, tf.float32),
                 tf.constant(self.marker)]
      results.append(leaves)
    return results
