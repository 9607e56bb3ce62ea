"""The original research code's API (`attacked_fedavg`, `aggregate_fn`), as its
tests and its script use it, checked against NumPy on a one-layer model.

Each test states the original's intent (google-research/federated,
`targeted_attack/attacked_fedavg_test.py` and `attacked_fedavg.py`); the
expected values come from `reference` (NumPy SGD) or the original's formula.
"""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
import tensorflow_privacy

from targeted_attack import aggregate_fn
from targeted_attack import attacked_fedavg
from targeted_attack import process as process_lib
from targeted_attack.process import learning_process
import builders
import reference as ref

CLIENT_LR = 0.1


def _keras_sgd(rate, **kwargs):
  return lambda: tf.keras.optimizers.SGD(learning_rate=rate, **kwargs)


def _process(strategy=None, aggregation=None, server_lr=1.0,
             model_fn=builders.model_fn):
  """Built as the original's script built it: Keras optimizer constructors."""
  return attacked_fedavg.build_federated_averaging_process_attacked(
      model_fn, client_optimizer_fn=_keras_sgd(CLIENT_LR),
      server_optimizer_fn=_keras_sgd(server_lr),
      model_update_aggregation_factory=aggregation, client_update_tf=strategy)


def _numpy_delta(seed, n, start=None):
  start = ref.initial_weights() if start is None else start
  return ref.delta(ref.sgd_pass(start, *ref.make_examples(seed, n), CLIENT_LR),
                   start)


def _trainable(state):
  return [np.asarray(w, np.float64) for w in state.model.trainable]


def _numpy_pass_losses(seed, n):
  """Each batch's mean cross-entropy (batch 2) during one NumPy SGD pass
  from w_0, taken before that batch's step."""
  w = ref.initial_weights()
  x, y = ref.make_examples(seed, n)
  losses = []
  for start in range(0, n, 2):
    logits = x[start:start + 2] @ w[0] + w[1]
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    losses.append(-log_p[np.arange(2), y[start:start + 2, 0]].mean())
    w = ref.sgd_pass(w, x[start:start + 2], y[start:start + 2], CLIENT_LR)
  return losses


def test_next_takes_the_original_types_and_state():
  process = _process()
  assert isinstance(process, tff.templates.IterativeProcess)
  parameter = process.next.type_signature.parameter
  assert str(parameter[1]) == '{<x=float32[?,3],y=int32[?,1]>*}@CLIENTS'
  assert str(parameter[2]) == str(parameter[1])
  assert str(parameter[3]) == '{bool}@CLIENTS'
  state = process.initialize()
  assert isinstance(state, attacked_fedavg.ServerState)
  np.testing.assert_array_equal(state.model.trainable[0], ref.INITIAL_KERNEL)
  np.testing.assert_array_equal(state.model.trainable[1], ref.INITIAL_BIAS)


def test_a_round_is_weighted_fed_avg_with_one_boosted_attacker():
  # Client 1 is malicious: Δ = Δ_benign + β·Δ_mal, Δ_mal one pass over the
  # malicious dataset alone from w_0; w_1 = w_0 + η Σ n_k Δ_k / Σ n_k.
  beta, eta = 7.0, 0.5
  process = _process(attacked_fedavg.ClientExplicitBoosting(beta),
                     server_lr=eta)
  benign = [builders.make_dataset(1, 4), builders.make_dataset(2, 6)]
  malicious = [builders.make_dataset(9, 6)] * 2
  state, metrics = process.next(process.initialize(), benign, malicious,
                                [False, True])
  deltas = [_numpy_delta(1, 4),
            [b + beta * m for b, m in zip(_numpy_delta(2, 6),
                                          _numpy_delta(9, 6))]]
  expected = [w + eta * (4 * d0 + 6 * d1) / 10 for w, d0, d1 in
              zip(ref.initial_weights(), *deltas)]
  for got, want in zip(_trainable(state), expected):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # The metrics are the model's, summed over clients then finalized; they
  # count the benign examples (4 + 6).
  assert metrics['num_examples'] == 10
  assert np.isfinite(metrics['loss'])


