"""Federated averaging with malicious clients, as a `tff.learning` process.

Round t: the server broadcasts w_t; each sampled client k runs its
`ClientUpdateStrategy` and returns Δ_k with weight n_k (its number of benign
examples trained on); the aggregator (any `tff.aggregators` factory, the
defenses of `targeted_attack.defenses` among them) combines them; the server
optimizer applies the result: with SGD at rate η and a weighted mean,
w_{t+1} = w_t + η · Σ n_k Δ_k / Σ n_k.

The stages, as TFF's `compose_learning_process` chains them: broadcast
(TFF's), client work (`client_work`), aggregator (the defense), finalizer
(TFF's optimizer step). TFF's convention is followed on the wire: the update
handed to the aggregator is w_t − w_k = −Δ_k (the server optimizer then
*subtracts* it). The defenses here are symmetric under sign, so this changes
none of them, except FLAME, which clusters the local models w_k = w_t − x_k.

An aggregator that needs w_t (`defenses.plumbing.takes_global_model`, FLAME)
gets it as `next`'s last argument: the stages are then chained by
`_compose_with_global_model`, TFF's chain with that one argument added.
"""

import collections
from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import checks
from targeted_attack import dataset_loops
from targeted_attack.attacks import base
from targeted_attack.attacks import boosting
from targeted_attack.defenses import clipping
from targeted_attack.defenses import dp_sgd
from targeted_attack.defenses import plumbing
from targeted_attack.process import client_work as client_work_lib


ClientWeighting = client_work_lib.ClientWeighting
OptimizerArg = Union[tff.learning.optimizers.Optimizer,
                     Callable[[], tf.keras.optimizers.Optimizer]]


class _NesterovSGD(tff.learning.optimizers.Optimizer):
  """SGD with Nesterov momentum: a ← m·a + g; w ← w − η·(g + m·a).

  Keras' `SGD(nesterov=True)` in accumulator form (its velocity v = −η·a at
  a constant rate η); a starts at 0. State: learning rate, momentum,
  accumulator; hyperparameters: learning rate and momentum.
  """

  def __init__(self, learning_rate: float, momentum: float):
    self._learning_rate = checks.positive('learning_rate', learning_rate)
    self._momentum = checks.number('momentum', momentum, 0.0, maximum=1.0)

  def initialize(self, specs):
    return collections.OrderedDict(
        learning_rate=self._learning_rate, momentum=self._momentum,
        accumulator=tf.nest.map_structure(
            lambda s: tf.zeros(s.shape, s.dtype), specs))

  def next(self, state, weights, gradients):
    rate, momentum = state['learning_rate'], state['momentum']
    accumulator = tf.nest.map_structure(lambda a, g: momentum * a + g,
                                        state['accumulator'], gradients)
    updated = tf.nest.map_structure(
        lambda w, g, a: w - rate * (g + momentum * a), weights, gradients,
        accumulator)
    return collections.OrderedDict(
        learning_rate=rate, momentum=momentum,
        accumulator=accumulator), updated

  def get_hparams(self, state):
    return collections.OrderedDict(learning_rate=state['learning_rate'],
                                   momentum=state['momentum'])

  def set_hparams(self, state, hparams):
    updated = collections.OrderedDict(state)
    updated.update(hparams)
    return updated


def build_sgdm(learning_rate: float, momentum: float = 0.0,
               nesterov: bool = False) -> tff.learning.optimizers.Optimizer:
  """SGD: w ← w − η·g; with momentum m, TFF's heavy ball (a ← m·a + g,
  w ← w − η·a) or, `nesterov`, `_NesterovSGD` (Keras' SGD(nesterov=True))."""
  if nesterov and momentum > 0:
    return _NesterovSGD(learning_rate, momentum)
  return tff.learning.optimizers.build_sgdm(
      learning_rate=learning_rate, momentum=momentum if momentum > 0 else None)


# Keras optimizer settings the conversion has no equivalent for, with the
# value at which they change nothing.
_UNCONVERTED_KERAS_SETTINGS = {
    'weight_decay': (None, 0, 0.0), 'clipnorm': (None,), 'clipvalue': (None,),
    'global_clipnorm': (None,), 'amsgrad': (False,), 'centered': (False,),
    'use_ema': (False,), 'decay': (None, 0, 0.0)}


