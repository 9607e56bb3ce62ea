"""Tables and figures of a study, read off its runs' metrics.csv."""

import csv
import math
import os
import sys
from typing import List, Sequence

from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import outputs
from targeted_attack.reproduce import claims as claims_lib


def metrics_rows(run, evaluated_only: bool = True) -> list:
  """The run's metrics.csv rows (`outputs.read_metrics`)."""
  return outputs.read_metrics(os.path.join(run.output_dir, 'metrics.csv'),
                              evaluated_only)


def is_finished(run) -> bool:
  """True when the run's metrics.csv holds every round."""
  try:
    rounds = [int(r['round']) for r in metrics_rows(run, False)]
  except (ValueError, KeyError, TypeError):
    return False
  return bool(rounds) and rounds[-1] >= int(run.settings['num_rounds'])


def _mean_std(values):
  import numpy as np  # pylint: disable=g-import-not-at-top
  if not values:
    return float('nan'), float('nan')
  return float(np.mean(values)), float(np.std(values))


def summarize(study, runs: Sequence) -> List[dict]:
  """Per cell, over its finished seeds: final, cumulative-mean and highest
  backdoor accuracy, final main-task accuracy, the backdoor's durability in
  rounds (`_durability_rounds`) (mean, std), detection rates (mean), and
  seeds counted."""
  table = []
  for cell in study.cells:
    cell_runs = [r for r in runs if r.study == study.name and
                 r.cell == cell.label and is_finished(r)]
    # Each run's metrics.csv, read once: (all rows, the evaluated ones).
    read = []
    for run in cell_runs:
      rows = metrics_rows(run, False)
      evaluated = [r for r in rows
                   if r.get('main_task_accuracy') not in ('', None)]
      if evaluated:
        read.append((run, rows, evaluated))
    finals = [evaluated[-1] for _, _, evaluated in read]
    row = dict(cell=cell.label, seeds=len(finals))
    for key, column in (('backdoor_final', 'backdoor_accuracy'),
                        ('backdoor_cumulative_mean',
                         'backdoor_accuracy_cumulative_mean'),
                        ('main_task_final', 'main_task_accuracy')):
      mean, std = _mean_std([float(f[column]) for f in finals])
      row[key] = mean
      row[key + '_std'] = std
    peaks = [max(float(r['backdoor_accuracy']) for r in evaluated)
             for _, _, evaluated in read]
    row['backdoor_max'], row['backdoor_max_std'] = _mean_std(peaks)
    lifetimes = [_durability_rounds(rows, run) for run, rows, _ in read]
    row['durability_rounds'], row['durability_rounds_std'] = _mean_std(
        [d for d in lifetimes if d is not None])
    detections = [d for d in (_detection(rows) for _, rows, _ in read)
                  if d is not None]
    for key in ('detection_tpr', 'detection_fpr'):
      row[key] = _mean_std([d[key] for d in detections])[0]
    table.append(row)
  return table


def _durability_rounds(rows, run):
  """Rounds the backdoor stays at or above the run's durability threshold
  after the last attack (`outputs.durability`); a backdoor above it to the
  end counts the rounds there were (a lower bound); None without attacks."""
  threshold = run.settings.get(
      'durability_threshold',
      config_lib.ExperimentConfig().durability_threshold)
  result = outputs.durability(rows, float(threshold))
  if result['last_attack_round'] is None:
    return None
  if result['lasted_to_end']:
    return int(rows[-1]['round']) - result['last_attack_round']
  return result['rounds_above_threshold']


def _detection(rows):
  """Mean detection TPR and FPR over a run's rounds with attackers (`rows`:
  its metrics.csv), or None (only a filtering defense reports them)."""
  rows = [r for r in rows
          if int(r['num_attackers']) > 0 and
          r.get('detection_tpr') not in (None, '')]
  if not rows:
    return None
  return {k: sum(float(r[k]) for r in rows) / len(rows)
          for k in ('detection_tpr', 'detection_fpr')}


