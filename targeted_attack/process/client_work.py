"""The client-work stage: each client runs its `ClientUpdateStrategy`.

A stateless `tff.learning.templates.ClientWorkProcess`: the client's update
on TFF's wire (w_t − w_k = −Δ_k), its weight, the training metrics and the
client statistics (malicious count, update norms, boost share). With an
omniscient attack (ALIE, IPM) the malicious updates are then replaced by the
ones it crafts from the round's updates (`attacks.omniscient`).
"""

import collections
import enum
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import dataset_loops
from targeted_attack import update_math
from targeted_attack.attacks import base
from targeted_attack.attacks import omniscient
from targeted_attack.defenses import dp_sgd
from targeted_attack.process import batched_training
from targeted_attack.process import local_training
from targeted_attack.runtime.in_process import batching


class ClientWeighting(enum.Enum):
  """What a client's aggregation weight is (the update's `update_weight`)."""
  NUM_EXAMPLES = 'num_examples'  # its number of benign examples trained on
  CLIENT_ID = 'client_id'        # its identity + 1 (0: none), for FoolsGold


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


def build_client_training(
    model_fn: Callable[[], tff.learning.models.VariableModel],
    client_optimizer: tff.learning.optimizers.Optimizer,
    client_update_tf: base.ClientUpdateStrategy,
    client_dp_sgd: Optional[dp_sgd.DPSGD] = None,
    client_weighting: ClientWeighting = ClientWeighting.NUM_EXAMPLES,
    local_loop: str = 'iterator', marker: Optional[bytes] = None):
  """One client's work, for the body of a `tff.tensorflow.computation`.

  Returns `train(initial_weights, benign, malicious, is_malicious, seed,
  boost_share, client_id)`, which builds the model and trainer (call it once
  per computation) and returns `(ClientResult, unfinalized metrics, ‖Δ‖,
  is_malicious, boost_share · is_malicious)`, the last two float32; the
  result is on TFF's wire (update = −Δ). Its `update_weight` is the number of
  benign examples trained on, or with `client_weighting` CLIENT_ID,
  `client_id + 1` (float32). `local_loop`: the trainer's loop kind
  (`dataset_loops.fold_batches`).
  """

  def train(initial_weights, benign, malicious, is_malicious, seed,
            boost_share, client_id):
    trainer = local_training.LocalTrainer(model_fn(), client_optimizer,
                                          client_dp_sgd, local_loop)

    @tf.function
    def run(initial_weights, benign, malicious, is_malicious, seed,
            boost_share, client_id):
      trainer.assign_weights(initial_weights)
      trainer.set_seed(seed)
      result = client_update_tf(trainer, initial_weights.trainable, benign,
                                malicious, is_malicious, boost_share)
      update = tf.nest.map_structure(tf.negative, result.delta)
      norm = update_math.global_norm(result.delta)
      if client_weighting == ClientWeighting.CLIENT_ID:
        weight = tf.cast(client_id + 1, tf.float32)
      else:
        weight = tf.cast(result.num_benign_examples, tf.float32)
      malicious_flag = tf.cast(is_malicious, tf.float32)
      result = (tff.learning.templates.ClientResult(
          update=update, update_weight=weight),
                trainer.model.report_local_unfinalized_metrics(),
                norm, malicious_flag, boost_share * malicious_flag)
      if marker is not None:
        result += (batching.marker_tensor(marker),)
      return result

    return run(initial_weights, benign, malicious, is_malicious, seed,
               boost_share, client_id)

  return train


def _malicious_train_as_benign(strategy) -> bool:
  """Whether `strategy`'s malicious clients train as benign ones: its
  `malicious_update` is `OmniscientAttack`'s or `NoAttack`'s (both
  `base.benign_update` on D_trn). (A strategy that overrides how a client
  runs has no batched form: `batched_training.build_trainer`.)"""
  method = getattr(type(strategy), 'malicious_update', None)
  return method in (omniscient.OmniscientAttack.malicious_update,
                    base.NoAttack.malicious_update)


def _register_batched_form(model_fn, client_optimizer, client_dp_sgd,
                           client_weighting, local_loop,
                           client_batching, strategy) -> Optional[bytes]:
  """The marker of the benign clients' batched form, or None (logged why)."""
  trainer, reason = batched_training.build_trainer(
      model_fn, client_optimizer, client_dp_sgd, local_loop, client_batching,
      strategy)
  if reason is not None:
    logging.info('Clients are trained one by one, not batched: %s.', reason)
    return None
  batched = batched_training.BenignClientMap(
      trainer,
      weight_by_client_id=client_weighting == ClientWeighting.CLIENT_ID,
      malicious_train_as_benign=_malicious_train_as_benign(strategy))
  batched.marker = batching.register(batched)
  return batched.marker


