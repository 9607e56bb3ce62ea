"""The attack experiment: `run(config)` is the round loop.

config → registries (data, backdoor, attackers, attack, defense) → the
attacked `tff.learning` process → rounds → outputs (see `outputs`).
`resume=True` continues from the checkpoint, dropping any rows written after
it; the saved config must match (but for `config.RESUMABLE_CHANGES`).
"""

import os
import sys
import time

import numpy as np
import tensorflow_federated as tff

from targeted_attack import attacked_fedavg
from targeted_attack import data as data_lib
from targeted_attack import evaluation
from targeted_attack import models
from targeted_attack import outputs
from targeted_attack import registry
# Re-exported for users of the earlier single-module API.
from targeted_attack.config import ConfigError  # pylint: disable=unused-import
from targeted_attack.config import ExperimentConfig  # pylint: disable=unused-import
from targeted_attack.config import validate  # pylint: disable=unused-import
from targeted_attack.outputs import METRIC_COLUMNS  # pylint: disable=unused-import


def _optimizer(learning_rate, momentum):
  return tff.learning.optimizers.build_sgdm(
      learning_rate=learning_rate, momentum=momentum if momentum > 0 else None)


def build_process(c: ExperimentConfig, population=None):
  """The attacked FedAvg process of `c` (attack, defense, optimizers).

  `population`: the number of clients (see `registry.build_defense`).
  """
  aggregator, client_dp_sgd = registry.build_defense(c, population)
  return attacked_fedavg.build_federated_averaging_process_attacked(
      models.build_model_fn(c.model, seed=c.random_seed),
      client_optimizer_fn=_optimizer(c.client_learning_rate, c.client_momentum),
      server_optimizer_fn=_optimizer(c.server_learning_rate, c.server_momentum),
      model_update_aggregation_factory=aggregator,
      client_update_tf=registry.build_attack(c),
      client_dp_sgd=client_dp_sgd)


def initial_state(process, c: ExperimentConfig):
  """The process's initial state, with the model of `c.init_checkpoint`."""
  state = process.initialize()
  if c.init_checkpoint:
    state = process.set_model_weights(state, outputs.load_model_weights(
        os.path.expanduser(c.init_checkpoint),
        process.get_model_weights(state)))
  return state


def _find(structure, key):
  """The first value stored under `key` in nested dicts, or None."""
  if isinstance(structure, dict):
    if key in structure:
      return structure[key]
    for value in structure.values():
      found = _find(value, key)
      if found is not None:
        return found
  return None


def detection_metrics(kept_mask, is_malicious) -> dict:
  """For a filtering defense: which clients it excluded, against the truth.

  TPR = |excluded ∩ malicious| / |malicious|, FPR = |excluded ∩ benign| /
  |benign| ('' when undefined), and the attackers' share of the kept
  clients (their weight in the unweighted aggregate). Rows of the stacked
  updates follow the order of the round's clients.
  """
  kept = np.asarray(kept_mask) > 0
  malicious = np.asarray(is_malicious, bool)
  removed = ~kept
  rate = lambda hits, total: float(hits) / total if total else ''
  return dict(
      detection_tpr=rate((removed & malicious).sum(), malicious.sum()),
      detection_fpr=rate((removed & ~malicious).sum(), (~malicious).sum()),
      attackers_kept_share=rate((kept & malicious).sum(), kept.sum()))


def _round_row(round_num, is_malicious, metrics, seconds) -> dict:
  train = metrics['client_work']['train']
  clients = metrics['client_work']['clients']
  row = dict(
      round=round_num, attacked=int(is_malicious.any()),
      num_attackers=int(is_malicious.sum()), train_loss=float(train['loss']),
      train_accuracy=float(train['sparse_categorical_accuracy']),
      main_task_accuracy='', backdoor_accuracy='',
      backdoor_accuracy_cumulative_mean='', eval_seconds='',
      round_seconds=round(seconds, 4))
  for key in ('benign_update_norm_mean', 'benign_update_norm_max',
              'malicious_update_norm_mean', 'malicious_update_norm_max',
              'malicious_boost_share'):
    row[key] = float(clients[key])
  row.update(outputs.scalar_items('aggregator', metrics['aggregator']))
  kept_mask = _find(metrics['aggregator'], 'kept_mask')
  if kept_mask is not None and np.size(kept_mask) == len(is_malicious):
    row.update(detection_metrics(kept_mask, is_malicious))
  return row


