"""TFF execution context set-up, and reaping of TFF's C++ `worker_binary`.

TFF's local C++ context starts a `worker_binary` subprocess that listens on a
port (all interfaces, no authentication) and inherits our stdout/stderr. TFF
only stops it in a `__del__` that may never run, so a worker can outlive the
Python process and keep `python ... | tee log` from terminating. Importing
`targeted_attack` registers `reap_workers` at interpreter exit; binaries also
call `install_signal_handlers()` so SIGTERM/SIGHUP end in a normal exit.

Network containment: by default `set_local_execution_context()` creates TFF's
context from a helper thread that has entered a private network namespace
with only a loopback interface (Linux; needs CAP_SYS_ADMIN: root, or a user
namespace such as `unshare --user --map-root-user`). A namespace belongs to a
thread: TFF's event-loop thread, the worker it spawns and gRPC's I/O threads
are inside, so nothing outside (other machines, or other processes here) can
reach the worker's port, while the calling thread and the threads started
before keep the host network: dataset downloads and Ray keep working (checked
in a Ray task). Caveats:
- grpcio has one set of I/O threads per process, in the namespace of the
  thread that starts them. Isolation starts them inside and keeps them there,
  so other grpcio clients in this process may reach only its loopback.
  If grpcio already runs outside, isolation is skipped (TFF would hang).
- Without the privilege (or off Linux) one warning goes to stderr and the
  worker runs unisolated. unshare(CLONE_NEWUSER) cannot be called here: it
  needs a single-threaded process, and TF has threads.
Opt out with `isolate_network=False` or TARGETED_ATTACK_ISOLATE_NETWORK=0.
"""

import atexit
import ctypes
import errno
import fcntl
import gc
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import types
from typing import Optional

import psutil

WORKER_BINARY_NAME = 'worker_binary'
# The kinds of `set_local_execution_context`: TFF's computations interpreted
# in this process, TF graphs run by TF here (`in_process_context`), or TFF's
# C++ `worker_binary` over gRPC.
EXECUTION_CONTEXTS = ('in_process', 'tff_cpp')
# The kind when none is given; $TARGETED_ATTACK_EXECUTION_CONTEXT overrides it
# (the tests run under either).
DEFAULT_EXECUTION_CONTEXT = 'in_process'
EXECUTION_CONTEXT_ENV = 'TARGETED_ATTACK_EXECUTION_CONTEXT'
ISOLATE_NETWORK_ENV = 'TARGETED_ATTACK_ISOLATE_NETWORK'
_registered = False

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = '16sH22x'  # struct ifreq: name, flags (40 bytes on 64-bit Linux)
# gRPC C-core's threads, as /proc names them (cut to 15 characters).
_GRPC_THREAD_NAMES = frozenset({
    'default-executo', 'resolver-execut', 'grpc_global_tim', 'event_engine',
    'lifeguard', 'timer_manager'})
_netns_lock = threading.Lock()
_netns_fd = None  # the private namespace, kept open for reuse
_netns_id = None  # its /proc link text, e.g. 'net:[4026532177]'
_grpc_pin = None  # a grpcio channel that keeps gRPC's threads inside
_netns_error = None  # why the namespace cannot be made, once known
_warned = False
_fork_state = threading.local()  # the forking thread's own namespace


class NetworkIsolationError(OSError):
  """The private network namespace cannot be entered here."""

  @property
  def unprivileged(self) -> bool:
    return self.errno in (errno.EPERM, errno.EACCES)


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


def _thread_netns(tid=None) -> str:
  """The network namespace of thread `tid` (default: the calling thread)."""
  tid = threading.get_native_id() if tid is None else tid
  return os.readlink(f'/proc/self/task/{tid}/ns/net')


def _grpc_threads_in(netns) -> bool:
  """Whether any of gRPC's I/O threads runs in network namespace `netns`."""
  for tid in os.listdir('/proc/self/task'):
    try:
      with open(f'/proc/self/task/{tid}/comm') as f:
        name = f.read().strip()
      if name in _GRPC_THREAD_NAMES and _thread_netns(tid) == netns:
        return True
    except OSError:
      pass  # the thread has ended
  return False


def _bring_up_loopback() -> None:
  """Sets `lo` up in the calling thread's network namespace."""
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    ifr = fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b'lo', 0))
    flags = struct.unpack(_IFREQ, ifr)[1]
    fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b'lo', flags | _IFF_UP))


