"""Test set-up: quiet TF logging, TFF's local context (worker reaped at exit).

Under pytest-xdist the controller process runs no test: it imports no
TensorFlow (whose import-time log lines it would print after the summary)."""

import os

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def pytest_configure(config):
  is_xdist_controller = bool(getattr(config.option, 'numprocesses', None)) and (
      not hasattr(config, 'workerinput'))
  if is_xdist_controller:
    return
  from targeted_attack import runtime  # pylint: disable=g-import-not-at-top
  runtime.set_local_execution_context()


# The longest files first: pytest-xdist (--dist loadfile) hands out files in
# collection order, so a long file collected last would leave the other
# process idle at the end.
_LONGEST_FILES = ('reproduce/test_sweep.py', 'experiment/test_resume_stateful.py',
                  'experiment/test_run.py', 'experiment/test_registry.py',
                  'backdoors/test_trigger_learnable.py')


def pytest_collection_modifyitems(config, items):
  del config

  def rank(item):
    path = str(item.fspath).replace(os.sep, '/')
    for index, name in enumerate(_LONGEST_FILES):
      if path.endswith(name):
        return index
    return len(_LONGEST_FILES)

  items.sort(key=rank)  # stable: the order within a file is kept


@pytest.fixture(autouse=True)
def _each_test_builds_its_own_processes():
  """No test runs on a process kept from another (`build.reused_process`):
  a test may patch what a process is built from."""
  from targeted_attack.experiment import build  # pylint: disable=g-import-not-at-top
  build.forget_processes()
