"""The attack experiment: config → data → process → training loop → outputs.

`ExperimentConfig` is the typed configuration (the binary parses flags into
it); `run(config)` trains, evaluating every `evaluate_per_rounds` rounds, and
writes under `root_output_dir/experiment_name/`:
  config.json         the resolved configuration
  metrics.csv         one row per round, flushed every round
  tensorboard/        TensorBoard scalars
  checkpoint.npz      the process state every `checkpoint_every` rounds
  plot.png            main task (dotted) and backdoor (solid) accuracy
`resume=True` continues from the checkpoint, dropping any rows written after it.
"""

import csv
import dataclasses
import json
import math
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import aggregate_fn
from targeted_attack import attacked_fedavg
from targeted_attack import attacks
from targeted_attack import data as data_lib
from targeted_attack import models

DATASETS = ('synthetic', 'emnist')
ATTACKS = ('none', 'unconstrained', 'norm_bounded', 'data_poisoning',
           'constrain_and_scale', 'train_and_scale', 'pgd', 'pgd_replacement')
BACKDOORS = ('semantic', 'edge_case', 'trigger')
ATTACKER_MODELS = ('fixed_frequency', 'random_sampling', 'fixed_pool')
DEFENSES = ('none', 'clip', 'aggregate_clip', 'weak_dp', 'krum', 'multi_krum',
            'median', 'trimmed_mean', 'geometric_median', 'dp_sgd')

METRIC_COLUMNS = (
    'round', 'attacked', 'num_attackers', 'train_loss', 'train_accuracy',
    'main_task_accuracy', 'backdoor_accuracy',
    'backdoor_accuracy_cumulative_mean', 'benign_update_norm_mean',
    'benign_update_norm_max', 'malicious_update_norm_mean',
    'malicious_update_norm_max', 'round_seconds', 'eval_seconds')


class ConfigError(ValueError):
  """A bad setting; the message names the flag and its allowed range."""


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Every setting of a run; names follow the original research code's flags."""
  root_output_dir: str = '/tmp/targeted_attack'
  experiment_name: str = 'emnist_attack'
  random_seed: int = 0
  evaluate_per_rounds: int = 1
  checkpoint_every: int = 10
  resume: bool = False
  # Data.
  dataset: str = 'synthetic'
  emnist_cache_dir: Optional[str] = None
  only_digits: bool = True
  synthetic_num_clients: int = 500
  synthetic_examples_per_client: int = 60
  # Training (Sun et al. 2019, Sec. 5: 30 clients, 5 epochs, batch 20, η_c 0.1).
  model: str = 'cnn'
  num_clients_per_round: int = 30
  num_rounds: int = 300
  server_learning_rate: float = 1.0
  server_momentum: float = 0.0
  num_epochs: int = 5
  batch_size: int = 20
  client_learning_rate: float = 0.1
  client_momentum: float = 0.0
  # Attack.
  attack: str = 'unconstrained'
  attacker_model: str = 'fixed_frequency'
  attack_freq: int = 1
  malicious_fraction: float = 0.033
  attacker_pool_size: int = 10
  task_num: int = 30
  boost_factor: Optional[float] = None  # None: num_clients_per_round
  client_round_num: int = 5
  # Literature attacks (Bagdasaryan et al. 2018; Wang et al. 2020).
  poison_per_batch: int = 5
  attacker_learning_rate: float = 0.1
  cs_alpha: float = 0.7
  cs_anomaly: str = 'l2'
  cs_gamma: Optional[float] = None  # None: boost factor
  cs_max_epochs: int = 2
  cs_early_stop_loss: float = 0.0
  cs_lr_decay: float = 0.1
  cs_lr_step_size: int = 1000
  pgd_eps: Optional[float] = None  # None: norm_bound (pgd_replacement: / β)
  project_frequency: int = 10
  # Backdoor task.
  backdoor: str = 'semantic'
  edge_case_mix: str = 'almost_edge_case'
  edge_case_num_train: int = 100
  edge_case_num_eval: int = 200
  trigger_amplitude: float = 1.0
  trigger_placement: str = 'one_corner'
  # Defense.
  defense: str = 'none'
  norm_bound: float = 3.0
  l2_norm_clip: float = 5.0
  mul_factor: float = 0.005
  num_byzantine: int = 1
  multi_krum_selected: int = 10
  trim_fraction: float = 0.1
  geometric_median_iters: int = 10
  dp_sgd_l2_norm_clip: float = 1.0
  dp_sgd_noise_multiplier: float = 0.1

  @property
  def output_dir(self) -> str:
    return os.path.join(self.root_output_dir, self.experiment_name)

  @property
  def resolved_boost_factor(self) -> float:
    if self.boost_factor is None:
      return float(self.num_clients_per_round)
    return float(self.boost_factor)


