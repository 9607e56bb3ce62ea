"""The choice of TFF's execution context: in this process, or TFF's C++
worker (reaped, and contained in a private network namespace).
"""

import os
from typing import Optional


from targeted_attack.runtime.worker import patch_stub_readiness
from targeted_attack.runtime.worker import patch_worker_wait
from targeted_attack.runtime.worker import register_reaper
from targeted_attack.runtime.isolation import NetworkIsolationError
from targeted_attack.runtime.isolation import _isolation_default
from targeted_attack.runtime.isolation import _warn_unisolated
from targeted_attack.runtime.isolation import run_in_private_network


# The kinds of `set_local_execution_context`: TFF's computations interpreted
# in this process, TF graphs run by TF here (`runtime.in_process`), or TFF's
# C++ `worker_binary` over gRPC.
EXECUTION_CONTEXTS = ('in_process', 'tff_cpp')
# The kind when none is given; $TARGETED_ATTACK_EXECUTION_CONTEXT overrides it
# (the tests run under either).
DEFAULT_EXECUTION_CONTEXT = 'in_process'
EXECUTION_CONTEXT_ENV = 'TARGETED_ATTACK_EXECUTION_CONTEXT'


def set_local_execution_context(default_num_clients: int = 0,
                                isolate_network: Optional[bool] = None,
                                kind: Optional[str] = None,
                                max_concurrency: Optional[int] = None,
                                client_devices: Optional[list] = None) -> bool:
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

  'in_process': `targeted_attack.runtime.in_process`: no worker, no socket;
  TensorFlow runs every graph in this process (on the GPU where it sees one),
  clients of a `federated_map` on `max_concurrency` threads (default: the
  number of CPUs). `isolate_network` does not apply; returns True (nothing
  listens). `client_devices` (e.g. `devices.configure_devices()`'s GPUs):
  client k of a round runs on device k mod their number (None or one
  device: wherever TensorFlow places it). `max_concurrency` and
  `client_devices` are ignored for 'tff_cpp' (its worker is CPU-only).
  """
  if kind is None:
    kind = os.environ.get(EXECUTION_CONTEXT_ENV) or DEFAULT_EXECUTION_CONTEXT
  if kind not in EXECUTION_CONTEXTS:
    raise ValueError(f'kind must be one of {EXECUTION_CONTEXTS}, got {kind!r}.')
  if kind == 'in_process':
    return _set_in_process_context(default_num_clients, max_concurrency,
                                   client_devices)
  return _set_cpp_context(default_num_clients, isolate_network)


def _set_in_process_context(default_num_clients, max_concurrency,
                            client_devices=None) -> bool:
  # Imported here so that importing this module stays cheap.
  # pylint: disable=g-import-not-at-top
  import tensorflow_federated as tff
  from targeted_attack.runtime import in_process
  # pylint: enable=g-import-not-at-top
  context = in_process.create_in_process_context(
      default_num_clients=default_num_clients, max_concurrency=max_concurrency,
      client_devices=client_devices)
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
