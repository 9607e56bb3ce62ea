"""The original research code's API (google-research/federated,
`targeted_attack/attacked_fedavg.py`), on TFF 0.87.

For code written against the original: its process, state, client update
classes, server update and builders, under their names and signatures, as
thin faces over this project's stages (`targeted_attack.process`: local
training, the client strategies of `targeted_attack.attacks`, the
aggregators of `targeted_attack.defenses`, TFF's optimizers). New code should
use `targeted_attack.process.build_federated_averaging_process_attacked`, a
`tff.learning.templates.LearningProcess`.

`build_federated_averaging_process_attacked(model_fn, ...)` returns, as the
original, a `tff.templates.IterativeProcess`:
  initialize() -> ServerState(model, optimizer_state, delta_aggregate_state)
  next(state, benign_data, malicious_data, client_is_malicious)
      -> (state, metrics)
with the datasets `{<model input>*}@CLIENTS` and the flags `{bool}@CLIENTS`.
Round t: client k returns Δ_k = w_k − w_t with weight n_k (its benign
examples); the aggregator combines them; the server optimizer applies the
result with gradient −Δ (SGD at rate η: w_{t+1} = w_t + η · Σ n_k Δ_k / Σ n_k).

What differs from the original, and why:
- `ServerState.optimizer_state` holds the server optimizer's state as a
  `tff.learning.optimizers` optimizer (a Keras optimizer's no-arg constructor
  is converted: SGD with or without (Nesterov) momentum, Adam, Adagrad,
  RMSprop); the original held Keras optimizer variables, which TFF 0.87's
  computations no longer build. `server_update` itself takes a Keras
  optimizer and its variables, as the original.
- The clients' optimizer is converted the same way, and its state starts
  fresh at every pass over a dataset (for plain SGD, the original's default,
  the two are the same).
- The aggregator sees each client's update on TFF's wire (w_t − w_k = −Δ_k,
  as `tff.learning`'s own algorithms), so that every aggregator of
  `aggregate_fn` (FLAME's clustering of local models among them) applies
  unchanged; sign-symmetric aggregators, the original's among them, give the
  same result. `None`: the weighted mean with non-finite updates zeroed
  (`aggregate_fn.build_default_aggregation`) where the original used
  `tff.aggregators.MeanFactory()`; they agree on finite updates.
- A malicious client's training metrics are those of its first benign pass
  from w_t, as the original reported them; its other passes leave them
  unchanged.
- Each client's seed (for strategies that shuffle or add noise) is (0, 0):
  the original's `next` carries none. Several attackers in a round each send
  the full boost, as in the original.
"""

import collections
from typing import Callable

import attr
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

# pylint: disable=unused-import
from targeted_attack.attacks.base import ClientDelta
from targeted_attack.attacks.base import ClientUpdateStrategy
from targeted_attack.attacks.base import NoAttack
from targeted_attack.attacks.boosting import ModelReplacement
from targeted_attack.defenses.dp_sgd import DPSGD
from targeted_attack.process.client_data import build_client_data
from targeted_attack.process.client_data import client_context
from targeted_attack.process.client_data import empty_like
from targeted_attack.process.client_work import ClientWeighting
from targeted_attack.process.learning_process import as_tff_optimizer
# pylint: enable=unused-import
from targeted_attack.attacks import boosting
from targeted_attack.attacks import omniscient
from targeted_attack.attacks import pgd
from targeted_attack.process import client_work as client_work_lib
from targeted_attack.process import learning_process
from targeted_attack.process import local_training


@attr.s(eq=False, frozen=True)
class ClientOutput:
  """A client's output, as the original's.

  `weights_delta`: Δ = w_k − w_t (a structure like the trainable weights);
  `weights_delta_weight`: its aggregation weight n_k (float32);
  `model_output`: the model's unfinalized metrics
  (`report_local_unfinalized_metrics`); `optimizer_output`:
  `OrderedDict(num_examples=n_k, weight_norm=‖Δ‖₂)`.
  """
  weights_delta = attr.ib()
  weights_delta_weight = attr.ib()
  model_output = attr.ib()
  optimizer_output = attr.ib()


