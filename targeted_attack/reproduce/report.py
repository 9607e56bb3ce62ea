"""Tables and figures of a study, read off its runs' metrics.csv."""

import csv
import math
import os
import sys
from typing import List, Sequence

from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import outputs
from targeted_attack.reproduce import claims as claims_lib
from targeted_attack.reproduce import registration
from targeted_attack.reproduce import studies as studies_lib


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
  """(mean, sample std with ddof 1); NaN where undefined."""
  if not values:
    return float('nan'), float('nan')
  return (math.fsum(values) / len(values), claims_lib.sample_std(values))


# Per-seed metrics of the summary: (key, what it reads).
SEED_METRICS = ('backdoor_final', 'backdoor_cumulative_mean', 'backdoor_max',
                'main_task_final', 'main_task_at_backdoor_max',
                'durability_rounds')


def _seed_metrics(run, rows, evaluated) -> dict:
  """One run's metrics: the final round's backdoor, cumulative-mean backdoor
  and main-task accuracies, the highest backdoor accuracy and the main task
  at its round, the durability in rounds (`_durability_rounds`; None without
  attacks) and whether it is censored."""
  final = evaluated[-1]
  peak = max(evaluated, key=lambda r: float(r['backdoor_accuracy']))
  durability, censored = _durability_rounds(rows, run)
  return dict(
      backdoor_final=float(final['backdoor_accuracy']),
      backdoor_cumulative_mean=float(
          final['backdoor_accuracy_cumulative_mean']),
      main_task_final=float(final['main_task_accuracy']),
      backdoor_max=float(peak['backdoor_accuracy']),
      main_task_at_backdoor_max=float(peak['main_task_accuracy']),
      durability_rounds=durability, durability_censored=censored)


def summarize(study, runs: Sequence) -> List[dict]:
  """Per cell, over its finished seeds: each of `SEED_METRICS` per seed
  (`per_seed`), its mean and sample std (ddof 1); whether each seed's
  durability is censored (`censored`); detection rates (mean); the seeds
  counted (`seeds`) and which (`seed_list`)."""
  table = []
  for cell in study.cells:
    cell_runs = [r for r in runs if r.study == study.name and
                 r.cell == cell.label and is_finished(r)]
    per_seed = {key: {} for key in SEED_METRICS}
    censored = {'durability_rounds': {}}
    detections = []
    for run in cell_runs:
      rows = metrics_rows(run, False)
      evaluated = [r for r in rows
                   if r.get('main_task_accuracy') not in ('', None)]
      if not evaluated:
        continue
      measured = _seed_metrics(run, rows, evaluated)
      for key in SEED_METRICS:
        if measured[key] is not None:
          per_seed[key][run.seed] = float(measured[key])
      if measured['durability_rounds'] is not None:
        censored['durability_rounds'][run.seed] = measured[
            'durability_censored']
      detection = _detection(rows)
      if detection is not None:
        detections.append(detection)
    seeds = sorted(per_seed['main_task_final'])
    row = dict(cell=cell.label, seeds=len(seeds),
               seed_list=' '.join(map(str, seeds)))
    for key in SEED_METRICS:
      row[key], row[key + '_std'] = _mean_std(list(per_seed[key].values()))
    for key in ('detection_tpr', 'detection_fpr'):
      row[key] = _mean_std([d[key] for d in detections])[0]
    row['per_seed'] = per_seed
    row['censored'] = censored
    table.append(row)
  return table


def _durability_rounds(rows, run):
  """(rounds, censored): rounds the backdoor stays at or above the run's
  durability threshold after the last attack (`outputs.durability`); a
  backdoor above it to the end counts the rounds there were, censored (the
  true durability is at least that); (None, False) without attacks."""
  threshold = run.settings.get(
      'durability_threshold',
      config_lib.ExperimentConfig().durability_threshold)
  result = outputs.durability(rows, float(threshold))
  if result['last_attack_round'] is None:
    return None, False
  if result['lasted_to_end']:
    return int(rows[-1]['round']) - result['last_attack_round'], True
  return result['rounds_above_threshold'], False


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
  gridded = [c for c in study.cells if c.row is not None]
  rows = list(dict.fromkeys(c.row for c in gridded))
  columns = list(dict.fromkeys(c.column for c in gridded))
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



