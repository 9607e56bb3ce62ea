"""TF logic of a client's local training (plain TensorFlow, no federated code).

A `LocalTrainer` wraps a `tff.learning.models.VariableModel` built inside a
client's TF computation and a `tff.learning.optimizers.Optimizer`. Its methods
are called from inside a `tf.function` (the client update), where automatic
control dependencies keep the variable updates in program order.
"""

import tensorflow as tf
import tensorflow_federated as tff


def global_norm(structure) -> tf.Tensor:
  """‖x‖₂ over every tensor of `structure`, as one flattened vector."""
  return tf.linalg.global_norm(tf.nest.flatten(structure))


def subtract(a, b):
  """a − b, tensor by tensor."""
  return tf.nest.map_structure(tf.subtract, a, b)


def add_scaled(a, b, scale):
  """a + scale · b, tensor by tensor."""
  return tf.nest.map_structure(lambda x, y: x + scale * y, a, b)


def project_to_ball(delta, radius):
  """Projection onto the ℓ2 ball of `radius`: δ · min(1, radius / ‖δ‖₂)."""
  projected, _ = tf.clip_by_global_norm(tf.nest.flatten(delta), radius)
  return tf.nest.pack_sequence_as(delta, projected)


class LocalTrainer:
  """Local SGD-style training of one model's trainable weights."""

  def __init__(self, model: tff.learning.models.VariableModel,
               optimizer: tff.learning.optimizers.Optimizer):
    self.model = model
    self.optimizer = optimizer
    self.weights = tff.learning.models.ModelWeights.from_model(model)

  @property
  def trainable(self):
    return self.weights.trainable

  def assign_trainable(self, values) -> None:
    tf.nest.map_structure(lambda v, t: v.assign(t), self.weights.trainable,
                          values)

  def assign_weights(self, model_weights) -> None:
    tf.nest.map_structure(lambda v, t: v.assign(t), self.weights,
                          model_weights)

  def read_trainable(self):
    """A snapshot (tensors, not variables) of the trainable weights."""
    return tf.nest.map_structure(tf.identity, self.weights.trainable)

  def train_pass(self, dataset: tf.data.Dataset) -> tf.Tensor:
    """One pass of local training over `dataset`; returns the example count.

    The optimizer state starts fresh at every pass. The model's metrics
    accumulate over the pass.
    """
    trainable = self.weights.trainable
    flat_specs = tuple(
        tf.TensorSpec(v.shape, v.dtype) for v in tf.nest.flatten(trainable))

    def step(state, batch):
      num_examples, optimizer_state = state
      with tf.GradientTape() as tape:
        output = self.model.forward_pass(batch, training=True)
      gradients = tape.gradient(output.loss, trainable)
      optimizer_state, updated = self.optimizer.next(
          optimizer_state, tuple(tf.nest.flatten(trainable)),
          tuple(tf.nest.flatten(gradients)))
      self.assign_trainable(tf.nest.pack_sequence_as(trainable, updated))
      if output.num_examples is None:
        batch_size = tf.shape(output.predictions, out_type=tf.int64)[0]
      else:
        batch_size = tf.cast(output.num_examples, tf.int64)
      return num_examples + batch_size, optimizer_state

    initial_state = (tf.constant(0, tf.int64),
                     self.optimizer.initialize(flat_specs))
    num_examples, _ = dataset.reduce(initial_state, step)
    return num_examples

  def train_pass_without_metrics(self, dataset: tf.data.Dataset) -> tf.Tensor:
    """`train_pass` that leaves the model's metric accumulators unchanged.

    Used for malicious passes, so that reported training metrics describe the
    benign data only.
    """
    saved = [tf.identity(v) for v in self.model.local_variables]
    num_examples = self.train_pass(dataset)
    with tf.control_dependencies([num_examples]):
      for variable, value in zip(self.model.local_variables, saved):
        variable.assign(value)
    return tf.identity(num_examples)


def dataset_is_empty(dataset: tf.data.Dataset) -> tf.Tensor:
  """True when `dataset` yields no element (reads at most one)."""
  count = dataset.take(1).reduce(
      tf.constant(0, tf.int64), lambda count, _: count + 1)
  return tf.equal(count, 0)