def run(config: ExperimentConfig, progress: bool = True) -> list:
  """Runs the experiment; returns the metric rows (also written to disk)."""
  c = config
  validate(c)
  out = c.output_dir
  outputs.make_output_dir(out)
  config_path = os.path.join(out, 'config.json')
  if c.resume and os.path.exists(config_path):
    outputs.check_same_run(config_path, c)

  data = registry.load_data(c)
  task = registry.build_backdoor(c, data)
  adapt_backdoor = registry.build_backdoor_adapter(c, data)
  attackers = registry.build_attackers(c, data.num_clients)
  accountant = registry.build_privacy_accountant(c, data.num_clients)
  dp_sgd = registry.build_dp_sgd_tracker(
      c, lambda k: len(data.client_arrays(k)[1]))
  process = build_process(c, data.num_clients)
  outputs.write_config(config_path, c)

  def checkpointed(state):
    """What a checkpoint holds: the state, and an adaptive trigger's."""
    return state, ({} if adapt_backdoor is None else
                   dict(backdoor=adapt_backdoor.get_state()))

  state = initial_state(process, c)
  checkpoint_path = os.path.join(out, 'checkpoint.npz')
  start_round, kept = 1, None
  if c.resume:
    restored = outputs.load_checkpoint(checkpoint_path, checkpointed(state))
    if restored is not None:
      (state, extra), kept, note = restored
      start_round = kept + 1
      if adapt_backdoor is not None:
        task = adapt_backdoor.restore(task, extra['backdoor'])
      if note:
        print(f'warning: {note}', file=sys.stderr)
  if dp_sgd is not None:  # the participations of the rounds already run
    for r in range(1, start_round):
      dp_sgd.record(data_lib.sample_clients(
          data.num_clients, c.num_clients_per_round, c.random_seed, r))
  log = outputs.MetricsLog(os.path.join(out, 'metrics.csv'),
                           keep_through_round=kept if c.resume else None)
  evaluator = evaluation.Evaluator(c.model, data.test_pixels,
                                   data.test_labels, task)
  backdoor_history = log.backdoor_history()
  board = outputs.TensorBoard(os.path.join(out, 'tensorboard'))
  bar = None
  if progress:
    import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm.tqdm(desc=c.experiment_name, unit='round',
                    initial=start_round - 1, total=c.num_rounds)

  for round_num in range(start_round, c.num_rounds + 1):
    t0 = time.perf_counter()
    sampled = data_lib.sample_clients(data.num_clients,
                                      c.num_clients_per_round, c.random_seed,
                                      round_num)
    is_malicious = attackers.malicious_mask(sampled, round_num, c.random_seed)
    if adapt_backdoor is not None and is_malicious.any():
      # An adaptive trigger (A3FL): re-optimised against w_t by the attackers,
      # used for their D_mal and, from now on, for the evaluation.
      task = adapt_backdoor(task, process.get_model_weights(state), round_num)
      evaluator.set_backdoor_images(task)
    client_data = data_lib.round_client_data(
        data, task, sampled, is_malicious, c.num_epochs, c.batch_size,
        c.random_seed, round_num, split_boost=c.split_boost)
    output = process.next(state, client_data)
    state = output.state
    row = _round_row(round_num, is_malicious, output.metrics,
                     time.perf_counter() - t0)
    if accountant is not None:
      row.update(privacy_epsilon=accountant.epsilon(round_num),
                 privacy_delta=accountant.delta)
    if dp_sgd is not None:  # example-level ε of client DP-SGD
      dp_sgd.record(sampled)
      row.update(dp_sgd.metrics())

    # DBA's per-part columns in every row (blank between evaluations).
    row.update(dict.fromkeys(evaluator.part_metric_names, ''))
    if round_num % c.evaluate_per_rounds == 0 or round_num == c.num_rounds:
      t1 = time.perf_counter()
      scores = evaluator.metrics(process.get_model_weights(state))
      backdoor_history.append(scores['backdoor_accuracy'])
      row.update(
          scores,
          backdoor_accuracy_cumulative_mean=float(np.mean(backdoor_history)),
          eval_seconds=round(time.perf_counter() - t1, 4))
    log.append(row)
    board.write(row)
    if round_num % c.checkpoint_every == 0 or round_num == c.num_rounds:
      outputs.save_checkpoint(checkpoint_path, checkpointed(state),
                              round_num, process.get_model_weights(state))
    if bar is not None:
      bar.update(1)
      if row['main_task_accuracy'] != '':
        bar.set_postfix(main=f'{row["main_task_accuracy"]:.3f}',
                        backdoor=f'{row["backdoor_accuracy"]:.3f}')

  if bar is not None:
    bar.close()
  board.close()
  outputs.write_summary(os.path.join(out, 'summary.json'), log.rows,
                        c.durability_threshold)
  outputs.plot_metrics(
      log.rows, os.path.join(out, 'plot.png'),
      f'{c.experiment_name}: attack={c.attack}, defense={c.defense}')
  return log.rows
