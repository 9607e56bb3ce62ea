"""Fast per-example clipping (tensorflow_privacy's registry + our Conv2D)
against per-example gradients taken one example at a time and clipped in
NumPy: Σ_i g_i · min(1, C/‖g_i‖₂)."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import process as process_lib
from targeted_attack.defenses import fast_clipping
from targeted_attack.defenses import dp_sgd


def _conv_model(padding='valid', strides=1, dilation=1, dropout=0.0,
                bias=True):
  init = lambda i: tf.keras.initializers.GlorotUniform(seed=i)
  layers = [
      tf.keras.layers.Conv2D(3, 3, padding=padding, strides=strides,
                             dilation_rate=dilation, activation='relu',
                             use_bias=bias, input_shape=(7, 7, 2),
                             kernel_initializer=init(0),
                             bias_initializer=init(5)),
      tf.keras.layers.Conv2D(2, 2, activation='tanh', kernel_initializer=init(1),
                             bias_initializer=init(6)),
      tf.keras.layers.Flatten(),
  ]
  if dropout:
    layers.append(tf.keras.layers.Dropout(dropout, seed=3))
  layers.append(tf.keras.layers.Dense(4, kernel_initializer=init(2),
                                      bias_initializer=init(7)))
  return tf.keras.Sequential(layers)


def _examples(n=5, seed=0):
  rng = np.random.RandomState(seed)
  return (rng.randn(n, 7, 7, 2).astype(np.float32),
          rng.randint(0, 4, size=(n,)).astype(np.int32))


def _loss(y, logits):
  return tf.keras.losses.sparse_categorical_crossentropy(y, logits,
                                                         from_logits=True)


def _per_example_gradients(model, x, y):
  """Each example's gradient from its own one-example tape (plain autodiff)."""
  grads = []
  for i in range(len(x)):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(_loss(y[i:i + 1], model(x[i:i + 1], training=True)))
    grads.append([g.numpy().astype(np.float64)
                  for g in tape.gradient(loss, model.trainable_variables)])
  return grads


@pytest.mark.parametrize('padding, strides, dilation, bias', [
    ('valid', 1, 1, True), ('same', 2, 1, True), ('same', 1, 2, False),
    ('valid', 2, 1, True)])
def test_conv2d_registry_gives_each_examples_squared_gradient_norm(
    padding, strides, dilation, bias):
  model = _conv_model(padding, strides, dilation, bias=bias)
  x, y = _examples()
  expected = [sum(np.sum(g**2) for g in grads)
              for grads in _per_example_gradients(model, x, y)]
  tape = tf.GradientTape(persistent=True)
  from tensorflow_privacy.privacy.fast_gradient_clipping import clip_grads  # pylint: disable=g-import-not-at-top
  from tensorflow_privacy.privacy.fast_gradient_clipping import gradient_clipping_utils  # pylint: disable=g-import-not-at-top
  generator = clip_grads.get_registry_generator_fn(
      tape, fast_clipping.layer_registry())
  with tape:
    logits, generated = gradient_clipping_utils.model_forward_pass(
        model, tf.constant(x), generator_fn=generator)
    loss = tf.reduce_sum(_loss(y, logits))
  base = [g[0] for g in generated if g is not None]
  fns = [g[1] for g in generated if g is not None]
  got = sum(f(g) for f, g in zip(fns, tape.gradient(loss, base))).numpy()
  np.testing.assert_allclose(got, expected, rtol=2e-5)


@pytest.mark.parametrize('clip', [1e-3, 0.3, 1e6])
def test_clipped_sum_is_the_sum_of_each_examples_clipped_gradient(clip):
  model = _conv_model('same', 2)
  x, y = _examples(6, seed=1)
  per_example = _per_example_gradients(model, x, y)
  expected = [
      sum(g[k] * min(1.0, clip / np.sqrt(sum(np.sum(t**2) for t in g)))
          for g in per_example) for k in range(len(per_example[0]))]
  got, logits = fast_clipping.clipped_gradient_sum(
      model, tf.constant(x), tf.constant(y), clip, _loss,
      model.trainable_variables)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a.numpy(), b, rtol=2e-5,
                               atol=2e-6 * np.abs(b).max())
  np.testing.assert_allclose(logits.numpy(), model(x).numpy(), rtol=1e-5)


