"""Test set-up: quiet TF logging, TFF's local context (worker reaped at exit).

Under pytest-xdist the controller process runs no test: it imports no
TensorFlow (whose import-time log lines it would print after the summary)."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def pytest_configure(config):
  is_xdist_controller = bool(getattr(config.option, 'numprocesses', None)) and (
      not hasattr(config, 'workerinput'))
  if is_xdist_controller:
    return
  from targeted_attack import runtime  # pylint: disable=g-import-not-at-top
  runtime.set_local_execution_context()
