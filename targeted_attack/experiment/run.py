"""The attack experiment: `run(config)`, the set-up, then the round loop.

config → registry (data, backdoor, attackers, attack, defense) → the
attacked `tff.learning` process → rounds → outputs (see `outputs`). Each
optional feature of a round is a `RoundHook` (privacy accounting, DP-SGD
accounting, detection rates); the backdoor's own lifecycle (an adaptive
trigger) is the backdoor's (`backdoors.base.Backdoor`). `resume=True`
continues from the checkpoint, dropping any rows written after it; the
saved config must match (but for `config.RESUMABLE_CHANGES`).
"""

import os
import sys
import time

import numpy as np

from targeted_attack.data import sampling
from targeted_attack.defenses import plumbing
from targeted_attack.experiment import build
from targeted_attack.experiment import evaluation
from targeted_attack.experiment import outputs
from targeted_attack.experiment import registry
from targeted_attack.process import round_data
from targeted_attack.runtime import devices


class RoundHook:
  """One optional feature of the loop: its columns of each round's row and
  what a checkpoint keeps of it (a dict of arrays, restored on resume)."""

  def metrics(self, round_num: int, sampled, is_malicious,
              process_metrics) -> dict:
    raise NotImplementedError

  def get_state(self) -> dict:
    return {}

  def restore(self, state: dict) -> None:
    del state


class PrivacyHook(RoundHook):
  """Client-level (ε, δ) of a server DP mechanism after t rounds."""

  def __init__(self, accountant):
    self.accountant = accountant

  def metrics(self, round_num, sampled, is_malicious, process_metrics):
    return dict(privacy_epsilon=self.accountant.epsilon(round_num),
                privacy_delta=self.accountant.delta)


class DpSgdHook(RoundHook):
  """Example-level ε of client DP-SGD: the participations so far."""

  def __init__(self, tracker, population: int):
    self.tracker = tracker
    self.population = population

  def metrics(self, round_num, sampled, is_malicious, process_metrics):
    self.tracker.record(sampled)
    return self.tracker.metrics()

  def get_state(self):
    return dict(dp_sgd_participations=self.tracker.get_state(self.population))

  def restore(self, state):
    self.tracker.restore(state['dp_sgd_participations'])


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


class DetectionHook(RoundHook):
  """TPR/FPR of a rule that reports the clients it kept (`kept_mask`)."""

  def metrics(self, round_num, sampled, is_malicious, process_metrics):
    kept_mask = plumbing.find_kept_mask(process_metrics['aggregator'])
    if kept_mask is None or np.size(kept_mask) != len(is_malicious):
      return {}
    return detection_metrics(kept_mask, is_malicious)


def build_hooks(config, data) -> list:
  """The hooks the config asks for, in the order their columns are added."""
  hooks = []
  accountant = build.build_privacy_accountant(config, data.num_clients)
  if accountant is not None:
    hooks.append(PrivacyHook(accountant))
  tracker = build.build_dp_sgd_tracker(
      config, lambda k: len(data.client_arrays(k)[1]))
  if tracker is not None:
    hooks.append(DpSgdHook(tracker, data.num_clients))
  hooks.append(DetectionHook())
  return hooks


def _round_row(round_num, is_malicious, metrics, seconds) -> dict:
  train = metrics['client_work']['train']
  clients = metrics['client_work']['clients']
  row = dict(
      round=round_num, attacked=int(is_malicious.any()),
      num_attackers=int(is_malicious.sum()), train_loss=float(train['loss']),
      # Images' accuracy, or next-word's over the non-PAD targets.
      train_accuracy=float(train.get('sparse_categorical_accuracy',
                                     train.get('masked_token_accuracy'))),
      main_task_accuracy='', backdoor_accuracy='',
      backdoor_accuracy_cumulative_mean='', eval_seconds='',
      round_seconds=round(seconds, 4))
  for key in ('benign_update_norm_mean', 'benign_update_norm_max',
              'malicious_update_norm_mean', 'malicious_update_norm_max',
              'malicious_boost_share'):
    row[key] = float(clients[key])
  row.update(outputs.scalar_items('aggregator', metrics['aggregator']))
  return row


def run(config, progress: bool = True) -> list:
  """Runs the experiment; returns the metric rows (also written to disk)."""
  c = config
  registry.validate(c)
  out = c.output_dir
  outputs.make_output_dir(out)
  config_path = os.path.join(out, 'config.json')
  if c.resume and os.path.exists(config_path):
    outputs.check_same_run(config_path, c)

  # Set-up.
  backdoor = build.build_backdoor(c)
  data = build.load_data(c, backdoor)
  task = build.initial_task(backdoor, data)
  attackers = build.build_attackers(c, data.num_clients)
  hooks = build_hooks(c, data)
  process = build.reused_process(c, data.num_clients, data.num_classes,
                                 data.image_shape)
  outputs.write_config(config_path, c)
  outputs.record_numerics(os.path.join(out, outputs.NUMERICS_FILE),
                          devices.numerics(c.execution_context))

  def checkpointed(state):
    """What a checkpoint holds: the state, the backdoor's and the hooks'."""
    extra = {}
    if backdoor.get_state() is not None:
      extra['backdoor'] = backdoor.get_state()
    for hook in hooks:
      extra.update(hook.get_state())
    return state, extra

  state = build.initial_state(process, c)
  checkpoint_path = os.path.join(out, 'checkpoint.npz')
  start_round, kept = 1, None
  if c.resume:
    restored = outputs.load_checkpoint(checkpoint_path, checkpointed(state))
    if restored is not None:
      (state, extra), kept, note = restored
      start_round = kept + 1
      if 'backdoor' in extra:
        task = backdoor.restore(task, extra['backdoor'])
      for hook in hooks:
        hook.restore(extra)
      if note:
        print(f'warning: {note}', file=sys.stderr)
  log = outputs.MetricsLog(os.path.join(out, 'metrics.csv'),
                           keep_through_round=kept if c.resume else None)
  evaluator = evaluation.build_evaluator(c.model, data, task)
  backdoor_history = log.backdoor_history()
  board = outputs.TensorBoard(os.path.join(out, 'tensorboard'))
  bar = None
  if progress:
    import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm.tqdm(desc=c.experiment_name, unit='round',
                    initial=start_round - 1, total=c.num_rounds)

  # The loop.
  for round_num in range(start_round, c.num_rounds + 1):
    t0 = time.perf_counter()
    sampled = attackers.include(
        sampling.sample_clients(data.num_clients, c.num_clients_per_round,
                                c.random_seed, round_num),
        round_num, c.random_seed)
    is_malicious = attackers.malicious_mask(sampled, round_num, c.random_seed)
    if backdoor.adaptive and is_malicious.any():
      # Re-optimised against w_t by the attackers, used for their D_mal and,
      # from now on, for the evaluation.
      task = backdoor.adapt(task, process.get_model_weights(state), round_num)
      evaluator.set_backdoor_images(task)
    client_data = round_data.round_client_data(
        data, task, sampled, is_malicious, c.num_epochs, c.batch_size,
        c.random_seed, round_num, split_boost=c.split_boost,
        attacker_identity=attackers.identity, local_steps=c.local_steps)
    output = process.next(state, client_data)
    state = output.state
    row = _round_row(round_num, is_malicious, output.metrics,
                     time.perf_counter() - t0)
    for hook in hooks:
      row.update(hook.metrics(round_num, sampled, is_malicious,
                              output.metrics))

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
