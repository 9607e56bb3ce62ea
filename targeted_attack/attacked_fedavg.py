"""Federated averaging with malicious clients, as a `tff.learning` process.

Round t: the server broadcasts w_t; each sampled client k runs its
`ClientUpdateStrategy` and returns Δ_k with weight n_k (its number of benign
examples trained on); the aggregator (any `tff.aggregators` factory, the
defenses of `targeted_attack.aggregate_fn` among them) combines them; the server
optimizer applies the result: with SGD at rate η and a weighted mean,
w_{t+1} = w_t + η · Σ n_k Δ_k / Σ n_k.

TFF's convention is followed on the wire: the update handed to the aggregator is
w_t − w_k = −Δ_k (the server optimizer then *subtracts* it). The defenses here
are symmetric under sign, so this changes none of them.

Client data: each client's input is `OrderedDict(benign=<dataset>,
malicious=<dataset>, context=<one-element dataset: seed, boost_share,
client_id>)`; a client is malicious exactly when its malicious dataset is
non-empty (`ClientWorkProcess` only takes sequences, so flags and seeds travel
as data). `build_client_data` builds this from the lists of the original
research code.

Client identity: with an aggregator that keys state by client
(`aggregate_fn.build_foolsgold`, marked `plumbing.takes_client_ids`), each
client's `update_weight` is its context's `client_id + 1` instead of its
number of examples; the aggregator reads the id from the weight (0: none).
"""

import collections
from typing import Callable, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import aggregate_fn
from targeted_attack import attacks
from targeted_attack import local_training
from targeted_attack import modern_attacks
from targeted_attack import update_math
from targeted_attack.aggregators import plumbing

# Re-exported: the public API of the original research code lives here.
ClientExplicitBoosting = attacks.ClientExplicitBoosting
ClientProjectBoost = attacks.ClientProjectBoost
ModelReplacement = attacks.ModelReplacement
NoAttack = attacks.NoAttack
ClientUpdateStrategy = attacks.ClientUpdateStrategy
DPSGD = local_training.DPSGD

OptimizerArg = Union[tff.learning.optimizers.Optimizer,
                     Callable[[], tf.keras.optimizers.Optimizer]]


def client_context(seed, boost_share: float,
                   client_id: int = -1) -> tf.data.Dataset:
  """A client's one-element context dataset: its int64[2] seed, boost share
  and int64 client id (its index in the population; -1: none)."""
  return tf.data.Dataset.from_tensors(collections.OrderedDict(
      seed=np.asarray(seed, np.int64).reshape([2]),
      boost_share=np.float32(boost_share),
      client_id=np.int64(client_id)))