def _keras_to_tff_optimizer(keras_optimizer) -> tff.learning.optimizers.Optimizer:
  """The `tff.learning.optimizers` equivalent of a Keras optimizer's config;
  a setting it cannot carry over (weight decay, gradient clipping, AMSGrad,
  a centered or momentum RMSprop, EMA, a learning-rate schedule) raises."""
  config = keras_optimizer.get_config()
  name = type(keras_optimizer).__name__.lower()
  unconverted = sorted(
      key for key, neutral in _UNCONVERTED_KERAS_SETTINGS.items()
      if key in config and config[key] not in neutral)
  if name == 'rmsprop' and float(config.get('momentum', 0.0) or 0.0) != 0.0:
    unconverted.append('momentum')
  if isinstance(config['learning_rate'], dict):
    unconverted.append('learning_rate (a schedule)')
  if unconverted:
    raise TypeError(
        f'Keras optimizer {type(keras_optimizer).__name__} with '
        f'{", ".join(unconverted)}: tff.learning.optimizers has no equivalent '
        'here; pass a tff.learning.optimizers.Optimizer instead.')
  lr = float(config['learning_rate'])
  if name == 'sgd':
    momentum = float(config.get('momentum', 0.0) or 0.0)
    return build_sgdm(lr, momentum, bool(config.get('nesterov', False)))
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


def create_weighted_aggregator(factory, update_type):
  """The weighted `AggregationProcess` of `factory` for `update_type` (an
  unweighted factory's ignores the weights; None: the default mean)."""
  if factory is None:
    factory = clipping.build_default_aggregation()
  if isinstance(factory, (tff.aggregators.UnweightedAggregationFactory,
                          tff.aggregators.WeightedAggregationFactory)):
    return plumbing.as_weighted(factory).create(update_type,
                                                tff.TensorType(np.float32))
  raise TypeError(
      '`model_update_aggregation_factory` must be a tff.aggregators '
      f'factory (weighted or unweighted) or None, got {factory!r}.')


def _compose_with_global_model(initial_model_weights_fn, distributor,
                               client_work, aggregator, finalizer):
  """TFF's `compose_learning_process`, the aggregator also given w_t.

  The same state (`LearningAlgorithmState`), stages and metrics; the only
  difference is `aggregator.next(state, update, weight, w_t.trainable)`.
  """
  templates = tff.learning.templates
  client_data_type = client_work.next.type_signature.parameter[2]

  @tff.federated_computation()
  def init_fn():
    return tff.federated_zip(templates.LearningAlgorithmState(
        tff.federated_eval(initial_model_weights_fn, tff.SERVER),
        distributor.initialize(), client_work.initialize(),
        aggregator.initialize(), finalizer.initialize()))

  state_type = init_fn.type_signature.result
  weights_type = state_type.member.global_model_weights

  @tff.tensorflow.computation(weights_type)
  def trainable(weights):
    return weights.trainable

  @tff.federated_computation(state_type, client_data_type)
  def next_fn(state, client_data):
    distributed = distributor.next(state.distributor,
                                   state.global_model_weights)
    trained = client_work.next(state.client_work, distributed.result,
                               client_data)
    aggregated = aggregator.next(
        state.aggregator, trained.result.update, trained.result.update_weight,
        tff.federated_map(trainable, state.global_model_weights))
    finalized = finalizer.next(state.finalizer, state.global_model_weights,
                               aggregated.result)
    new_state = tff.federated_zip(templates.LearningAlgorithmState(
        finalized.result, distributed.state, trained.state, aggregated.state,
        finalized.state))
    metrics = tff.federated_zip(collections.OrderedDict(
        distributor=distributed.measurements,
        client_work=trained.measurements,
        aggregator=aggregated.measurements,
        finalizer=finalized.measurements))
    return templates.LearningProcessOutput(new_state, metrics)

  member = state_type.member

  @tff.tensorflow.computation(member)
  def get_model_weights_fn(state):
    return state.global_model_weights

  @tff.tensorflow.computation(member, member.global_model_weights)
  def set_model_weights_fn(state, model_weights):
    return templates.LearningAlgorithmState(
        model_weights, state.distributor, state.client_work, state.aggregator,
        state.finalizer)

  @tff.tensorflow.computation(member)
  def get_hparams_fn(state):
    return collections.OrderedDict(
        client_work=client_work.get_hparams(state.client_work),
        finalizer=finalizer.get_hparams(state.finalizer))

  @tff.tensorflow.computation(member, get_hparams_fn.type_signature.result)
  def set_hparams_fn(state, hparams):
    return templates.LearningAlgorithmState(
        state.global_model_weights, state.distributor,
        client_work.set_hparams(state.client_work, hparams['client_work']),
        state.aggregator,
        finalizer.set_hparams(state.finalizer, hparams['finalizer']))

  return templates.LearningProcess(init_fn, next_fn, get_model_weights_fn,
                                   set_model_weights_fn,
                                   get_hparams_fn=get_hparams_fn,
                                   set_hparams_fn=set_hparams_fn)


