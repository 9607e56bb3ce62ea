"""Per-example gradient clipping by tensorflow_privacy's fast-clipping registry.

DP-SGD needs Σ_i clip(∇ℓ_i, C) with clip(v, C) = v · min(1, C/‖v‖₂). Forming
every ∇ℓ_i (a Jacobian) costs B backward passes' memory. tensorflow_privacy's
fast gradient clipping (Lee & Kifer 2020; Goodfellow 2015, "ghost norms")
instead gets each ‖∇ℓ_i‖ from one backward pass to the layers' pre-activations
Z: a registered layer's function maps ∂(Σ_i ℓ_i)/∂Z to the per-example squared
norms of its weights' gradients. Then

  Σ_i clip(∇ℓ_i, C) = ∇_w Σ_i c_i ℓ_i,   c_i = C / max(C, ‖∇ℓ_i‖)

(`clip_grads.compute_clip_weights`). Since Z_i belongs to example i alone,
∂(Σ_i c_i ℓ_i)/∂Z_i = c_i ∂ℓ_i/∂Z_i, so each layer's clipped weight gradient
follows from its own Z, with no second backward pass through the network.

tensorflow_privacy 0.9 registers Dense and Embedding layers; this module adds
`tf.keras.layers.Conv2D` (`conv2d_layer_computation`) through the same
`LayerRegistry` contract. Unlike `clip_grads.compute_clipped_gradients_and_outputs`,
which runs the model forward twice, everything here shares one forward
pass, so the weights c_i belong to the gradients they scale even when
the model draws random dropout masks.
"""

from typing import Callable, Optional

import tensorflow as tf
from tensorflow_privacy.privacy.fast_gradient_clipping import clip_grads
from tensorflow_privacy.privacy.fast_gradient_clipping import gradient_clipping_utils
from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry as registry_lib


def conv2d_layer_computation(layer_instance: tf.keras.layers.Conv2D,
                             input_args, input_kwargs, tape: tf.GradientTape,
                             num_microbatches=None):
  """Registry function for `tf.keras.layers.Conv2D` (channels last, 1 group).

  Z = conv(x, K) + b is watched on `tape`. For example i with image patches
  P_i (one row per output position, kh·kw·c_in columns, the rows the
  convolution multiplies by K) and G_i = ∂L/∂Z_i (one row per position):
  ∂ℓ_i/∂K = P_iᵀ G_i and ∂ℓ_i/∂b = Σ_positions G_i, so the squared norm is
  ‖P_iᵀ G_i‖²_F + ‖1ᵀ G_i‖² (as many FLOPs as the layer's filter gradient).
  Returns `(Z, layer output, sqr_norm_fn)`, tensorflow_privacy's contract.
  """
  if input_kwargs:
    raise ValueError('Conv2D layer calls should not receive kwargs.')
  if len(input_args) != 1:
    raise ValueError('Only layer inputs of length 1 are permitted.')
  if num_microbatches is not None:
    raise NotImplementedError('Conv2D fast clipping takes no microbatches.')
  if not _conv2d_supported(layer_instance):
    raise NotImplementedError(
        f'Conv2D {layer_instance.name}: only channels_last, groups=1.')
  inputs = input_args[0]
  activation = layer_instance.activation
  layer_instance.activation = None
  try:
    base_vars = layer_instance(inputs)
  finally:
    layer_instance.activation = activation
  tape.watch(base_vars)
  outputs = activation(base_vars) if activation else base_vars

  def sqr_norm_fn(base_vars_grads):
    patches = _image_patches(inputs, layer_instance)
    batch = tf.shape(patches)[0]
    patches = tf.reshape(patches, [batch, -1, tf.shape(patches)[-1]])
    grads = tf.reshape(base_vars_grads,
                       [batch, -1, tf.shape(base_vars_grads)[-1]])
    kernel_grads = tf.linalg.matmul(patches, grads, transpose_a=True)
    squared = tf.reduce_sum(tf.square(kernel_grads), axis=[1, 2])
    if layer_instance.use_bias:
      squared += tf.reduce_sum(tf.square(tf.reduce_sum(grads, axis=1)),
                               axis=1)
    return squared

  return base_vars, outputs, sqr_norm_fn


