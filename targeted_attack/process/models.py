"""Keras models for image input (EMNIST's 28×28×1, CIFAR's 32×32×3), wrapped
for TFF.

A dataset's images are [n, H, W] (grayscale) or [n, H, W, C]; the model sees
[n, H, W, C] (`model_input`), C = 1 for grayscale.
"""

import collections
import contextlib
import contextvars

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import legacy_keras

MODEL_NAMES = ('cnn', 'small_cnn', 'linear', 'cifar_cnn', 'vgg9', 'resnet18',
               'lstm', 'small_lstm', 'char_lstm')
# Next-word models: token ids [B, T] in, logits [B, T, V + 4] out.
TEXT_MODELS = ('lstm', 'small_lstm', 'char_lstm')
# Each model's architecture revision where it changed after runs were made
# (absent: 1). A study's definition hash (`reproduce.registration`) includes
# it, so runs of an earlier architecture read as another definition.
MODEL_REVISIONS = {
    # 2: 'same' padding (0.9.x); under 'valid' the image's last two rows and
    # columns did not reach the logits.
    'cifar_cnn': 2,
}
# EMNIST's images.
DIGITS_IMAGE_SHAPE = (28, 28)

# The int64[2] variable holding the seed of the local step, or None.
_STEP_SEED = contextvars.ContextVar('step_seed', default=None)


@contextlib.contextmanager
def step_seed(seed_variable: tf.Variable):
  """Within this scope, `StepSeededDropout` layers traced in training draw
  their masks from the value of `seed_variable` (int64[2]) when they run.

  A variable, not a tensor: TFF's Keras `forward_pass` is a `tf.function`
  traced once, and a variable read crosses into every graph that calls it.
  """
  token = _STEP_SEED.set(seed_variable)
  try:
    yield
  finally:
    _STEP_SEED.reset(token)


class StepSeededDropout(tf.keras.layers.Dropout):
  """Dropout whose training mask is a function of the local step's seed.

  Traced in a `step_seed` scope and in training, with s the variable's value: y = x · 1[u ≥ rate] / (1 − rate),
  u = stateless_uniform(shape(x), fold_in(s, layer seed)), so a client's masks
  depend only on its own seed, its pass and its step, whatever the loop kind
  and however many clients run at once. Outside such a scope: Keras' Dropout
  (a stateful draw), e.g. for a user calling the Keras model directly.
  """

  def call(self, inputs, training=None):
    seed_variable = _STEP_SEED.get()
    if seed_variable is None or training is not True:
      return super().call(inputs, training=training)
    return tf.nn.experimental.stateless_dropout(
        inputs, rate=self.rate, noise_shape=self._get_noise_shape(inputs),
        seed=tf.random.experimental.stateless_fold_in(
            seed_variable.read_value(), self.seed or 0))


def input_shape(image_shape) -> tuple:
  """The model's per-example input shape: (H, W, 1) for grayscale images
  `image_shape` (H, W), (H, W, C) as is; (T,) for token sequences."""
  image_shape = tuple(int(d) for d in image_shape)
  if len(image_shape) == 1:
    return image_shape
  if len(image_shape) == 2:
    return image_shape + (1,)
  if len(image_shape) == 3:
    return image_shape
  raise ValueError(f'images must be [H, W] or [H, W, C], got {image_shape}.')


def model_input(pixels):
  """Images [n, H, W] → [n, H, W, 1]; [n, H, W, C] as they are (NumPy or TF)."""
  rank = pixels.shape.rank if isinstance(pixels, tf.Tensor) else np.ndim(
      pixels)
  if rank == 3:
    return pixels[..., None]
  return pixels


def _vgg9_layers(num_classes, init):
  """VGG-9 of Wang et al. (2020, *Attack of the Tails*, CIFAR-10; FedMA's):
  conv 32, conv 64, pool, conv 128, conv 128, pool, conv 256, conv 256,
  pool (3×3 'same' convolutions, ReLU, 2×2 max-pools), dense 512, dense 512,
  dense `num_classes`: 3,491,530 parameters for 32×32×3 and 10 classes, the
  paper's count."""
  layers = []
  for i, width in enumerate((32, 64, 'pool', 128, 128, 'pool', 256, 256,
                             'pool')):
    if width == 'pool':
      layers.append(tf.keras.layers.MaxPool2D(2))
    else:
      layers.append(tf.keras.layers.Conv2D(
          width, 3, padding='same', activation='relu',
          kernel_initializer=init(i)))
  layers += [tf.keras.layers.Flatten(),
             tf.keras.layers.Dense(512, activation='relu',
                                   kernel_initializer=init(20)),
             tf.keras.layers.Dense(512, activation='relu',
                                   kernel_initializer=init(21)),
             tf.keras.layers.Dense(num_classes, kernel_initializer=init(22))]
  return layers


