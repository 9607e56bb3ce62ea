"""Prints a Markdown table of finished runs: python scripts/summarize_runs.py DIR..."""

import csv
import json
import os
import sys


def summarize(run_dir):
  with open(os.path.join(run_dir, 'config.json')) as f:
    config = json.load(f)
  with open(os.path.join(run_dir, 'metrics.csv'), newline='') as f:
    rows = [r for r in csv.DictReader(f) if r['main_task_accuracy']]
  last = rows[-1]
  return (config['attack'], config['defense'], int(last['round']),
          float(last['main_task_accuracy']), float(last['backdoor_accuracy']),
          float(last['backdoor_accuracy_cumulative_mean']))


def main(dirs):
  print('| attack | defense | rounds | main-task acc. | backdoor acc. '
        '| backdoor acc. (cumulative mean) |')
  print('|---|---|---|---|---|---|')
  for d in dirs:
    attack, defense, rounds, main_acc, backdoor, cumulative = summarize(d)
    print(f'| {attack} | {defense} | {rounds} | {main_acc:.3f} | '
          f'{backdoor:.3f} | {cumulative:.3f} |')


if __name__ == '__main__':
  main(sys.argv[1:])
