r"""Runs the original research code's test file against this package.

  .venv/bin/python scripts/run_original_tests.py PATH/attacked_fedavg_test.py \
      [in_process|tff_cpp]

PATH: `targeted_attack/attacked_fedavg_test.py` of google-research/federated
(not shipped here: it is that repository's code). Only the names TFF itself
renamed since the original was written are aliased, the new name under the
old one; nothing of the test is changed:
  tff.learning.Model           -> tff.learning.models.VariableModel
  tff.learning.from_keras_model -> tff.learning.models.from_keras_model
  tff.learning.BatchOutput     -> tff.learning.models.BatchOutput
The test file imports `targeted_attack.attacked_fedavg`, this package's face
of the original API. The computations run in the given context (this
project's default, in_process, or TFF's C++ worker, reaped at exit), set as
the original's BUILD left to TFF. Exit status: the tests' (0 when all pass or
skip).
"""

import importlib.util
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import targeted_attack  # pylint: disable=g-import-not-at-top,unused-import  # Keras 2 before TensorFlow
import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top
from targeted_attack import runtime  # pylint: disable=g-import-not-at-top

TFF_RENAMES = {
    'Model': tff.learning.models.VariableModel,
    'from_keras_model': tff.learning.models.from_keras_model,
    'BatchOutput': tff.learning.models.BatchOutput,
}


def main(argv):
  if len(argv) not in (2, 3) or not os.path.isfile(argv[1]) or (
      argv[2:] and argv[2] not in runtime.EXECUTION_CONTEXTS):
    sys.exit(f'usage: {argv[0]} PATH/attacked_fedavg_test.py '
             f'[{"|".join(runtime.EXECUTION_CONTEXTS)}]')
  kind = argv[2] if argv[2:] else 'in_process'
  runtime.set_local_execution_context(kind=kind)
  print(f'context: {kind}')
  for name, value in TFF_RENAMES.items():
    setattr(tff.learning, name, value)
  spec = importlib.util.spec_from_file_location('attacked_fedavg_test',
                                                argv[1])
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  suite = unittest.defaultTestLoader.loadTestsFromModule(module)
  result = unittest.TextTestRunner(verbosity=2).run(suite)
  sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
  main(sys.argv)