def _interval_text(values) -> str:
  mean, lower, upper = claims_lib.mean_interval(values)
  if math.isnan(mean):
    return '–'
  if math.isnan(lower):
    return f'{mean:.2f}'
  return f'{mean:.2f} [{lower:.2f}, {upper:.2f}]'


def _cell_rows(table: List[dict]) -> list:
  """Markdown rows of every cell: seeds, then each metric's mean and 90%
  interval over its seeds."""
  lines = ['| cell | seeds | backdoor (final) | backdoor (cumulative mean) | '
           'backdoor (peak) | main task (final) | durability (rounds) |',
           '|---|---|---|---|---|---|---|']
  for row in table:
    texts = [_interval_text(list(row['per_seed'][k].values()))
             for k in ('backdoor_final', 'backdoor_cumulative_mean',
                       'backdoor_max', 'main_task_final',
                       'durability_rounds')]
    if any(row['censored']['durability_rounds'].values()):
      texts[-1] = '≥ ' + texts[-1]
    seeds = row['seed_list'] or 'none'
    lines.append(f'| {row["cell"]} | {seeds} | ' + ' | '.join(texts) + ' |')
  return lines


def write_summary(study, table: List[dict], directory: str) -> None:
  """summary.csv (a row per cell: means and sample stds), seeds.csv (a row
  per cell and seed) and summary.md (every cell with its seeds and 90%
  intervals; a grid study's grids)."""
  os.makedirs(directory, exist_ok=True)
  columns = [k for k in table[0] if k not in ('per_seed', 'censored')]
  with open(os.path.join(directory, 'summary.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, columns, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(table)
  with open(os.path.join(directory, 'seeds.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(('cell', 'seed') + SEED_METRICS + ('durability_censored',))
    for row in table:
      for seed in sorted(row['per_seed']['main_task_final']):
        writer.writerow(
            (row['cell'], seed) +
            tuple(row['per_seed'][k].get(seed, '') for k in SEED_METRICS) +
            (row['censored']['durability_rounds'].get(seed, ''),))
  lines = [f'### {study.name}: {study.title}', '',
           f'Paper: {study.paper_says}.', '',
           'Mean [90% Student-t interval] over the seeds listed.', '']
  lines += _cell_rows(table)
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
      mean = values.mean(axis=0)
      std = (values.std(axis=0, ddof=1) if len(values) > 1
             else np.zeros_like(mean))
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


def _seeds_text(study, table: List[dict], claim) -> str:
  """The seeds of each cell that the claim or its controls name."""
  named = [row for row in table
           if f"'{row['cell']}'" in claim.check.spec or any(
               f"'{row['cell']}'" in c.check.spec for c in claim.controls)]
  counts = sorted({row['seeds'] for row in named})
  if len(counts) == 1:
    return f'{counts[0]} each'
  return ', '.join(f'{row["cell"]} {row["seeds"]}' for row in named)


def ratios_text(study) -> str:
  """The short forms of the study's ratios not kept, for its verdicts."""
  return '; '.join(r.short for r in study.ratios_not_kept)


def check_claims(study, table: List[dict], runs: Sequence,
                 seeds: Sequence[int] = ()) -> list:
  """(study name, claim, judgement, seeds per cell, ratios not kept,
  exploratory reason) for each of the study's claims; `seeds` the seeds
  planned for every cell."""
  evidence = claims_lib.evidence(table, seeds)
  study_runs = [r for r in runs if r.study == study.name]
  finished = [r for r in study_runs if is_finished(r)]
  return [(study.name, claim, claims_lib.judge(claim, evidence),
           _seeds_text(study, table, claim), ratios_text(study),
           registration.exploratory_reason(study, claim, study_runs,
                                           finished))
          for claim in study.claims]


def _tally_sentence(counts: dict) -> str:
  total = sum(counts.values())
  return (f'{counts["holds"]} hold, {counts["does not hold"]} do not hold, '
          f'{counts["cannot tell"]} cannot tell (of {total}). '
          'A verdict reads the paired differences\' 90% Student-t interval '
          'over the seeds (each bound a one-sided test at 5%); a control '
          'not met makes it "cannot tell". Exploratory: the claim was '
          'defined after its runs, or its study is a bigger run.')


def claims_document(scale: str, verdicts: list, studies: Sequence,
                    runs: Sequence, tables: dict) -> str:
  """claims.md: the tally, the claims table, then per study its definition's
  hash, the code versions of its runs, and every cell."""
  counts = claims_lib.tally([row[2] for row in verdicts])
  lines = [f'# Claims at the `{scale}` scale', '',
           _tally_sentence(counts),
           '', claims_lib.claims_table(verdicts).rstrip('\n'), '',
           '## Every cell', '']
  for study in studies:
    study_runs = [r for r in runs if r.study == study.name]
    finished = [r for r in study_runs if is_finished(r)]
    settings = registration.cell_settings(study_runs)
    numerics = registration.numerics(finished)
    lines += [f'### {study.name}', '',
              f'Definition {registration.study_hash(study, settings)}; runs '
              f'by {", ".join(registration.versions(finished)) or "none"}' +
              (f' on {"; ".join(numerics)}' if numerics else '') + '.', '']
    if study.ratios_not_kept:
      lines += ['The paper\'s ratios not kept: ' +
                '; '.join(r.text for r in study.ratios_not_kept) + '.', '']
    lines += _cell_rows(tables[study.name]) + ['']
  return '\n'.join(lines) + '\n'


def report(studies: Sequence, runs: Sequence, root: str,
           scale: str, stream=sys.stdout) -> list:
  """Each study's summary and figure; the claims of all of them in
  <root>/<scale>/claims.md, printed; returns the verdicts."""
  verdicts, tables = [], {}
  for study in studies:
    directory = os.path.join(root, scale, study.name)
    table = summarize(study, runs)
    tables[study.name] = table
    write_summary(study, table, directory)
    plot_study(study, runs, os.path.join(directory, 'figure.png'))
    print(f'{study.name}: {os.path.join(directory, "figure.png")}',
          file=stream)
    seeds = sorted({r.seed for r in runs if r.study == study.name})
    verdicts += check_claims(study, table, runs, seeds)
  os.makedirs(os.path.join(root, scale), exist_ok=True)
  text = claims_document(scale, verdicts, studies, runs, tables)
  with open(os.path.join(root, scale, 'claims.md'), 'w') as f:
    f.write(text)
  if verdicts:
    print(claims_lib.claims_table(verdicts), file=stream)
  return verdicts


BEGIN_MARK = '<!-- claims:begin (generated by --results_doc; do not edit) -->'
END_MARK = '<!-- claims:end -->'


def write_into_document(path: str, text: str) -> None:
  """Puts claims.md's `text` between `BEGIN_MARK` and `END_MARK` in the file
  at `path`, its headings two levels down (under the document's own);
  everything else is kept. The block is merged by study: the studies in
  `text` replace their own claims rows and cell sections, the block's other
  studies (of the same scale) are kept, and the tally is counted again over
  the merged rows. ValueError when the file lacks the marks."""
  with open(path) as f:
    document = f.read()
  begin, end = document.find(BEGIN_MARK), document.find(END_MARK)
  if begin < 0 or end < begin:
    raise ValueError(f'--results_doc={path}: no {BEGIN_MARK} … {END_MARK} '
                     'block to fill')
  old = '\n'.join(line[2:] if line.startswith('###') else line for line in
                  document[begin + len(BEGIN_MARK):end].split('\n'))
  merged = _merge_claims(_parse_claims(old), _parse_claims(text))
  if merged is None and old.strip():
    print(f'note: --results_doc={path}: its claims block is replaced whole '
          '(another scale, or a block this version cannot read)',
          file=sys.stderr)
  text = merged or text
  text = '\n'.join('##' + line if line.startswith('#') else line
                   for line in text.split('\n'))
  document = (document[:begin + len(BEGIN_MARK)] + '\n' + text.strip('\n') +
              '\n' + document[end:])
  with open(path, 'w') as f:
    f.write(document)


_EVERY_CELL = '## Every cell'


def _parse_claims(text: str):
  """claims.md as (title, table header, {study: rows}, {study: section
  lines}), studies in order; None where `text` is not one."""
  lines = text.strip('\n').split('\n')
  if not lines[0].startswith('# Claims at ') or _EVERY_CELL not in lines:
    return None
  header, rows, sections = [], {}, {}
  for line in lines[1:lines.index(_EVERY_CELL)]:
    if line.startswith('| study |') or line.startswith('|---'):
      header.append(line)
    elif line.startswith('| '):
      rows.setdefault(line.split(' | ')[0][2:], []).append(line)
  study = None
  for line in lines[lines.index(_EVERY_CELL) + 1:]:
    if line.startswith('### '):
      study = line[4:].strip()
      sections[study] = []
    if study is not None:
      sections[study].append(line)
  return lines[0], header, rows, sections


# The claims table before its column of the ratios not kept (0.9.1).
_RATIOS_COLUMN = claims_lib.CLAIMS_TABLE_COLUMNS.index(
    'the paper\'s ratios not kept')
_HEADER_WITHOUT_RATIOS = claims_lib.table_header(
    claims_lib.CLAIMS_TABLE_COLUMNS[:_RATIOS_COLUMN] +
    claims_lib.CLAIMS_TABLE_COLUMNS[_RATIOS_COLUMN + 1:])


def _with_ratios_column(header, rows):
  """A table of the header before 0.9.1 given the ratios column ('–' for
  now: `_current_ratios` fills it); (header, rows)."""
  if header != _HEADER_WITHOUT_RATIOS:
    return header, rows
  def widen(row):
    cells = row[2:].rstrip(' |').split(' | ')
    cells.insert(_RATIOS_COLUMN, '–')
    return '| ' + ' | '.join(cells) + ' |'
  return (claims_lib.table_header(claims_lib.CLAIMS_TABLE_COLUMNS),
          {study: [widen(r) for r in study_rows]
           for study, study_rows in rows.items()})


_RATIOS_LINE = 'The paper\'s ratios not kept: '


def _current_ratios(study, rows, section):
  """A kept study's rows and section with the ratios not kept of its
  definition now (the ratios state the definition against its paper, not
  a measurement, and are not in its hash); as they were for a study not
  defined here. (rows, section)."""
  defined = studies_lib.STUDIES.get(study)
  if defined is None:
    return rows, section
  def refreshed(row):
    cells = row[2:].rstrip(' |').split(' | ')
    if len(cells) != len(claims_lib.CLAIMS_TABLE_COLUMNS):
      return row  # edited by hand: `_merge_claims` gives up on it
    cells[_RATIOS_COLUMN] = ratios_text(defined) or '–'
    return '| ' + ' | '.join(cells) + ' |'
  # Its old ratios paragraph out (the line and the blank after it), the
  # definition's in, after the paragraph naming the definition.
  section = list(section)
  at = next((i for i, line in enumerate(section)
             if line.startswith(_RATIOS_LINE)), None)
  if at is not None:
    del section[at:at + 2]
  if defined.ratios_not_kept:
    at = next((i + 2 for i, line in enumerate(section)
               if line.startswith('Definition ')), None)
    if at is None:  # no definition line: last, after a blank
      if section and section[-1] != '':
        section.append('')
      at = len(section)
    section[at:at] = [_RATIOS_LINE + '; '.join(
        r.text for r in defined.ratios_not_kept) + '.', '']
  return [refreshed(r) for r in rows], section


def _merge_claims(old, new):
  """`new`'s studies in place of (or after) `old`'s, as claims.md; None
  (replace all) where either is not claims.md or their scales differ. An
  old table without the ratios column is given it first; a kept study's
  ratios not kept are its definition's now."""
  if old is None or new is None or old[0] != new[0]:
    return None
  title, header, old_rows, old_sections = old
  header, old_rows = _with_ratios_column(header, old_rows)
  if header != new[1]:
    return None
  studies = list(old_sections) + [s for s in new[3] if s not in old_sections]
  rows, sections = {}, {}
  for s in studies:
    if s in new[3]:
      rows[s], sections[s] = new[2].get(s, []), new[3][s]
    else:
      rows[s], sections[s] = _current_ratios(s, old_rows.get(s, []),
                                             old_sections[s])
  counts = claims_lib.tally(())  # each verdict word, at 0
  for row in (r for study_rows in rows.values() for r in study_rows):
    verdict = row.rstrip(' |').split(' | ')[-2]
    kind = [v for v in counts if verdict.startswith(v)]
    if not kind:  # an edited row: not this version's
      return None
    counts[kind[0]] += 1
  lines = [title, '', _tally_sentence(counts), ''] + new[1]
  lines += [r for study_rows in rows.values() for r in study_rows]
  lines += ['', _EVERY_CELL, '']
  for section in sections.values():
    lines += section
    if section[-1] != '':
      lines.append('')
  return '\n'.join(lines).rstrip('\n') + '\n'
