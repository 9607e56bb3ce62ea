"""TensorFlow's devices for a run: GPU memory growth, op determinism, and the
GPUs the in-process context spreads a round's clients over.

TensorFlow fixes its devices when it first uses them, so `configure_devices`
runs before any computation (the binaries call it before setting the
context); a setting it can no longer apply is said on stderr, not ignored
silently.
"""

import sys
from typing import List


def configure_devices(memory_growth: bool = True,
                      op_determinism: bool = False) -> List[str]:
  """Applies the settings; returns the names of the GPUs TensorFlow sees.

  `memory_growth`: each GPU's memory is allocated as needed
  (`tf.config.experimental.set_memory_growth`), so several runs (a sweep's
  Ray tasks) can share one; False keeps TensorFlow's default (all of it at
  start). `op_determinism`: `tf.config.experimental.enable_op_determinism()`
  (the same results run to run on a GPU, where kernels otherwise may
  reduce in any order; slower). Neither changes a CPU-only run's results.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gpus = tf.config.list_physical_devices('GPU')
  for gpu in gpus:
    try:
      if tf.config.experimental.get_memory_growth(gpu) != memory_growth:
        tf.config.experimental.set_memory_growth(gpu, memory_growth)
    except RuntimeError as e:  # TensorFlow has initialised the GPU already
      print(f'targeted_attack: warning: GPU memory growth={memory_growth} not '
            f'applied: {e}', file=sys.stderr, flush=True)
      break
  if op_determinism:
    tf.config.experimental.enable_op_determinism()
  else:
    # A previous run in this process (a sweep's batch) may have enabled it.
    from tensorflow.python.framework import config as tf_config  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    if tf_config.is_op_determinism_enabled():
      tf_config.disable_op_determinism()
  return [device.name for device in tf.config.list_logical_devices('GPU')]
