"""Keras models for EMNIST-shaped input (28×28×1), wrapped for TFF."""

import collections
import contextlib
import contextvars

import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import legacy_keras

MODEL_NAMES = ('cnn', 'small_cnn', 'linear')

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


def create_keras_model(name: str = 'cnn', num_classes: int = 10,
                       seed: int = 0) -> tf.keras.Model:
  """`cnn`: the paper's CNN (Sun et al. 2019, Sec. 5; TFF's EMNIST CNN):
  conv 32·3×3, conv 64·3×3, max-pool 2×2, dropout .25, dense 128, dropout .5,
  dense `num_classes` (1.2M parameters); the dropout layers are
  `StepSeededDropout`. `small_cnn`: the same shape with 8/16
  filters and 32 units, for fast runs. `linear`: softmax regression.
  """
  legacy_keras.require_keras_2()
  init = lambda i: tf.keras.initializers.GlorotUniform(seed=seed + i)
  if name == 'linear':
    layers = [tf.keras.layers.Flatten(input_shape=(28, 28, 1)),
              tf.keras.layers.Dense(num_classes, kernel_initializer=init(0))]
  elif name in ('cnn', 'small_cnn'):
    filters, units = ((32, 64), 128) if name == 'cnn' else ((8, 16), 32)
    layers = [
        tf.keras.layers.Conv2D(filters[0], 3, activation='relu',
                               input_shape=(28, 28, 1),
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


INPUT_SPEC = collections.OrderedDict(
    x=tf.TensorSpec([None, 28, 28, 1], tf.float32),
    y=tf.TensorSpec([None, 1], tf.int32))


def build_model_fn(name: str = 'cnn', num_classes: int = 10, seed: int = 0):
  """A no-arg `model_fn` returning a `tff.learning.models.VariableModel`."""
  create_keras_model(name, num_classes, seed)  # validates `name` early

  def model_fn():
    return tff.learning.models.from_keras_model(
        create_keras_model(name, num_classes, seed),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=INPUT_SPEC,
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])

  return model_fn
