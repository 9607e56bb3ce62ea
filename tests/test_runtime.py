"""TFF's worker_binary: reaped (piped output ends, none is left), and kept in
a private network namespace that nothing outside can reach."""

import os
import queue
import socket
import subprocess
import sys
import threading

import numpy as np
import psutil
import pytest
import tensorflow_federated as tff

from targeted_attack import runtime

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WARNING = 'targeted_attack: warning:'

_CHILD = r'''
import os, psutil
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow_federated as tff
from targeted_attack import runtime
runtime.set_local_execution_context(kind="tff_cpp")
double = tff.tensorflow.computation(lambda x: x * 2.0, np.float32)
assert double(np.float32(2.0)) == 4.0
print("WORKERS", " ".join(str(p.pid) for p in runtime._worker_children()), flush=True)
'''

# Sets a context (argv[1]: isolate, off, or grpc_first: isolate with grpcio
# already running), runs a computation, checks that the main thread still
# reaches argv[2]:argv[3], reports, then runs until stdin closes.
_SERVE = r'''
import os, socket, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow_federated as tff
from targeted_attack import runtime
mode, host, host_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "grpc_first":
  import grpc
  channel = grpc.insecure_channel("localhost:1")  # starts gRPC's threads
isolated = runtime.set_local_execution_context(kind="tff_cpp", isolate_network=mode != "off")
if mode == "grpc_first":
  assert not runtime.set_local_execution_context(kind="tff_cpp")  # warns only once
double = tff.tensorflow.computation(lambda x: x * 2.0, np.float32)
assert double(np.float32(2.0)) == 4.0
(worker,) = runtime._worker_children()
port = [a for a in worker.cmdline() if a.startswith("--port=")][0][7:]
socket.create_connection((host, host_port), timeout=5).close()
print("READY", int(isolated), worker.pid, port, flush=True)
sys.stdin.read()
'''


# Isolates, forks the way `subprocess` does with a preexec_fn (gRPC's fork
# handlers then restart its I/O threads from the forking thread), checks the
# child kept the host network, then needs a fresh worker reachable again.
_FORK = r'''
import os, subprocess
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow_federated as tff
from targeted_attack import runtime
isolated = runtime.set_local_execution_context(kind="tff_cpp", isolate_network=True)
double = tff.tensorflow.computation(lambda x: x * 2.0, np.float32)
assert double(np.float32(2.0)) == 4.0
child_netns = subprocess.run(["readlink", "/proc/self/ns/net"],
                             preexec_fn=lambda: None, capture_output=True,
                             text=True, check=True).stdout.strip()
assert child_netns == os.readlink("/proc/self/ns/net"), child_netns
runtime.reap_workers()
runtime.set_local_execution_context(kind="tff_cpp", isolate_network=True)
assert double(np.float32(3.0)) == 6.0
print("ISOLATED", int(isolated), flush=True)
'''


def _host_ipv4():
  """A non-loopback IPv4 address of this machine, or None."""
  for addrs in psutil.net_if_addrs().values():
    for addr in addrs:
      if addr.family == socket.AF_INET and not addr.address.startswith('127.'):
        return addr.address
  return None


def _reachable(host, port) -> bool:
  try:
    socket.create_connection((host, port), timeout=2).close()
    return True
  except OSError:
    return False


