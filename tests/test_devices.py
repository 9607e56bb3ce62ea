"""Device settings: GPU memory growth, op determinism, and clients spread
over devices (two logical CPUs stand in for GPUs: TensorFlow fixes its
devices at start, so each check runs in a fresh interpreter)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SPREAD = r'''
import numpy as np
import targeted_attack
import tensorflow as tf
import tensorflow_federated as tff
from targeted_attack import runtime
from targeted_attack.runtime import in_process

cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
devices = [d.name for d in tf.config.list_logical_devices('CPU')]
assert len(devices) == 2, devices
assert runtime.configure_devices() == []  # no GPU here

# Item k of a concurrent map runs under device k mod 2.
context = in_process.create_in_process_context(max_concurrency=4,
                                               client_devices=devices)
placed = context.parallel_map(lambda x: tf.identity(tf.constant(x)).device,
                              range(5), 'test')
assert [p.endswith(f'CPU:{k % 2}') for k, p in enumerate(placed)] == [True] * 5, placed

@tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
def squares(x):
  return tff.federated_map(
      tff.tensorflow.computation(lambda v: v * v + 1.0, np.float32), x)

results = []
for spread in (devices, None):
  runtime.set_local_execution_context(kind='in_process', client_devices=spread)
  results.append(squares([1.0, 2.0, 3.0, 4.0]))
assert results[0] == results[1] == [2.0, 5.0, 10.0, 17.0], results

# Op determinism: off, then on.
from tensorflow.python.framework import config as tf_config
assert not tf_config.is_op_determinism_enabled()
runtime.configure_devices(memory_growth=True, op_determinism=True)
assert tf_config.is_op_determinism_enabled()
print('OK')
'''


def _run(code):
  """`code` in a fresh interpreter; it prints OK when its checks pass."""
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0 and 'OK' in result.stdout, result.stderr[-3000:]


def test_clients_spread_over_devices_and_op_determinism():
  _run(_SPREAD)
