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


def build_process(c: ExperimentConfig):
  """The attacked FedAvg process of `c` (attack, defense, optimizers)."""
  aggregator, client_dp_sgd = registry.build_defense(c)
  return attacked_fedavg.build_federated_averaging_process_attacked(
      models.build_model_fn(c.model, seed=c.random_seed),
      client_optimizer_fn=_optimizer(c.client_learning_rate, c.client_momentum),
      server_optimizer_fn=_optimizer(c.server_learning_rate, c.server_momentum),
      model_update_aggregation_factory=aggregator,
      client_update_tf=registry.build_attack(c),
      client_dp_sgd=client_dp_sgd)


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
  attackers = registry.build_attackers(c, data.num_clients)
  process = build_process(c)
  outputs.write_config(config_path, c)

  state = process.initialize()
  checkpoint_path = os.path.join(out, 'checkpoint.npz')
  start_round, kept = 1, None
  if c.resume:
    restored = outputs.load_checkpoint(checkpoint_path, state)
    if restored is not None:
      state, kept, note = restored
      start_round = kept + 1
      if note:
        print(f'warning: {note}', file=sys.stderr)
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
    client_data = data_lib.round_client_data(
        data, task, sampled, is_malicious, c.num_epochs, c.batch_size,
        c.random_seed, round_num, split_boost=c.split_boost)
    output = process.next(state, client_data)
    state = output.state
    row = _round_row(round_num, is_malicious, output.metrics,
                     time.perf_counter() - t0)

    if round_num % c.evaluate_per_rounds == 0 or round_num == c.num_rounds:
      t1 = time.perf_counter()
      main_acc, backdoor_acc = evaluator(process.get_model_weights(state))
      backdoor_history.append(backdoor_acc)
      row.update(
          main_task_accuracy=main_acc, backdoor_accuracy=backdoor_acc,
          backdoor_accuracy_cumulative_mean=float(np.mean(backdoor_history)),
          eval_seconds=round(time.perf_counter() - t1, 4))
    log.append(row)
    board.write(row)
    if round_num % c.checkpoint_every == 0 or round_num == c.num_rounds:
      outputs.save_checkpoint(checkpoint_path, state, round_num)
    if bar is not None:
      bar.update(1)
      if row['main_task_accuracy'] != '':
        bar.set_postfix(main=f'{row["main_task_accuracy"]:.3f}',
                        backdoor=f'{row["backdoor_accuracy"]:.3f}')

  if bar is not None:
    bar.close()
  board.close()
  outputs.plot_metrics(
      log.rows, os.path.join(out, 'plot.png'),
      f'{c.experiment_name}: attack={c.attack}, defense={c.defense}')
  return log.rows
