r"""Reproduce the seed papers' figures with one command, scheduled on Ray.

  python -m targeted_attack.reproduce --scale=small            # every study
  python -m targeted_attack.reproduce --studies=sun_fig1 --scale=paper \
      --ray_address=auto                                        # on a cluster
  python -m targeted_attack.reproduce --plot_only               # redraw

A study is a list of cells (settings of the experiment binary), each run with
several seeds; every cell-seed is one run of `targeted_attack.emnist_experiment`
in its own process (so TFF's worker lives and dies with it), scheduled as a Ray
task that asks for `--cpus_per_task` CPUs. Outputs, under
`root_output_dir/<scale>/<study>/`:
  <cell>/seed_<k>/         the run (config.json, metrics.csv, log.txt, ...)
  figure.png               mean ± spread over seeds: main task dotted,
                           backdoor solid, the paper's setting in the title
  summary.csv, summary.md  per cell: final and cumulative-mean backdoor
                           accuracy, final main-task accuracy (mean ± std)
A run is finished when its metrics.csv holds every round; finished runs are
skipped, an interrupted one resumes from its checkpoint (`--resume`). A failed
run is reported with its log and does not stop the others; the exit status is
the number of failed runs (at most 100).
"""

import csv
import dataclasses
import math
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from absl import app
from absl import flags

# ---------------------------------------------------------------------------
# Studies and scales: data.


@dataclasses.dataclass(frozen=True)
class Cell:
  label: str
  settings: dict


@dataclasses.dataclass(frozen=True)
class Study:
  name: str
  title: str          # the paper's setting, named in the figure
  paper_says: str     # what the paper reports, for the README and summary
  settings: dict      # shared by every cell
  cells: tuple


_EVERY_ROUND = dict(attacker_model='fixed_frequency', attack_freq=1)
_ATTACKER_GRID = (
    Cell('fixed_every_round', dict(attacker_model='fixed_frequency',
                                   attack_freq=1)),
    Cell('fixed_every_10_rounds', dict(attacker_model='fixed_frequency',
                                       attack_freq=10)),
    Cell('random_eps_3.3pct', dict(attacker_model='random_sampling',
                                   malicious_fraction=1 / 30)),
    Cell('random_eps_0.33pct', dict(attacker_model='random_sampling',
                                    malicious_fraction=1 / 300)),
)

STUDIES = {s.name: s for s in (
    Study('sun_fig1', 'Sun et al. Fig. 1: unconstrained boosted attack, '
          '30 tasks, no defense',
          'success falls as ε falls; fixed frequency slightly stronger than '
          'random sampling',
          dict(attack='unconstrained', defense='none', task_num=30),
          _ATTACKER_GRID),
    Study('sun_fig2', 'Sun et al. Fig. 2: norm-bounded attack (M = 10), '
          '30 tasks, clipping at 10',
          'the same trend as Fig. 1, weaker attack',
          dict(attack='norm_bounded', defense='clip', norm_bound=10.0,
               task_num=30), _ATTACKER_GRID),
    Study('sun_fig3', 'Sun et al. Fig. 3: norm-bounded attack (M = 10) every '
          'round, number of backdoor tasks',
          'more tasks → lower backdoor accuracy',
          dict(attack='norm_bounded', defense='clip', norm_bound=10.0,
               **_EVERY_ROUND),
          tuple(Cell(f'tasks_{n}', dict(task_num=n)) for n in (10, 20, 30,
                                                                50))),
    Study('sun_fig4a', 'Sun et al. Fig. 4a: norm clipping M vs a norm-bounded '
          'attacker every round (30 tasks)',
          'M = 3 mitigates with ~no main-task cost (benign 90th-percentile '
          'norm < 2)',
          dict(attack='norm_bounded', defense='clip', task_num=30,
               **_EVERY_ROUND),
          (Cell('clip_3', dict(norm_bound=3.0)),
           Cell('clip_5', dict(norm_bound=5.0)),
           Cell('clip_10', dict(norm_bound=10.0)),
           # M = 3 is 1.5× the paper's benign norms (< 2); the same ratio for
           # the generated writers' norms (≈ 1) is 1.5.
           Cell('clip_1.5', dict(norm_bound=1.5)),
           Cell('no_attack', dict(attack='none', norm_bound=3.0)))),
    Study('sun_fig4b', 'Sun et al. Fig. 4b: clip 5 + Gaussian noise '
          '(σ = 0.025 per coordinate of the sum) vs an attacker every round',
          'noise mitigates beyond clipping alone',
          dict(attack='norm_bounded', norm_bound=5.0, task_num=30,
               **_EVERY_ROUND),
          (Cell('clip_5_sigma_0', dict(defense='clip')),
           Cell('clip_5_sigma_0.025', dict(defense='weak_dp',
                                           l2_norm_clip=5.0,
                                           mul_factor=0.005)),
           # Ten times the paper's σ: does noise help at all at this scale?
           Cell('clip_5_sigma_0.25', dict(defense='weak_dp',
                                          l2_norm_clip=5.0,
                                          mul_factor=0.05)),
           Cell('no_attack', dict(attack='none', defense='clip')))),
    Study('tails_krum', 'Wang et al.: edge-case PGD (pure edge case), '
          'attacker every round',
          'edge-case backdoors pass norm clipping and Krum',
          dict(attack='pgd', backdoor='edge_case', edge_case_mix='edge_case',
               norm_bound=2.0, num_byzantine=1, **_EVERY_ROUND),
          (Cell('none', dict(defense='none')),
           Cell('clip_2', dict(defense='clip')),
           Cell('krum', dict(defense='krum')),
           Cell('multi_krum', dict(defense='multi_krum',
                                   multi_krum_selected=5)),
           # A PGD radius inside the benign norms (≈ 1 here), so the
           # attacker's update looks benign to Krum.
           Cell('krum_eps_0.5', dict(defense='krum', pgd_eps=0.5)))),
    Study('bagdasaryan_replacement', 'Bagdasaryan et al.: one single-shot '
          'model replacement (β = n/η) at mid-run, then none',
          'the backdoor is near 100% right after, then decays',
          dict(attack='model_replacement', task_num=10, **_EVERY_ROUND),
          (Cell('no_defense', dict(defense='none')),
           Cell('clip_3', dict(defense='clip', norm_bound=3.0)))),
)}

