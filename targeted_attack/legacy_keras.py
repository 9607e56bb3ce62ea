"""Keras 2 for TFF 0.87, on every supported TensorFlow.

TFF 0.87's `from_keras_model` needs Keras 2. TensorFlow 2.14 (the released
stack) has it as `tf.keras`; TensorFlow >= 2.16 (the current stack) gives
Keras 3 unless `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is first
imported, and then serves the `tf-keras` package as `tf.keras`.
`import targeted_attack` sets it (unless already set); code that imported
TensorFlow first gets `KerasVersionError` when it builds a model.
"""

import os

LEGACY_KERAS_ENV = 'TF_USE_LEGACY_KERAS'


class KerasVersionError(ImportError):
  """`tf.keras` is Keras 3, which TFF 0.87 cannot use."""


def select_legacy_keras() -> None:
  """Sets TF_USE_LEGACY_KERAS=1 unless set (effective before TF loads)."""
  os.environ.setdefault(LEGACY_KERAS_ENV, '1')


def keras_major_version() -> int:
  """The major version of `tf.keras` (imports TensorFlow)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  version = getattr(tf.keras, 'version', None)  # Keras 3 has version()
  return int(version().split('.')[0]) if callable(version) else 2


def require_keras_2() -> None:
  """Raises `KerasVersionError`, saying what to do, if tf.keras is Keras 3."""
  major = keras_major_version()
  if major == 2:
    return
  loaded_first = 'TensorFlow was imported before targeted_attack'
  if os.environ.get(LEGACY_KERAS_ENV) not in (None, '1', 'true', 'True'):
    loaded_first = f'{LEGACY_KERAS_ENV}={os.environ[LEGACY_KERAS_ENV]}'
  raise KerasVersionError(
      f'tf.keras is Keras {major}, which TFF 0.87 cannot use ({loaded_first}). '
      f'Set {LEGACY_KERAS_ENV}=1 before TensorFlow is first imported (import '
      'targeted_attack first, or restart the kernel and run the notebook\'s '
      'first cell first), with tf-keras installed at your TensorFlow\'s '
      'version (pip install tf-keras==<tensorflow version>).')
