"""What a run writes under `root_output_dir/experiment_name/`.

  config.json         the run's settings (checked against on `--resume`)
  metrics.csv         one row per round, flushed every round
  tensorboard/        TensorBoard scalars
  checkpoint.npz      the process state every `checkpoint_every` rounds, and
  checkpoint.prev.npz the one before it (each written to a temporary file,
                      then renamed, so a kill never leaves a half-written one)
  plot.png            main task (dotted) and backdoor (solid) accuracy, the
                      attack window shaded
  summary.json        final accuracies and the backdoor's durability
"""

import csv
import dataclasses
import json
import os
import zipfile
from typing import Optional

import numpy as np
import tensorflow as tf

from targeted_attack.experiment import config as config_lib

METRIC_COLUMNS = (
    'round', 'attacked', 'num_attackers', 'train_loss', 'train_accuracy',
    'main_task_accuracy', 'backdoor_accuracy',
    'backdoor_accuracy_cumulative_mean', 'benign_update_norm_mean',
    'benign_update_norm_max', 'malicious_update_norm_mean',
    'malicious_update_norm_max', 'malicious_boost_share', 'round_seconds',
    'eval_seconds')


class CorruptOutputError(RuntimeError):
  """A checkpoint or metrics file that cannot be read; the message says which."""


def make_output_dir(path: str) -> None:
  """Creates the output directory; ConfigError naming root_output_dir if not."""
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, '.write_probe')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise config_lib.ConfigError(
        'root_output_dir', f'`root_output_dir`: output directory {path} is '
        f'not writable ({e.strerror}).') from e


def write_config(path: str, config) -> None:
  with open(path, 'w') as f:
    json.dump(dataclasses.asdict(config), f, indent=2, sort_keys=True)


NUMERICS_FILE = 'numerics.json'


def record_numerics(path: str, record: dict) -> None:
  """Adds `record` (`runtime.devices.numerics()`) to the list in the JSON
  file at `path`, unless it is there: the kernels each start of the run (a
  resume perhaps elsewhere) ran on."""
  records = read_numerics(path)
  if record not in records:
    with open(path, 'w') as f:
      json.dump(records + [record], f, indent=1, sort_keys=True)


def read_numerics(path: str) -> list:
  """The records `record_numerics` wrote at `path` ([] if none)."""
  try:
    with open(path) as f:
      records = json.load(f)
  except (OSError, ValueError):
    return []
  return records if isinstance(records, list) else []


def check_same_run(path: str, config) -> None:
  """On resume: the saved config must match, but for resumable settings."""
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise CorruptOutputError(f'cannot read {path} to resume ({e}).') from e
  field = config_lib.first_difference(config, saved)
  if field is not None:
    raise config_lib.ConfigError(
        field, f'`{field}`={getattr(config, field)!r} differs from the run '
        f'being resumed ({saved.get(field, "<missing>")!r} in {path}); '
        'resume with the same settings or use another experiment_name.')


def scalar_items(prefix: str, structure) -> list:
  """Flattened scalar measurements, e.g. ('aggregator/inner/clip/fraction', x)."""
  items = []
  if isinstance(structure, dict):
    for key, value in structure.items():
      items.extend(scalar_items(f'{prefix}/{key}', value))
  elif np.ndim(structure) == 0 and not isinstance(structure, tuple):
    items.append((prefix, float(structure)))
  return items


class MetricsLog:
  """metrics.csv, flushed every round; on resume, rows after the checkpoint go."""

  def __init__(self, path: str, keep_through_round: Optional[int]):
    self.path = path
    self.rows = []
    if keep_through_round is not None and os.path.exists(path):
      self.rows = self._read_through(keep_through_round)
    self._columns = None

  def _read_through(self, last_round: int) -> list:
    rows = []
    with open(self.path, newline='') as f:
      reader = csv.DictReader(f)
      for line, row in enumerate(reader, start=2):
        try:
          round_num = int(row['round'])
        except (TypeError, ValueError, KeyError):
          if not rows or int(rows[-1]['round']) < last_round:
            raise CorruptOutputError(
                f'{self.path} is corrupt at line {line} (round '
                f'{row.get("round")!r}); the checkpoint is kept: repair or '
                'delete the file to resume.') from None
          break
        if round_num > last_round:
          break
        if None in row.values() or None in row:
          raise CorruptOutputError(
              f'{self.path} is corrupt at line {line} (a row of the wrong '
              'length); repair or delete the file to resume.')
        rows.append(row)
    if len(rows) != last_round or [int(r['round']) for r in rows] != list(
        range(1, last_round + 1)):
      raise CorruptOutputError(
          f'{self.path} holds rounds {[r["round"] for r in rows][:3]}… but '
          f'the checkpoint is at round {last_round}; the files do not belong '
          'together.')
    return rows

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
      writer = csv.DictWriter(f, columns, extrasaction='ignore', restval='')
      writer.writeheader()
      writer.writerows(self.rows)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)
    self._columns = columns


def read_metrics(path: str, evaluated_only: bool = False) -> list:
  """The rows of a run's metrics.csv (dicts of strings); [] when there is
  none. `evaluated_only`: the rows with an evaluation (main-task accuracy)."""
  if not os.path.exists(path):
    return []
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  if evaluated_only:
    rows = [r for r in rows if r.get('main_task_accuracy') not in ('', None)]
  return rows


def previous_checkpoint_path(path: str) -> str:
  return path[:-len('.npz')] + '.prev.npz'