# One table of overrides per scale; `seeds` and `attack_round` (the single
# shot of bagdasaryan_replacement) are the sweep's own, the rest are settings.
SCALES = {
    'smoke': dict(seeds=1, attack_round=2, dataset='synthetic',
                  synthetic_num_clients=60, synthetic_examples_per_client=20,
                  model='linear', num_clients_per_round=5, num_rounds=3,
                  num_epochs=1, batch_size=10, client_round_num=1,
                  evaluate_per_rounds=1, checkpoint_every=1,
                  edge_case_num_train=20, edge_case_num_eval=20),
    'small': dict(seeds=2, attack_round=30, dataset='synthetic',
                  synthetic_num_clients=300, synthetic_examples_per_client=60,
                  model='small_cnn', num_clients_per_round=10, num_rounds=60,
                  num_epochs=2, batch_size=20, client_round_num=2,
                  evaluate_per_rounds=2, checkpoint_every=10),
    'paper': dict(seeds=3, attack_round=250, dataset='emnist',
                  model='cnn', num_clients_per_round=30, num_rounds=500,
                  num_epochs=5, batch_size=20, client_learning_rate=0.1,
                  client_round_num=5, evaluate_per_rounds=5,
                  checkpoint_every=10),
}
_SWEEP_KEYS = ('seeds', 'attack_round')


@dataclasses.dataclass(frozen=True)
class Run:
  study: str
  cell: str
  seed: int
  settings: dict      # flags of the experiment binary
  output_dir: str

  @property
  def log_path(self) -> str:
    return os.path.join(self.output_dir, 'log.txt')

  @property
  def name(self) -> str:
    return f'{self.study}/{self.cell}/seed_{self.seed}'


def plan(studies: Sequence[Study], scale: str, root: str,
         seeds: Optional[int] = None, extra: Optional[dict] = None
        ) -> List[Run]:
  """Every cell-seed of `studies` at `scale`, as settings of the binary.

  Precedence: the scale's table, then the study's settings, then the cell's,
  then `extra`.
  """
  overrides = dict(SCALES[scale])
  num_seeds = seeds or overrides['seeds']
  attack_round = overrides['attack_round']
  for key in _SWEEP_KEYS:
    overrides.pop(key)
  runs = []
  # Seed by seed, so that a partial sweep has every cell at least once.
  for seed in range(num_seeds):
    for study in studies:
      for cell in study.cells:
        settings = {**overrides, **study.settings, **cell.settings}
        if study.name == 'bagdasaryan_replacement':
          settings.update(attack_start_round=attack_round,
                          attack_end_round=attack_round)
        settings.update(extra or {})
        out = os.path.join(root, scale, study.name, cell.label)
        settings.update(random_seed=seed, root_output_dir=out,
                        experiment_name=f'seed_{seed}', resume=True)
        runs.append(Run(study.name, cell.label, seed, settings,
                        os.path.join(out, f'seed_{seed}')))
  return runs


