"""Main-task and backdoor accuracy of a model, and the running backdoor mean."""

import numpy as np
import tensorflow as tf

from targeted_attack.backdoors import base as backdoor_base
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
