"""TF logic of a client's local training (plain TensorFlow, no federated code).

A `LocalTrainer` wraps a `tff.learning.models.VariableModel` built inside a
client's TF computation and a `tff.learning.optimizers.Optimizer`. Its methods
are called from inside a `tf.function` (the client update), where automatic
control dependencies keep the variable updates in program order.

Every pass over a dataset is `dataset_loops.fold_batches` (by default an
iterator loop, not `dataset.reduce`).
"""

import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import dataset_loops
from targeted_attack.process import models

# Folded into the client's seed for the dropout masks' stream (distinct from
# the per-pass indices folded in for DP-SGD's noise).
_DROPOUT_STREAM = 0x64726f70



def dense_gradients(gradients):
  """`gradients` with every `tf.IndexedSlices` (an embedding's: the rows of
  the tokens seen) as the dense tensor it stands for, so that every update
  (SGD, momentum, projections, norms) is the plain arithmetic on tensors."""
  return tf.nest.map_structure(
      lambda g: tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices)
      else g, gradients)

class LocalTrainer:
  """Local SGD-style training of one model's trainable weights.

  With `dp_sgd`, the protocol's training passes (`train_pass`) use DP-SGD
  gradients while `follows_protocol` is True; a malicious client's strategy
  sets it False (`attacks.base.ClientUpdateStrategy`), and its own passes
  (`train_pass_without_metrics`, `sgd_pass`) never use it: a malicious
  client has no reason to add noise. `loop` is `fold_batches`'s.
  """

  def __init__(self, model: tff.learning.models.VariableModel,
               optimizer: tff.learning.optimizers.Optimizer,
               dp_sgd=None, loop: str = 'iterator'):
    self.loop = loop  # checked by `fold_batches`
    self.model = model
    self.optimizer = optimizer
    self.dp_sgd = dp_sgd
    self.follows_protocol = True  # trace-time: False in a malicious update
    self.weights = tff.learning.models.ModelWeights.from_model(model)
    self.seed = tf.constant([0, 0], tf.int64)
    self._num_passes = 0  # trace-time count: each pass folds in its own index
    self._num_dropout_passes = 0  # trace-time count of every training pass
    self._step_seed = tf.Variable(tf.zeros([2], tf.int64), trainable=False,
                                  name='dropout_step_seed')

  def fold(self, dataset: tf.data.Dataset, initial_state, step):
    """`fold_batches` with this trainer's loop kind."""
    return dataset_loops.fold_batches(dataset, initial_state, step, self.loop)

  def set_seed(self, seed) -> None:
    """The client's int64[2] stateless seed (DP-SGD noise, per step)."""
    self.seed = seed

  def assign_trainable(self, values) -> None:
    tf.nest.map_structure(lambda v, t: v.assign(t), self.weights.trainable,
                          values)

  def assign_weights(self, model_weights) -> None:
    tf.nest.map_structure(lambda v, t: v.assign(t), self.weights,
                          model_weights)

  def _next_dropout_seed(self, dropout_pass=None):
    """The int64[2] dropout seed of a training pass: fold_in(fold_in(client
    seed, stream), pass index), the index `dropout_pass` or else the next
    one (1, 2, … in trace order; `attacks.base.benign_update`'s is 0)."""
    if dropout_pass is None:
      self._num_dropout_passes += 1
      dropout_pass = self._num_dropout_passes
    return dropout_seed_of_pass(self.seed, dropout_pass)

  def _dropout_scope(self, dropout_seed, t):
    """The scope of step t of a pass: its dropout seed fold_in(pass's, t),
    held in the trainer's seed variable (`models.step_seed`)."""
    self._step_seed.assign(
        tf.random.experimental.stateless_fold_in(dropout_seed, t))
    return models.step_seed(self._step_seed)

  def read_trainable(self):
    """A snapshot (tensors, not variables) of the trainable weights."""
    return tf.nest.map_structure(tf.identity, self.weights.trainable)

  def train_pass(self, dataset: tf.data.Dataset,
                 private: bool = True, dropout_pass=None) -> tf.Tensor:
    """One pass of local training over `dataset`; returns the example count.

    The optimizer state starts fresh at every pass. The model's metrics
    accumulate over the pass. With `dp_sgd` and `private`, gradients are
    DP-SGD's. `dropout_pass`: the pass index of its dropout masks
    (`_next_dropout_seed`).
    """
    use_dp = self.dp_sgd is not None and private and self.follows_protocol
    self._num_passes += 1
    pass_seed = tf.random.experimental.stateless_fold_in(self.seed,
                                                         self._num_passes)
    dropout_seed = self._next_dropout_seed(dropout_pass)
    trainable = self.weights.trainable
    flat_specs = tuple(
        tf.TensorSpec(v.shape, v.dtype) for v in tf.nest.flatten(trainable))

    def step(state, batch):
      num_examples, optimizer_state, t = state
      with self._dropout_scope(dropout_seed, t):
        if use_dp:
          gradients, logits = self.dp_sgd.gradients_and_outputs(
              self.model, batch, trainable,
              tf.random.experimental.stateless_fold_in(pass_seed, t))
          output = self._metrics_of(batch, logits)
        else:
          with tf.GradientTape() as tape:
            output = self.model.forward_pass(batch, training=True)
          gradients = dense_gradients(tape.gradient(output.loss, trainable))
      optimizer_state, updated = self.optimizer.next(
          optimizer_state, tuple(tf.nest.flatten(trainable)),
          tuple(tf.nest.flatten(gradients)))
      self.assign_trainable(tf.nest.pack_sequence_as(trainable, updated))
      if output.num_examples is None:
        batch_size = tf.shape(output.predictions, out_type=tf.int64)[0]
      else:
        batch_size = tf.cast(output.num_examples, tf.int64)
      return num_examples + batch_size, optimizer_state, t + 1

    initial_state = (tf.constant(0, tf.int64),
                     self.optimizer.initialize(flat_specs),
                     tf.constant(0, tf.int64))
    num_examples, _, _ = self.fold(dataset, initial_state, step)
    return num_examples

  def _metrics_of(self, batch, logits):
    """Updates the model's metrics with `logits`, the outputs of the DP pass
    (a TFF Keras model's metrics); other models run `forward_pass` again."""
    metrics = getattr(self.model, 'get_metrics', None)
    if metrics is None:
      return self.model.forward_pass(batch, training=False)
    for metric in metrics():
      metric.update_state(y_true=batch['y'], y_pred=logits)
    return tff.learning.models.BatchOutput(
        loss=None, predictions=logits, num_examples=tf.shape(logits)[0])

  def train_pass_without_metrics(self, dataset: tf.data.Dataset) -> tf.Tensor:
    """`train_pass` that leaves the model's metric accumulators unchanged.

    Used for malicious passes, so that reported training metrics describe the
    benign data only.
    """
    return self.preserving_metrics(
        lambda: self.train_pass(dataset, private=False))

  def preserving_metrics(self, fn):
    """Runs `fn()`, then restores the model's metric accumulators."""
    saved = [tf.identity(v) for v in self.model.local_variables]
    result = fn()
    with tf.control_dependencies(tf.nest.flatten(result)):
      for variable, value in zip(self.model.local_variables, saved):
        variable.assign(value)
    return tf.nest.map_structure(tf.identity, result)

  def sgd_pass(self, dataset: tf.data.Dataset, learning_rate_fn,
               class_loss_weight: float = 1.0, regularizer=None,
               after_step=None, initial_step=0) -> tuple:
    """One pass of plain SGD with the attacker's own loss and schedule.

    Per batch: w ← w − η(t) · ∇_w [a · L_class(batch; w) + R(w)], with
    η = `learning_rate_fn(t)`, a = `class_loss_weight`, R = `regularizer`
    (or 0); `after_step(t + 1, w)` may map the new weights (e.g. project
    them) before they are assigned. Returns
    (examples seen, next step t). Leaves the model's metrics unchanged.
    """
    trainable = self.weights.trainable
    dropout_seed = self._next_dropout_seed()

    def step(state, batch):
      num_examples, t = state
      with tf.GradientTape() as tape, self._dropout_scope(dropout_seed, t):
        output = self.model.forward_pass(batch, training=True)
        loss = class_loss_weight * output.loss
        if regularizer is not None:
          loss += regularizer(trainable)
      gradients = dense_gradients(tape.gradient(loss, trainable))
      rate = learning_rate_fn(t)
      updated = tf.nest.map_structure(lambda v, g: v - rate * g, trainable,
                                      gradients)
      t += 1
      if after_step is not None:
        updated = after_step(t, updated)
      self.assign_trainable(updated)
      batch_size = tf.shape(output.predictions, out_type=tf.int64)[0]
      return num_examples + batch_size, t

    def run():
      return self.fold(
          dataset,
          (tf.constant(0, tf.int64), tf.cast(initial_step, tf.int64)), step)

    return self.preserving_metrics(run)

  def summed_gradient(self, dataset: tf.data.Dataset):
    """Σ_b ∇_w L(b; w) over the batches b of `dataset` at the current
    weights (no training, metrics unchanged): a structure like the weights."""
    trainable = self.weights.trainable

    # tf.data takes a Python list for one tensor: the sum is a flat tuple.
    def accumulate(total, batch):
      with tf.GradientTape() as tape:
        output = self.model.forward_pass(batch, training=False)
      gradients = tf.nest.flatten(dense_gradients(
          tape.gradient(output.loss, trainable)))
      return tuple(t + g for t, g in zip(total, gradients))

    def run():
      total = self.fold(
          dataset,
          tuple(tf.zeros_like(v) for v in tf.nest.flatten(trainable)),
          accumulate)
      return tf.nest.pack_sequence_as(trainable, list(total))

    return self.preserving_metrics(run)

  def mean_loss(self, dataset: tf.data.Dataset) -> tf.Tensor:
    """Mean per-batch loss over `dataset` (no training, metrics unchanged)."""

    def accumulate(state, batch):
      total, count = state
      output = self.model.forward_pass(batch, training=False)
      return total + tf.cast(output.loss, tf.float32), count + 1.0

    def run():
      total, count = self.fold(dataset, (0.0, 0.0), accumulate)
      return tf.math.divide_no_nan(total, count)

    return self.preserving_metrics(run)


def dropout_seed_of_pass(client_seed, dropout_pass):
  """fold_in(fold_in(client seed, stream), pass index): a pass's dropout seed;
  its step t's is fold_in(that, t) (`LocalTrainer._dropout_scope`)."""
  return tf.random.experimental.stateless_fold_in(
      tf.random.experimental.stateless_fold_in(client_seed, _DROPOUT_STREAM),
      dropout_pass)


def dataset_is_empty(dataset: tf.data.Dataset) -> tf.Tensor:
  """True when `dataset` yields no element (reads at most one)."""
  count = dataset_loops.fold_batches(dataset.take(1), tf.constant(0, tf.int64),
                                     lambda count, _: count + 1)
  return tf.equal(count, 0)
