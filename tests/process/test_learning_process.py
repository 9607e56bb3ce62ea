"""Attacked FedAvg checked against NumPy SGD on a one-layer model."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import attacked_fedavg
from targeted_attack import process as process_lib
from targeted_attack.attacks import base as attack_base
import builders
import reference as ref

CLIENT_LR = 0.1


def _process(strategy, aggregation=None, client_optimizer=None):
  return process_lib.build_federated_averaging_process_attacked(
      builders.model_fn,
      client_optimizer_fn=client_optimizer or
      tff.learning.optimizers.build_sgdm(CLIENT_LR),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      model_update_aggregation_factory=aggregation,
      client_update_tf=strategy)


def _trainable(process, state):
  return [np.asarray(w, np.float64)
          for w in process.get_model_weights(state).trainable]


def _numpy_client(seed, n):
  return ref.make_examples(seed, n)


def _boosted_delta(benign, malicious, beta, on_union=False):
  """Δ_benign + β·Δ_mal, each one NumPy SGD pass from w_0; Δ_mal on D_mal
  (the original code), or on D_trn ∪ D_mal with `on_union` (`benign`,
  `malicious`: (seed, n) of `builders.make_dataset`)."""
  w0 = ref.initial_weights()
  trained_on = _numpy_client(*malicious)
  if on_union:
    trained_on = builders.union_examples(builders.make_dataset(*benign),
                                         builders.make_dataset(*malicious))
  return [
      b + beta * m for b, m in zip(
          ref.delta(ref.sgd_pass(w0, *_numpy_client(*benign), CLIENT_LR), w0),
          ref.delta(ref.sgd_pass(w0, *trained_on, CLIENT_LR), w0))
  ]


def test_no_attacker_matches_tff_weighted_fed_avg():
  sizes = [(1, 4), (2, 6), (3, 3)]
  datasets = [builders.make_dataset(seed, n) for seed, n in sizes]
  ours = _process(attacked_fedavg.ClientExplicitBoosting(5.0))
  theirs = tff.learning.algorithms.build_weighted_fed_avg(
      builders.model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(CLIENT_LR),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0))
  our_state, their_state = ours.initialize(), theirs.initialize()
  data = process_lib.build_client_data(datasets, [None] * 3, [False] * 3)
  for _ in range(2):
    our_state = ours.next(our_state, data).state
    their_state = theirs.next(their_state, datasets).state
  for a, b in zip(_trainable(ours, our_state), _trainable(theirs, their_state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('on_union', [False, True])
def test_explicit_boosting_sends_benign_plus_boosted_malicious_delta(on_union):
  # The original code trains Δ_mal on the malicious dataset it is given; the
  # experiment's `unconstrained` hands it D_trn ∪ D_mal (OnUnion).
  beta = 7.0
  w0 = ref.initial_weights()
  expected = _boosted_delta((1, 4), (9, 6), beta, on_union)
  strategy = attacked_fedavg.ClientExplicitBoosting(beta)
  process = _process(attack_base.OnUnion(strategy) if on_union else strategy)
  state = process.initialize()
  data = process_lib.build_client_data(
      [builders.make_dataset(1, 4)], [builders.make_dataset(9, 6)], [True])
  output = process.next(state, data)
  # One client, weighted mean, server SGD at rate 1: w_1 − w_0 = Δ.
  got = ref.delta(_trainable(process, output.state), w0)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  clients = output.metrics['client_work']['clients']
  assert clients['num_malicious_clients'] == 1.0
  np.testing.assert_allclose(clients['malicious_update_norm_max'],
                             ref.global_norm(expected), rtol=1e-4)


@pytest.mark.parametrize('norm_bound', [0.05, 10.0])
def test_project_boost_is_projected_pgd_then_boosted(norm_bound):
  beta, rounds = 3.0, 2
  (xb, yb), (xm, ym) = _numpy_client(1, 4), _numpy_client(9, 6)
  w0 = ref.initial_weights()
  w = w0
  for _ in range(rounds):
    w = ref.sgd_pass(w, xb, yb, CLIENT_LR)
    w = ref.sgd_pass(w, xm, ym, CLIENT_LR)
    d = ref.delta(w, w0)
    scale = min(1.0, norm_bound / ref.global_norm(d))
    w = [a + scale * b for a, b in zip(w0, d)]
  expected = [beta * d for d in ref.delta(w, w0)]

  process = _process(
      attacked_fedavg.ClientProjectBoost(beta, norm_bound, rounds))
  data = process_lib.build_client_data(
      [builders.make_dataset(1, 4)], [builders.make_dataset(9, 6)], [True])
  output = process.next(process.initialize(), data)
  got = ref.delta(_trainable(process, output.state), w0)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert ref.global_norm(got) <= beta * norm_bound * (1 + 1e-5)


def test_weights_are_benign_example_counts_and_benign_clients_train_normally():
  beta = 4.0
  w0 = ref.initial_weights()
  attacker = _boosted_delta((1, 4), (9, 10), beta)
  xc, yc = _numpy_client(2, 6)
  honest = ref.delta(ref.sgd_pass(w0, xc, yc, CLIENT_LR), w0)
  # Weights 4 (benign examples of the attacker, not its 10 malicious) and 6.
  expected = [(4 * a + 6 * h) / 10 for a, h in zip(attacker, honest)]

  process = _process(attacked_fedavg.ClientExplicitBoosting(beta))
  data = process_lib.build_client_data(
      [builders.make_dataset(1, 4), builders.make_dataset(2, 6)],
      [builders.make_dataset(9, 10), builders.make_dataset(3, 5)], [True, False])
  output = process.next(process.initialize(), data)
  got = ref.delta(_trainable(process, output.state), w0)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  clients = output.metrics['client_work']['clients']
  assert clients['num_malicious_clients'] == 1.0
  np.testing.assert_allclose(clients['benign_update_norm_mean'],
                             ref.global_norm(honest), rtol=1e-4)
  # Training metrics cover benign data only: 4 + 6 examples.
  assert output.metrics['client_work']['train']['num_examples'] == 10


def test_keras_optimizer_constructor_gives_same_result_as_tff_optimizer():
  data = process_lib.build_client_data(
      [builders.make_dataset(1, 4)], [builders.make_dataset(9, 6)], [True])
  results = []
  for optimizer in (tff.learning.optimizers.build_sgdm(CLIENT_LR),
                    lambda: tf.keras.optimizers.SGD(CLIENT_LR)):
    process = _process(attacked_fedavg.ClientExplicitBoosting(2.0),
                       client_optimizer=optimizer)
    results.append(
        _trainable(process, process.next(process.initialize(), data).state))
  for a, b in zip(*results):
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize('build, name', [
    (lambda: attacked_fedavg.ClientExplicitBoosting(float('nan')),
     'boost_factor'),
    (lambda: attacked_fedavg.ClientProjectBoost(float('inf'), 1.0, 1),
     'boost_factor'),
    (lambda: attacked_fedavg.ClientProjectBoost(1.0, 0.0, 1), 'norm_bound'),
    (lambda: attacked_fedavg.ClientProjectBoost(1.0, -1.0, 1), 'norm_bound'),
    (lambda: attacked_fedavg.ClientProjectBoost(1.0, 1.0, 0), 'round_num'),
    (lambda: process_lib.build_client_data([1, 2], [None], [False, False]),
     'malicious_datasets'),
    (lambda: process_lib.build_client_data([1], [None], [False, True]),
     'client_is_malicious'),
])
def test_bad_arguments_raise_value_error_naming_them(build, name):
  with pytest.raises(ValueError, match=name):
    build()


@pytest.mark.parametrize('split_boost', [True, False])
def test_attackers_in_one_round_divide_the_boost_evenly(split_boost):
  # Sun et al. Sec. 3: k attackers in a round each send Δ_benign + (β/k)Δ_mal.
  beta = 6.0
  w0 = ref.initial_weights()
  share = 0.5 if split_boost else 1.0
  expected = _boosted_delta((1, 4), (9, 6), beta * share)
  process = _process(attacked_fedavg.ClientExplicitBoosting(beta))
  # Two identical attackers (same data, same seed): the mean is one's Δ.
  data = process_lib.build_client_data(
      [builders.make_dataset(1, 4)] * 2, [builders.make_dataset(9, 6)] * 2,
      seeds=[(0, 0), (0, 0)], split_boost=split_boost)
  output = process.next(process.initialize(), data)
  got = ref.delta(_trainable(process, output.state), w0)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  clients = output.metrics['client_work']['clients']
  assert clients['malicious_boost_share'] == pytest.approx(share)


def test_original_suite_attack_with_boost_minus_one_leaves_the_model():
  # The original research code's test_attack: with the malicious dataset
  # equal to the benign one and β = −1, Δ = Δ_benign − Δ_benign = 0, so two
  # rounds leave the model where it started.
  process = _process(attacked_fedavg.ClientExplicitBoosting(-1.0))
  state = process.initialize()
  dataset = builders.make_dataset(1, 4)
  data = process_lib.build_client_data([dataset], [dataset], [True])
  for _ in range(2):
    state = process.next(state, data).state
  for got, initial in zip(_trainable(process, state), ref.initial_weights()):
    np.testing.assert_allclose(got, initial, atol=1e-7)


def test_model_replacement_sends_boosted_distance_to_the_trained_model():
  # Sun et al. Eq. 1: Δ = β (w* − w_t), w* one pass on D_trn ∪ D_mal.
  beta = 5.0
  w0 = ref.initial_weights()
  union = builders.union_examples(builders.make_dataset(1, 4), builders.make_dataset(9, 6))
  expected = [beta * d for d in
              ref.delta(ref.sgd_pass(w0, *union, CLIENT_LR), w0)]
  process = _process(attacked_fedavg.ModelReplacement(beta))
  data = process_lib.build_client_data([builders.make_dataset(1, 4)],
                                           [builders.make_dataset(9, 6)])
  got = ref.delta(_trainable(process, process.next(process.initialize(),
                                                   data).state), w0)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_union_holds_exactly_the_examples_of_both_datasets():
  benign, malicious = builders.make_dataset(1, 4, 2), builders.make_dataset(9, 6, 3)
  x, y = builders.union_examples(benign, malicious)
  xb, yb = ref.make_examples(1, 4)
  xm, ym = ref.make_examples(9, 6)
  rows = lambda x, y: sorted(map(tuple, np.concatenate([x, y], axis=1)))
  assert rows(x, y) == rows(np.concatenate([xb, xm]), np.concatenate([yb, ym]))
  from targeted_attack.process import local_training  # pylint: disable=g-import-not-at-top
  sizes = [int(b['y'].shape[0]) for b in attack_base.union(
      benign, malicious, tf.constant(0, tf.int64))]
  assert sizes == [3, 3, 3, 1]  # the larger first batch (3)


def test_a_benign_clients_empty_malicious_dataset_carries_none_of_its_data():
  pixels = np.random.RandomState(0).rand(200, 28, 28, 1).astype(np.float32)
  benign = tf.data.Dataset.from_tensor_slices(collections.OrderedDict(
      x=pixels, y=np.zeros([200, 1], np.int32))).batch(20)
  data = process_lib.build_client_data([benign], [None])
  empty = data[0]['malicious']
  assert empty.element_spec == benign.element_spec
  assert list(empty) == []
  size = lambda d: len(tf.raw_ops.DatasetToGraphV2(
      input_dataset=d._variant_tensor).numpy())  # pylint: disable=protected-access
  assert size(benign) > pixels.nbytes  # the pixels travel with the dataset
  assert size(empty) < 0.01 * pixels.nbytes


def _weighted_mean_delta(w, clients):
  """Σ n_k Δ_k / Σ n_k, Δ_k one NumPy SGD pass from w on client (seed, n)."""
  deltas = [ref.delta(ref.sgd_pass(w, *_numpy_client(*c), CLIENT_LR), w)
            for c in clients]
  sizes = [n for _, n in clients]
  return [sum(n * d[i] for n, d in zip(sizes, deltas)) / sum(sizes)
          for i in range(len(w))]


def test_server_momentum_and_learning_rate_match_numpy():
  # TFF's SGDM on the wire's update g = −Δ̄: m ← μ m + g; w ← w − η m.
  eta, mu = 0.5, 0.9
  clients = [(1, 4), (2, 6)]
  process = process_lib.build_federated_averaging_process_attacked(
      builders.model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(CLIENT_LR),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(eta, mu),
      client_update_tf=attacked_fedavg.ClientExplicitBoosting(5.0))
  data = process_lib.build_client_data(
      [builders.make_dataset(*c) for c in clients], [None] * 2)
  state = process.initialize()
  w = ref.initial_weights()
  m = [np.zeros_like(a) for a in w]
  for _ in range(3):
    state = process.next(state, data).state
    g = [-d for d in _weighted_mean_delta(w, clients)]
    m = [mu * a + b for a, b in zip(m, g)]
    w = [a - eta * b for a, b in zip(w, m)]
    for got, want in zip(_trainable(process, state), w):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_model_replacement_at_server_rate_below_one_lands_near_w_star():
  # β = Σ n_k / (η n_a): w_{t+1} = w* + (η / Σ n) Σ_benign n_k Δ_k exactly,
  # so w* up to the benign clients' share of the step (the README's ≈).
  eta = 0.5
  attacker, benign = (1, 4), [(2, 6), (3, 6)]
  sizes = [attacker[1]] + [n for _, n in benign]
  beta = sum(sizes) / (eta * attacker[1])
  process = process_lib.build_federated_averaging_process_attacked(
      builders.model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(CLIENT_LR),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(eta),
      client_update_tf=attacked_fedavg.ModelReplacement(beta))
  data = process_lib.build_client_data(
      [builders.make_dataset(*c) for c in [attacker] + benign],
      [builders.make_dataset(9, 6), None, None])
  got = _trainable(process, process.next(process.initialize(), data).state)
  w0 = ref.initial_weights()
  union = builders.union_examples(builders.make_dataset(*attacker),
                                  builders.make_dataset(9, 6))
  w_star = ref.sgd_pass(w0, *union, CLIENT_LR)
  benign_step = [sum(n * ref.delta(ref.sgd_pass(w0, *_numpy_client(s, n),
                                                CLIENT_LR), w0)[i]
                     for s, n in benign) * eta / sum(sizes)
                 for i in range(len(w0))]
  for a, b, c in zip(got, w_star, benign_step):
    np.testing.assert_allclose(a, b + c, rtol=1e-4, atol=1e-5)
