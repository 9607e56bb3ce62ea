"""Keras models for EMNIST-shaped input (28×28×1), wrapped for TFF."""

import collections

import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import legacy_keras

MODEL_NAMES = ('cnn', 'small_cnn', 'linear')


def create_keras_model(name: str = 'cnn', num_classes: int = 10,
                       seed: int = 0) -> tf.keras.Model:
  """`cnn`: the paper's CNN (Sun et al. 2019, Sec. 5; TFF's EMNIST CNN):
  conv 32·3×3, conv 64·3×3, max-pool 2×2, dropout .25, dense 128, dropout .5,
  dense `num_classes` (1.2M parameters). `small_cnn`: the same shape with 8/16
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
        tf.keras.layers.Dropout(0.25, seed=seed),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(units, activation='relu',
                              kernel_initializer=init(2)),
        tf.keras.layers.Dropout(0.5, seed=seed + 1),
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
