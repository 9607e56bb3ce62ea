r"""Runs the original research code's test file against this package.

  .venv/bin/python scripts/run_original_tests.py PATH/attacked_fedavg_test.py

PATH: `targeted_attack/attacked_fedavg_test.py` of google-research/federated
(not shipped here: it is that repository's code). Only the names TFF itself
renamed since the original was written are aliased, the new name under the
old one; nothing of the test is changed:
  tff.learning.Model           -> tff.learning.models.VariableModel
  tff.learning.from_keras_model -> tff.learning.models.from_keras_model
  tff.learning.BatchOutput     -> tff.learning.models.BatchOutput
The test file imports `targeted_attack.attacked_fedavg`, this package's face
of the original API. Exit status: the tests' (0 when all pass or skip).
"""

import importlib.util
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import targeted_attack  # pylint: disable=g-import-not-at-top,unused-import  # Keras 2 before TensorFlow
import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top

TFF_RENAMES = {
    'Model': tff.learning.models.VariableModel,
    'from_keras_model': tff.learning.models.from_keras_model,
    'BatchOutput': tff.learning.models.BatchOutput,
}


def main(argv):
  if len(argv) != 2 or not os.path.isfile(argv[1]):
    sys.exit(f'usage: {argv[0]} PATH/attacked_fedavg_test.py')
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