def _image_patches(inputs, layer) -> tf.Tensor:
  """[B, out_h, out_w, kh·kw·c_in]: at each output position, the inputs the
  kernel multiplies there (column order (kh, kw, c_in), as the kernel's).

  With static spatial sizes, kh·kw strided slices of the (padded) input,
  concatenated; `tf.image.extract_patches` (several times slower on CPU)
  otherwise.
  """
  kh, kw = layer.kernel_size
  sh, sw = layer.strides
  dh, dw = layer.dilation_rate
  height, width = inputs.shape[1], inputs.shape[2]
  if height is None or width is None:
    return tf.image.extract_patches(
        inputs, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1],
        rates=[1, dh, dw, 1], padding=layer.padding.upper())
  span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
  if layer.padding == 'same':  # TensorFlow's SAME: the extra pixel after
    out_h, out_w = -(-height // sh), -(-width // sw)
    pad_h = max((out_h - 1) * sh + span_h - height, 0)
    pad_w = max((out_w - 1) * sw + span_w - width, 0)
    inputs = tf.pad(inputs, [[0, 0], [pad_h // 2, pad_h - pad_h // 2],
                             [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
  else:
    out_h = (height - span_h) // sh + 1
    out_w = (width - span_w) // sw + 1
  return tf.concat([
      inputs[:, i * dh:i * dh + (out_h - 1) * sh + 1:sh,
             j * dw:j * dw + (out_w - 1) * sw + 1:sw, :]
      for i in range(kh) for j in range(kw)], axis=-1)


def _conv2d_supported(layer) -> bool:
  return layer.data_format == 'channels_last' and layer.groups == 1


def layer_registry() -> registry_lib.LayerRegistry:
  """tensorflow_privacy's default registry (Dense, Embedding) plus Conv2D."""
  registry = registry_lib.make_default_layer_registry()
  registry.insert(tf.keras.layers.Conv2D, conv2d_layer_computation)
  return registry


def keras_model_of(model) -> Optional[tf.keras.Model]:
  """The Keras model behind a `tff.learning.models.from_keras_model` model
  (or `model` itself if it is one); None when there is none."""
  if isinstance(model, tf.keras.Model):
    return model
  keras_model = getattr(model, '_keras_model', None)  # TFF's Keras wrapper
  return keras_model if isinstance(keras_model, tf.keras.Model) else None


def supports(keras_model: Optional[tf.keras.Model]) -> bool:
  """Whether `keras_model` is a built functional (or Sequential) Keras model
  whose every trainable layer has a registry function here."""
  if (keras_model is None or not hasattr(keras_model, '_nodes_by_depth') or
      not getattr(keras_model, 'inputs', None)):  # not a built graph network
    return False
  registry = layer_registry()
  for layer in keras_model.layers:
    if not layer.trainable_variables:
      continue
    if hasattr(layer, '_nodes_by_depth'):  # a nested model
      if not supports(layer):
        return False
    elif not registry.is_elem(layer):
      return False
    elif isinstance(layer, tf.keras.layers.Conv2D) and not (
        _conv2d_supported(layer)):
      return False
  return True


def clipped_gradient_sum(
    keras_model: tf.keras.Model, x, y, l2_norm_clip: float,
    per_example_loss_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    variables) -> tuple:
  """(Σ_i clip(∇ℓ_i, C) per variable in `variables`, the batch's outputs).

  One forward pass in training mode (dropout on), one backward pass to the
  pre-activations Z, per-example norms from the registry's functions, then
  ∇_w Σ_i c_i ℓ_i (c_i constant) layer by layer from c_i ∂ℓ_i/∂Z_i. ℓ_i =
  `per_example_loss_fn(y, outputs)`, a vector of B losses. Each ‖∇ℓ_i‖ is the
  global norm over every trainable weight of the model, so `variables` must
  be all of them.
  """
  tape = tf.GradientTape(persistent=True)
  generator = clip_grads.get_registry_generator_fn(tape, layer_registry())

  def training_generator(layer, args, kwargs):
    if getattr(layer, '_expects_training_arg', False):
      kwargs = dict(kwargs, training=True)
    return generator(layer, args, kwargs)

  with tape:
    outputs, generated = gradient_clipping_utils.model_forward_pass(
        keras_model, x, generator_fn=training_generator)
    losses = per_example_loss_fn(y, outputs)
    summed_loss = tf.reduce_sum(losses)
  registered = [g for g in generated if g is not None]
  base_vars = [g[0] for g in registered]
  base_grads = tape.gradient(summed_loss, base_vars,
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)
  squared = tf.add_n([fn(g) for g, (_, fn, _) in zip(base_grads, registered)])
  weights = tf.stop_gradient(
      clip_grads.compute_clip_weights(l2_norm_clip, tf.sqrt(squared)))
  # ∂(Σ_i c_i ℓ_i)/∂Z_i = c_i ∂ℓ_i/∂Z_i: each layer's weight gradient from its
  # own Z, with no second backward pass through the network.
  clipped = {}
  for (base, _, layer_weights), grad in zip(registered, base_grads):
    scale = tf.reshape(weights, [-1] + [1] * (grad.shape.rank - 1))
    layer_grads = tape.gradient(
        base, layer_weights, output_gradients=grad * scale,
        unconnected_gradients=tf.UnconnectedGradients.ZERO)
    clipped.update((w.ref(), g) for w, g in zip(layer_weights, layer_grads))
  del tape
  missing = [v.name for v in variables if v.ref() not in clipped]
  if missing:
    raise ValueError(f'Variables {missing} belong to no registered layer.')
  return [clipped[v.ref()] for v in variables], outputs