def _fail(flag, allowed, value):
  raise ConfigError(f'--{flag}={value!r} is invalid: {allowed}.')


def validate(config: ExperimentConfig) -> None:
  """Checks every setting that can be checked without data; ConfigError."""
  c = config
  for flag in ('num_rounds', 'evaluate_per_rounds', 'checkpoint_every',
               'attacker_pool_size',
               'num_clients_per_round', 'num_epochs', 'batch_size',
               'attack_freq', 'task_num', 'client_round_num',
               'synthetic_num_clients', 'synthetic_examples_per_client',
               'geometric_median_iters', 'multi_krum_selected',
               'poison_per_batch', 'cs_max_epochs', 'cs_lr_step_size',
               'project_frequency', 'edge_case_num_train',
               'edge_case_num_eval'):
    value = getattr(c, flag)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      _fail(flag, 'must be an integer >= 1', value)
  choices = dict(dataset=DATASETS, attack=ATTACKS,
                 attacker_model=ATTACKER_MODELS, defense=DEFENSES,
                 model=models.MODEL_NAMES, backdoor=BACKDOORS,
                 edge_case_mix=tuple(data_lib.EDGE_CASE_MIXES),
                 trigger_placement=data_lib.TRIGGER_PLACEMENTS,
                 cs_anomaly=attacks.ANOMALY_TERMS)
  for flag, allowed in choices.items():
    if getattr(c, flag) not in allowed:
      _fail(flag, f'must be one of {", ".join(allowed)}', getattr(c, flag))
  for flag in ('server_learning_rate', 'client_learning_rate', 'norm_bound',
               'l2_norm_clip', 'attacker_learning_rate', 'cs_lr_decay',
               'dp_sgd_l2_norm_clip'):
    value = getattr(c, flag)
    if not (math.isfinite(value) and value > 0):
      _fail(flag, 'must be a finite number > 0', value)
  for flag in ('server_momentum', 'client_momentum'):
    value = getattr(c, flag)
    if not (math.isfinite(value) and 0 <= value < 1):
      _fail(flag, 'must be in [0, 1)', value)
  for flag in ('mul_factor', 'dp_sgd_noise_multiplier'):
    value = getattr(c, flag)
    if not (math.isfinite(value) and value >= 0):
      _fail(flag, 'must be a finite number >= 0', value)
  if not 0 <= c.cs_alpha <= 1:
    _fail('cs_alpha', 'must be in [0, 1]', c.cs_alpha)
  for flag in ('cs_gamma', 'pgd_eps'):
    value = getattr(c, flag)
    if value is not None and not (math.isfinite(value) and value > 0):
      _fail(flag, 'must be a finite number > 0', value)
  if not 0 < c.trigger_amplitude <= 1:
    _fail('trigger_amplitude', 'must be in (0, 1]', c.trigger_amplitude)
  if not 0 <= c.malicious_fraction <= 1:
    _fail('malicious_fraction', 'must be in [0, 1]', c.malicious_fraction)
  if not 0 <= c.trim_fraction < 0.5:
    _fail('trim_fraction', 'must be in [0, 0.5)', c.trim_fraction)
  if c.boost_factor is not None and not math.isfinite(c.boost_factor):
    _fail('boost_factor', 'must be a finite number', c.boost_factor)
  if c.num_byzantine < 0:
    _fail('num_byzantine', 'must be an integer >= 0', c.num_byzantine)
  if c.defense in ('krum', 'multi_krum') and (
      c.num_clients_per_round < c.num_byzantine + 3):
    _fail('num_byzantine', 'Krum needs num_clients_per_round >= '
          f'num_byzantine + 3 = {c.num_byzantine + 3}', c.num_byzantine)
  if c.defense == 'multi_krum' and (
      c.multi_krum_selected > c.num_clients_per_round):
    _fail('multi_krum_selected',
          f'must be <= num_clients_per_round={c.num_clients_per_round}',
          c.multi_krum_selected)
  if c.dataset == 'synthetic' and (
      c.num_clients_per_round > c.synthetic_num_clients):
    _fail('num_clients_per_round',
          f'must be <= the number of clients ({c.synthetic_num_clients})',
          c.num_clients_per_round)
  if c.dataset == 'synthetic' and c.attacker_model == 'fixed_pool' and (
      c.attacker_pool_size > c.synthetic_num_clients):
    _fail('attacker_pool_size',
          f'must be <= the number of clients ({c.synthetic_num_clients})',
          c.attacker_pool_size)
  _check_writable(c.output_dir)