def create_keras_model(name: str = 'cnn', num_classes: int = 10,
                       seed: int = 0,
                       image_shape=DIGITS_IMAGE_SHAPE,
                       unroll: bool = False) -> tf.keras.Model:
  """Models for images of `image_shape` ([H, W] or [H, W, C]):

  `cnn`: the paper's CNN (Sun et al. 2019, Sec. 5; TFF's EMNIST CNN):
  conv 32·3×3, conv 64·3×3, max-pool 2×2, dropout .25, dense 128, dropout .5,
  dense `num_classes` (1.2M parameters on 28×28); the dropout layers are
  `StepSeededDropout`. `small_cnn`: the same shape with 8/16
  filters and 32 units, for fast runs. `linear`: softmax regression.
  `cifar_cnn`: a CNN for colour images at CPU scales: conv 16·3×3 ('same'),
  max-pool, conv 32·3×3 ('same'), max-pool, dropout .25, dense 64, dropout
  .5, dense `num_classes` (137k parameters on 32×32×3; before 0.9.1 'valid',
  80k, blind to the last two rows and columns). `vgg9`: Wang et al.'s VGG-9
  (`_vgg9_layers`). `resnet18`: the CIFAR ResNet-18 (a 3×3 stride-1 stem,
  no max-pool; basic blocks [2, 2, 2, 2] of 64–512 filters; 17 3×3
  convolutions and a dense layer) with group normalization, as federated
  CIFAR baselines use it (Hsieh et al. 2020; Reddi et al. 2021): batch
  normalization's running statistics are not trainable weights, which
  FedAvg here does not average. Built by TFF's `resnet_models` (v2,
  pre-activation).
  """
  legacy_keras.require_keras_2()
  init = lambda i: tf.keras.initializers.GlorotUniform(seed=seed + i)
  shape = input_shape(image_shape)
  if (name in TEXT_MODELS) != (len(shape) == 1):
    kind = lambda text: 'token sequences' if text else 'images'
    raise ValueError(
        f'`model`={name} takes {kind(name in TEXT_MODELS)}, the dataset has '
        f'{kind(len(shape) == 1)} of shape {shape}; the text models are '
        f'{", ".join(TEXT_MODELS)}.')
  if name == 'char_lstm':
    # TFF's Shakespeare model (McMahan et al. 2017): embedding 8, two LSTMs
    # of 256, dense to the characters.
    return tf.keras.Sequential([
        tf.keras.layers.Embedding(
            num_classes, 8, input_length=shape[0],
            embeddings_initializer=tf.keras.initializers.RandomUniform(
                -0.05, 0.05, seed=seed)),
        tf.keras.layers.LSTM(
            256, return_sequences=True, unroll=unroll,
            kernel_initializer=init(1),
            recurrent_initializer=tf.keras.initializers.Orthogonal(
                seed=seed + 2)),
        tf.keras.layers.LSTM(
            256, return_sequences=True, unroll=unroll,
            kernel_initializer=init(3),
            recurrent_initializer=tf.keras.initializers.Orthogonal(
                seed=seed + 4)),
        tf.keras.layers.Dense(num_classes, kernel_initializer=init(5)),
    ])
  if name in TEXT_MODELS:
    # TFF's Stack Overflow next-word model (embedding 96, LSTM 670, dense
    # 96); `small_lstm` 32 / 64 / 32 for CPU scales.
    embed, hidden = (96, 670) if name == 'lstm' else (32, 64)
    return tf.keras.Sequential([
        tf.keras.layers.Embedding(
            num_classes, embed, input_length=shape[0],
            embeddings_initializer=tf.keras.initializers.RandomUniform(
                -0.05, 0.05, seed=seed)),
        tf.keras.layers.LSTM(
            hidden, return_sequences=True, unroll=unroll,
            kernel_initializer=init(1),
            recurrent_initializer=tf.keras.initializers.Orthogonal(
                seed=seed + 2)),
        tf.keras.layers.Dense(embed, kernel_initializer=init(3)),
        tf.keras.layers.Dense(num_classes, kernel_initializer=init(4)),
    ])
  if name == 'resnet18':
    from tensorflow_federated.python.simulation.models import resnet_models  # pylint: disable=g-import-not-at-top
    tf.keras.utils.set_random_seed(seed)  # its initializers are unseeded
    return resnet_models.create_resnet(
        shape, num_classes, residual_block=resnet_models.ResidualBlock.BASIC,
        repetitions=[2, 2, 2, 2], initial_filters=64,
        initial_strides=(1, 1), initial_kernel_size=(3, 3),
        initial_max_pooling=False,
        norm_layer=resnet_models.NormLayer.GROUP_NORM)
  if name == 'linear':
    layers = [tf.keras.layers.Flatten(input_shape=shape),
              tf.keras.layers.Dense(num_classes, kernel_initializer=init(0))]
  elif name == 'vgg9':
    layers = [tf.keras.layers.InputLayer(input_shape=shape)] + _vgg9_layers(
        num_classes, init)
  elif name == 'cifar_cnn':
    # 'same' padding: with 'valid', the second pool drops the second
    # convolution's last row and column, and with them the image's last two
    # (a bottom-right trigger was 4 of its 9 pixels, seen at the edges only).
    layers = [
        tf.keras.layers.Conv2D(16, 3, padding='same', activation='relu',
                               input_shape=shape, kernel_initializer=init(0)),
        tf.keras.layers.MaxPool2D(2),
        tf.keras.layers.Conv2D(32, 3, padding='same', activation='relu',
                               kernel_initializer=init(1)),
        tf.keras.layers.MaxPool2D(2),
        StepSeededDropout(0.25, seed=seed),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(64, activation='relu',
                              kernel_initializer=init(2)),
        StepSeededDropout(0.5, seed=seed + 1),
        tf.keras.layers.Dense(num_classes, kernel_initializer=init(3)),
    ]
  elif name in ('cnn', 'small_cnn'):
    filters, units = ((32, 64), 128) if name == 'cnn' else ((8, 16), 32)
    layers = [
        tf.keras.layers.Conv2D(filters[0], 3, activation='relu',
                               input_shape=shape,
                               kernel_initializer=init(0)),
        tf.keras.layers.Conv2D(filters[1], 3, activation='relu',
                               kernel_initializer=init(1)),
        tf.keras.layers.MaxPool2D(2),
        StepSeededDropout(0.25, seed=seed),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(units, activation='relu',
                              kernel_initializer=init(2)),
        StepSeededDropout(0.5, seed=seed + 1),
        tf.keras.layers.Dense(num_classes, kernel_initializer=init(3)),
    ]
  else:
    raise ValueError(f'`model` must be one of {MODEL_NAMES}, got {name!r}.')
  return tf.keras.Sequential(layers)