class _LinearModel(tff.learning.models.VariableModel):
  """A hand-written model, as the original's MnistModel: softmax(x W + b),
  the mean cross-entropy, metrics num_examples and loss."""

  def __init__(self):
    self._kernel = tf.Variable(ref.INITIAL_KERNEL, name='kernel')
    self._bias = tf.Variable(ref.INITIAL_BIAS, name='bias')
    self._count = tf.Variable(0.0, trainable=False)
    self._loss_sum = tf.Variable(0.0, trainable=False)

  @property
  def trainable_variables(self):
    return [self._kernel, self._bias]

  @property
  def non_trainable_variables(self):
    return []

  @property
  def local_variables(self):
    return [self._count, self._loss_sum]

  @property
  def input_spec(self):
    return builders.INPUT_SPEC

  @tf.function
  def predict_on_batch(self, x, training=True):
    del training
    return tf.matmul(x, self._kernel) + self._bias

  @tf.function
  def forward_pass(self, batch_input, training=True):
    logits = self.predict_on_batch(batch_input['x'], training)
    labels = tf.reshape(batch_input['y'], [-1])
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))
    count = tf.cast(tf.size(labels), tf.float32)
    self._count.assign_add(count)
    self._loss_sum.assign_add(loss * count)
    return tff.learning.models.BatchOutput(
        loss=loss, predictions=logits, num_examples=tf.size(labels))

  @tf.function
  def report_local_unfinalized_metrics(self):
    return collections.OrderedDict(num_examples=[self._count],
                                   loss=[self._loss_sum, self._count])

  def metric_finalizers(self):
    return collections.OrderedDict(
        num_examples=tf.function(lambda x: x[0]),
        loss=tf.function(lambda x: x[0] / x[1]))

  @tf.function
  def reset_metrics(self):
    for variable in self.local_variables:
      variable.assign(tf.zeros_like(variable))


@pytest.mark.parametrize('model_fn', [builders.model_fn, _LinearModel],
                         ids=['keras', 'custom'])
def test_the_training_loss_falls_round_over_round(model_fn):
  # The original's test: the same client two rounds; here also the loss
  # itself: round 1's is NumPy's mean cross-entropy at w_0.
  process = _process(model_fn=model_fn)
  data = [builders.make_dataset(3, 8)]
  state = process.initialize()
  losses = []
  for _ in range(2):
    state, metrics = process.next(state, data, data, [False])
    losses.append(float(metrics['loss']))
  assert losses[1] < losses[0]
  assert losses[0] == pytest.approx(np.mean(_numpy_pass_losses(3, 8)),
                                    rel=1e-5)


def test_boost_minus_one_on_the_same_data_leaves_the_model():
  # The original's skipped test: Δ_benign + (−1)·Δ_mal with D_mal = D_trn.
  process = _process(attacked_fedavg.ClientExplicitBoosting(boost_factor=-1.0))
  data = [builders.make_dataset(4, 6)]
  state = process.initialize()
  initial = _trainable(state)
  for _ in range(2):
    state, _ = process.next(state, data, data, [True])
  for got, want in zip(_trainable(state), initial):
    np.testing.assert_allclose(got, want, atol=1e-7)


def _server_state(model, optimizer):
  variables = attacked_fedavg._create_optimizer_vars(model, optimizer)  # pylint: disable=protected-access
  return attacked_fedavg.ServerState(
      model=attacked_fedavg._get_weights(model),  # pylint: disable=protected-access
      optimizer_state=variables, delta_aggregate_state=()), variables