def build_attacked_client_work(
    model_fn: Callable[[], tff.learning.models.VariableModel],
    client_optimizer: tff.learning.optimizers.Optimizer,
    client_update_tf: base.ClientUpdateStrategy,
    client_dp_sgd: Optional[dp_sgd.DPSGD] = None,
    client_weighting: ClientWeighting = ClientWeighting.NUM_EXAMPLES,
    metrics_aggregator=tff.learning.metrics.sum_then_finalize,
    local_loop: str = 'iterator',
    client_batching: str = 'auto',
) -> tff.learning.templates.ClientWorkProcess:
  """A stateless `ClientWorkProcess` running `client_update_tf` on each client.

  Each client's `update_weight` is its number of benign examples trained on,
  or, with `client_weighting` CLIENT_ID, its context's `client_id + 1`
  (float32).

  With `client_dp_sgd`, the protocol's local training is DP-SGD. With a
  `omniscient.OmniscientAttack` (ALIE, IPM), the malicious clients'
  updates are then replaced by the ones it crafts from the round's updates
  (`omniscient.craft_from_round`).

  `client_batching` (`batched_training.CLIENT_BATCHING`): with `on`, where
  `batched_training` supports the model, the optimizer and the settings,
  the in-process context trains a round's benign clients as one computation
  (`batched_training.BenignClientMap`), with the malicious ones of a strategy
  whose attackers train as benign clients (ALIE, IPM, `NoAttack`); other
  malicious clients, and every client under another context, run alone.
  `auto` (the default): `on` where TensorFlow sees a GPU, and on a CPU for a model of at most
  `batched_training.CPU_BATCHING_MAX_MULTIPLY_ADDS` per example, else `off`.
  `off`, or a setting without a batched form: every client runs alone, and
  the reason is logged.

  Measurements: `train` (the model's metrics over benign training, combined
  over clients by `metrics_aggregator(metric_finalizers)`, as TFF 0.87's
  own client work calls it), and the client statistics of
  `_client_stats_aggregator`.
  """
  with tf.Graph().as_default():
    model = model_fn()
    metrics_aggregation_fn = metrics_aggregator(model.metric_finalizers())
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
  marker = _register_batched_form(model_fn, client_optimizer, client_dp_sgd,
                                  client_weighting, local_loop,
                                  client_batching, client_update_tf)
  train = build_client_training(model_fn, client_optimizer, client_update_tf,
                                client_dp_sgd, client_weighting, local_loop,
                                marker)

  @tf.function(autograph=False)
  def read_context(context, malicious):
    """The client's (seed, boost share, id) and whether it is malicious
    (its malicious dataset is not empty)."""
    seed, boost_share, client_id = dataset_loops.fold_batches(
        context, (tf.zeros([2], tf.int64), tf.constant(1.0),
                  tf.constant(-1, tf.int64)),
        lambda _, c: (c['seed'], c['boost_share'], c['client_id']))
    is_malicious = tf.logical_not(local_training.dataset_is_empty(malicious))
    return seed, boost_share, client_id, is_malicious

  @tff.tensorflow.computation(weights_type, data_type)
  def client_update(initial_weights, data):
    seed, boost_share, client_id, is_malicious = read_context(
        data['context'], data['malicious'])
    return train(initial_weights, data['benign'], data['malicious'],
                 is_malicious, seed, boost_share, client_id)

  aggregate_client_stats = _client_stats_aggregator()

  @tff.federated_computation
  def init_fn():
    return tff.federated_value((), tff.SERVER)

  @tff.federated_computation(
      init_fn.type_signature.result,
      tff.FederatedType(weights_type, tff.CLIENTS),
      tff.FederatedType(data_type, tff.CLIENTS))
  def next_fn(state, weights, client_data):
    client_result, model_outputs, norms, is_malicious, share, *_ = (
        tff.federated_map(client_update, (weights, client_data)))
    if isinstance(client_update_tf, omniscient.OmniscientAttack):
      client_result, norms = omniscient.craft_from_round(
          client_update_tf, client_result, is_malicious)
    measurements = tff.federated_zip(
        collections.OrderedDict(
            train=metrics_aggregation_fn(model_outputs),
            clients=aggregate_client_stats(norms, is_malicious, share)))
    return tff.templates.MeasuredProcessOutput(state, client_result,
                                               measurements)

  return tff.learning.templates.ClientWorkProcess(init_fn, next_fn)
