"""An in-process TFF execution context: TFF's language interpreted in Python,
every TensorFlow computation run by TensorFlow's own runtime in this process.

Modules: `values` (federated values; embedding Python values and back),
`graphs` (TensorFlow computations as concrete functions), `intrinsics` (the
federated intrinsics), `interpreter` (building blocks → closures), `context`
(`InProcessContext`).

TFF 0.87's only local context sends every computation and every client's data
over gRPC to a C++ `worker_binary` built without CUDA. This context runs the
same compiled form in this process instead, so TensorFlow places the work on
the GPU when it sees one, and client datasets never leave the process.

Pipeline of `InProcessContext.invoke(comp, arg)`:
1. TFF's native compilation, the one the C++ context applies
   (`compiler.desugar_and_transform_to_native`: mean, weighted mean, sum,
   min, max and generic maths become `federated_aggregate` and TF graphs;
   call-dominant form; Grappler on the graphs; cache ids), cached per
   computation.
2. The compiled building block is turned, once, into a tree of Python
   closures (`_Program`): `Lambda` → a closure over its environment, `Block` →
   sequential bindings, `Call`, `Reference`, `Selection`, `Struct`,
   `Literal` → an eager tensor, `Intrinsic` → the federated implementation
   below, `CompiledComputation` → `_TFComputation`, a TF concrete function.
3. The argument is embedded by its TFF type (federated values as per-client
   Python lists), the closure is called, and the result is converted back to
   numpy / Python containers as the C++ context returns it.

TensorFlow computations: the serialized GraphDef is imported into a
`tf.compat.v1.wrap_function` graph and pruned to a concrete function whose
inputs and outputs are the computation's parameter and result bindings
(sequence bindings are dataset variant tensors: `tf.data.experimental.
to_variant` / `from_variant`), as TFF's removed eager executor did. The
graph's init op is pruned to a function of its own, called before each call
with the same inputs (the C++ executor runs it in a `Session.run` of its own
before each call). Library functions are renamed per computation (TF has one
function library per process). Calls pass the C++ executor's session
settings (no Grappler, graph optimisations at L0). Graphs that hold
named resources (variables, tables: nodes with a `shared_name`) get one
instance per thread, their shared names made unique, so concurrent clients
never share a variable; other graphs have one instance for all threads.

Federated values: a `_Federated(placement, value)`, where `value` is the list
of the clients' values (CLIENTS; an all-equal value is the same object n
times) or the single server value. Intrinsics: federated_aggregate (zero,
then `accumulate` client by client in client order, then `report`; `merge`
unused, as in the C++ executor, so results agree to the bit),
federated_apply, federated_broadcast, federated_eval (server, clients),
federated_map and its all-equal variant, federated_value (server, clients),
federated_zip (server, clients), federated_select and secure select,
federated_sum, federated_mean, federated_weighted_mean, federated_min,
federated_max, federated_secure_sum, federated_secure_sum_bitwidth (as
plain sums, each client's value checked against the bound: no secure
aggregation here; TFF's C++ worker does not run them), generic_plus/
multiply/divide/zero,
sequence_map, sequence_reduce, sequence_sum. Most of the second half is
desugared away by step 1; they are here for computations compiled otherwise
(a mean, weighted mean, minimum or maximum over zero clients raises there;
compiled by step 1, a mean over zero clients is NaN under both contexts).

Randomness: a graph's op-seeded random ops (not the stateless ones this
project uses) keep their state across calls of a computation, under both
contexts (here in the graph instance; TFF's C++ worker reuses its sessions
from a pool): repeated calls draw the next numbers of one stream, the same
sequence at the server under both (measured). At clients, which client draws
which number depends on the threads' scheduling, under both.

Concurrency: the clients of a `federated_map` (and of `federated_eval` at
clients) run on a `concurrent.futures.ThreadPoolExecutor` of
`max_concurrency` threads (default: the number of CPUs); TensorFlow releases
the GIL while it runs a function. Work that is already on a pool thread runs
serially (no nested pools, no deadlock). With `max_concurrency=1` everything
runs in the calling thread.

Number of clients: inferred from the CLIENTS-placed parts of the argument (as
TFF's contexts do), else `default_num_clients`.

Errors: an error TensorFlow raises in a computation propagates as that
`tf.errors.OpError` class (the first one in client order), its message cut to
TF's own lines (the graph-import stack TF prepends would point into this
module), raised `from None`, with a note naming the intrinsic and client.

Not supported: `tff.framework.Data` blocks (external data), non-TensorFlow
compiled computations (XLA). Secure intrinsics are plain sums (bounds checked). A dataset is
passed to each call as the same variant, not rebuilt from a serialized graph
as the C++ executor does, so a dataset with stateful randomness (an unseeded
or `reshuffle_each_iteration` shuffle) can give another order per call than
the C++ context gives (the project's datasets use NumPy and stateless seeds).
"""

import collections
import concurrent.futures

from targeted_attack.runtime.in_process.context import InProcessContext
from targeted_attack.runtime.in_process.context import create_in_process_context