@attr.s(eq=False, frozen=True)
class ServerState:
  """The server's state: `model` (`tff.learning.models.ModelWeights`), the
  server optimizer's state and the aggregator's state."""
  model = attr.ib()
  optimizer_state = attr.ib()
  delta_aggregate_state = attr.ib()


def _get_weights(model):
  return tff.learning.models.ModelWeights.from_model(model)


def _get_norm(weights):
  """‖w‖₂ over all tensors of `weights` (one vector)."""
  return tf.linalg.global_norm(tf.nest.flatten(weights))


def _keras_optimizer_variables(optimizer) -> list:
  variables = optimizer.variables
  return list(variables() if callable(variables) else variables)


def _create_optimizer_vars(model, optimizer):
  """Builds the Keras `optimizer`'s variables for `model` (by applying a zero
  update) and returns them."""
  trainable = tf.nest.flatten(_get_weights(model).trainable)
  optimizer.apply_gradients(
      [(tf.zeros_like(v), v) for v in trainable], name='server_update')
  return _keras_optimizer_variables(optimizer)


def server_update(model, server_optimizer, server_optimizer_vars,
                  server_state, weights_delta, new_delta_aggregate_state):
  """The original's server step with a Keras optimizer.

  Sets `model` and the optimizer's variables from `server_state`, applies
  the gradient −Δ (`weights_delta` = Δ; SGD at rate η: w ← w + η·Δ) and
  returns the new `ServerState`, whose `model` is `model`'s weights.
  """
  model_weights = _get_weights(model)
  tf.nest.map_structure(lambda v, t: v.assign(t), model_weights,
                        server_state.model)
  for variable, value in zip(server_optimizer_vars,
                             server_state.optimizer_state):
    variable.assign(value)
  trainable = tf.nest.flatten(model_weights.trainable)
  server_optimizer.apply_gradients(
      [(-d, v) for d, v in zip(tf.nest.flatten(weights_delta), trainable)],
      name='server_update')
  return ServerState(model=model_weights,
                     optimizer_state=server_optimizer_vars,
                     delta_aggregate_state=new_delta_aggregate_state)


def _as_optimizer(optimizer_or_fn, name):
  """A `tff.learning.optimizers` optimizer from a TFF optimizer, a Keras
  optimizer, or a no-arg constructor of either."""
  if isinstance(optimizer_or_fn, (tf.keras.optimizers.Optimizer,
                                  tf.keras.optimizers.legacy.Optimizer)):
    return as_tff_optimizer(lambda: optimizer_or_fn, name)
  return as_tff_optimizer(optimizer_or_fn, name)


def _call_as_original(strategy, model, optimizer, benign_dataset,
                      malicious_dataset, client_type=None, initial_weights=None,
                      client_is_malicious=None):
  """`strategy` on `model` from `initial_weights`, returning a ClientOutput:
  the original's client update call, outside any TFF computation
  (`client_is_malicious`: the original `ClientProjectBoost`'s name for
  `client_type`)."""
  if client_type is None:
    client_type = client_is_malicious
  trainer = local_training.LocalTrainer(model,
                                        _as_optimizer(optimizer, 'optimizer'))

  @tf.function
  def run(benign_dataset, malicious_dataset, client_type, initial_weights):
    initial = tf.nest.map_structure(tf.identity, initial_weights)
    trainer.assign_weights(initial)
    result = ClientUpdateStrategy.__call__(
        strategy, trainer, initial.trainable, benign_dataset,
        malicious_dataset, client_type)
    return ClientOutput(
        weights_delta=result.delta,
        weights_delta_weight=tf.cast(result.num_benign_examples, tf.float32),
        model_output=model.report_local_unfinalized_metrics(),
        optimizer_output=collections.OrderedDict(
            num_examples=result.num_benign_examples,
            weight_norm=_get_norm(result.delta)))

  return run(benign_dataset, malicious_dataset, client_type, initial_weights)