# ---------------------------------------------------------------------------
# Running.


def is_finished(run: Run) -> bool:
  """True when the run's metrics.csv holds every round."""
  path = os.path.join(run.output_dir, 'metrics.csv')
  if not os.path.exists(path):
    return False
  try:
    with open(path, newline='') as f:
      rounds = [int(r['round']) for r in csv.DictReader(f)]
  except (ValueError, KeyError, TypeError):
    return False
  return bool(rounds) and rounds[-1] >= int(run.settings['num_rounds'])


def command(run: Run) -> list:
  def flag(key, value):
    if isinstance(value, bool):
      return f'--{key}' if value else f'--no{key}'
    return f'--{key}={value}'
  return [sys.executable, '-m', 'targeted_attack.emnist_experiment'] + [
      flag(k, v) for k, v in sorted(run.settings.items())]


def _die_with_parent() -> None:
  """In the child: SIGTERM when the Ray worker that started it dies (Linux)."""
  import ctypes  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass


def execute(run: Run) -> tuple:
  """Runs one cell-seed in its own process; (name, return code, seconds).

  The process ends with its Ray worker (a cancelled task, a stopped sweep):
  it gets SIGTERM, exits cleanly, and resumes from its checkpoint next time.
  """
  os.makedirs(run.output_dir, exist_ok=True)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  started = time.time()
  with open(run.log_path, 'a') as log:
    log.write(f'$ {" ".join(command(run))}\n')
    log.flush()
    code = subprocess.run(command(run), stdout=log, stderr=subprocess.STDOUT,
                          env=env, check=False,
                          preexec_fn=_die_with_parent).returncode
  return run.name, code, time.time() - started


def _format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  return time.strftime('%H:%M:%S', time.gmtime(max(0.0, seconds)))


def run_all(runs: Sequence[Run], ray_address: Optional[str] = None,
            cpus_per_task: float = 2.0, max_runs: Optional[int] = None,
            stream=sys.stdout) -> List[tuple]:
  """Runs the unfinished `runs` as Ray tasks; returns the failed (run, code).

  `max_runs` stops after that many runs have finished (for tests: a sweep
  killed partway).
  """
  import ray  # pylint: disable=g-import-not-at-top
  todo = [r for r in runs if not is_finished(r)]
  done = len(runs) - len(todo)
  print(f'{len(runs)} runs, {done} already finished, {len(todo)} to run',
        file=stream, flush=True)
  if not todo:
    return []
  if ray_address:
    ray.init(address=ray_address, log_to_driver=False)
  else:
    ray.init(address='local', num_cpus=max(os.cpu_count() or 1, 1),
             include_dashboard=False, log_to_driver=False)
  remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(execute)
  failed = []
  started = time.time()
  try:
    by_ref = {remote.remote(r): r for r in todo}
    pending = list(by_ref)
    finished_now = 0
    while pending:
      ready, pending = ray.wait(pending, num_returns=1)
      run = by_ref[ready[0]]
      name, code, seconds = ray.get(ready[0])
      finished_now += 1
      done += 1
      rate = (time.time() - started) / finished_now
      eta = rate * len(pending) / max(1, min(len(pending), _concurrency(
          cpus_per_task)))
      status = 'ok' if code == 0 else f'FAILED (exit {code}), log: {run.log_path}'
      if code != 0:
        failed.append((run, code))
      print(f'[{done}/{len(runs)}] {name}: {status} in {seconds:.0f}s; '
            f'ETA {_format_eta(eta)}', file=stream, flush=True)
      if max_runs is not None and finished_now >= max_runs:
        for ref in pending:
          ray.cancel(ref, force=True)
        break
  finally:
    ray.shutdown()
  return failed


