"""TensorFlow's devices for a run: GPU memory growth, op determinism, the
GPUs the in-process context spreads a round's clients over, and the kernels
a run's numbers come from (`numerics`).

TensorFlow fixes its devices when it first uses them, so `configure_devices`
runs before any computation (the binaries call it before setting the
context); a setting it can no longer apply is said on stderr, not ignored
silently.
"""

import os
import platform
import sys
from typing import List, Optional


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


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _gpu_names(tf) -> List[str]:
  names = []
  for gpu in tf.config.list_physical_devices('GPU'):
    try:
      details = tf.config.experimental.get_device_details(gpu)
    except (ValueError, RuntimeError):
      details = {}
    name = details.get('device_name') or gpu.name
    capability = details.get('compute_capability')
    names.append(f'{name} (compute {capability[0]}.{capability[1]})'
                 if capability else name)
  return names


def numerics(execution_context: Optional[str] = None) -> dict:
  """What a run's floating-point results depend on beyond its code and
  settings: TensorFlow's version, whether its oneDNN kernels are on (by
  default only on CPUs with AVX-512 and the like; `TF_ENABLE_ONEDNN_OPTS`),
  op determinism, the device (the GPUs' models, else the CPU's), and the
  execution context (under 'tff_cpp' TFF's C++ worker trains, with its own
  TensorFlow build, not this process's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.framework import config as tf_config  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    onednn = bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    onednn = None
  gpus = _gpu_names(tf)
  return dict(execution_context=execution_context,
              tensorflow=tf.__version__, onednn=onednn,
              onednn_env=os.environ.get('TF_ENABLE_ONEDNN_OPTS'),
              op_determinism=bool(tf_config.is_op_determinism_enabled()),
              device=', '.join(gpus) if gpus else f'CPU: {_cpu_model()}',
              python=platform.python_version())


def numerics_text(record: dict) -> str:
  """`numerics()` in a few words: 'TensorFlow 2.14.1, oneDNN on, CPU: …'
  ("TFF's C++ worker, CPU: …" for a run under it)."""
  if record.get('execution_context') == 'tff_cpp':
    return f"TFF's C++ worker, {record.get('device', 'device unknown')}"
  onednn = {True: 'oneDNN on', False: 'oneDNN off'}.get(record.get('onednn'),
                                                        'oneDNN unknown')
  words = [f'TensorFlow {record.get("tensorflow", "?")}', onednn]
  if record.get('op_determinism'):
    words.append('op determinism')
  return ', '.join(words + [record.get('device', 'device unknown')])