def _check_writable(path: str) -> None:
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, '.write_probe')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    _fail('root_output_dir', f'output directory {path} is not writable '
          f'({e.strerror})', path)


def build_client_update(config: ExperimentConfig):
  """The client strategy of `config.attack`."""
  c = config
  beta = c.resolved_boost_factor
  if c.attack == 'norm_bounded':
    # Trained within M/β of w_t, so the boosted update has norm <= M.
    return attacked_fedavg.ClientProjectBoost(
        boost_factor=beta, norm_bound=c.norm_bound / abs(beta),
        round_num=c.client_round_num)
  if c.attack == 'data_poisoning':
    return attacks.DataPoisoning(c.poison_per_batch)
  if c.attack == 'constrain_and_scale':
    return attacks.ConstrainAndScale(
        alpha=c.cs_alpha, gamma=c.cs_gamma or beta, anomaly=c.cs_anomaly,
        poison_per_batch=c.poison_per_batch,
        learning_rate=c.attacker_learning_rate, lr_decay=c.cs_lr_decay,
        lr_step_size=c.cs_lr_step_size, max_epochs=c.cs_max_epochs,
        early_stop_loss=c.cs_early_stop_loss)
  if c.attack == 'train_and_scale':
    return attacks.TrainAndScale(norm_bound=c.norm_bound)
  if c.attack in ('pgd', 'pgd_replacement'):
    replacement = c.attack == 'pgd_replacement'
    eps = c.pgd_eps or (c.norm_bound / abs(beta) if replacement else
                        c.norm_bound)
    return attacks.PGDAttack(
        eps=eps, project_frequency=c.project_frequency,
        learning_rate=c.attacker_learning_rate,
        replacement_scale=float(c.num_clients_per_round) if replacement else
        1.0)
  return attacked_fedavg.ClientExplicitBoosting(
      boost_factor=beta if c.attack == 'unconstrained' else 1.0)


def build_backdoor_task(config: ExperimentConfig,
                        data: data_lib.FederatedDigits) -> data_lib.BackdoorTask:
  c = config
  try:
    if c.backdoor == 'edge_case':
      return data_lib.edge_case_task(c.edge_case_num_train,
                                     c.edge_case_num_eval, c.random_seed)
    if c.backdoor == 'trigger':
      return data_lib.trigger_task(data, c.task_num, c.trigger_amplitude,
                                   c.trigger_placement, c.random_seed)
    return data_lib.select_backdoor_task(data, c.task_num, c.random_seed)
  except ValueError as e:
    raise ConfigError(str(e)) from e