class _CallableAsOriginal:
  """Callable as this project's process calls a strategy, `(trainer, w_t,
  D_trn, D_mal, is_malicious, boost_share)` → ClientDelta, or as the
  original's, `(model, optimizer, benign_dataset, malicious_dataset,
  client_type, initial_weights)` → ClientOutput."""

  def __call__(self, *args, **kwargs):
    first = args[0] if args else kwargs.get('model', kwargs.get('trainer'))
    if isinstance(first, local_training.LocalTrainer):
      return super().__call__(*args, **kwargs)
    return _call_as_original(self, *args, **kwargs)


class ClientExplicitBoosting(_CallableAsOriginal,
                             boosting.ClientExplicitBoosting):
  __doc__ = boosting.ClientExplicitBoosting.__doc__


class ClientProjectBoost(_CallableAsOriginal, pgd.ClientProjectBoost):
  __doc__ = pgd.ClientProjectBoost.__doc__


def _tensor_type(structure):
  return tff.types.tensorflow_to_type(tf.nest.map_structure(
      lambda t: tf.TensorSpec(t.shape, t.dtype), structure))


def build_server_init_fn(model_fn, server_optimizer_fn,
                         aggregation_process_init):
  """A federated computation returning the initial `ServerState`@SERVER:
  `model_fn()`'s weights, the server optimizer's initial state, and
  `aggregation_process_init()`."""
  server_optimizer = _as_optimizer(server_optimizer_fn, 'server_optimizer_fn')

  @tff.tensorflow.computation
  def server_init_tf():
    weights = _get_weights(model_fn())
    specs = tuple(tf.TensorSpec(v.shape, v.dtype)
                  for v in tf.nest.flatten(weights.trainable))
    return weights, server_optimizer.initialize(specs)

  @tff.federated_computation
  def server_init():
    initial_model, optimizer_state = tff.federated_eval(server_init_tf,
                                                        tff.SERVER)
    return tff.federated_zip(ServerState(
        model=initial_model, optimizer_state=optimizer_state,
        delta_aggregate_state=aggregation_process_init()))

  return server_init


def build_server_update_fn(model_fn, server_optimizer_fn, server_state_type,
                           model_weights_type):
  """A TF computation (ServerState, Δ, aggregator state) → ServerState: the
  server optimizer's step with gradient −Δ (SGD at rate η: w ← w + η·Δ)."""
  del model_fn  # the weights' structure comes from `model_weights_type`
  server_optimizer = _as_optimizer(server_optimizer_fn, 'server_optimizer_fn')

  @tff.tensorflow.computation(server_state_type, model_weights_type.trainable,
                              server_state_type.delta_aggregate_state)
  def server_update_tf(server_state, model_delta, new_delta_aggregate_state):
    trainable = server_state.model.trainable
    optimizer_state, updated = server_optimizer.next(
        server_state.optimizer_state, tuple(tf.nest.flatten(trainable)),
        tuple(-d for d in tf.nest.flatten(model_delta)))
    model = tff.learning.models.ModelWeights(
        trainable=tf.nest.pack_sequence_as(trainable, list(updated)),
        non_trainable=server_state.model.non_trainable)
    return ServerState(model=model, optimizer_state=optimizer_state,
                       delta_aggregate_state=new_delta_aggregate_state)

  return server_update_tf


