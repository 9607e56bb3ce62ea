"""A failing client computation reaches the user as its TensorFlow error, in
one line, under either execution context (not a page of gRPC frames)."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import process as process_lib
from targeted_attack import runtime
import builders


@pytest.fixture
def restore_context():
  previous = tff.framework.get_context_stack().current
  yield
  tff.framework.set_default_context(previous)


@pytest.mark.parametrize('kind', runtime.EXECUTION_CONTEXTS)
def test_a_label_out_of_range_is_one_line(kind, restore_context):
  runtime.set_local_execution_context(kind=kind)
  process = builders.attacked_process(None)
  labels = np.full([4, 1], 50, np.int32)        # the model has 2 classes
  dataset = tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
      x=np.zeros([4, 3], np.float32), y=labels)).batch(2)
  with pytest.raises(Exception) as error:
    process.next(process.initialize(),
                 process_lib.build_client_data([dataset], [None]))
  line = runtime.computation_error_line(error.value)
  assert line is not None, repr(error.value)[:2000]
  assert line.startswith('Received a label value of 50 which is outside the '
                         'valid range of [0, 2)'), line
  assert '\n' not in line and 'function_node' not in line
  assert 'evaluating local' not in line
  # The traceback holds the failed call's frames (TF graph and function
  # state among them); drop it, so that nothing of it outlives the test.
  error.value.__traceback__ = None
  del error


def test_other_errors_are_not_computation_errors():
  assert runtime.computation_error_line(ValueError('x')) is None


def test_the_binary_prints_the_error_line_and_exits_1(tmp_path, capsys,
                                                      monkeypatch):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from targeted_attack import emnist_experiment  # pylint: disable=g-import-not-at-top
  from targeted_attack.experiment import run as run_lib  # pylint: disable=g-import-not-at-top

  def fails(config, **kwargs):
    raise tf.errors.InvalidArgumentError(
        None, None, 'Graph execution error:\n\nDetected at node x\n  File a\n'
        'Received a label value of 50 which is outside the valid range')

  monkeypatch.setattr(emnist_experiment.runtime, 'set_local_execution_context',
                      lambda *a, **k: None)
  monkeypatch.setattr(run_lib, 'run', fails)
  values = flags.FlagValues()
  emnist_experiment.define_flags(values)
  values(['binary', f'--root_output_dir={tmp_path}'])
  assert emnist_experiment.main(['binary'], flag_values=values) == 1
  err = capsys.readouterr().err
  assert err.strip() == ('error: a TFF computation failed: Received a label '
                         'value of 50 which is outside the valid range')
