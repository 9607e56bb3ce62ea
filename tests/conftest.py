"""Test set-up: quiet TF logging, TFF's local context (worker reaped at exit)."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from targeted_attack import runtime  # pylint: disable=g-import-not-at-top

runtime.set_local_execution_context()
