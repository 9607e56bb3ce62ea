"""Checks that two runs of the binary agree: metrics.csv and checkpoint.npz.

  python scripts/same_run.py RUN_DIR_A RUN_DIR_B

metrics.csv: every column but the timings (`*_seconds`) equal as written;
checkpoint.npz: every array bit for bit. Prints what it compared, or the
first difference (exit status 1). CI runs it on the main job of the released
and the current stack.
"""

import csv
import os
import sys

import numpy as np


def _rows(run_dir):
  with open(os.path.join(run_dir, 'metrics.csv'), newline='') as f:
    return list(csv.DictReader(f))


def differences(run_a: str, run_b: str) -> list:
  """Lines naming each difference between the two runs (empty: the same)."""
  rows_a, rows_b = _rows(run_a), _rows(run_b)
  if len(rows_a) != len(rows_b):
    return [f'metrics.csv: {len(rows_a)} rows against {len(rows_b)}']
  found = []
  for i, (a, b) in enumerate(zip(rows_a, rows_b)):
    if set(a) != set(b):
      return [f'metrics.csv: columns {sorted(set(a) ^ set(b))} differ']
    for column in a:
      if not column.endswith('_seconds') and a[column] != b[column]:
        found.append(f'metrics.csv row {i + 1} {column}: {a[column]} against '
                     f'{b[column]}')
  with np.load(os.path.join(run_a, 'checkpoint.npz')) as ca, np.load(
      os.path.join(run_b, 'checkpoint.npz')) as cb:
    if set(ca.files) != set(cb.files):
      found.append(f'checkpoint.npz: arrays {sorted(set(ca.files) ^ set(cb.files))}')
    for name in sorted(set(ca.files) & set(cb.files)):
      if not np.array_equal(ca[name], cb[name]):
        found.append(f'checkpoint.npz {name}: max |difference| '
                     f'{np.max(np.abs(ca[name] - cb[name]))}')
  return found


def main(argv) -> int:
  run_a, run_b = argv[1:3]
  found = differences(run_a, run_b)
  if found:
    print('\n'.join(['[same_run] the runs differ:'] + found[:20]))
    return 1
  print(f'[same_run] {run_a} and {run_b}: metrics.csv ({len(_rows(run_a))} '
        'rows, timings aside) and checkpoint.npz (bit for bit) are the same')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