def build_defense(config: ExperimentConfig):
  """The aggregation factory of `config.defense`, non-finite updates zeroed."""
  c = config
  builders = {
      'none': aggregate_fn.build_stateless_mean,
      'clip': lambda: aggregate_fn.build_clip_per_client(c.norm_bound),
      'aggregate_clip': lambda: aggregate_fn.build_aggregate_and_clip(
          c.norm_bound),
      'weak_dp': lambda: aggregate_fn.build_dp_aggregate(
          c.l2_norm_clip, c.mul_factor, c.num_clients_per_round,
          seed=c.random_seed),
      'krum': lambda: aggregate_fn.build_krum(c.num_byzantine),
      'multi_krum': lambda: aggregate_fn.build_multi_krum(
          c.num_byzantine, c.multi_krum_selected),
      'median': aggregate_fn.build_coordinate_median,
      'trimmed_mean': lambda: aggregate_fn.build_trimmed_mean(c.trim_fraction),
      'geometric_median': lambda: aggregate_fn.build_geometric_median(
          c.geometric_median_iters),
      # Client-side: the server averages, the clients run DP-SGD.
      'dp_sgd': aggregate_fn.build_stateless_mean,
  }
  return aggregate_fn.build_zero_non_finite(builders[c.defense]())


def build_attackers(config: ExperimentConfig,
                    population: int) -> data_lib.AttackerModel:
  if config.attacker_model == 'fixed_frequency':
    return data_lib.FixedFrequencyAttackers(config.attack_freq)
  if config.attacker_model == 'fixed_pool':
    try:
      return data_lib.FixedPoolAttackers(config.attacker_pool_size, population,
                                         config.random_seed)
    except ValueError as e:
      raise ConfigError(str(e)) from e
  return data_lib.RandomSamplingAttackers(config.malicious_fraction,
                                          population,
                                          config.num_clients_per_round)


def load_data(config: ExperimentConfig) -> data_lib.FederatedDigits:
  if config.dataset == 'synthetic':
    rate = 0.03
    if config.backdoor == 'edge_case':
      rate = data_lib.EDGE_CASE_MIXES[config.edge_case_mix]
    return data_lib.load_synthetic(config.synthetic_num_clients,
                                   config.synthetic_examples_per_client,
                                   config.random_seed,
                                   crossbar_seven_rate=rate)
  try:
    return data_lib.load_emnist(config.only_digits, config.emnist_cache_dir)
  except data_lib.DatasetUnavailableError as e:
    raise ConfigError(f'--dataset=emnist: {e}') from e


def _optimizer(learning_rate, momentum):
  return tff.learning.optimizers.build_sgdm(
      learning_rate=learning_rate, momentum=momentum if momentum > 0 else None)


class Evaluator:
  """Main-task and backdoor accuracy: one compiled pass over cached tensors."""

  def __init__(self, model_name: str, test_pixels, test_labels,
               task: data_lib.BackdoorTask, batch_size: int = 1000):
    self.model = models.create_keras_model(model_name)
    self._target_label = task.target_label
    split = lambda a: [
        tf.constant(a[i:i + batch_size]) for i in range(0, len(a), batch_size)
    ]
    self._test_x = split(test_pixels[..., np.newaxis])
    self._test_y = split(test_labels.astype(np.int64))
    self._backdoor_x = split(task.eval_pixels[..., np.newaxis])

  @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
  def _predict(self, x):
    return tf.argmax(self.model(x, training=False), axis=-1)

  def __call__(self, model_weights) -> tuple:
    model_weights.assign_weights_to(self.model)
    correct = sum(
        int(tf.reduce_sum(tf.cast(self._predict(x) == y, tf.int32)))
        for x, y in zip(self._test_x, self._test_y))
    total = sum(int(y.shape[0]) for y in self._test_y)
    hits = sum(
        int(tf.reduce_sum(tf.cast(self._predict(x) == self._target_label,
                                  tf.int32))) for x in self._backdoor_x)
    backdoor_total = sum(int(x.shape[0]) for x in self._backdoor_x)
    return correct / total, hits / backdoor_total


def _scalar_items(prefix, structure):
  """Flattened scalar measurements, e.g. ('aggregator/inner/clip/fraction', x)."""
  items = []
  if isinstance(structure, dict):
    for key, value in structure.items():
      items.extend(_scalar_items(f'{prefix}/{key}', value))
  elif np.ndim(structure) == 0 and not isinstance(structure, tuple):
    items.append((prefix, float(structure)))
  return items