def empty_like(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """An empty dataset with `dataset`'s element spec, holding none of its data.

  `dataset.take(0)` would do, but it serializes all of `dataset`'s pipeline,
  its arrays included, with every round's client data. With batches whose
  only unknown dimension is the first, this is one row of zeros, unbatched,
  rebatched and cut to nothing.
  """
  specs = tf.nest.flatten(dataset.element_spec)
  if not all(isinstance(s, tf.TensorSpec) and s.shape.rank and
             s.shape[0] is None and s.shape[1:].is_fully_defined()
             for s in specs):
    return dataset.take(0)
  key = repr(dataset.element_spec)
  eager = tf.executing_eagerly()
  empty = _EMPTY_DATASETS.get(key) if eager else None
  if empty is None:
    row = tf.nest.map_structure(
        lambda s: tf.zeros([1] + s.shape[1:].as_list(), s.dtype),
        dataset.element_spec)
    empty = tf.data.Dataset.from_tensors(row).unbatch().batch(1).take(0)
    if eager:
      _EMPTY_DATASETS[key] = empty
  return empty


_EMPTY_DATASETS = {}  # eager datasets are immutable: one per element spec


def build_client_data(
    benign_datasets: Sequence[tf.data.Dataset],
    malicious_datasets: Sequence[Optional[tf.data.Dataset]],
    client_is_malicious: Optional[Sequence[bool]] = None,
    seeds: Optional[Sequence[Sequence[int]]] = None,
    split_boost: bool = True,
    client_ids: Optional[Sequence[int]] = None) -> list:
  """Per-client `OrderedDict(benign=, malicious=, context=)` for `process.next`.

  A client is malicious when its entry of `malicious_datasets` is a dataset
  (None: benign); `client_is_malicious`, the original code's third list, may
  mark a client with a dataset as benign. A benign client's malicious dataset
  is replaced by an empty one (`empty_like`), which is how the process tells
  them apart. `seeds`: one int64 pair per client (local shuffles, DP-SGD noise);
  default (0, k). With `split_boost`, the k malicious clients of the round
  divide the boost evenly (each `boost_share` = 1/k, Sun et al. Sec. 3);
  otherwise each sends the full boost. `client_ids`: each client's identity
  (its index in the population; -1: none), read by aggregators keyed by
  client (FoolsGold's histories); default k, as the original code's fixed
  lists of clients.
  """
  n = len(benign_datasets)
  if len(malicious_datasets) != n:
    raise ValueError(
        f'`malicious_datasets` has {len(malicious_datasets)} entries but '
        f'`benign_datasets` has {n}; they must have one entry per client.')
  if client_is_malicious is None:
    client_is_malicious = [m is not None for m in malicious_datasets]
  if len(client_is_malicious) != n:
    raise ValueError(
        f'`client_is_malicious` has {len(client_is_malicious)} entries but '
        f'`benign_datasets` has {n}; they must have one entry per client.')
  if seeds is None:
    seeds = [(0, k) for k in range(n)]
  if len(seeds) != n:
    raise ValueError(f'`seeds` has {len(seeds)} entries but '
                     f'`benign_datasets` has {n}.')
  if client_ids is None:
    client_ids = range(n)
  if len(client_ids) != n:
    raise ValueError(f'`client_ids` has {len(client_ids)} entries but '
                     f'`benign_datasets` has {n}.')
  num_malicious = sum(bool(m) for m in client_is_malicious)
  share = 1.0 / num_malicious if split_boost and num_malicious else 1.0
  client_data = []
  for k, (benign, malicious, is_malicious) in enumerate(
      zip(benign_datasets, malicious_datasets, client_is_malicious)):
    if malicious is None:
      if is_malicious:
        raise ValueError(
            f'`malicious_datasets[{k}]` is None but `client_is_malicious[{k}]`'
            ' is True: a malicious client needs a malicious dataset.')
      malicious = benign
    client_data.append(
        collections.OrderedDict(
            benign=benign,
            malicious=malicious if is_malicious else empty_like(malicious),
            context=client_context(seeds[k], share, client_ids[k])))
  return client_data


def _keras_to_tff_optimizer(keras_optimizer) -> tff.learning.optimizers.Optimizer:
  """The `tff.learning.optimizers` equivalent of a Keras optimizer's config."""
  config = keras_optimizer.get_config()
  name = type(keras_optimizer).__name__.lower()
  lr = float(config['learning_rate'])
  if name == 'sgd':
    momentum = float(config.get('momentum', 0.0) or 0.0)
    return tff.learning.optimizers.build_sgdm(
        learning_rate=lr, momentum=momentum if momentum > 0 else None)
  if name == 'adam':
    return tff.learning.optimizers.build_adam(
        learning_rate=lr, beta_1=config['beta_1'], beta_2=config['beta_2'],
        epsilon=config['epsilon'])
  if name == 'adagrad':
    return tff.learning.optimizers.build_adagrad(
        learning_rate=lr,
        initial_preconditioner_value=config['initial_accumulator_value'],
        epsilon=config['epsilon'])
  if name == 'rmsprop':
    return tff.learning.optimizers.build_rmsprop(
        learning_rate=lr, decay=config['rho'], epsilon=config['epsilon'])
  raise TypeError(
      f'Keras optimizer {type(keras_optimizer).__name__} has no '
      'tff.learning.optimizers equivalent here; pass a '
      'tff.learning.optimizers.Optimizer instead.')


def as_tff_optimizer(optimizer: OptimizerArg,
                     name: str) -> tff.learning.optimizers.Optimizer:
  """Accepts a TFF optimizer, or a no-arg constructor of a Keras optimizer."""
  if isinstance(optimizer, tff.learning.optimizers.Optimizer):
    return optimizer
  if callable(optimizer):
    built = optimizer()
    if isinstance(built, tff.learning.optimizers.Optimizer):
      return built
    if isinstance(built, (tf.keras.optimizers.Optimizer,
                          tf.keras.optimizers.legacy.Optimizer)):
      return _keras_to_tff_optimizer(built)
  raise TypeError(
      f'`{name}` must be a tff.learning.optimizers.Optimizer or a no-arg '
      f'callable returning a Keras optimizer, got {optimizer!r}.')


def _client_stats_aggregator():
  """Over clients: number malicious, mean/max of ‖Δ‖ per client kind, and the
  attackers' mean boost share."""

  @tff.federated_computation(
      tff.FederatedType(np.float32, tff.CLIENTS),
      tff.FederatedType(np.float32, tff.CLIENTS),
      tff.FederatedType(np.float32, tff.CLIENTS))
  def aggregate(norms, is_malicious, boost_share):
    benign_norm = tff.federated_map(
        tff.tensorflow.computation(lambda n, m: n * (1.0 - m)),
        (norms, is_malicious))
    malicious_norm = tff.federated_map(
        tff.tensorflow.computation(lambda n, m: n * m), (norms, is_malicious))
    num_clients = tff.federated_sum(
        tff.federated_map(tff.tensorflow.computation(lambda x: tf.ones_like(x)), norms))
    num_malicious = tff.federated_sum(is_malicious)
    malicious_share = tff.federated_map(
        tff.tensorflow.computation(lambda s, m: s * m),
        (boost_share, is_malicious))

    @tff.tensorflow.computation
    def summarize(num_clients, num_malicious, benign_sum, malicious_sum,
                  benign_max, malicious_max, share_sum):
      num_benign = num_clients - num_malicious
      return collections.OrderedDict(
          num_clients=num_clients,
          num_malicious_clients=num_malicious,
          benign_update_norm_mean=tf.math.divide_no_nan(benign_sum, num_benign),
          benign_update_norm_max=benign_max,
          malicious_update_norm_mean=tf.math.divide_no_nan(
              malicious_sum, num_malicious),
          malicious_update_norm_max=malicious_max,
          malicious_boost_share=tf.math.divide_no_nan(share_sum,
                                                      num_malicious))

    return tff.federated_map(
        summarize,
        (num_clients, num_malicious, tff.federated_sum(benign_norm),
         tff.federated_sum(malicious_norm), tff.federated_max(benign_norm),
         tff.federated_max(malicious_norm),
         tff.federated_sum(malicious_share)))

  return aggregate


def build_attacked_client_work(
    model_fn: Callable[[], tff.learning.models.VariableModel],
    client_optimizer: tff.learning.optimizers.Optimizer,
    client_update_tf: attacks.ClientUpdateStrategy,
    client_dp_sgd: Optional[local_training.DPSGD] = None,
    weight_is_client_id: bool = False,
) -> tff.learning.templates.ClientWorkProcess:
  """A stateless `ClientWorkProcess` running `client_update_tf` on each client.

  Each client's `update_weight` is its number of benign examples trained on,
  or, with `weight_is_client_id`, its context's `client_id + 1` (float32).

  With `client_dp_sgd`, the protocol's local training is DP-SGD. With a
  `modern_attacks.OmniscientAttack` (ALIE, IPM), the malicious clients'
  updates are then replaced by the ones it crafts from the round's updates
  (`modern_attacks.craft_from_round`).

  Measurements: `train` (the model's metrics over benign training), and the
  client statistics of `_client_stats_aggregator`.
  """
  with tf.Graph().as_default():
    model = model_fn()
    metrics_aggregation_fn = tff.learning.metrics.sum_then_finalize(
        model.metric_finalizers())
  element_type = tff.types.tensorflow_to_type(model.input_spec)
  context_type = tff.types.StructWithPythonType(
      [('seed', tff.TensorType(np.int64, [2])),
       ('boost_share', tff.TensorType(np.float32)),
       ('client_id', tff.TensorType(np.int64))], collections.OrderedDict)
  data_type = tff.types.StructWithPythonType(
      [('benign', tff.SequenceType(element_type)),
       ('malicious', tff.SequenceType(element_type)),
       ('context', tff.SequenceType(context_type))],
      collections.OrderedDict)
  weights_type = tff.learning.models.weights_type_from_model(model)

  @tff.tensorflow.computation(weights_type, data_type)
  def client_update(initial_weights, data):
    trainer = local_training.LocalTrainer(model_fn(), client_optimizer,
                                          client_dp_sgd)

    @tf.function
    def run(initial_weights, benign, malicious, context):
      trainer.assign_weights(initial_weights)
      seed, boost_share, client_id = context.reduce(
          (tf.zeros([2], tf.int64), tf.constant(1.0),
           tf.constant(-1, tf.int64)),
          lambda _, c: (c['seed'], c['boost_share'], c['client_id']))
      trainer.set_seed(seed)
      is_malicious = tf.logical_not(local_training.dataset_is_empty(malicious))
      result = client_update_tf(trainer, initial_weights.trainable, benign,
                                malicious, is_malicious, boost_share)
      update = tf.nest.map_structure(tf.negative, result.delta)
      norm = update_math.global_norm(result.delta)
      if weight_is_client_id:
        weight = tf.cast(client_id + 1, tf.float32)
      else:
        weight = tf.cast(result.num_benign_examples, tf.float32)
      return (tff.learning.templates.ClientResult(
          update=update, update_weight=weight),
              trainer.model.report_local_unfinalized_metrics(),
              norm, tf.cast(is_malicious, tf.float32),
              boost_share * tf.cast(is_malicious, tf.float32))

    return run(initial_weights, data['benign'], data['malicious'],
               data['context'])

  aggregate_client_stats = _client_stats_aggregator()

  @tff.federated_computation
  def init_fn():
    return tff.federated_value((), tff.SERVER)

  @tff.federated_computation(
      init_fn.type_signature.result,
      tff.FederatedType(weights_type, tff.CLIENTS),
      tff.FederatedType(data_type, tff.CLIENTS))
  def next_fn(state, weights, client_data):
    client_result, model_outputs, norms, is_malicious, share = (
        tff.federated_map(client_update, (weights, client_data)))
    if isinstance(client_update_tf, modern_attacks.OmniscientAttack):
      client_result, norms = modern_attacks.craft_from_round(
          client_update_tf, client_result, is_malicious)
    measurements = tff.federated_zip(
        collections.OrderedDict(
            train=metrics_aggregation_fn(model_outputs),
            clients=aggregate_client_stats(norms, is_malicious, share)))
    return tff.templates.MeasuredProcessOutput(state, client_result,
                                               measurements)

  return tff.learning.templates.ClientWorkProcess(init_fn, next_fn)


def _create_weighted_aggregator(factory, update_type):
  if factory is None:
    factory = aggregate_fn.build_default_aggregation()
  if isinstance(factory, tff.aggregators.UnweightedAggregationFactory):
    return tff.aggregators.as_weighted_aggregator(factory).create(
        update_type, tff.TensorType(np.float32))
  if isinstance(factory, tff.aggregators.WeightedAggregationFactory):
    return factory.create(update_type, tff.TensorType(np.float32))
  raise TypeError(
      '`model_update_aggregation_factory` must be a tff.aggregators '
      f'factory (weighted or unweighted) or None, got {factory!r}.')


def build_federated_averaging_process_attacked(
    model_fn: Callable[[], tff.learning.models.VariableModel],
    client_optimizer_fn: OptimizerArg = tff.learning.optimizers.build_sgdm(
        learning_rate=0.1),
    server_optimizer_fn: OptimizerArg = tff.learning.optimizers.build_sgdm(
        learning_rate=1.0),
    model_update_aggregation_factory=None,
    client_update_tf: attacks.ClientUpdateStrategy = ClientExplicitBoosting(
        boost_factor=1.0),
    client_dp_sgd: Optional[local_training.DPSGD] = None,
) -> tff.learning.templates.LearningProcess:
  """FedAvg where malicious clients follow `client_update_tf`.

  Args:
    model_fn: no-arg callable returning a new
      `tff.learning.models.VariableModel`.
    client_optimizer_fn: local optimizer: a `tff.learning.optimizers.Optimizer`
      or a no-arg constructor of a Keras optimizer (SGD, Adam, Adagrad,
      RMSprop).
    server_optimizer_fn: server optimizer, same forms.
    model_update_aggregation_factory: any `tff.aggregators` factory, weighted
      or unweighted. None: weighted mean of the updates, with non-finite
      updates zeroed and excluded (`aggregate_fn.build_default_aggregation`).
      A factory marked `plumbing.takes_client_ids` (FoolsGold) gets each
      client's `client_id + 1` as its weight.
    client_update_tf: the client strategy (`ClientExplicitBoosting`,
      `ClientProjectBoost`, or another `ClientUpdateStrategy`).
    client_dp_sgd: optional `local_training.DPSGD`: the clients' protocol
      training becomes DP-SGD (Turner's defense); attackers' own passes
      ignore it.

  Returns:
    A `tff.learning.templates.LearningProcess`; `next(state, client_data)`
    takes the output of `build_client_data`. Metrics: `client_work/train`,
    `client_work/clients` (number malicious, update norms), `aggregator`
    (the defense's measurements), `finalizer`.
  """
  if not isinstance(client_update_tf, attacks.ClientUpdateStrategy):
    raise TypeError('`client_update_tf` must be a ClientUpdateStrategy, got '
                    f'{client_update_tf!r}.')
  client_optimizer = as_tff_optimizer(client_optimizer_fn,
                                      'client_optimizer_fn')
  server_optimizer = as_tff_optimizer(server_optimizer_fn,
                                      'server_optimizer_fn')

  @tff.tensorflow.computation
  def initial_model_weights_fn():
    return tff.learning.models.ModelWeights.from_model(model_fn())

  model_weights_type = initial_model_weights_fn.type_signature.result
  distributor = tff.learning.templates.build_broadcast_process(
      model_weights_type)
  client_work = build_attacked_client_work(
      model_fn, client_optimizer, client_update_tf, client_dp_sgd,
      weight_is_client_id=plumbing.takes_client_ids(
          model_update_aggregation_factory))
  aggregator = _create_weighted_aggregator(model_update_aggregation_factory,
                                           model_weights_type.trainable)
  finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
      server_optimizer, model_weights_type)
  return tff.learning.templates.compose_learning_process(
      initial_model_weights_fn, distributor, client_work, aggregator,
      finalizer)