def input_spec(image_shape=DIGITS_IMAGE_SHAPE) -> collections.OrderedDict:
  """The client batches' spec: x float32 [B, H, W, C], y int32 [B, 1]; for
  token sequences (`image_shape` (T,)) x and y int32 [B, T]."""
  shape = input_shape(image_shape)
  if len(shape) == 1:
    return collections.OrderedDict(x=tf.TensorSpec([None, *shape], tf.int32),
                                   y=tf.TensorSpec([None, *shape], tf.int32))
  return collections.OrderedDict(
      x=tf.TensorSpec([None, *shape], tf.float32),
      y=tf.TensorSpec([None, 1], tf.int32))


class MaskedSparseCrossEntropy(tf.keras.losses.Loss):
  """Next-word loss: the mean cross-entropy of the logits over the target
  tokens that are not PAD (0): Σ_t m_t·CE_t / Σ_t m_t, m_t = 1[y_t ≠ 0]."""

  def __init__(self, name='masked_sparse_cross_entropy', **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    return tf.keras.losses.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=True)

  def __call__(self, y_true, y_pred, sample_weight=None):
    del sample_weight
    y_true = tf.cast(y_true, tf.int32)
    mask = tf.cast(tf.not_equal(y_true, 0), y_pred.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(self.call(y_true, y_pred) *
                                               mask), tf.reduce_sum(mask))


class MaskedTokenAccuracy(tf.keras.metrics.Mean):
  """Next-word training accuracy over the non-PAD targets."""

  def __init__(self, name='masked_token_accuracy', dtype=None):
    super().__init__(name=name, dtype=dtype)

  def update_state(self, y_true, y_pred, sample_weight=None):
    del sample_weight
    y_true = tf.cast(y_true, tf.int64)
    correct = tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), y_true),
                      self.dtype)
    return super().update_state(
        correct, sample_weight=tf.cast(tf.not_equal(y_true, 0), self.dtype))


INPUT_SPEC = input_spec()


def build_model_fn(name: str = 'cnn', num_classes: int = 10, seed: int = 0,
                   image_shape=DIGITS_IMAGE_SHAPE, unroll: bool = False):
  """A no-arg `model_fn` returning a `tff.learning.models.VariableModel`
  for images of `image_shape`; `unroll`: recurrent layers unrolled over the
  T steps (the same weights and function; client DP-SGD's per-sentence
  Jacobian needs it inside TFF's graphs)."""
  create_keras_model(name, num_classes, seed, image_shape)  # validates early

  def model_fn():
    if name in TEXT_MODELS:
      loss, metric = MaskedSparseCrossEntropy(), MaskedTokenAccuracy()
    else:
      loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
      metric = tf.keras.metrics.SparseCategoricalAccuracy()
    return tff.learning.models.from_keras_model(
        create_keras_model(name, num_classes, seed, image_shape, unroll),
        loss=loss, input_spec=input_spec(image_shape), metrics=[metric])

  return model_fn