class _Server:
  """A child process serving a TFF context until `stop()`."""

  def __init__(self, mode, host, host_port):
    self.process = subprocess.Popen(
        [sys.executable, '-c', _SERVE, mode, host, str(host_port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=_ROOT, text=True)
    self.lines = []
    self._report = None
    self._ready = queue.Queue()
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self):
    for line in self.process.stdout:
      self.lines.append(line.rstrip('\n'))
      if line.startswith('READY'):
        self._ready.put(line.split()[1:])
    self._ready.put(None)  # EOF

  def report(self, timeout_s=120.0):
    """(isolated, worker pid, worker port), once the child is serving."""
    if self._report is None:
      fields = self._ready.get(timeout=timeout_s)
      assert fields, 'child failed:\n' + '\n'.join(self.lines)
      self._report = (fields[0] == '1', int(fields[1]), int(fields[2]))
    return self._report

  def ask_to_stop(self):
    """Closes the child's input, on which it ends (`stop` waits for it)."""
    if not self.process.stdin.closed:
      self.process.stdin.close()

  def stop(self):
    """Ends the child; returns whether its worker is gone."""
    self.ask_to_stop()
    try:
      self.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
    if self._report is None:
      return True
    try:
      worker = psutil.Process(self._report[1])
      return worker.status() == psutil.STATUS_ZOMBIE or (
          os.path.basename(worker.exe()) != runtime.WORKER_BINARY_NAME)
    except psutil.Error:
      return True


@pytest.fixture(scope='module')
def servers():
  """Children serving isolated, unisolated and grpc_first contexts, at once."""
  ip = _host_ipv4()
  listener = socket.socket()
  listener.bind((ip or '127.0.0.1', 0))
  listener.listen(16)
  started = {mode: _Server(mode, *listener.getsockname())
             for mode in ('isolate', 'off', 'grpc_first')}
  try:
    yield ip, started
  finally:
    for server in started.values():  # all at once: each takes seconds
      server.ask_to_stop()
    gone = {mode: s.stop() for mode, s in started.items()}
    listener.close()
  assert all(gone.values()), f'workers left running: {gone}'


def test_piped_run_terminates_and_leaves_no_worker():
  # stdout is a pipe, as with `python ... | tee log`: communicate() returns only
  # once every holder of the pipe (a leaked worker included) has closed it.
  child = subprocess.Popen([sys.executable, '-c', _CHILD],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           cwd=_ROOT)
  out, _ = child.communicate(timeout=120)
  text = out.decode()
  assert child.returncode == 0, text
  line = [l for l in text.splitlines() if l.startswith('WORKERS')][0]
  pids = [int(p) for p in line.split()[1:]]
  assert pids, 'the child should have started a worker_binary'
  for pid in pids:
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == (
        psutil.STATUS_ZOMBIE), f'worker {pid} outlived its parent'


# Drops a C++ context whose worker does not act on SIGINT (stopped): TFF's
# `__del__` sends SIGINT and waited forever; it now kills it after the
# bounded wait and returns.
_DROP_STOPPED_WORKER = r'''
import gc, os, signal, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow_federated as tff
from targeted_attack import runtime
runtime.set_local_execution_context(kind="tff_cpp")
double = tff.tensorflow.computation(lambda x: x * 2.0, np.float32)
assert double(np.float32(2.0)) == 4.0
(worker,) = runtime._worker_children()
worker.send_signal(signal.SIGSTOP)
start = time.monotonic()
runtime.set_local_execution_context(kind="in_process")   # drops the C++ one
gc.collect()
print("DROPPED", worker.pid, round(time.monotonic() - start, 1), flush=True)
assert double(np.float32(3.0)) == 6.0                     # in process now
'''


def test_dropping_a_context_whose_worker_ignores_sigint_does_not_hang():
  child = subprocess.run([sys.executable, '-c', _DROP_STOPPED_WORKER],
                         capture_output=True, text=True, cwd=_ROOT,
                         timeout=120)
  assert child.returncode == 0, child.stderr[-3000:]
  (line,) = [l for l in child.stdout.splitlines() if l.startswith('DROPPED')]
  _, pid, seconds = line.split()
  # Killed after the bounded wait, and reaped (by TFF's own `wait`).
  assert float(seconds) >= runtime.WORKER_STOP_TIMEOUT_S - 0.5
  assert not psutil.pid_exists(int(pid)) or psutil.Process(
      int(pid)).status() == psutil.STATUS_ZOMBIE


# CI sets REQUIRE_ISOLATION=1 (it runs as root, where isolation is
# permitted): a test that would skip for want of isolation fails instead.
_REQUIRE_ISOLATION = os.environ.get('REQUIRE_ISOLATION') == '1'


def _without_isolation(reason: str):
  if _REQUIRE_ISOLATION:
    pytest.fail(f'REQUIRE_ISOLATION=1 but {reason}')
  pytest.skip(reason)


def test_isolated_context_survives_a_fork_and_the_child_keeps_the_network():
  # Without moving the forking thread inside, this waited forever.
  child = subprocess.run([sys.executable, '-c', _FORK], capture_output=True,
                         text=True, cwd=_ROOT, timeout=120)
  assert child.returncode == 0, child.stderr[-3000:]
  (line,) = [l for l in child.stdout.splitlines() if l.startswith('ISOLATED')]
  if line != 'ISOLATED 1':
    _without_isolation(f'the child ran unisolated ({line}): {child.stderr}')


def test_reap_workers_stops_a_live_worker_and_nothing_else():
  # Runs before the `servers` children exist: their workers would be reaped
  # too (reap_workers covers all descendants).
  previous = tff.framework.get_context_stack().current
  runtime.set_local_execution_context(kind='tff_cpp')  # whatever the default
  other = subprocess.Popen(['sleep', '60'])
  try:
    double = tff.tensorflow.computation(lambda x: x * 2.0, np.float32)
    assert double(np.float32(2.0)) == 4.0  # starts this process's worker
    workers = runtime._worker_children()
    assert workers, 'a computation should have started a worker_binary'
    assert all(w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert other.pid not in [w.pid for w in workers]

    assert runtime.reap_workers() == len(workers)
    for worker in workers:
      assert not worker.is_running(), f'worker {worker.pid} still running'
    assert not runtime._worker_children()
    assert other.poll() is None, 'only worker_binary processes are reaped'
  finally:
    other.kill()
    other.wait()
    runtime.set_local_execution_context(kind="tff_cpp")  # reaping released the context
  assert double(np.float32(3.0)) == 6.0  # a fresh worker serves again
  from targeted_attack.runtime import in_process as in_process_context  # pylint: disable=g-import-not-at-top
  if isinstance(previous, in_process_context.InProcessContext):
    tff.framework.set_default_context(previous)   # conftest's, as it was
  # (A C++ default's worker was reaped above: the fresh context replaces it.)


def test_isolated_worker_is_unreachable_from_outside(servers):
  ip, started = servers
  server = started['isolate']
  isolated, pid, port = server.report()
  if not isolated:
    warning = [l for l in server.lines if l.startswith(_WARNING)]
    _without_isolation(f'network isolation not permitted here: {warning}')
  # Not through this machine's address, nor even through its loopback.
  for host in ([ip] if ip else []) + ['127.0.0.1']:
    assert not _reachable(host, port), f'worker reachable at {host}:{port}'
  # The worker has its own namespace; the child's main thread kept the host
  # network (it reached our listener, as a dataset download would).
  assert os.readlink(f'/proc/{pid}/ns/net') != os.readlink(
      f'/proc/{server.process.pid}/ns/net')


def test_unisolated_worker_is_reachable_from_outside(servers):
  # The control: the same probe reaches a worker that was not isolated.
  ip, started = servers
  if ip is None:
    pytest.skip('this machine has no non-loopback IPv4 address')
  isolated, _, port = started['off'].report()
  assert not isolated
  assert _reachable(ip, port), f'unisolated worker not reachable at {ip}'


def test_isolation_skipped_with_one_warning_when_grpc_already_runs(servers):
  _, started = servers
  server = started['grpc_first']
  isolated, _, _ = server.report()  # the computation ran all the same
  assert not isolated
  warnings = [l for l in server.lines if l.startswith(_WARNING)]
  assert len(warnings) == 1, server.lines
  assert 'all interfaces' in warnings[0] and 'iptables' in warnings[0]