def _make_private_network() -> None:
  """Moves the calling thread into a new namespace and starts gRPC there.

  Raises NetworkIsolationError where that is not possible.
  """
  global _netns_fd, _netns_id, _grpc_pin
  if not sys.platform.startswith('linux'):
    raise NetworkIsolationError(f'no network namespaces on {sys.platform}')
  libc = ctypes.CDLL(None, use_errno=True)
  if libc.unshare(_CLONE_NEWNET) != 0:
    err = ctypes.get_errno()
    raise NetworkIsolationError(
        err, f'unshare(CLONE_NEWNET): {os.strerror(err)}')
  try:
    _bring_up_loopback()
  except OSError as e:
    raise NetworkIsolationError(e.errno, f'cannot set lo up: {e}') from e
  netns = _thread_netns()
  import grpc  # pylint: disable=g-import-not-at-top
  # The first channel of the process starts gRPC's I/O threads, here, inside;
  # kept open, it keeps them there. It never connects.
  pin = grpc.insecure_channel('unix:/nonexistent/targeted_attack')
  deadline = time.monotonic() + 0.5
  while not _grpc_threads_in(netns):
    if time.monotonic() > deadline:
      pin.close()
      # Its threads run outside: TFF's client would dial from there.
      raise NetworkIsolationError('gRPC already runs in this process')
    time.sleep(0.02)
  _netns_fd = os.open(f'/proc/self/task/{threading.get_native_id()}/ns/net',
                      os.O_RDONLY | os.O_CLOEXEC)
  _netns_id, _grpc_pin = netns, pin
  os.register_at_fork(before=_fork_inside, after_in_parent=_fork_back,
                      after_in_child=_fork_back)


def _setns(fd) -> None:
  if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET):
    err = ctypes.get_errno()
    raise NetworkIsolationError(
        err, f'setns(CLONE_NEWNET): {os.strerror(err)}')


def _fork_inside() -> None:
  """Before a fork: moves the forking thread into the private namespace.

  gRPC's fork handlers restart its I/O threads from the forking thread; they
  must start inside, or TFF's channel dials the host's loopback and waits
  forever. The thread (and, in the child, the process) moves back after.
  """
  _fork_state.saved = None
  if _netns_fd is None or _thread_netns() == _netns_id:
    return
  own = os.open(f'/proc/self/task/{threading.get_native_id()}/ns/net',
                os.O_RDONLY | os.O_CLOEXEC)
  try:
    _setns(_netns_fd)
  except NetworkIsolationError:
    os.close(own)
    return
  _fork_state.saved = own


def _fork_back() -> None:
  """After a fork, in parent and child: the thread's own namespace again."""
  own = getattr(_fork_state, 'saved', None)
  if own is not None:
    _fork_state.saved = None
    _setns(own)
    os.close(own)


def _enter_private_network() -> None:
  """Moves the calling thread into the private namespace (made on first use).

  Raises NetworkIsolationError where that is not possible; the reason is
  kept, and later calls fail fast with it.
  """
  global _netns_error
  if _netns_error is not None:
    raise NetworkIsolationError(*_netns_error)
  if _netns_fd is None:
    try:
      _make_private_network()
    except NetworkIsolationError as e:
      _netns_error = e.args
      raise
  else:
    _setns(_netns_fd)


def run_in_private_network(fn):
  """Calls `fn()` in a new thread inside this process's private namespace.

  The namespace has only a loopback interface, up; it is made by the first
  call and reused by later ones. Threads and processes that `fn` starts stay
  inside; the calling thread does not move. Returns what `fn` returns and
  re-raises what it raises; raises NetworkIsolationError, without calling
  `fn`, where the namespace cannot be entered.
  """
  outcome = {}

  def target():
    try:
      _enter_private_network()
    except NetworkIsolationError as e:
      outcome['error'] = e
      return
    try:
      outcome['value'] = fn()
    except BaseException as e:  # pylint: disable=broad-except
      outcome['error'] = e

  with _netns_lock:
    thread = threading.Thread(target=target, name='private-network')
    thread.start()
    thread.join()
  if 'error' in outcome:
    raise outcome['error']
  return outcome.get('value')


def _warn_unisolated(error: NetworkIsolationError) -> None:
  """Prints, once per process, that the worker is reachable from outside."""
  global _warned
  if _warned:
    return
  _warned = True
  # Unprivileged: a user namespace gives the capability, and keeps the network.
  rerun = ('run under `unshare --user --map-root-user` (then it is isolated) '
           'or ' if error.unprivileged else '')
  reason = error.strerror or error
  print(f'targeted_attack: warning: TFF\'s worker_binary listens '
        f'unauthenticated on all interfaces (not isolated: {reason}); to keep '
        f'other machines off it, {rerun}drop outside traffic to its port: '
        '`iptables -I INPUT ! -i lo -p tcp --dport PORT -j DROP`, PORT from '
        '`pgrep -a worker_binary`.', file=sys.stderr, flush=True)


