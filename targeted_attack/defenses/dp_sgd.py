"""Client-side DP-SGD as a defense (Abadi et al. 2016; Turner 2019).

The clients' protocol training uses `DPSGD`'s privatized gradients
(`process.local_training.LocalTrainer`); the server takes the weighted mean.
"""

import dataclasses

import tensorflow as tf

from targeted_attack import checks
from targeted_attack.defenses import clipping
from targeted_attack.defenses import fast_clipping


def sentence_loss(labels, logits):
  """Per sentence i: Σ_t m_it·CE(y_it, logits_it) / Σ_t m_it, m_it =
  1[y_it ≠ 0] (PAD), 0 where a sentence has no target; labels [B, T],
  logits [B, T, V]."""
  labels = tf.cast(labels, tf.int32)
  mask = tf.cast(tf.not_equal(labels, 0), logits.dtype)
  per_token = tf.keras.losses.sparse_categorical_crossentropy(
      labels, logits, from_logits=True)
  return tf.math.divide_no_nan(tf.reduce_sum(per_token * mask, axis=1),
                               tf.reduce_sum(mask, axis=1))


@dataclasses.dataclass(frozen=True)
class DPSGD:
  """DP-SGD on the clients (Abadi et al. 2016; Turner 2019 as a defense).

  Per batch of B examples: g = (Σ_i clip(∇ℓ_i, C) + z) / B, with
  clip(v, C) = v · min(1, C / ‖v‖₂) per example (global norm over all
  tensors) and z ~ N(0, (σ · C)²) per coordinate, σ = `noise_multiplier`
  (tensorflow_privacy's `GaussianSumQuery`, as `clipping.SeededGaussianSumQuery`
  with its noise drawn from the stateless seed given per step, so a run
  repeats exactly). ℓ_i is the per-example sparse categorical cross-entropy
  of the model's logits; on next-word prediction an example is a sentence
  (x int ids [B, T]) and ℓ_i = Σ_t m_it·CE_it / Σ_t m_it, its mean over the
  targets that are not PAD (m_it = 1[y_it ≠ 0]; 0 for a sentence of PAD
  only), so that without clipping and noise g is the mean over sentences of
  each sentence's mean-token gradient (the non-private loss weights every
  token alike). The clipped sum comes from tensorflow_privacy's fast
  gradient clipping (`fast_clipping`) for Keras models of Dense, Embedding and
  Conv2D layers, else (recurrent models too) from the per-example Jacobian.
  The training metrics of a DP pass are those of its own forward pass
  (training mode).
  """
  l2_norm_clip: float
  noise_multiplier: float
  fast_clipping: bool = True  # False: always the Jacobian (reference path)

  def __post_init__(self):
    checks.positive('l2_norm_clip', self.l2_norm_clip)
    checks.number('noise_multiplier', self.noise_multiplier, 0.0)

  def gradients_and_outputs(self, model, batch, trainable, seed) -> tuple:
    """(the privatized mean gradient, the model's training-mode outputs).

    Σ_i clip(∇ℓ_i, C) comes from tensorflow_privacy's fast clipping
    (`fast_clipping`: one forward pass, per-example norms from the layers'
    registry functions) when every trainable layer of the Keras model is
    registered (Dense, Embedding, Conv2D); otherwise from the per-example
    Jacobian, vectorized over the batch.
    """
    # Token ids [B, T] (text); images and features are floats.
    sentences = batch['x'].dtype.is_integer and batch['x'].shape.rank == 2
    labels = batch['y'] if sentences else tf.reshape(batch['y'], [-1])
    per_example_loss = (sentence_loss if sentences else
                        lambda y, logits: (
                            tf.keras.losses.sparse_categorical_crossentropy(
                                y, logits, from_logits=True)))
    flat = tf.nest.flatten(trainable)
    keras_model = fast_clipping.keras_model_of(model)
    if (self.fast_clipping and not sentences and
        fast_clipping.supports(keras_model)):
      summed, logits = fast_clipping.clipped_gradient_sum(
          keras_model, batch['x'], labels, self.l2_norm_clip,
          per_example_loss, flat)
    else:
      # Sentences: the model's recurrent layers unrolled
      # (`models.build_model_fn`'s `unroll`): an LSTM's own loop does not
      # survive TFF's graph import under the Jacobian.
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