def _concurrency(cpus_per_task: float) -> int:
  return max(1, int((os.cpu_count() or 1) // max(cpus_per_task, 1e-9)))


# ---------------------------------------------------------------------------
# Tables and figures.


def _read_rows(run: Run) -> list:
  path = os.path.join(run.output_dir, 'metrics.csv')
  if not os.path.exists(path):
    return []
  with open(path, newline='') as f:
    return [r for r in csv.DictReader(f)
            if r.get('main_task_accuracy') not in ('', None)]


def _mean_std(values):
  import numpy as np  # pylint: disable=g-import-not-at-top
  if not values:
    return float('nan'), float('nan')
  return float(np.mean(values)), float(np.std(values))


def summarize(study: Study, runs: Sequence[Run]) -> List[dict]:
  """Per cell, over its finished seeds: final and cumulative-mean backdoor
  accuracy, final main-task accuracy (mean, std), and seeds counted."""
  table = []
  for cell in study.cells:
    cell_runs = [r for r in runs if r.study == study.name and
                 r.cell == cell.label and is_finished(r)]
    finals = [_read_rows(r)[-1] for r in cell_runs if _read_rows(r)]
    row = dict(cell=cell.label, seeds=len(finals))
    for key, column in (('backdoor_final', 'backdoor_accuracy'),
                        ('backdoor_cumulative_mean',
                         'backdoor_accuracy_cumulative_mean'),
                        ('main_task_final', 'main_task_accuracy')):
      mean, std = _mean_std([float(f[column]) for f in finals])
      row[key] = mean
      row[key + '_std'] = std
    table.append(row)
  return table


def write_summary(study: Study, table: List[dict], directory: str) -> None:
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
  with open(os.path.join(directory, 'summary.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')


def plot_study(study: Study, runs: Sequence[Run], path: str) -> None:
  """Mean ± std over seeds per cell: backdoor solid, main task dotted."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(8, 4.5))
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
  for i, cell in enumerate(study.cells):
    series = [_read_rows(r) for r in runs
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


def report(studies: Sequence[Study], runs: Sequence[Run], root: str,
           scale: str, stream=sys.stdout) -> None:
  for study in studies:
    directory = os.path.join(root, scale, study.name)
    table = summarize(study, runs)
    write_summary(study, table, directory)
    plot_study(study, runs, os.path.join(directory, 'figure.png'))
    print(f'{study.name}: {os.path.join(directory, "figure.png")}',
          file=stream)


def sweep(studies: Sequence[Study], scale: str, root: str,
          seeds: Optional[int] = None, ray_address: Optional[str] = None,
          cpus_per_task: float = 2.0, plot_only: bool = False,
          max_runs: Optional[int] = None, extra: Optional[dict] = None,
          stream=sys.stdout) -> int:
  """Runs (unless `plot_only`) and reports; returns the number failed."""
  runs = plan(studies, scale, root, seeds, extra)
  failed = [] if plot_only else run_all(runs, ray_address, cpus_per_task,
                                        max_runs, stream)
  report(studies, runs, root, scale, stream)
  for run, code in failed:
    print(f'failed: {run.name} (exit {code}); log: {run.log_path}',
          file=stream)
  return len(failed)


# ---------------------------------------------------------------------------
# The binary.

def define_flags() -> None:
  """The binary's flags (defined only when run as a program)."""
  flags.DEFINE_list('studies', list(STUDIES), 'Studies to run: ' +
                    ', '.join(STUDIES) + '.')
  flags.DEFINE_enum('scale', 'small', list(SCALES), 'smoke: CI-sized; small: '
                    'the generated writers; paper: federated EMNIST at the '
                    'paper\'s settings.')
  flags.DEFINE_string('root_output_dir', 'runs/reproduce', 'Where runs, '
                      'figures and tables go.')
  flags.DEFINE_integer('seeds', None, 'Seeds per cell (default: the scale\'s).')
  flags.DEFINE_string('ray_address', None, 'Ray cluster address (auto or '
                      'host:port); default: a local Ray instance.')
  flags.DEFINE_float('cpus_per_task', 2.0, 'CPUs each run asks Ray for.')
  flags.DEFINE_bool('plot_only', False, 'Redraw figures and tables from what '
                    'exists; run nothing.')
  flags.DEFINE_integer('max_runs', None, 'Stop after this many runs finish '
                       '(the rest resume on the next invocation).')
  flags.DEFINE_string('emnist_cache_dir', None, 'paper scale: the directory '
                      'holding TFF\'s emnist_all.sqlite.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  unknown = [s for s in FLAGS.studies if s not in STUDIES]
  if unknown:
    print(f'error: --studies: unknown {", ".join(unknown)}; allowed: '
          f'{", ".join(STUDIES)}', file=sys.stderr)
    return 2
  if FLAGS.seeds is not None and FLAGS.seeds < 1:
    print(f'error: --seeds={FLAGS.seeds} must be >= 1', file=sys.stderr)
    return 2
  extra = {}
  if FLAGS.emnist_cache_dir:
    extra['emnist_cache_dir'] = FLAGS.emnist_cache_dir
  failed = sweep([STUDIES[s] for s in FLAGS.studies], FLAGS.scale,
                 FLAGS.root_output_dir, FLAGS.seeds, FLAGS.ray_address,
                 FLAGS.cpus_per_task, FLAGS.plot_only, FLAGS.max_runs, extra)
  return min(failed, 100)


if __name__ == '__main__':
  define_flags()
  app.run(main)
