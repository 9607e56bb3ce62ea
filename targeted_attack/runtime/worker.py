"""TFF's C++ `worker_binary`: reaped at exit and on SIGTERM/SIGHUP, and two
fixes for TFF 0.87's local C++ context (a start-up race, a hang when a
context is dropped).

TFF's local C++ context starts a `worker_binary` subprocess that listens on a
port (all interfaces, no authentication) and inherits our stdout/stderr. TFF
only stops it in a `__del__` that may never run, so a worker can outlive the
Python process and keep `python ... | tee log` from terminating. Importing
`targeted_attack` registers `reap_workers` at interpreter exit; binaries also
call `install_signal_handlers()` so SIGTERM/SIGHUP end in a normal exit.
"""

import atexit
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import types

import psutil


WORKER_BINARY_NAME = 'worker_binary'


_registered = False


def _worker_children() -> list:
  """This process's descendants that run TFF's `worker_binary`."""
  try:
    children = psutil.Process(os.getpid()).children(recursive=True)
  except psutil.Error:
    return []
  workers = []
  for child in children:
    try:
      cmdline = child.cmdline()
    except psutil.Error:
      continue
    if cmdline and os.path.basename(cmdline[0]) == WORKER_BINARY_NAME:
      workers.append(child)
  return workers


def _release_tff_context() -> None:
  """Drops TFF's default context while the interpreter is still intact.

  TFF's service manager then runs its `__del__` (which signals and waits for
  its, by now stopped, worker) now, rather than failing during interpreter
  teardown.
  """
  if 'tensorflow_federated' not in sys.modules:
    return
  # pylint: disable=g-import-not-at-top
  from tensorflow_federated.python.core.impl.context_stack import context_stack_impl
  from tensorflow_federated.python.core.impl.context_stack import runtime_error_context
  # pylint: enable=g-import-not-at-top
  context_stack_impl.context_stack.set_default_context(
      runtime_error_context.RuntimeErrorContext())
  gc.collect()


def _stopped(process: psutil.Process) -> bool:
  try:
    return process.status() == psutil.STATUS_ZOMBIE
  except psutil.NoSuchProcess:
    return True


def _signal_until_stopped(workers, signum, timeout_s) -> list:
  """Sends `signum`; returns the workers still running after `timeout_s`."""
  for worker in workers:
    try:
      worker.send_signal(signum)
    except psutil.Error:
      pass
  deadline = time.monotonic() + timeout_s
  running = list(workers)
  while running and time.monotonic() < deadline:
    running = [w for w in running if not _stopped(w)]
    if running:
      time.sleep(0.05)
  return running


def reap_workers(timeout_s: float = 5.0) -> int:
  """Stops every `worker_binary` this process started; returns how many.

  SIGINT (what TFF itself sends), then SIGKILL for any still running after
  `timeout_s`. The stopped workers are left as zombies for TFF's own
  `__del__` to signal and reap when its context is released (TFF's `__del__`
  would otherwise wait forever on a worker that ignores SIGINT); any zombie
  left after that is reaped here.
  """
  workers = _worker_children()
  running = _signal_until_stopped(workers, signal.SIGINT, timeout_s)
  _signal_until_stopped(running, signal.SIGKILL, timeout_s)
  try:
    _release_tff_context()
  except Exception:  # pylint: disable=broad-except
    pass
  for worker in workers:
    try:
      os.waitpid(worker.pid, os.WNOHANG)
    except ChildProcessError:
      pass  # already reaped by TFF
  return len(workers)


def register_reaper() -> None:
  """Registers `reap_workers` to run at interpreter exit (once)."""
  global _registered
  if not _registered:
    atexit.register(reap_workers)
    _registered = True


def install_signal_handlers() -> None:
  """Turns SIGTERM and SIGHUP into `SystemExit`, so the atexit reaper runs.

  Only handlers still at their default are replaced, and only from the main
  thread (Python allows no other).
  """
  if threading.current_thread() is not threading.main_thread():
    return

  def _exit(signum, frame):
    del frame
    raise SystemExit(128 + signum)

  for signum in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(signum) in (signal.SIG_DFL, None):
      signal.signal(signum, _exit)


# ---------------------------------------------------------------------------
# A fix for a start-up race in TFF's local C++ context (TFF 0.87, gRPC 1.60).
#
# TFF starts its `worker_binary`, opens a gRPC channel to it and waits,
# polling `RemoteExecutorGrpcStub.is_ready`, which reads a status set by a
# connectivity subscription. gRPC asks to connect only once: if that first
# attempt comes before the worker listens (a loaded machine, several runs
# starting at once), the channel falls back to IDLE, never retries, and TFF
# waits forever. `patch_stub_readiness` makes `is_ready` ask the channel to
# connect again (`grpc.channel_ready_future`) whenever it is not ready.

_PATCHED = []


def patch_stub_readiness(timeout_s: float = 0.5) -> None:
  """Idempotently patches `RemoteExecutorGrpcStub.is_ready`."""
  if _PATCHED:
    return
  # pylint: disable=g-import-not-at-top
  import grpc
  from tensorflow_federated.python.core.impl.executors import remote_executor_grpc_stub
  # pylint: enable=g-import-not-at-top
  stub_class = remote_executor_grpc_stub.RemoteExecutorGrpcStub
  original = stub_class.is_ready

  def is_ready(self) -> bool:
    if original.fget(self):
      return True
    try:
      grpc.channel_ready_future(self._channel).result(timeout=timeout_s)  # pylint: disable=protected-access
    except grpc.FutureTimeoutError:
      return False
    return True

  stub_class.is_ready = property(is_ready)
  _PATCHED.append(original)


# ---------------------------------------------------------------------------
# A fix for a hang when a C++ context is dropped (TFF 0.87).
#
# TFF's `ServiceManager.__del__` stops its worker with SIGINT and then waits
# for it with no timeout. A worker that does not act on SIGINT (one left
# stopped, or busy shutting its gRPC server down) makes that wait, and so
# whatever dropped the context (replacing TFF's default context, a garbage
# collection), hang forever. `patch_worker_wait` gives TFF's module a `Popen`
# whose untimed `wait()` kills the worker after `WORKER_STOP_TIMEOUT_S`.

WORKER_STOP_TIMEOUT_S = 5.0
_WAIT_PATCHED = []


class _BoundedWaitPopen(subprocess.Popen):
  """A `Popen` whose `wait()` without a timeout ends: after
  `WORKER_STOP_TIMEOUT_S` it sends SIGKILL, then reaps."""

  def wait(self, timeout=None):
    if timeout is not None:
      return super().wait(timeout)
    try:
      return super().wait(WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
      self.kill()
      return super().wait()


class _SubprocessWithBoundedWait(types.ModuleType):
  """`subprocess`, its `Popen` replaced by `_BoundedWaitPopen`."""
  Popen = _BoundedWaitPopen

  def __getattr__(self, name):
    return getattr(subprocess, name)


def patch_worker_wait() -> None:
  """Idempotently gives TFF's executor factory `_BoundedWaitPopen`."""
  if _WAIT_PATCHED:
    return
  # pylint: disable=g-import-not-at-top
  from tensorflow_federated.python.core.impl.executor_stacks import executor_factory
  # pylint: enable=g-import-not-at-top
  _WAIT_PATCHED.append(executor_factory.subprocess)
  executor_factory.subprocess = _SubprocessWithBoundedWait('subprocess')
