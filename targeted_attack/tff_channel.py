"""A fix for a start-up race in TFF's local C++ context (TFF 0.87, gRPC 1.60).

TFF starts its `worker_binary`, opens a gRPC channel to it and waits, polling
`RemoteExecutorGrpcStub.is_ready`, which reads a status set by a connectivity
subscription. gRPC asks to connect only once: if that first attempt comes
before the worker listens (a loaded machine, several runs starting at once),
the channel falls back to IDLE, never retries, and TFF waits forever.
`patch_stub_readiness` makes `is_ready` ask the channel to connect again
(`grpc.channel_ready_future`) whenever it is not ready.
"""

import grpc

_PATCHED = []


def patch_stub_readiness(timeout_s: float = 0.5) -> None:
  """Idempotently patches `RemoteExecutorGrpcStub.is_ready`."""
  if _PATCHED:
    return
  # pylint: disable=g-import-not-at-top
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