@pytest.mark.parametrize('momentum, nesterov', [(0.0, False), (0.9, True)])
def test_server_update_applies_minus_delta(momentum, nesterov):
  # SGD: w ← w + η·Δ; with Nesterov momentum m (Keras' SGD; Sutskever et
  # al.): v ← m·v − η·g, w ← w + m·v − η·g, with g = −Δ.
  eta = 0.1
  model = builders.model_fn()
  for variable in model.trainable_variables:
    variable.assign(tf.zeros_like(variable))
  optimizer = tf.keras.optimizers.SGD(eta, momentum=momentum,
                                      nesterov=nesterov)
  state, variables = _server_state(model, optimizer)
  rng = np.random.RandomState(0)
  deltas = [[rng.randn(*v.shape).astype(np.float32)
             for v in model.trainable_variables] for _ in range(3)]
  expected = [np.zeros(v.shape) for v in model.trainable_variables]
  velocity = [np.zeros(v.shape) for v in model.trainable_variables]
  for delta in deltas:
    state = attacked_fedavg.server_update(model, optimizer, variables, state,
                                          delta, ())
    for i, d in enumerate(delta):
      velocity[i] = momentum * velocity[i] + eta * d
      expected[i] = expected[i] + (momentum * velocity[i] + eta * d
                                   if nesterov else velocity[i])
  for got, want in zip(state.model.trainable, expected):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_the_processes_nesterov_server_optimizer_is_keras_nesterov():
  # Keras' SGD(nesterov=True) converted: v ← m·v − η·g, w ← w + m·v − η·g.
  eta, momentum = 0.3, 0.9
  optimizer = learning_process.as_tff_optimizer(
      _keras_sgd(eta, momentum=momentum, nesterov=True), 'server')
  rng = np.random.RandomState(1)
  w = rng.randn(5).astype(np.float32)
  state = optimizer.initialize(tf.TensorSpec([5], tf.float32))
  weights, expected, velocity = tf.constant(w), w.astype(np.float64), 0.0
  for _ in range(4):
    g = rng.randn(5).astype(np.float32)
    state, weights = optimizer.next(state, weights, tf.constant(g))
    velocity = momentum * velocity - eta * g
    expected = expected + momentum * velocity - eta * g
  np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('build', [
    lambda c: tff.aggregators.DifferentiallyPrivateFactory(
        tensorflow_privacy.GaussianSumQuery(c, 0.0)),
    lambda c: aggregate_fn.build_aggregate_and_clip(c),
    lambda c: aggregate_fn.build_dp_aggregate(l2_norm=c, mul_factor=0.0,
                                              num_clients=1.0),
], ids=['tff_dp_factory', 'aggregate_and_clip', 'dp_aggregate_original_names'])
def test_a_clipping_aggregator_bounds_the_round(build):
  # The original's AggregationTest: one client, bound C = 0.01 < ‖Δ‖.
  bound = 0.01
  assert ref.global_norm(_numpy_delta(5, 6)) > 10 * bound
  process = _process(aggregation=build(bound))
  state = process.initialize()
  initial = _trainable(state)
  data = [builders.make_dataset(5, 6)]
  state, _ = process.next(state, data, data, [False])
  moved = ref.global_norm(ref.delta(_trainable(state), initial))
  assert moved == pytest.approx(bound, rel=1e-4)


def test_dp_aggregate_with_the_original_names_takes_sigma_itself():
  # The original: GaussianAverageQuery(l2_norm, mul_factor, num_clients), so
  # the noise on the mean has stddev mul_factor / N (not mul_factor·C / N).
  clip, sigma, n = 2.5, 0.4, 4
  factory = aggregate_fn.build_dp_aggregate(l2_norm=clip, mul_factor=sigma,
                                            num_clients=float(n))
  output = builders.run_aggregator(factory, builders.updates_with_norms([1.0]))
  measured = output.measurements['inner']['dp_query_metrics']['noise_stddev']
  assert measured == pytest.approx(sigma / n, rel=1e-6)
  with pytest.raises(TypeError, match='l2_norm'):
    aggregate_fn.build_dp_aggregate(1.0, 0.1, 2, l2_norm=1.0)
  with pytest.raises(ValueError, match='num_clients'):
    aggregate_fn.build_dp_aggregate(1.0, 0.1, 2.5)


