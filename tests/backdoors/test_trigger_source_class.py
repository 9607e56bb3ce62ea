"""`trigger_source_class` (Ozdayi et al.'s base class): only images of that
class get the trigger, in the attackers' poison and in the evaluation; and
the trigger data poisoning with the client momentum RLR's agents use."""

import dataclasses
import math

import numpy as np
import pytest

import builders
from targeted_attack.experiment import build
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import registry
from targeted_attack.experiment import run as run_lib
from targeted_attack.process import round_data

SOURCE, TARGET = 5, 1  # sandal → sneaker in Ozdayi et al.'s Fashion-MNIST
BOTTOM_RIGHT = (slice(24, 27), slice(24, 27))


def _corner(r, c):
  mask = np.zeros([28, 28], bool)
  mask[r:r + 3, c:c + 3] = True
  return mask


# DBA's four local triggers (K = 4): top-left, top-right, bottom-left,
# bottom-right.
DBA_CORNERS = [_corner(1, 1), _corner(1, 24), _corner(24, 1), _corner(24, 24)]


def _config(tmp_path, **overrides):
  return builders.tiny_config(
      tmp_path, synthetic_num_clients=20, synthetic_examples_per_client=40,
      task_num=4, trigger_source_class=SOURCE, **overrides)


def _np_stamp(pixels, mask, amplitude):
  """The ink square (0) on `mask` at `amplitude`: x + a·(0 − x)."""
  return np.where(mask, (1 - amplitude) * pixels, pixels).astype(np.float32)


def _source_images(data, clients, label):
  """The attackers' clients' training images of class `label`, client by
  client, and the test images of that class."""
  train = np.concatenate([data.client_arrays(k)[0][data.client_arrays(k)[1]
                                                   == label]
                          for k in clients])
  return train, data.test_pixels[data.test_labels == label]


@pytest.mark.parametrize('backdoor', ['trigger', 'dba', 'a3fl'])
def test_only_the_source_class_is_poisoned_and_evaluated(tmp_path, backdoor):
  config = _config(tmp_path, backdoor=backdoor, trigger_amplitude=0.8,
                   a3fl_outer_iterations=1)
  registry.validate(config)
  data = build.load_data(config)
  task = build.build_backdoor(config).initial_task(data)
  assert len(task.target_clients) == 4
  train, evaluation = _source_images(data, task.target_clients, SOURCE)
  assert len(train) >= 10 and len(evaluation) >= 10
  # The images of the source class, stamped; nothing else.
  if backdoor == 'dba':
    assert len(task.train_parts) == 4
    for part, mask in zip(task.train_parts, DBA_CORNERS):
      np.testing.assert_allclose(part, _np_stamp(train, mask, 0.8), atol=1e-6)
    np.testing.assert_allclose(
        task.eval_pixels, _np_stamp(evaluation, np.any(DBA_CORNERS, 0), 0.8),
        atol=1e-6)
    np.testing.assert_array_equal(task.eval_source_pixels, evaluation)
  else:
    amplitude = 0.8 if backdoor == 'trigger' else 1.0  # A3FL's δ₀ pasted
    np.testing.assert_allclose(task.train_pixels,
                               _np_stamp(train, DBA_CORNERS[3], amplitude),
                               atol=1e-6)
    np.testing.assert_allclose(task.eval_pixels,
                               _np_stamp(evaluation, DBA_CORNERS[3],
                                         amplitude), atol=1e-6)
  # An attacker's D_mal: those images, every one labelled the target.
  batches = list(round_data.malicious_dataset(task, 1, 1000, 0, part=0))
  labels = np.concatenate([b['y'].numpy().ravel() for b in batches])
  assert len(labels) == len(train) and np.all(labels == TARGET)


def test_default_is_every_class_but_the_target(tmp_path):
  config = dataclasses.replace(_config(tmp_path, backdoor='trigger'),
                               trigger_source_class=-1)
  data = build.load_data(config)
  task = build.build_backdoor(config).initial_task(data)
  every = np.concatenate([data.client_arrays(k)[0][data.client_arrays(k)[1]
                                                   != TARGET]
                          for k in task.target_clients])
  np.testing.assert_allclose(task.train_pixels,
                             _np_stamp(every, DBA_CORNERS[3], 1.0), atol=1e-6)
  assert len(task.eval_pixels) == np.sum(data.test_labels != TARGET)


@pytest.mark.parametrize('overrides, allowed', [
    (dict(trigger_source_class=TARGET), False),     # the target itself
    (dict(trigger_source_class=10), False),          # 10 digit classes
    (dict(trigger_source_class=-2), False),
    (dict(trigger_source_class=9), True),
    (dict(trigger_source_class=0), True),
    (dict(dataset='emnist', only_digits=False, trigger_source_class=61),
     True),                                          # EMNIST's 62 classes
    (dict(dataset='emnist', only_digits=False, trigger_source_class=62),
     False),
])
def test_source_class_range_names_the_setting(tmp_path, overrides, allowed):
  config = dataclasses.replace(_config(tmp_path, backdoor='trigger'),
                               **overrides)
  if allowed:
    registry.validate(config)
    return
  with pytest.raises(config_lib.ConfigError) as error:
    registry.validate(config)
  assert error.value.field == 'trigger_source_class'
  assert '`trigger_source_class`' in str(error.value)


def test_trigger_poisoning_with_client_momentum_runs(tmp_path):
  # RLR's setting: plain data poisoning, 1 poison item per batch, local
  # momentum 0.9, the trigger on the base class only.
  config = _config(tmp_path, backdoor='trigger', attack='data_poisoning',
                   poison_per_batch=1, client_momentum=0.9, attack_freq=1,
                   defense='rlr', rlr_threshold=1, num_rounds=2)
  registry.validate(config)
  ignored = [name for name, _ in registry.ignored_settings(config)]
  assert 'trigger_source_class' not in ignored
  rows = run_lib.run(config, progress=False)
  assert [int(r['num_attackers']) for r in rows] == [1, 1]
  for row in rows:
    for metric in ('main_task_accuracy', 'backdoor_accuracy'):
      assert math.isfinite(float(row[metric])), (metric, row)