def build_client_update_fn(model_fn, optimizer_fn, client_update_tf,
                           tf_dataset_type, model_weights_type):
  """A TF computation (benign dataset, malicious dataset, is_malicious, w_t)
  → ClientOutput: `client_update_tf` on a model of `model_fn` trained by
  the optimizer of `optimizer_fn`."""
  train = client_work_lib.build_client_training(
      model_fn, _as_optimizer(optimizer_fn, 'client_optimizer_fn'),
      client_update_tf)

  @tff.tensorflow.computation(tf_dataset_type, tf_dataset_type, np.bool_,
                              model_weights_type)
  def client_delta_tf(benign_dataset, malicious_dataset, client_type,
                      initial_model_weights):
    result, model_output, norm, _, _ = train(
        initial_model_weights, benign_dataset, malicious_dataset,
        client_type, tf.zeros([2], tf.int64), tf.constant(1.0),
        tf.constant(-1, tf.int64))
    return ClientOutput(
        weights_delta=tf.nest.map_structure(tf.negative, result.update),
        weights_delta_weight=result.update_weight,
        model_output=model_output,
        optimizer_output=collections.OrderedDict(
            num_examples=tf.cast(result.update_weight, tf.int64),
            weight_norm=norm))

  return client_delta_tf


def build_run_one_round_fn_attacked(server_update_fn, client_update_fn,
                                    aggregation_process,
                                    federated_server_state_type,
                                    federated_dataset_type,
                                    metrics_aggregation_computation):
  """The federated computation of one round: (state, benign data, malicious
  data, is_malicious) → (state, metrics).

  Broadcast w_t; each client runs `client_update_fn`; `aggregation_process`
  combines −Δ_k (TFF's wire), given the rest of what its `next` takes after
  (state, value), told apart by placement: weights n_k at CLIENTS, w_t's
  trainable weights at SERVER (FLAME); `server_update_fn` applies minus its
  result; `metrics_aggregation_computation` combines the clients' metrics.
  """
  parameters = aggregation_process.next.type_signature.parameter
  extra_placements = [p.placement for p in list(parameters)[2:]]
  delta_type = server_update_fn.type_signature.parameter[1]
  weights_type = federated_server_state_type.member.model

  negate = tff.tensorflow.computation(
      lambda d: tf.nest.map_structure(tf.negative, d), delta_type)
  trainable_of = tff.tensorflow.computation(lambda w: w.trainable,
                                            weights_type)

  @tff.federated_computation(federated_server_state_type,
                             federated_dataset_type, federated_dataset_type,
                             tff.FederatedType(np.bool_, tff.CLIENTS))
  def run_one_round(server_state, federated_dataset, malicious_dataset,
                    malicious_clients):
    client_model = tff.federated_broadcast(server_state.model)
    client_outputs = tff.federated_map(
        client_update_fn,
        (federated_dataset, malicious_dataset, malicious_clients,
         client_model))
    arguments = [server_state.delta_aggregate_state,
                 tff.federated_map(negate, client_outputs.weights_delta)]
    for placement in extra_placements:
      arguments.append(
          client_outputs.weights_delta_weight if placement is tff.CLIENTS
          else tff.federated_map(trainable_of, server_state.model))
    aggregate_output = aggregation_process.next(*arguments)
    server_state = tff.federated_map(
        server_update_fn,
        (server_state, tff.federated_map(negate, aggregate_output.result),
         aggregate_output.state))
    aggregated_outputs = metrics_aggregation_computation(
        client_outputs.model_output)
    if isinstance(aggregated_outputs.type_signature, tff.StructType):
      aggregated_outputs = tff.federated_zip(aggregated_outputs)
    return server_state, aggregated_outputs

  return run_one_round


_MOVED = ('client_dp_sgd', 'client_weighting')