def build_federated_averaging_process_attacked(
    model_fn: Callable[[], tff.learning.models.VariableModel],
    client_optimizer_fn: OptimizerArg = tff.learning.optimizers.build_sgdm(
        learning_rate=0.1),
    server_optimizer_fn: OptimizerArg = tff.learning.optimizers.build_sgdm(
        learning_rate=1.0),
    model_update_aggregation_factory=None,
    client_update_tf: base.ClientUpdateStrategy = boosting.ClientExplicitBoosting(
        boost_factor=1.0),
    client_dp_sgd: Optional[dp_sgd.DPSGD] = None,
    client_weighting: ClientWeighting = ClientWeighting.NUM_EXAMPLES,
    metrics_aggregator=tff.learning.metrics.sum_then_finalize,
    local_loop: str = 'iterator',
    client_batching: str = 'auto',
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
      updates zeroed and excluded (`clipping.build_default_aggregation`).
    client_update_tf: the client strategy (`ClientExplicitBoosting`,
      `ClientProjectBoost`, or another `ClientUpdateStrategy`).
    client_dp_sgd: optional `dp_sgd.DPSGD`: the clients' protocol
      training becomes DP-SGD (Turner's defense); attackers' own passes
      ignore it.
    client_weighting: each client's aggregation weight: `NUM_EXAMPLES`, its
      number of benign examples; `CLIENT_ID`, its context's `client_id + 1`,
      for an aggregator keyed by client (`defenses.foolsgold`).
    metrics_aggregator: combines the clients' training metrics, called as
      TFF 0.87's own algorithms call it: `metrics_aggregator(
      model.metric_finalizers())` returns the federated computation
      (default `tff.learning.metrics.sum_then_finalize`).
    local_loop: how local training loops over a client's batches
      (`dataset_loops.fold_batches`): 'iterator' (default) or 'reduce'
      (`dataset.reduce`, the loop before 0.7; the same arithmetic, slower).
    client_batching: under the in-process context, whether a round's benign
      clients train as one computation (`process.batched_training`): `on`
      where the model and optimizer allow (else logged, and per client);
      `auto` (default) as `on` where TensorFlow sees a GPU or the model has
      at most 1M multiply-adds per example (`small_cnn`, `linear`), else
      `off`;
      `off`: each client by itself, as under TFF's C++ context.

  Returns:
    A `tff.learning.templates.LearningProcess`; `next(state, client_data)`
    takes the output of `build_client_data`. Metrics: `client_work/train`,
    `client_work/clients` (number malicious, update norms), `aggregator`
    (the defense's measurements), `finalizer`.
  """
  if not isinstance(client_update_tf, base.ClientUpdateStrategy):
    raise TypeError('`client_update_tf` must be a ClientUpdateStrategy, got '
                    f'{client_update_tf!r}.')
  if local_loop not in dataset_loops.LOOP_KINDS:
    raise ValueError(f'`local_loop` must be one of {dataset_loops.LOOP_KINDS},'
                     f' got {local_loop!r}.')
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
  client_work = client_work_lib.build_attacked_client_work(
      model_fn, client_optimizer, client_update_tf, client_dp_sgd,
      client_weighting, metrics_aggregator, local_loop, client_batching)
  aggregator = create_weighted_aggregator(model_update_aggregation_factory,
                                           model_weights_type.trainable)
  finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
      server_optimizer, model_weights_type)
  compose = (_compose_with_global_model
             if plumbing.takes_global_model(model_update_aggregation_factory)
             else
             tff.learning.templates.compose_learning_process)
  return compose(initial_model_weights_fn, distributor, client_work,
                 aggregator, finalizer)
