r"""Attacks (rows) × defenses (columns) on the generated dataset, in one process.

  .venv/bin/python scripts/attack_defense_matrix.py [--rounds=20] [--out=runs/matrix]
      [--rows='ROW;ROW'] [--columns='COLUMN;COLUMN']

Each cell is a run of `experiment.run` (the main job's setting: 300 writers,
10 clients per round, 2 local epochs, the paper's CNN, one attacker in every
round); cells already finished are reused, so a killed matrix resumes. Prints a
Markdown table: final backdoor accuracy / main-task accuracy. `--rows` and
`--columns` (labels, separated by ';') run a part of the matrix; `--print_only`
tabulates what has finished.
"""

import argparse
import csv
import dataclasses
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from targeted_attack import experiment  # pylint: disable=g-import-not-at-top
from targeted_attack import runtime  # pylint: disable=g-import-not-at-top

ATTACKS = {
    'unconstrained (semantic)': dict(attack='unconstrained'),
    'norm_bounded (semantic)': dict(attack='norm_bounded', norm_bound=1.5),
    'data_poisoning (semantic)': dict(attack='data_poisoning'),
    'constrain_and_scale (semantic)': dict(attack='constrain_and_scale'),
    'pgd, no replacement (edge case)': dict(attack='pgd', backdoor='edge_case',
                                            pgd_eps=1.5),
    'pgd + replacement (edge case)': dict(attack='pgd_replacement',
                                          backdoor='edge_case', pgd_eps=0.15),
    'data_poisoning (trigger, 4 corners)': dict(
        attack='data_poisoning', backdoor='trigger',
        trigger_placement='four_corners'),
    'neurotoxin (semantic)': dict(attack='neurotoxin', norm_bound=1.5),
    'data_poisoning (DBA, 4 parts)': dict(attack='data_poisoning',
                                          backdoor='dba'),
    'a3fl (adaptive trigger)': dict(attack='a3fl', backdoor='a3fl'),
    # Untargeted baselines: the main task is what they hit.
    'alie (untargeted)': dict(attack='alie'),
    'ipm (untargeted)': dict(attack='ipm'),
}
DEFENSES = {
    'none': dict(defense='none'),
    'clip 1.5': dict(defense='clip', norm_bound=1.5),
    'weak DP': dict(defense='weak_dp', l2_norm_clip=3.0, mul_factor=0.003),
    'Krum': dict(defense='krum', num_byzantine=1),
    'Multi-Krum': dict(defense='multi_krum', num_byzantine=1,
                       multi_krum_selected=5),
    'median': dict(defense='median'),
    'DP-SGD': dict(defense='dp_sgd', dp_sgd_l2_norm_clip=5.0,
                   dp_sgd_noise_multiplier=0.05),
    'Bulyan': dict(defense='bulyan', num_byzantine=1),
    # θ between the corrupt (1) and honest (9) agents, as the authors' 10-agent runs.
    'RLR': dict(defense='rlr', rlr_threshold=4),
    'FLAME': dict(defense='flame'),
    'FoolsGold': dict(defense='foolsgold'),
    'FLTrust': dict(defense='fltrust'),
    'TFF robust': dict(defense='tff_robust'),
    'TFF DP (adaptive)': dict(defense='tff_dp_adaptive',
                              tff_dp_noise_multiplier=0.1),
}
# DP-SGD's per-example gradients make a round ~5× slower: only these rows.
ONLY_ROWS = {
    'DP-SGD': ('unconstrained (semantic)', 'data_poisoning (semantic)',
               'data_poisoning (trigger, 4 corners)'),
}


def _slug(text):
  return ''.join(ch if ch.isalnum() else '_' for ch in text).strip('_')


def _final(path):
  with open(path, newline='') as f:
    rows = [r for r in csv.DictReader(f) if r['main_task_accuracy']]
  return rows[-1]


def _detection(path):
  """Mean detection TPR and FPR over the rounds with attackers, or None
  (a defense that filters reports them each round)."""
  with open(path, newline='') as f:
    rows = [r for r in csv.DictReader(f) if int(r['num_attackers']) > 0 and
            r.get('detection_tpr') not in (None, '')]
  if not rows:
    return None
  return tuple(sum(float(r[k]) for r in rows) / len(rows)
               for k in ('detection_tpr', 'detection_fpr'))


def _print_table(title, cells, rows, columns, fmt):
  print(title)
  print()
  print('| attack (backdoor) | ' + ' | '.join(columns) + ' |')
  print('|---' * (len(columns) + 1) + '|')
  for attack_name in rows:
    print(f'| {attack_name} | ' + ' | '.join(
        fmt.format(*cells[attack_name, d])
        if cells.get((attack_name, d)) is not None else '–'
        for d in columns) + ' |')
  print()


def main(argv):
  parser = argparse.ArgumentParser()
  parser.add_argument('--rounds', type=int, default=20)
  parser.add_argument('--out', default='runs/matrix')
  parser.add_argument('--rows', default=';'.join(ATTACKS))
  parser.add_argument('--columns', default=';'.join(DEFENSES))
  parser.add_argument('--print_only', action='store_true',
                      help='Tabulate the finished cells; run nothing.')
  args = parser.parse_args(argv)
  rows, columns = args.rows.split(';'), args.columns.split(';')
  for labels, known, kind in ((rows, ATTACKS, 'row'),
                              (columns, DEFENSES, 'column')):
    for label in labels:
      if label not in known:
        parser.error(f'unknown {kind} {label!r}; allowed: {list(known)}')
  runtime.install_signal_handlers()
  runtime.set_local_execution_context()
  base = experiment.ExperimentConfig(
      root_output_dir=args.out, synthetic_num_clients=300,
      num_clients_per_round=10, num_rounds=args.rounds, num_epochs=2,
      attack_freq=1, task_num=10, evaluate_per_rounds=5,
      checkpoint_every=args.rounds)
  cells, detection = {}, {}
  for attack_name, attack in ATTACKS.items():
    for defense_name, defense in DEFENSES.items():
      if attack_name not in rows or defense_name not in columns:
        continue
      if attack_name not in ONLY_ROWS.get(defense_name, (attack_name,)):
        continue
      config = dataclasses.replace(
          base, experiment_name=f'{_slug(attack_name)}__{_slug(defense_name)}',
          **{**attack, **defense})
      metrics = os.path.join(config.output_dir, 'metrics.csv')
      done = os.path.exists(metrics) and int(
          _final(metrics)['round']) == args.rounds
      if not done:
        if args.print_only:
          continue
        print(f'running {attack_name} × {defense_name}', file=sys.stderr,
              flush=True)
        experiment.run(config, progress=False)
      row = _final(metrics)
      cells[attack_name, defense_name] = (float(row['backdoor_accuracy']),
                                          float(row['main_task_accuracy']))
      detection[attack_name, defense_name] = _detection(metrics)
  _print_table('Final backdoor accuracy / main-task accuracy:', cells, rows,
               columns, '{:.2f} / {:.2f}')
  filtering = [d for d in columns
               if any(detection.get((a, d)) for a in rows)]
  if filtering:
    _print_table('Detection, mean over the attacked rounds: TPR (attackers '
                 'excluded) / FPR (benign clients excluded):', detection,
                 rows, filtering, '{:.2f} / {:.2f}')


if __name__ == '__main__':
  main(sys.argv[1:])