class MetricsLog:
  """metrics.csv, flushed every round; on resume, rows after the checkpoint go."""

  def __init__(self, path: str, keep_through_round: Optional[int]):
    self.path = path
    self.rows = []
    if keep_through_round is not None and os.path.exists(path):
      with open(path, newline='') as f:
        self.rows = [r for r in csv.DictReader(f)
                     if int(r['round']) <= keep_through_round]
    self._columns = None

  def backdoor_history(self) -> list:
    return [float(r['backdoor_accuracy']) for r in self.rows
            if r.get('backdoor_accuracy') not in (None, '')]

  def append(self, row: dict) -> None:
    self.rows.append(row)
    columns = list(METRIC_COLUMNS) + sorted(
        k for k in row if k not in METRIC_COLUMNS)
    if columns != self._columns:
      self._rewrite(columns)
    else:
      with open(self.path, 'a', newline='') as f:
        csv.DictWriter(f, columns, extrasaction='ignore').writerow(row)
        f.flush()
        os.fsync(f.fileno())

  def _rewrite(self, columns):
    tmp = self.path + '.tmp'
    with open(tmp, 'w', newline='') as f:
      writer = csv.DictWriter(f, columns, extrasaction='ignore')
      writer.writeheader()
      writer.writerows(self.rows)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)
    self._columns = columns


def save_checkpoint(path: str, state, round_num: int) -> None:
  leaves = [np.asarray(x) for x in tf.nest.flatten(state)]
  tmp = path + '.tmp.npz'
  np.savez(tmp, round_num=round_num, *leaves)
  os.replace(tmp, path)


def load_checkpoint(path: str, template) -> tuple:
  with np.load(path) as f:
    leaves = [f[f'arr_{i}'] for i in range(len(f.files) - 1)]
    round_num = int(f['round_num'])
  return tf.nest.pack_sequence_as(template, leaves), round_num