def test_every_clipped_gradient_is_within_the_bound_under_dropout():
  # One forward pass: the weights c_i scale the gradients of the same masks,
  # so with a tiny bound every example contributes exactly C: ‖Σ‖ ≤ B·C, and
  # with one example ‖Σ‖ = C.
  model = _conv_model(dropout=0.5)
  x, y = _examples(1, seed=2)
  clip = 1e-3
  got, _ = fast_clipping.clipped_gradient_sum(
      model, tf.constant(x), tf.constant(y), clip, _loss,
      model.trainable_variables)
  norm = np.sqrt(sum(np.sum(g.numpy()**2) for g in got))
  assert norm == pytest.approx(clip, rel=1e-4)


def test_models_with_unregistered_layers_take_the_jacobian_path():
  assert fast_clipping.supports(_conv_model())
  batch_norm = tf.keras.Sequential([
      tf.keras.layers.Dense(3, input_shape=(4,)),
      tf.keras.layers.BatchNormalization(), tf.keras.layers.Dense(2)])
  assert not fast_clipping.supports(batch_norm)
  grouped = tf.keras.Sequential([
      tf.keras.layers.Conv2D(4, 3, groups=2, input_shape=(7, 7, 2))])
  assert not fast_clipping.supports(grouped)
  assert not fast_clipping.supports(
      tf.keras.Sequential([tf.keras.layers.Dense(2)]))  # not built
  assert fast_clipping.keras_model_of(object()) is None


_INPUT_SPEC = collections.OrderedDict(
    x=tf.TensorSpec([None, 7, 7, 2], tf.float32),
    y=tf.TensorSpec([None, 1], tf.int32))


def _tff_conv_model():
  return tff.learning.models.from_keras_model(
      _conv_model('same', 2), loss=tf.keras.losses.SparseCategoricalCrossentropy(
          from_logits=True), input_spec=_INPUT_SPEC,
      metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])


def _round(dp):
  process = process_lib.build_federated_averaging_process_attacked(
      _tff_conv_model,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.5),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      client_dp_sgd=dp)
  datasets = []
  for k in range(3):
    x, y = _examples(6, seed=10 + k)
    datasets.append(tf.data.Dataset.from_tensor_slices(
        collections.OrderedDict(x=x, y=y[:, None])).batch(3))
  data = process_lib.build_client_data(datasets, [None] * 3)
  output = process.next(process.initialize(), data)
  return (process.get_model_weights(output.state).trainable,
          output.metrics['client_work']['train'])


def test_a_dp_sgd_round_by_fast_clipping_is_the_jacobian_round():
  fast, fast_metrics = _round(dp_sgd.DPSGD(0.05, 0.7))
  slow, slow_metrics = _round(dp_sgd.DPSGD(0.05, 0.7,
                                                   fast_clipping=False))
  for a, b in zip(fast, slow):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert fast_metrics['num_examples'] == slow_metrics['num_examples'] == 18


@pytest.mark.parametrize('padding, strides, dilation', [
    ('valid', 1, 1), ('same', 2, 1), ('same', 1, 2), ('valid', 1, 3),
    ('same', 3, 1)])
def test_sliced_patches_are_tensorflows_image_patches(padding, strides,
                                                      dilation):
  # The kernel's column order (kh, kw, c_in), as tf.image.extract_patches.
  layer = tf.keras.layers.Conv2D(3, 3, padding=padding, strides=strides,
                                 dilation_rate=dilation)
  x = tf.constant(_examples(2)[0])
  expected = tf.image.extract_patches(
      x, sizes=[1, 3, 3, 1], strides=[1, strides, strides, 1],
      rates=[1, dilation, dilation, 1], padding=padding.upper())
  np.testing.assert_array_equal(
      fast_clipping._image_patches(x, layer).numpy(), expected.numpy())  # pylint: disable=protected-access


def _sentences(n, length, vocab, seed):
  """Token ids [n, length], the later targets of some sentences PAD (0)."""
  rng = np.random.RandomState(seed)
  x = rng.randint(1, vocab, size=(n, length)).astype(np.int32)
  y = rng.randint(1, vocab, size=(n, length)).astype(np.int32)
  for i in range(n):
    y[i, rng.randint(1, length + 1):] = 0
  y[-1] = 0  # a sentence with no target: no loss, no gradient
  return x, y


