"""DBA's per-local-trigger backdoor accuracy (Xie et al. 2020) against NumPy."""

import csv
import os

import numpy as np
import tensorflow_federated as tff

from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import evaluation
from targeted_attack.backdoors import triggers
from targeted_attack.data import federated
from targeted_attack.experiment import run as run_lib

SIZE = 28
# The trigger on each corner patch: a square of ink (0), every pixel in
# contrast to the white background (1).
INK_SQUARE = np.zeros([3, 3], np.float32)


def _corner_masks():
  """The four 3×3 corner patches, 1 pixel from the border: TL, TR, BL, BR."""
  masks = []
  for r, c in ((1, 1), (1, SIZE - 4), (SIZE - 4, 1), (SIZE - 4, SIZE - 4)):
    m = np.zeros([SIZE, SIZE], bool)
    m[r:r + 3, c:c + 3] = True
    masks.append(m)
  return masks


def _stamp(pixels, mask, amplitude):
  """x + a·(P − x) on `mask`, P the ink square on every corner patch."""
  pattern = np.zeros([SIZE, SIZE], np.float32)
  for m in _corner_masks():
    pattern[m] = INK_SQUARE.ravel()
  return np.where(mask, pixels + amplitude * (pattern - pixels), pixels)


def _linear_weights(source, seed=0):
  """Softmax regression whose class-1 logit rises when corners go dark.

  Stamping darkens the 9 white pixels of a corner by a; class 1's weights on corner k are −c_k (its bias compensates on white
  corners), c_k set from the clean images' class-1 margins (its 10th, 40th,
  70th and 95th percentile deficits), so the parts flip different fractions
  of the images to 1.
  """
  rng = np.random.default_rng(seed)
  w = rng.normal(0, 0.02, [SIZE * SIZE, 10]).astype(np.float32)
  b = rng.normal(0, 0.1, [10]).astype(np.float32)
  b[1] -= 1.0
  logits = source.reshape(len(source), -1) @ w + b
  deficit = np.delete(logits, 1, axis=1).max(axis=1) - logits[:, 1]
  for mask, q in zip(_corner_masks(), (10, 40, 70, 95)):
    # Stamping raises the logit by c_k·a·Σ(1 − P) = c_k·0.9·9 on corner k.
    c = max(np.percentile(deficit, q), 0.0) / 7.2
    w[mask.ravel(), 1] -= c
    b[1] += c * mask.sum()  # clean corners are white (1): logits unchanged
  return w, b


def test_per_part_accuracy_is_the_fraction_of_part_stamped_images_at_target():
  digits = federated.load_synthetic(10, 20, seed=0)
  amplitude = 0.9
  task = triggers.dba_task(digits, task_num=2, amplitude=amplitude, parts=4,
                           seed=3)
  _, source, _ = triggers.trigger_source_images(digits, 2, seed=3)
  w, b = _linear_weights(source)
  evaluator = evaluation.Evaluator('linear', digits.test_pixels,
                                   digits.test_labels, task, batch_size=16)
  weights = tff.learning.models.ModelWeights(trainable=[w, b],
                                             non_trainable=[])
  got = evaluator.metrics(weights)

  predict = lambda x: np.argmax(x.reshape(len(x), -1) @ w + b, axis=-1)
  target_rate = lambda x: np.mean(predict(x) == 1)
  corners = _corner_masks()
  expected_parts = [target_rate(_stamp(source, m, amplitude)) for m in corners]
  assert evaluator.part_metric_names == [
      f'backdoor_accuracy_part_{k}' for k in range(4)]
  for k, value in enumerate(expected_parts):
    assert got[f'backdoor_accuracy_part_{k}'] == value, k
  # The case is not trivial: the parts differ, and not all are 0 or 1.
  assert len(set(expected_parts)) >= 3
  assert any(0 < v < 1 for v in expected_parts)
  # The global trigger (all four corners) and the main task, likewise.
  assert got['backdoor_accuracy'] == target_rate(
      _stamp(source, np.any(corners, axis=0), amplitude))
  assert got['main_task_accuracy'] == np.mean(
      predict(digits.test_pixels) == digits.test_labels)


def test_tasks_without_parts_report_no_part_metric():
  digits = federated.load_synthetic(10, 20, seed=0)
  task = triggers.trigger_task(digits, 2, 1.0, 'four_corners', seed=3)
  evaluator = evaluation.Evaluator('linear', digits.test_pixels,
                                   digits.test_labels, task)
  weights = tff.learning.models.ModelWeights(
      trainable=list(_linear_weights(digits.test_pixels)),
      non_trainable=[])
  assert evaluator.part_metric_names == []
  assert set(evaluator.metrics(weights)) == {'main_task_accuracy',
                                             'backdoor_accuracy'}


def test_a_tiny_dba_run_writes_the_part_columns(tmp_path):
  config = config_lib.ExperimentConfig(
      root_output_dir=str(tmp_path), experiment_name='dba', random_seed=1,
      synthetic_num_clients=12, synthetic_examples_per_client=20,
      model='linear', num_clients_per_round=3, num_rounds=2, num_epochs=1,
      batch_size=10, task_num=2, attack='unconstrained', backdoor='dba',
      dba_parts=2, evaluate_per_rounds=2, defense='none')
  run_lib.run(config, progress=False)
  with open(os.path.join(config.output_dir, 'metrics.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  assert [int(r['round']) for r in rows] == [1, 2]
  for k in range(2):
    column = f'backdoor_accuracy_part_{k}'
    assert rows[0][column] == ''  # not evaluated in round 1
    assert 0.0 <= float(rows[1][column]) <= 1.0
  assert 'backdoor_accuracy_part_2' not in rows[0]
