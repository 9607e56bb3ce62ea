"""TF logic of a client's local training (plain TensorFlow, no federated code).

A `LocalTrainer` wraps a `tff.learning.models.VariableModel` built inside a
client's TF computation and a `tff.learning.optimizers.Optimizer`. Its methods
are called from inside a `tf.function` (the client update), where automatic
control dependencies keep the variable updates in program order.
"""

import dataclasses

import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import checks
from targeted_attack import fast_clipping
from targeted_attack.aggregators import clipping


@dataclasses.dataclass(frozen=True)
class DPSGD:
  """DP-SGD on the clients (Abadi et al. 2016; Turner 2019 as a defense).

  Per batch of B examples: g = (Σ_i clip(∇ℓ_i, C) + z) / B, with
  clip(v, C) = v · min(1, C / ‖v‖₂) per example (global norm over all
  tensors) and z ~ N(0, (σ · C)²) per coordinate, σ = `noise_multiplier`
  (tensorflow_privacy's `GaussianSumQuery`, as `clipping.SeededGaussianSumQuery`
  with its noise drawn from the stateless seed given per step, so a run
  repeats exactly). ℓ_i is the per-example sparse categorical cross-entropy
  of the model's logits. The clipped sum comes from tensorflow_privacy's fast
  gradient clipping (`fast_clipping`) for Keras models of Dense, Embedding and
  Conv2D layers, else from the per-example Jacobian. The training metrics of
  a DP pass are those of its own forward pass (training mode).
  """
  l2_norm_clip: float
  noise_multiplier: float
  fast_clipping: bool = True  # False: always the Jacobian (reference path)

  def __post_init__(self):
    checks.positive('l2_norm_clip', self.l2_norm_clip)
    checks.number('noise_multiplier', self.noise_multiplier, 0.0)

  def gradients(self, model, batch, trainable, seed):
    """The privatized mean gradient of one batch; `seed`: int64[2]."""
    return self.gradients_and_outputs(model, batch, trainable, seed)[0]

  def gradients_and_outputs(self, model, batch, trainable, seed) -> tuple:
    """(the privatized mean gradient, the model's training-mode outputs).

    Σ_i clip(∇ℓ_i, C) comes from tensorflow_privacy's fast clipping
    (`fast_clipping`: one forward pass, per-example norms from the layers'
    registry functions) when every trainable layer of the Keras model is
    registered (Dense, Embedding, Conv2D); otherwise from the per-example
    Jacobian, vectorized over the batch.
    """
    labels = tf.reshape(batch['y'], [-1])
    per_example_loss = lambda y, logits: (
        tf.keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True))
    flat = tf.nest.flatten(trainable)
    keras_model = fast_clipping.keras_model_of(model)
    if self.fast_clipping and fast_clipping.supports(keras_model):
      summed, logits = fast_clipping.clipped_gradient_sum(
          keras_model, batch['x'], labels, self.l2_norm_clip,
          per_example_loss, flat)
    else:
      summed, logits = self._clipped_sum_by_jacobian(model, batch['x'],
                                                     labels, flat,
                                                     per_example_loss)
    # Gaussian noise of stddev σ·C on the sum (tensorflow_privacy's query).
    query = clipping.SeededGaussianSumQuery(self.l2_norm_clip,
                                            self.noise_multiplier *
                                            self.l2_norm_clip, seed)
    noised, _, _ = query.get_noised_result(list(summed),
                                           query.initial_global_state())
    batch_size = tf.cast(tf.shape(labels)[0], tf.float32)
    mean = [g / batch_size for g in noised]
    return tf.nest.pack_sequence_as(trainable, mean), logits

  def _clipped_sum_by_jacobian(self, model, x, labels, flat,
                               per_example_loss) -> tuple:
    with tf.GradientTape() as tape:
      logits = model.predict_on_batch(x, training=True)
      losses = per_example_loss(labels, logits)
    jacobians = tape.jacobian(losses, flat)
    # Per-example clipping, vectorized over the batch axis: g_i · min(1, C/‖g_i‖).
    squared = tf.add_n([
        tf.reduce_sum(tf.square(tf.reshape(j, [tf.shape(j)[0], -1])), axis=1)
        for j in jacobians
    ])
    factors = tf.minimum(1.0, self.l2_norm_clip /
                         tf.maximum(tf.sqrt(squared), 1e-12))
    return [tf.tensordot(factors, j, axes=1) for j in jacobians], logits