def _sentence_gradients(keras_model, x, y):
  """Each sentence's gradient of its mean cross-entropy over the non-PAD
  targets, from its own one-sentence tape (plain autodiff, eager)."""
  trainable = keras_model.trainable_variables
  out = []
  for i in range(len(x)):
    with tf.GradientTape() as tape:
      logits = keras_model(x[i:i + 1], training=True)[0]
      ce = tf.keras.losses.sparse_categorical_crossentropy(
          y[i], logits, from_logits=True)
      mask = (y[i] != 0).astype(np.float32)
      loss = tf.reduce_sum(ce * mask) / max(mask.sum(), 1.0)
    out.append([np.zeros(v.shape) if g is None else
                tf.convert_to_tensor(g).numpy().astype(np.float64)
                for v, g in zip(trainable, tape.gradient(loss, trainable))])
  return out


def _clipped_mean(gradients, clip):
  clipped = []
  for g in gradients:
    norm = np.sqrt(sum(np.sum(t**2) for t in g))
    clipped.append([t * min(1.0, clip / max(norm, 1e-12)) for t in g])
  return [sum(g[k] for g in clipped) / len(gradients)
          for k in range(len(gradients[0]))]


def test_a_text_dp_sgd_round_clips_each_sentences_mean_token_gradient():
  # An example is a sentence: ℓ_i its mean cross-entropy over the non-PAD
  # targets; each step g = Σ_i g_i·min(1, C/‖g_i‖) / B with no noise, the
  # g_i taken one sentence at a time and clipped in NumPy, then SGD; the
  # round through TFF (its graphs, the recurrent layer unrolled) is the
  # example-weighted mean of the clients' updates.
  from targeted_attack.process import models  # pylint: disable=g-import-not-at-top
  vocab, length, rate = 12, 5, 0.5
  clients = [_sentences(4, length, vocab, seed=7 + k) for k in range(2)]
  keras_model = models.create_keras_model('small_lstm', vocab, seed=1,
                                          image_shape=(length,))
  # C the median of the first steps' sentence gradient norms: some clipped,
  # some not.
  norms = [np.sqrt(sum(np.sum(t**2) for t in g)) for x, y in clients
           for g in _sentence_gradients(keras_model, x[:2], y[:2])]
  clip = float(np.median(norms))
  initial = [v.numpy() for v in keras_model.trainable_variables]
  assert min(norms) < clip < max(norms)
  model_fn = models.build_model_fn('small_lstm', vocab, seed=1,
                                   image_shape=(length,), unroll=True)
  process = process_lib.build_federated_averaging_process_attacked(
      model_fn, client_optimizer_fn=tff.learning.optimizers.build_sgdm(rate),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      client_dp_sgd=dp_sgd.DPSGD(clip, 0.0))
  data = process_lib.build_client_data(
      [tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
          x=x, y=y)).batch(2) for x, y in clients], [None] * 2)
  state = process.initialize()
  start = [np.asarray(w, np.float64)
           for w in process.get_model_weights(state).trainable]
  for w, v in zip(start, initial):
    np.testing.assert_array_equal(w, v)  # the same initial model
  got = process.get_model_weights(process.next(state, data).state).trainable
  # (A Keras model made before TFF's graphs is not usable after them.)
  keras_model = models.create_keras_model('small_lstm', vocab, seed=1,
                                          image_shape=(length,))
  deltas = []
  for x, y in clients:
    weights = [w.copy() for w in start]
    for b in range(0, len(x), 2):
      for variable, w in zip(keras_model.trainable_variables, weights):
        variable.assign(w)
      step = _clipped_mean(_sentence_gradients(keras_model, x[b:b + 2],
                                               y[b:b + 2]), clip)
      weights = [w - rate * g for w, g in zip(weights, step)]
    deltas.append([w - s for w, s in zip(weights, start)])
  for k, (a, w) in enumerate(zip(got, start)):
    expected = w + (deltas[0][k] + deltas[1][k]) / 2  # 4 sentences each
    np.testing.assert_allclose(a, expected, rtol=1e-4,
                               atol=1e-6 * max(np.abs(expected).max(), 1e-3))