def _grid(study, table: List[dict], title: str, cell_text) -> list:
  """A Markdown table of a grid study's cells: rows × columns."""
  rows = list(dict.fromkeys(c.row for c in study.cells))
  columns = list(dict.fromkeys(c.column for c in study.cells))
  by_position = {(c.row, c.column): row for c, row in zip(study.cells, table)}
  lines = [title, '', '| | ' + ' | '.join(columns) + ' |',
           '|---' * (len(columns) + 1) + '|']
  for name in rows:
    texts = [cell_text(by_position[name, column])
             if (name, column) in by_position else '' for column in columns]
    lines.append(f'| {name} | ' + ' | '.join(texts) + ' |')
  return lines + ['']


def _pair(row, first, second):
  if math.isnan(row[first]):
    return '–'
  return f'{row[first]:.2f} / {row[second]:.2f}'



def write_summary(study, table: List[dict], directory: str) -> None:
  os.makedirs(directory, exist_ok=True)
  columns = list(table[0])
  with open(os.path.join(directory, 'summary.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(table)
  lines = [f'### {study.name}: {study.title}', '',
           f'Paper: {study.paper_says}.', '',
           '| cell | seeds | backdoor (final) | backdoor (cumulative mean) '
           '| main task (final) |', '|---|---|---|---|---|']
  for row in table:
    cells = [f'{row[k]:.2f} ± {row[k + "_std"]:.2f}'
             if not math.isnan(row[k]) else '–'
             for k in ('backdoor_final', 'backdoor_cumulative_mean',
                       'main_task_final')]
    lines.append(f'| {row["cell"]} | {row["seeds"]} | ' + ' | '.join(cells) +
                 ' |')
  if study.cells and study.cells[0].row is not None:
    lines += [''] + _grid(
        study, table, 'Final backdoor accuracy / main-task accuracy:',
        lambda r: _pair(r, 'backdoor_final', 'main_task_final'))
    lines += _grid(
        study, table, 'Detection, mean over the attacked rounds: TPR '
        '(attackers excluded) / FPR (benign clients excluded):',
        lambda r: _pair(r, 'detection_tpr', 'detection_fpr'))
  with open(os.path.join(directory, 'summary.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')


def plot_study(study, runs: Sequence, path: str) -> None:
  """Mean ± std over seeds per cell: backdoor solid, main task dotted."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(8, 4.5))
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
  for i, cell in enumerate(study.cells):
    series = [metrics_rows(r) for r in runs
              if r.study == study.name and r.cell == cell.label]
    series = [s for s in series if s]
    if not series:
      continue
    length = min(len(s) for s in series)
    rounds = [int(r['round']) for r in series[0][:length]]
    color = colors[i % len(colors)]
    for column, style, label in (('backdoor_accuracy', '-', 'backdoor'),
                                 ('main_task_accuracy', ':', 'main')):
      values = np.array([[float(r[column]) for r in s[:length]]
                         for s in series])
      mean, std = values.mean(axis=0), values.std(axis=0)
      ax.plot(rounds, mean, style, color=color,
              label=f'{cell.label} ({label})')
      ax.fill_between(rounds, mean - std, mean + std, color=color, alpha=0.15)
  ax.set_xlabel('round')
  ax.set_ylabel('accuracy')
  ax.set_ylim(-0.03, 1.03)
  ax.set_title(study.title, fontsize=9)
  ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def check_claims(study, table: List[dict]) -> list:
  """(study name, claim, (measured, holds)) for each of the study's claims."""
  by_cell = {row['cell']: row for row in table}
  return [(study.name, claim, claim.check(by_cell)) for claim in study.claims]


def report(studies: Sequence, runs: Sequence, root: str,
           scale: str, stream=sys.stdout) -> None:
  """Each study's summary and figure; the claims of all of them in
  <root>/<scale>/claims.md, printed."""
  verdicts = []
  for study in studies:
    directory = os.path.join(root, scale, study.name)
    table = summarize(study, runs)
    write_summary(study, table, directory)
    plot_study(study, runs, os.path.join(directory, 'figure.png'))
    print(f'{study.name}: {os.path.join(directory, "figure.png")}',
          file=stream)
    verdicts += check_claims(study, table)
  if verdicts:
    text = claims_lib.claims_table(verdicts)
    with open(os.path.join(root, scale, 'claims.md'), 'w') as f:
      f.write(f'# Claims at the `{scale}` scale\n\n' + text)
    print(text, file=stream)
