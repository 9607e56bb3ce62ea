"""TFF's worker_binary is reaped: piped output terminates, no worker is left."""

import os
import subprocess
import sys

import psutil

from targeted_attack import runtime

_CHILD = r'''
import os, psutil
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow_federated as tff
from targeted_attack import runtime
runtime.set_local_execution_context()
double = tff.tensorflow.computation(lambda x: x * 2.0, np.float32)
assert double(np.float32(2.0)) == 4.0
print("WORKERS", " ".join(str(p.pid) for p in runtime._worker_children()), flush=True)
'''


def test_piped_run_terminates_and_leaves_no_worker():
  # stdout is a pipe, as with `python ... | tee log`: communicate() returns only
  # once every holder of the pipe (a leaked worker included) has closed it.
  child = subprocess.Popen([sys.executable, '-c', _CHILD],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           cwd=os.path.dirname(os.path.dirname(__file__)))
  out, _ = child.communicate(timeout=120)
  text = out.decode()
  assert child.returncode == 0, text
  line = [l for l in text.splitlines() if l.startswith('WORKERS')][0]
  pids = [int(p) for p in line.split()[1:]]
  assert pids, 'the child should have started a worker_binary'
  for pid in pids:
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == (
        psutil.STATUS_ZOMBIE), f'worker {pid} outlived its parent'


def test_reap_workers_stops_own_worker_binary_children():
  fake = subprocess.Popen(['sleep', '60'])
  try:
    # Only processes named worker_binary are reaped, nothing else.
    assert fake.pid not in [p.pid for p in runtime._worker_children()]
  finally:
    fake.kill()
    fake.wait()