def plot_metrics(rows: list, path: str, title: str) -> None:
  """Paper-style figure: main task dotted, backdoor solid, attacks marked."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  evaluated = [r for r in rows if r.get('main_task_accuracy') not in ('', None)]
  rounds = [int(r['round']) for r in evaluated]
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.plot(rounds, [float(r['main_task_accuracy']) for r in evaluated], ':',
          color='tab:blue', label='main task')
  ax.plot(rounds, [float(r['backdoor_accuracy']) for r in evaluated], '-',
          color='tab:red', label='backdoor')
  ax.plot(rounds,
          [float(r['backdoor_accuracy_cumulative_mean']) for r in evaluated],
          '-', color='tab:green', label='backdoor (cumulative mean)')
  attacked = [int(r['round']) for r in rows if int(float(r['attacked']))]
  if attacked:
    ax.plot(attacked, [0.0] * len(attacked), '|', color='black',
            markersize=10, label='attack round')
  ax.set_xlabel('round')
  ax.set_ylabel('accuracy')
  ax.set_ylim(-0.03, 1.03)
  ax.set_title(title)
  ax.legend(loc='center right', fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def run(config: ExperimentConfig, progress: bool = True) -> list:
  """Runs the experiment; returns the metric rows (also written to disk)."""
  validate(config)
  c = config
  out = c.output_dir
  with open(os.path.join(out, 'config.json'), 'w') as f:
    json.dump(dataclasses.asdict(c), f, indent=2, sort_keys=True)

  data = load_data(c)
  if c.num_clients_per_round > data.num_clients:
    _fail('num_clients_per_round',
          f'must be <= the number of clients ({data.num_clients})',
          c.num_clients_per_round)
  task = build_backdoor_task(c, data)
  attackers = build_attackers(c, data.num_clients)
  strategy = build_client_update(c)

  process = attacked_fedavg.build_federated_averaging_process_attacked(
      models.build_model_fn(c.model, seed=c.random_seed),
      client_optimizer_fn=_optimizer(c.client_learning_rate, c.client_momentum),
      server_optimizer_fn=_optimizer(c.server_learning_rate, c.server_momentum),
      model_update_aggregation_factory=build_defense(c),
      client_update_tf=strategy,
      client_dp_sgd=attacked_fedavg.DPSGD(c.dp_sgd_l2_norm_clip,
                                          c.dp_sgd_noise_multiplier)
      if c.defense == 'dp_sgd' else None)
  state = process.initialize()
  checkpoint_path = os.path.join(out, 'checkpoint.npz')
  start_round, kept = 1, None
  if c.resume and os.path.exists(checkpoint_path):
    state, last_round = load_checkpoint(checkpoint_path, state)
    start_round, kept = last_round + 1, last_round
  log = MetricsLog(os.path.join(out, 'metrics.csv'),
                   keep_through_round=kept if c.resume else None)
  evaluator = Evaluator(c.model, data.test_pixels, data.test_labels, task)
  backdoor_history = log.backdoor_history()
  writer = tf.summary.create_file_writer(os.path.join(out, 'tensorboard'))

  rounds = range(start_round, c.num_rounds + 1)
  bar = None
  if progress:
    import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm.tqdm(desc=c.experiment_name, unit='round',
                    initial=start_round - 1, total=c.num_rounds)
  for round_num in rounds:
    t0 = time.perf_counter()
    sampled = data_lib.sample_clients(data.num_clients,
                                      c.num_clients_per_round, c.random_seed,
                                      round_num)
    is_malicious = np.zeros(len(sampled), bool)
    if c.attack != 'none':
      is_malicious = attackers.malicious_mask(sampled, round_num,
                                              c.random_seed)
    num_attackers = int(is_malicious.sum())
    arrays = [data.client_arrays(int(k)) for k in sampled]
    benign = [
        data_lib.client_dataset(pixels, labels, c.num_epochs, c.batch_size,
                                shuffle_seed=round_num)
        for pixels, labels in arrays
    ]
    # D_mal, or D_trn ∪ D_mal for strategies that train on both.
    malicious = [
        data_lib.malicious_dataset(
            task, c.num_epochs, c.batch_size, round_num,
            *(arrays[i] if strategy.malicious_includes_benign else ()))
        if is_malicious[i] else None for i in range(len(sampled))
    ]
    client_data = attacked_fedavg.build_client_data(
        benign, malicious, [m is not None for m in malicious])
    output = process.next(state, client_data)
    state = output.state
    round_seconds = time.perf_counter() - t0

    metrics = output.metrics
    train = metrics['client_work']['train']
    clients = metrics['client_work']['clients']
    row = dict(
        round=round_num, attacked=int(num_attackers > 0),
        num_attackers=num_attackers, train_loss=float(train['loss']),
        train_accuracy=float(train['sparse_categorical_accuracy']),
        benign_update_norm_mean=float(clients['benign_update_norm_mean']),
        benign_update_norm_max=float(clients['benign_update_norm_max']),
        malicious_update_norm_mean=float(clients['malicious_update_norm_mean']),
        malicious_update_norm_max=float(clients['malicious_update_norm_max']),
        round_seconds=round(round_seconds, 4),
        main_task_accuracy='', backdoor_accuracy='',
        backdoor_accuracy_cumulative_mean='', eval_seconds='')
    row.update(_scalar_items('aggregator', metrics['aggregator']))
    if round_num % c.evaluate_per_rounds == 0 or round_num == c.num_rounds:
      t1 = time.perf_counter()
      main_acc, backdoor_acc = evaluator(process.get_model_weights(state))
      backdoor_history.append(backdoor_acc)
      row.update(
          main_task_accuracy=main_acc, backdoor_accuracy=backdoor_acc,
          backdoor_accuracy_cumulative_mean=float(np.mean(backdoor_history)),
          eval_seconds=round(time.perf_counter() - t1, 4))
    log.append(row)
    with writer.as_default(step=round_num):
      for key, value in row.items():
        if key != 'round' and value != '':
          tf.summary.scalar(key, float(value))
    writer.flush()
    if round_num % c.checkpoint_every == 0 or round_num == c.num_rounds:
      save_checkpoint(checkpoint_path, state, round_num)
    if bar is not None:
      bar.update(1)
      if row['main_task_accuracy'] != '':
        bar.set_postfix(main=f'{row["main_task_accuracy"]:.3f}',
                        backdoor=f'{row["backdoor_accuracy"]:.3f}')
  if bar is not None:
    bar.close()
  writer.close()
  plot_metrics(log.rows, os.path.join(out, 'plot.png'),
               f'{c.experiment_name}: attack={c.attack}, defense={c.defense}')
  return log.rows