def _isolation_default() -> bool:
  """False where $TARGETED_ATTACK_ISOLATE_NETWORK is 0/false/no/off."""
  value = os.environ.get(ISOLATE_NETWORK_ENV, '1').strip().lower()
  return value not in ('0', 'false', 'no', 'off')


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


def computation_error_line(error: BaseException) -> Optional[str]:
  """The TensorFlow error a failed computation raised, as one line, or None.

  TFF's C++ context raises a `grpc.RpcError` whose details hold the worker's
  TensorFlow error among function-node tags and the block's local names; the
  in-process context raises the `tf.errors.OpError` itself. Either way: the
  error's first line, without those.
  """
  # By class name: importing grpc or TensorFlow here would make this module
  # expensive to import.
  bases = {c.__name__ for c in type(error).__mro__}
  if 'RpcError' in bases and callable(getattr(error, 'details', None)):
    text = error.details() or str(error)
  elif 'OpError' in bases:
    text = error.message
  else:
    return None
  text = re.sub(r'\{\{function_node [^}]*\}\}\s*', '', text)
  text = text.replace('Failed to run computation: ', '')
  # TensorFlow is loaded when a computation has failed: importing it is free.
  from targeted_attack import in_process_context  # pylint: disable=g-import-not-at-top
  lines = [l.strip() for l in
           in_process_context.error_message_lines(text.strip())]
  if not lines:
    return type(error).__name__
  return lines[0].split(' while evaluating local')[0].strip()


def set_local_execution_context(default_num_clients: int = 0,
                                isolate_network: Optional[bool] = None,
                                kind: Optional[str] = None,
                                max_concurrency: Optional[int] = None) -> bool:
  """Sets TFF's default context: `kind` 'in_process' or 'tff_cpp'.

  `kind` None: $TARGETED_ATTACK_EXECUTION_CONTEXT if set, else
  `DEFAULT_EXECUTION_CONTEXT` ('in_process').

  'tff_cpp': TFF's synchronous local C++ context, with the worker reaped at
  exit. With `isolate_network` (default: True unless
  $TARGETED_ATTACK_ISOLATE_NETWORK is 0), the context is created inside the
  private network namespace (see the module docstring), so its worker can be
  reached only from inside; the calling thread keeps its network, so
  downloads in this process still work. Where that is not permitted, warns
  once on stderr and runs unisolated. Returns whether the worker is isolated.

  'in_process': `targeted_attack.in_process_context`: no worker, no socket;
  TensorFlow runs every graph in this process (on the GPU where it sees one),
  clients of a `federated_map` on `max_concurrency` threads (default: the
  number of CPUs). `isolate_network` does not apply; returns True (nothing
  listens). `max_concurrency` is ignored for 'tff_cpp'.
  """
  if kind is None:
    kind = os.environ.get(EXECUTION_CONTEXT_ENV) or DEFAULT_EXECUTION_CONTEXT
  if kind not in EXECUTION_CONTEXTS:
    raise ValueError(f'kind must be one of {EXECUTION_CONTEXTS}, got {kind!r}.')
  if kind == 'in_process':
    return _set_in_process_context(default_num_clients, max_concurrency)
  return _set_cpp_context(default_num_clients, isolate_network)


def _set_in_process_context(default_num_clients, max_concurrency) -> bool:
  # Imported here so that importing this module stays cheap.
  # pylint: disable=g-import-not-at-top
  import tensorflow_federated as tff
  from targeted_attack import in_process_context
  # pylint: enable=g-import-not-at-top
  context = in_process_context.create_in_process_context(
      default_num_clients=default_num_clients, max_concurrency=max_concurrency)
  tff.framework.set_default_context(context)
  return True


def _set_cpp_context(default_num_clients: int,
                     isolate_network: Optional[bool]) -> bool:
  # Imported here so that importing this module stays cheap.
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top

  register_reaper()
  patch_stub_readiness()
  patch_worker_wait()
  if isolate_network is None:
    isolate_network = _isolation_default()

  def create_context():
    return tff.backends.native.create_sync_local_cpp_execution_context(
        default_num_clients=default_num_clients)

  context = None
  if isolate_network:
    try:
      # The context's event-loop thread is started by (so inherits the
      # namespace of) the thread that creates it; TFF's default context is
      # per thread, so it is set here, in the calling thread.
      context = run_in_private_network(create_context)
    except NetworkIsolationError as e:
      _warn_unisolated(e)
  isolated = context is not None
  if not isolated:
    context = create_context()
  tff.framework.set_default_context(context)
  return isolated