def test_a_client_update_called_as_the_original_returns_its_client_output():
  # The original's ClientTest: strategy(model, optimizer, benign, malicious,
  # client_type, initial_weights) → ClientOutput.
  beta = 3.0
  model = builders.model_fn()
  strategy = attacked_fedavg.ClientExplicitBoosting(boost_factor=beta)
  benign, malicious = builders.make_dataset(6, 4), builders.make_dataset(7, 2)
  weights = attacked_fedavg._get_weights(model)  # pylint: disable=protected-access
  output = strategy(model, tf.keras.optimizers.SGD(CLIENT_LR), benign,
                    malicious, tf.constant(True), weights)
  expected = [b + beta * m for b, m in zip(_numpy_delta(6, 4),
                                           _numpy_delta(7, 2))]
  for got, want in zip(output.weights_delta, expected):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
  assert float(output.weights_delta_weight) == 4.0
  assert int(output.optimizer_output['num_examples']) == 4
  assert float(output.optimizer_output['weight_norm']) == pytest.approx(
      ref.global_norm(expected), rel=1e-5)
  # The unfinalized loss is (Σ batch loss · batch size, examples), benign only.
  assert float(output.model_output['loss'][1]) == 4.0


def test_the_norm_bounded_attack_called_as_the_original_sends_beta_times_m():
  # ClientProjectBoost(β, M, r): projected onto the ℓ2 ball of radius M
  # before boosting, so ‖Δ‖ = β·M when the projection binds. Its metrics
  # are those of one benign pass from w_t (the original read them there).
  beta, bound = 5.0, 0.01
  model = builders.model_fn()
  strategy = attacked_fedavg.ClientProjectBoost(beta, bound, 3)
  data = builders.make_dataset(8, 6)
  output = strategy(model, tf.keras.optimizers.SGD(CLIENT_LR), data, data,
                    client_is_malicious=tf.constant(True),
                    initial_weights=attacked_fedavg._get_weights(model))  # pylint: disable=protected-access
  norm = ref.global_norm([np.asarray(d) for d in output.weights_delta])
  assert norm == pytest.approx(beta * bound, rel=1e-5)
  loss_sum, count = (float(v) for v in output.model_output['loss'])
  assert count == 6.0
  # Σ over batches of batch loss × batch size (2).
  assert loss_sum == pytest.approx(2 * sum(_numpy_pass_losses(8, 6)),
                                   rel=1e-5)


@pytest.mark.parametrize('defense', ['clip', 'flame'])
def test_the_face_and_the_projects_process_agree_bit_for_bit(defense):
  # FLAME takes w_t as well (it clusters the local models w_t − x_k).
  beta = 4.0
  aggregation = (aggregate_fn.build_clip_per_client(0.5) if defense == 'clip'
                 else aggregate_fn.build_flame(0.0, seed=0))
  face = _process(attacked_fedavg.ClientExplicitBoosting(beta), aggregation)
  ours = process_lib.build_federated_averaging_process_attacked(
      builders.model_fn, client_optimizer_fn=_keras_sgd(CLIENT_LR),
      server_optimizer_fn=_keras_sgd(1.0),
      model_update_aggregation_factory=aggregation,
      client_update_tf=attacked_fedavg.ClientExplicitBoosting(beta))
  benign = [builders.make_dataset(k, 4 + k) for k in (1, 2, 3, 4)]
  malicious = builders.make_dataset(9, 6)
  face_state, our_state = face.initialize(), ours.initialize()
  for _ in range(2):
    face_state, _ = face.next(face_state, benign, [malicious] * 4,
                              [False, False, False, True])
    our_state = ours.next(our_state, process_lib.build_client_data(
        benign, [None, None, None, malicious])).state
  for a, b in zip(face_state.model.trainable,
                  ours.get_model_weights(our_state).trainable):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('keras_optimizer', [
    lambda: tf.keras.optimizers.SGD(0.1, weight_decay=0.01),
    lambda: tf.keras.optimizers.SGD(0.1, clipnorm=1.0),
    lambda: tf.keras.optimizers.Adam(0.1, amsgrad=True),
    lambda: tf.keras.optimizers.RMSprop(0.1, momentum=0.9)])
def test_a_keras_setting_without_an_equivalent_is_refused(keras_optimizer):
  with pytest.raises(TypeError, match='no equivalent'):
    attacked_fedavg.build_federated_averaging_process_attacked(
        builders.model_fn, client_optimizer_fn=keras_optimizer)


def test_the_projects_settings_are_refused_with_where_they_went():
  with pytest.raises(TypeError, match='targeted_attack.process'):
    attacked_fedavg.build_federated_averaging_process_attacked(
        builders.model_fn, client_dp_sgd=attacked_fedavg.DPSGD(1.0, 0.1))
