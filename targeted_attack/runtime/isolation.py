"""Containment of TFF's C++ worker in a private network namespace.

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

import ctypes
import errno
import fcntl
import os
import re
import socket
import struct
import sys
import threading
import time


ISOLATE_NETWORK_ENV = 'TARGETED_ATTACK_ISOLATE_NETWORK'


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