def save_checkpoint(path: str, state, round_num: int,
                    model_weights=None) -> None:
  """Writes `state` to a temporary file, keeps the last one as .prev, renames.

  `model_weights` (a `tff.learning.models.ModelWeights`) are stored beside
  the state, so another run can start from them (`init_checkpoint`).
  """
  leaves = [np.asarray(x) for x in tf.nest.flatten(state)]
  model = {}
  if model_weights is not None:
    for kind in ('trainable', 'non_trainable'):
      for i, w in enumerate(getattr(model_weights, kind)):
        model[f'model_{kind}_{i}'] = np.asarray(w)
  tmp = path + '.tmp.npz'
  np.savez(tmp, *leaves, round_num=round_num, **model)
  if os.path.exists(path):
    os.replace(path, previous_checkpoint_path(path))
  os.replace(tmp, path)


def _read_checkpoint(path: str, template) -> tuple:
  flat_template = tf.nest.flatten(template)
  with np.load(path) as f:
    num_arrays = len([k for k in f.files if k.startswith('arr_')])
    if num_arrays != len(flat_template):
      raise ValueError(f'{num_arrays} arrays, the process has '
                       f'{len(flat_template)}')
    leaves = []
    for i, expected in enumerate(flat_template):
      leaf = f[f'arr_{i}']
      if np.shape(leaf) != np.shape(expected):
        raise ValueError(f'array {i} has shape {np.shape(leaf)}, the process '
                         f'expects {np.shape(expected)}')
      leaves.append(leaf)
    round_num = int(f['round_num'])
  return tf.nest.pack_sequence_as(template, leaves), round_num


def load_checkpoint(path: str, template) -> Optional[tuple]:
  """(state, round, note) from `path`, else from its .prev; None if neither.

  A corrupt latest checkpoint falls back to the previous one (`note` says
  so); if both exist and are unreadable, CorruptOutputError names both.
  """
  errors = []
  for candidate in (path, previous_checkpoint_path(path)):
    if not os.path.exists(candidate):
      continue
    try:
      state, round_num = _read_checkpoint(candidate, template)
    except (OSError, ValueError, EOFError, KeyError,
            zipfile.BadZipFile) as e:
      errors.append(f'{candidate}: {type(e).__name__}: {e}')
      continue
    note = None
    if errors:
      note = f'{errors[0]}; resumed from {candidate} (round {round_num})'
    return state, round_num, note
  if errors:
    raise CorruptOutputError('no readable checkpoint: ' + '; '.join(errors))
  return None


def load_model_weights(path: str, template):
  """The `ModelWeights` stored in checkpoint `path`, shaped like `template`."""
  try:
    with np.load(path) as f:
      weights = {}
      for kind in ('trainable', 'non_trainable'):
        expected = getattr(template, kind)
        arrays = [f[f'model_{kind}_{i}'] for i in range(len(expected))]
        for i, (a, e) in enumerate(zip(arrays, expected)):
          if np.shape(a) != np.shape(e):
            raise ValueError(f'{kind} weight {i} has shape {np.shape(a)}, '
                             f'the model expects {np.shape(e)}')
        weights[kind] = arrays
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
    raise config_lib.ConfigError(
        'init_checkpoint', f'`init_checkpoint`={path!r} holds no model of '
        f'this run\'s shape ({type(e).__name__}: {e}).') from e
  return type(template)(weights['trainable'], weights['non_trainable'])


def attack_rounds(rows: list) -> list:
  return [int(r['round']) for r in rows if int(float(r['attacked']))]


def durability(rows: list, threshold: float) -> dict:
  """How long the backdoor survives the last attack.

  `rounds_above_threshold`: t_first_below − t_a, with t_a the last attack
  round and t_first_below the first evaluated round t ≥ t_a whose backdoor
  accuracy is < `threshold` (0 when the attack did not take); None when it
  never falls below (`lasted_to_end`). No attack: all None.
  """
  attacked = attack_rounds(rows)
  result = dict(threshold=threshold, last_attack_round=None,
                rounds_above_threshold=None, lasted_to_end=None,
                backdoor_after_last_attack=None)
  if not attacked:
    return result
  last = attacked[-1]
  result['last_attack_round'] = last
  after = [r for r in rows if int(r['round']) >= last and
           r.get('backdoor_accuracy') not in ('', None)]
  if after:
    result['backdoor_after_last_attack'] = float(after[0]['backdoor_accuracy'])
  below = [int(r['round']) for r in after
           if float(r['backdoor_accuracy']) < threshold]
  result['lasted_to_end'] = not below
  result['rounds_above_threshold'] = below[0] - last if below else None
  return result


def write_summary(path: str, rows: list, threshold: float) -> dict:
  evaluated = [r for r in rows if r.get('main_task_accuracy') not in ('', None)]
  summary = dict(rounds=len(rows), durability=durability(rows, threshold))
  if evaluated:
    last = evaluated[-1]
    summary.update(
        main_task_accuracy=float(last['main_task_accuracy']),
        backdoor_accuracy=float(last['backdoor_accuracy']),
        backdoor_accuracy_cumulative_mean=float(
            last['backdoor_accuracy_cumulative_mean']))
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return summary


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
  attacked = attack_rounds(rows)
  if attacked:
    ax.axvspan(attacked[0] - 0.5, attacked[-1] + 0.5, color='grey',
               alpha=0.12, label='attack window')
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


class TensorBoard:
  """Scalars of each round's row under tensorboard/."""

  def __init__(self, directory: str):
    self._writer = tf.summary.create_file_writer(directory)

  def write(self, row: dict) -> None:
    with self._writer.as_default(step=int(row['round'])):
      for key, value in row.items():
        if key != 'round' and value != '':
          tf.summary.scalar(key, float(value))
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
