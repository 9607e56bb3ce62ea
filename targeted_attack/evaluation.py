"""Main-task and backdoor accuracy of a model, and the running backdoor mean."""

import numpy as np
import tensorflow as tf

from targeted_attack import data as data_lib
from targeted_attack import models


class Evaluator:
  """Main-task and backdoor accuracy: one compiled pass over cached tensors.

  main task = fraction of test images classified as their label;
  backdoor = fraction of the task's evaluation images classified as its
  target label.
  """

  def __init__(self, model_name: str, test_pixels, test_labels,
               task: data_lib.BackdoorTask, batch_size: int = 1000):
    self.model = models.create_keras_model(model_name)
    self._target_label = task.target_label
    split = lambda a: [
        tf.constant(a[i:i + batch_size]) for i in range(0, len(a), batch_size)
    ]
    self._test_x = split(test_pixels[..., np.newaxis])
    self._test_y = split(test_labels.astype(np.int64))
    self._backdoor_x = split(task.eval_pixels[..., np.newaxis])

  @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
  def _predict(self, x):
    return tf.argmax(self.model(x, training=False), axis=-1)

  def __call__(self, model_weights) -> tuple:
    """(main-task accuracy, backdoor accuracy) of `model_weights`."""
    model_weights.assign_weights_to(self.model)
    correct = sum(
        int(tf.reduce_sum(tf.cast(self._predict(x) == y, tf.int32)))
        for x, y in zip(self._test_x, self._test_y))
    total = sum(int(y.shape[0]) for y in self._test_y)
    hits = sum(
        int(tf.reduce_sum(tf.cast(self._predict(x) == self._target_label,
                                  tf.int32))) for x in self._backdoor_x)
    backdoor_total = sum(int(x.shape[0]) for x in self._backdoor_x)
    return correct / total, hits / backdoor_total
