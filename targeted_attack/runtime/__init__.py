"""Where TFF's computations run, split at its seams:

- `context`: the choice of context, `set_local_execution_context(kind=...)`:
  'in_process' (the default) or 'tff_cpp' (TFF's C++ `worker_binary`).
- `in_process`: the in-process context, TFF's language interpreted in this
  process (`values`, `graphs`, `intrinsics`, `interpreter`, `context`).
- `worker`: the C++ worker's reaping at exit and on signals, and fixes for
  TFF 0.87's local C++ context.
- `isolation`: the C++ worker contained in a private network namespace.
- `errors`: a failed computation's error in one line.
- `devices`: GPU memory growth, op determinism, the GPUs clients spread over.

Importing this package stays cheap (no TensorFlow): `import targeted_attack`
registers the reaper through it; TensorFlow and TFF load when a context is
set.
"""

# pylint: disable=unused-import
from targeted_attack.runtime.context import DEFAULT_EXECUTION_CONTEXT
from targeted_attack.runtime.context import EXECUTION_CONTEXT_ENV
from targeted_attack.runtime.context import EXECUTION_CONTEXTS
from targeted_attack.runtime.context import set_local_execution_context
from targeted_attack.runtime.devices import configure_devices
from targeted_attack.runtime.errors import computation_error_line
from targeted_attack.runtime.errors import error_message_lines
from targeted_attack.runtime.isolation import ISOLATE_NETWORK_ENV
from targeted_attack.runtime.isolation import NetworkIsolationError
from targeted_attack.runtime.isolation import run_in_private_network
from targeted_attack.runtime.worker import WORKER_BINARY_NAME
from targeted_attack.runtime.worker import WORKER_STOP_TIMEOUT_S
from targeted_attack.runtime.worker import _worker_children
from targeted_attack.runtime.worker import install_signal_handlers
from targeted_attack.runtime.worker import patch_stub_readiness
from targeted_attack.runtime.worker import patch_worker_wait
from targeted_attack.runtime.worker import reap_workers
from targeted_attack.runtime.worker import register_reaper