class LocalTrainer:
  """Local SGD-style training of one model's trainable weights.

  With `dp_sgd`, the protocol's training passes (`train_pass`) use DP-SGD
  gradients; an attacker's own passes (`train_pass_without_metrics`,
  `sgd_pass`) do not: a malicious client need not follow the protocol.
  """

  def __init__(self, model: tff.learning.models.VariableModel,
               optimizer: tff.learning.optimizers.Optimizer,
               dp_sgd: 'DPSGD | None' = None):
    self.model = model
    self.optimizer = optimizer
    self.dp_sgd = dp_sgd
    self.weights = tff.learning.models.ModelWeights.from_model(model)
    self.seed = tf.constant([0, 0], tf.int64)
    self._num_passes = 0  # trace-time count: each pass folds in its own index

  def set_seed(self, seed) -> None:
    """The client's int64[2] stateless seed (DP-SGD noise, per step)."""
    self.seed = seed

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

  def train_pass(self, dataset: tf.data.Dataset,
                 private: bool = True) -> tf.Tensor:
    """One pass of local training over `dataset`; returns the example count.

    The optimizer state starts fresh at every pass. The model's metrics
    accumulate over the pass. With `dp_sgd` and `private`, gradients are
    DP-SGD's.
    """
    use_dp = self.dp_sgd is not None and private
    self._num_passes += 1
    pass_seed = tf.random.experimental.stateless_fold_in(self.seed,
                                                         self._num_passes)
    trainable = self.weights.trainable
    flat_specs = tuple(
        tf.TensorSpec(v.shape, v.dtype) for v in tf.nest.flatten(trainable))

    def step(state, batch):
      num_examples, optimizer_state, t = state
      if use_dp:
        gradients, logits = self.dp_sgd.gradients_and_outputs(
            self.model, batch, trainable,
            tf.random.experimental.stateless_fold_in(pass_seed, t))
        output = self._metrics_of(batch, logits)
      else:
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
      return num_examples + batch_size, optimizer_state, t + 1

    initial_state = (tf.constant(0, tf.int64),
                     self.optimizer.initialize(flat_specs),
                     tf.constant(0, tf.int64))
    num_examples, _, _ = dataset.reduce(initial_state, step)
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

    def step(state, batch):
      num_examples, t = state
      with tf.GradientTape() as tape:
        output = self.model.forward_pass(batch, training=True)
        loss = class_loss_weight * output.loss
        if regularizer is not None:
          loss += regularizer(trainable)
      gradients = tape.gradient(loss, trainable)
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
      return dataset.reduce(
          (tf.constant(0, tf.int64), tf.cast(initial_step, tf.int64)), step)

    return self.preserving_metrics(run)

  def mean_loss(self, dataset: tf.data.Dataset) -> tf.Tensor:
    """Mean per-batch loss over `dataset` (no training, metrics unchanged)."""

    def accumulate(state, batch):
      total, count = state
      output = self.model.forward_pass(batch, training=False)
      return total + tf.cast(output.loss, tf.float32), count + 1.0

    def run():
      total, count = dataset.reduce((0.0, 0.0), accumulate)
      return tf.math.divide_no_nan(total, count)

    return self.preserving_metrics(run)


def poison_batches(benign: tf.data.Dataset, backdoor: tf.data.Dataset,
                   poison_per_batch: int) -> tf.data.Dataset:
  """Each benign batch with its first c items replaced by backdoor items.

  Backdoor items are taken in order, cycling (Bagdasaryan et al. 2018,
  Alg. 2: "replace c items of each batch").
  """
  poison = backdoor.unbatch().repeat().batch(poison_per_batch)

  def replace(batch, items):
    return tf.nest.map_structure(
        lambda b, p: tf.concat([p, b[poison_per_batch:]], axis=0), batch,
        items)

  return tf.data.Dataset.zip((benign, poison)).map(replace)


def batch_size_of(dataset: tf.data.Dataset) -> tf.Tensor:
  """The number of rows of the first batch of `dataset` (0 when empty)."""
  return dataset.take(1).reduce(
      tf.constant(0, tf.int64), lambda _, batch: tf.shape(
          tf.nest.flatten(batch)[0], out_type=tf.int64)[0])


def union(benign: tf.data.Dataset, malicious: tf.data.Dataset,
          seed) -> tf.data.Dataset:
  """D_trn ∪ D_mal: the examples of both, shuffled together, rebatched.

  The examples are gathered into tensors and permuted by a stateless shuffle
  of `seed` (int64 scalar, paired with a constant), so the order depends on
  the seed alone; batches have the size of the larger first batch of the two.
  """
  batch_size = tf.maximum(batch_size_of(benign), batch_size_of(malicious))
  examples = benign.unbatch().concatenate(malicious.unbatch())
  everything = examples.batch(2**31 - 1).get_single_element()
  count = tf.shape(tf.nest.flatten(everything)[0])[0]
  order = tf.random.experimental.stateless_shuffle(
      tf.range(count), tf.stack([tf.cast(seed, tf.int64),
                                 tf.constant(0x5eed, tf.int64)]))
  shuffled = tf.nest.map_structure(lambda t: tf.gather(t, order), everything)
  return tf.data.Dataset.from_tensor_slices(shuffled).batch(
      tf.cast(tf.maximum(batch_size, 1), tf.int64))


def count_examples(dataset: tf.data.Dataset) -> tf.Tensor:
  """The number of examples (rows of its batches) in one pass of `dataset`."""
  return dataset.reduce(
      tf.constant(0, tf.int64), lambda count, batch: count + tf.shape(
          tf.nest.flatten(batch)[0], out_type=tf.int64)[0])


def dataset_is_empty(dataset: tf.data.Dataset) -> tf.Tensor:
  """True when `dataset` yields no element (reads at most one)."""
  count = dataset.take(1).reduce(
      tf.constant(0, tf.int64), lambda count, _: count + 1)
  return tf.equal(count, 0)