def build_federated_averaging_process_attacked(
    model_fn,
    client_optimizer_fn=lambda: tf.keras.optimizers.SGD(learning_rate=0.1),
    server_optimizer_fn=lambda: tf.keras.optimizers.SGD(learning_rate=1.0),
    model_update_aggregation_factory=None,
    client_update_tf=None,
    metrics_aggregator: Callable = tff.learning.metrics.sum_then_finalize,
    **kwargs):
  """The original's attacked FedAvg, as a `tff.templates.IterativeProcess`.

  Args:
    model_fn: no-arg callable returning a `tff.learning.models.VariableModel`.
    client_optimizer_fn: the clients' optimizer: a no-arg constructor of a
      Keras optimizer (the original's form) or a
      `tff.learning.optimizers.Optimizer`.
    server_optimizer_fn: the server's optimizer, same forms.
    model_update_aggregation_factory: any `tff.aggregators` factory (the
      original's `DifferentiallyPrivateFactory`, or `aggregate_fn`'s); None:
      the weighted mean.
    client_update_tf: the client strategy; default
      `ClientExplicitBoosting(boost_factor=1.0)`.
    metrics_aggregator: called as the original called it,
      `metrics_aggregator(metric_finalizers, unfinalized_metrics_type)`,
      returning the federated computation that combines the clients'
      metrics (default `tff.learning.metrics.sum_then_finalize`).

  Returns:
    `IterativeProcess`: `initialize()` → `ServerState`;
    `next(state, benign_data, malicious_data, client_is_malicious)` →
    `(state, metrics)`, the metrics those of `metrics_aggregator` (e.g.
    `metrics['loss']`).
  """
  moved = sorted(set(kwargs) & set(_MOVED))
  if kwargs:
    raise TypeError(
        f'build_federated_averaging_process_attacked() got {sorted(kwargs)}: '
        'the original API takes model_fn, client_optimizer_fn, '
        'server_optimizer_fn, model_update_aggregation_factory, '
        'client_update_tf and metrics_aggregator. '
        + ('`client_dp_sgd` and `client_weighting` are settings of the '
           "project's process: targeted_attack.process."
           'build_federated_averaging_process_attacked.' if moved else ''))
  if client_update_tf is None:
    client_update_tf = ClientExplicitBoosting(boost_factor=1.0)
  if not isinstance(client_update_tf, ClientUpdateStrategy):
    raise TypeError('`client_update_tf` must be a ClientUpdateStrategy, got '
                    f'{client_update_tf!r}.')
  if isinstance(client_update_tf, omniscient.OmniscientAttack):
    raise TypeError(
        f'{type(client_update_tf).__name__} crafts its update from the '
        "round's updates, which the original API's rounds do not expose; use "
        'targeted_attack.process.build_federated_averaging_process_attacked.')
  with tf.Graph().as_default():
    model = model_fn()
    weights_type = tff.learning.models.weights_type_from_model(model)
    unfinalized_metrics_type = _tensor_type(
        model.report_local_unfinalized_metrics())
    metrics_aggregation_computation = metrics_aggregator(
        model.metric_finalizers(), unfinalized_metrics_type)
    tf_dataset_type = tff.SequenceType(
        tff.types.tensorflow_to_type(model.input_spec))

  aggregation_process = learning_process.create_weighted_aggregator(
      model_update_aggregation_factory, weights_type.trainable)
  server_init = build_server_init_fn(model_fn, server_optimizer_fn,
                                     aggregation_process.initialize)
  server_state_type = server_init.type_signature.result.member
  server_update_fn = build_server_update_fn(model_fn, server_optimizer_fn,
                                            server_state_type,
                                            server_state_type.model)
  client_update_fn = build_client_update_fn(model_fn, client_optimizer_fn,
                                            client_update_tf, tf_dataset_type,
                                            server_state_type.model)
  run_one_round = build_run_one_round_fn_attacked(
      server_update_fn, client_update_fn, aggregation_process,
      tff.FederatedType(server_state_type, tff.SERVER),
      tff.FederatedType(tf_dataset_type, tff.CLIENTS),
      metrics_aggregation_computation)
  return tff.templates.IterativeProcess(initialize_fn=server_init,
                                        next_fn=run_one_round)
