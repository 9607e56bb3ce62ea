"""Main-task and backdoor accuracy of a model (images: `Evaluator`; next-word
sequences: `TextEvaluator`; `build_evaluator` picks), and the running
backdoor mean."""

from typing import Optional

import numpy as np
import tensorflow as tf

from targeted_attack.backdoors import base as backdoor_base
from targeted_attack.data import text
from targeted_attack.process import models

# The metric (and metrics.csv column) of local trigger k's attack success.
BACKDOOR_PART_METRIC = 'backdoor_accuracy_part_{}'


class Evaluator:
  """Main-task and backdoor accuracy: one compiled pass over cached tensors.

  main task = fraction of test images classified as their label;
  backdoor = fraction of the task's evaluation images classified as its
  target label;
  backdoor part k (a task with K `eval_part_stamps`, DBA) = fraction of the
  evaluation images stamped with local trigger k alone,
  `task.eval_part_stamps[k](task.eval_source_pixels)`, classified as the
  target label: DBA's per-local-trigger attack success (Xie et al., ICLR
  2020, Sec. 4). Part images are stamped batch by batch at each evaluation
  (memory of one batch, not K copies of the evaluation set).
  """

  def __init__(self, model_name: str, test_pixels, test_labels,
               task: backdoor_base.BackdoorTask, batch_size: int = 1000,
               num_classes: int = 10):
    image_shape = tuple(np.shape(test_pixels)[1:])
    self.model = models.create_keras_model(model_name, num_classes,
                                           image_shape=image_shape)
    self._predict = tf.function(
        self._predict_logits_argmax, input_signature=[tf.TensorSpec(
            [None, *models.input_shape(image_shape)], tf.float32)])
    self._target_label = task.target_label
    split = lambda a: [
        tf.constant(a[i:i + batch_size]) for i in range(0, len(a), batch_size)
    ]
    self._test_x = split(models.model_input(test_pixels))
    self._test_y = split(test_labels.astype(np.int64))
    self._batch_size = batch_size
    self.set_backdoor_images(task)
    self._part_stamps = tuple(task.eval_part_stamps)
    self._part_source = []
    if self._part_stamps:
      source = np.asarray(task.eval_source_pixels, np.float32)
      self._part_source = [source[i:i + batch_size]
                           for i in range(0, len(source), batch_size)]

  def set_backdoor_images(self, task: backdoor_base.BackdoorTask) -> None:
    """Backdoor accuracy is measured on `task.eval_pixels` from now on (an
    adaptive trigger, A3FL, re-stamps them between rounds)."""
    self._target_label = task.target_label
    pixels, size = models.model_input(task.eval_pixels), self._batch_size
    self._backdoor_x = [tf.constant(pixels[i:i + size])
                        for i in range(0, len(pixels), size)]

  @property
  def part_metric_names(self) -> list:
    """'backdoor_accuracy_part_k', k = 0..K−1; empty for a task without parts."""
    return [BACKDOOR_PART_METRIC.format(k)
            for k in range(len(self._part_stamps))]

  def _predict_logits_argmax(self, x):
    return tf.argmax(self.model(x, training=False), axis=-1)

  def _target_rate(self, batches) -> float:
    hits = total = 0
    for x in batches:
      hits += int(tf.reduce_sum(tf.cast(
          self._predict(x) == self._target_label, tf.int32)))
      total += int(x.shape[0])
    return hits / total

  def _accuracies(self) -> tuple:
    correct = sum(
        int(tf.reduce_sum(tf.cast(self._predict(x) == y, tf.int32)))
        for x, y in zip(self._test_x, self._test_y))
    total = sum(int(y.shape[0]) for y in self._test_y)
    return correct / total, self._target_rate(self._backdoor_x)

  def metrics(self, model_weights) -> dict:
    """{main_task_accuracy, backdoor_accuracy, backdoor_accuracy_part_k…}."""
    model_weights.assign_weights_to(self.model)
    main, backdoor = self._accuracies()
    result = dict(main_task_accuracy=main, backdoor_accuracy=backdoor)
    for name, stamp_part in zip(self.part_metric_names, self._part_stamps):
      result[name] = self._target_rate(
          models.model_input(stamp_part(x)) for x in self._part_source)
    return result


class TextEvaluator:
  """Next-word main-task and backdoor accuracy (`data.text`):

  main task = fraction of the test targets y_{i,t} not among `excluded`
  (words: PAD, OOV, BOS and EOS, `text.special_ids`; characters: PAD)
  predicted exactly, argmax_v logits_{i,t,v} = y_{i,t} (the papers' token
  accuracy); backdoor = fraction of the task's evaluation sequences i whose
  predictions at `task.eval_positions[i]` (one, or the k of the last word's
  characters) are all the targets (`task.eval_targets`, else the target
  word).
  """

  def __init__(self, model_name: str, test_x, test_y, task,
               num_classes: int, batch_size: int = 500,
               excluded: Optional[tuple] = None):
    length = int(np.shape(test_x)[1])
    self.model = models.create_keras_model(model_name, num_classes,
                                           image_shape=(length,))
    self._special = tf.constant(
        text.special_ids(num_classes) if excluded is None else excluded,
        tf.int32)
    self._predict = tf.function(
        lambda x: tf.argmax(self.model(x, training=False), axis=-1,
                            output_type=tf.int32),
        input_signature=[tf.TensorSpec([None, length], tf.int32)])
    split = lambda a: [tf.constant(np.asarray(a[i:i + batch_size], np.int32))
                       for i in range(0, len(a), batch_size)]
    self._test_x, self._test_y = split(test_x), split(test_y)
    self._split = split
    self.set_backdoor_images(task)

  def set_backdoor_images(self, task) -> None:
    targets = task.eval_targets or (task.target_label,)
    self._targets = tf.constant(targets, tf.int32)
    self._backdoor_x = self._split(task.eval_pixels)
    positions = np.asarray(task.eval_positions)
    self._positions = self._split(positions.reshape(len(positions),
                                                    len(targets)))

  @property
  def part_metric_names(self) -> list:
    return []

  def metrics(self, model_weights) -> dict:
    """{main_task_accuracy, backdoor_accuracy}."""
    model_weights.assign_weights_to(self.model)
    correct = counted = 0
    for x, y in zip(self._test_x, self._test_y):
      valid = tf.reduce_all(y[..., None] != self._special, axis=-1)
      hits = tf.logical_and(valid, self._predict(x) == y)
      correct += int(tf.reduce_sum(tf.cast(hits, tf.int32)))
      counted += int(tf.reduce_sum(tf.cast(valid, tf.int32)))
    backdoor_hits = total = 0
    for x, positions in zip(self._backdoor_x, self._positions):
      read = tf.gather(self._predict(x), positions, batch_dims=1)
      all_hit = tf.reduce_all(read == self._targets, axis=1)
      backdoor_hits += int(tf.reduce_sum(tf.cast(all_hit, tf.int32)))
      total += int(x.shape[0])
    return dict(main_task_accuracy=correct / max(counted, 1),
                backdoor_accuracy=backdoor_hits / max(total, 1))


def build_evaluator(model_name: str, data, task):
  """The dataset's evaluator: `TextEvaluator` for token sequences
  (`data.kind` 'text'), else `Evaluator`."""
  if getattr(data, 'kind', 'images') == 'text':
    return TextEvaluator(model_name, data.test_pixels, data.test_labels,
                         task, data.num_classes,
                         excluded=data.vocabulary.excluded_ids)
  return Evaluator(model_name, data.test_pixels, data.test_labels, task,
                   num_classes=data.num_classes)
