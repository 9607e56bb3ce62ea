"""The sweep runner: the cell-seeds of the studies as Ray tasks, each a
process running the experiment binary on a batch of them, one after another
(`cell_worker`; `runs_per_process` 1: a process per run).

A run is finished when its metrics.csv holds every round; finished runs are
skipped, an interrupted one resumes from its checkpoint (`--resume`). A failed
run is reported with its log and does not stop the others.
"""

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence

from targeted_attack.reproduce import registration
from targeted_attack.reproduce import report as report_lib
from targeted_attack.reproduce import studies as studies_lib

# The address a local sweep's Ray binds its servers to (Ray 2.48 and older
# bind to loopback when the node's address is loopback; 2.60 does not).
LOOPBACK = '127.0.0.1'


@dataclasses.dataclass(frozen=True)
class Run:
  study: str
  cell: str
  seed: int
  settings: dict      # flags of the experiment binary
  output_dir: str
  # The pretraining run whose final model this run starts from (its
  # settings' digest; `pretraining_run`), or None.
  pretrained: Optional[str] = None

  @property
  def log_path(self) -> str:
    return os.path.join(self.output_dir, 'log.txt')

  @property
  def name(self) -> str:
    return f'{self.study}/{self.cell}/seed_{self.seed}'


# The study name of pretraining runs (`pretraining_run`).
PRETRAINING = '_pretrained'
# A pretraining run trains without attack and defense for the scale's
# `pretrain_rounds`, its study's attack window left out.
_PRETRAINING_SETTINGS = dict(attack='none', defense='none')
_PRETRAINING_DROPS = ('attack_start_round', 'attack_end_round')


def pretraining_run(settings: dict, rounds: int, seed: int, root: str,
                    scale: str) -> Run:
  """The clean run whose final model a converged-start study's cells start
  from: `settings` (the study's, before its cells') without attack or
  defense, for `rounds` rounds; one per seed and distinct settings, in
  <root>/<scale>/_pretrained/<digest of its settings and model revision
  (`registration.definition_settings`)>/seed_<seed>, shared
  by every study and cell of the same settings."""
  from targeted_attack.reproduce import claims as claims_lib  # pylint: disable=g-import-not-at-top
  from targeted_attack.reproduce import registration  # pylint: disable=g-import-not-at-top
  settings = {**{k: v for k, v in settings.items()
                 if k not in _PRETRAINING_DROPS},
              **_PRETRAINING_SETTINGS, 'num_rounds': rounds}
  digest = claims_lib.digest(registration.definition_settings(settings))
  out = os.path.join(root, scale, PRETRAINING, digest)
  settings.update(random_seed=seed, root_output_dir=out,
                  experiment_name=f'seed_{seed}', resume=True)
  return Run(PRETRAINING, digest, seed, settings,
             os.path.join(out, f'seed_{seed}'))


def plan(studies: Sequence[studies_lib.Study], scale: str, root: str,
         seeds: Optional[int] = None, extra: Optional[dict] = None
        ) -> List[Run]:
  """Every cell-seed of `studies` at `scale`, as settings of the binary.

  Precedence: the scale's table, then the study's settings (at the 'paper'
  scale, its `paper_scale_settings` over them; then its `scale_settings` of
  the scale), then the cell's, then `extra`.

  A study with `converged_start` gets, per seed, a pretraining run
  (`pretraining_run`, the scale's `pretrain_rounds`) listed before the runs
  that start from its final model (`init_checkpoint`).
  """
  overrides = dict(studies_lib.SCALES[scale])
  num_seeds = seeds or overrides['seeds']
  attack_round = overrides['attack_round']
  pretrain_rounds = overrides['pretrain_rounds']
  for key in studies_lib.SWEEP_KEYS:
    overrides.pop(key)
  runs, pretraining = [], {}
  # Seed by seed, so that a partial sweep has every cell at least once.
  for seed in range(num_seeds):
    for study in studies:
      at_scale = dict(study.paper_scale_settings if scale == 'paper'
                      else {}, **study.scale_settings.get(scale, {}))
      base = {**overrides, **study.settings, **at_scale, **(extra or {})}
      start = None
      if study.converged_start:
        start = pretraining_run(base, pretrain_rounds, seed, root, scale)
        pretraining.setdefault(start.name, start)
      for cell in study.cells:
        settings = {**overrides, **study.settings, **at_scale,
                    **cell.settings}
        if study.single_shot:
          settings.update(attack_start_round=attack_round,
                          attack_end_round=attack_round)
        settings.update(extra or {})
        out = os.path.join(root, scale, study.name, cell.label)
        settings.update(random_seed=seed, root_output_dir=out,
                        experiment_name=f'seed_{seed}', resume=True)
        if start is not None:
          settings['init_checkpoint'] = os.path.join(start.output_dir,
                                                     'checkpoint.npz')
        runs.append(Run(study.name, cell.label, seed, settings,
                        os.path.join(out, f'seed_{seed}'),
                        start.cell if start else None))
  return list(pretraining.values()) + runs


def command(run: Run) -> list:
  """The binary's command line; a setting of None is left out (the binary's
  default, as a cell that resets its study's setting)."""
  def flag(key, value):
    if isinstance(value, bool):
      return f'--{key}' if value else f'--no{key}'
    return f'--{key}={value}'
  return [sys.executable, '-m', 'targeted_attack.emnist_experiment'] + [
      flag(k, v) for k, v in sorted(run.settings.items()) if v is not None]


# The child: sets PR_SET_PDEATHSIG (SIGTERM when the Ray worker that started
# it dies; Linux), then execs the run's command, which keeps it. No Python runs
# in a forked copy of this process, as it would with a `preexec_fn`: there a
# TensorFlow object's `__del__` crashes the child (TF's runtime does not
# survive a fork).
_EXEC_DYING_WITH_PARENT = (
    'import ctypes, os, signal, sys\n'
    'try:\n'
    '  ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n'
    'except (OSError, AttributeError):\n'
    '  pass\n'
    'os.execv(sys.argv[1], sys.argv[1:])\n')


def execute(run: Run) -> tuple:
  """Runs one cell-seed in its own process; (name, return code, seconds).

  The process ends with its Ray worker (a cancelled task, a stopped sweep):
  it gets SIGTERM, exits cleanly, and resumes from its checkpoint next time.
  """
  os.makedirs(run.output_dir, exist_ok=True)
  started = time.time()
  with open(run.log_path, 'a') as log:
    log.write(f'$ {" ".join(command(run))}\n')
    log.flush()
    code = _run_dying_with_parent(command(run), log, subprocess.STDOUT)
  return run.name, code, time.time() - started


def _run_dying_with_parent(argv: list, stdout, stderr) -> int:
  """`argv` in a child that gets SIGTERM when this process dies; its exit
  code."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run(
      [sys.executable, '-c', _EXEC_DYING_WITH_PARENT, *argv], stdout=stdout,
      stderr=stderr, env=env, check=False).returncode


# A worker stopped by SIGTERM or SIGHUP (its handler's exit code, or the
# signal's): a cancelled task. Any other death is a crash.
_STOPPED_CODES = frozenset(
    c for s in (signal.SIGTERM, signal.SIGHUP) for c in (128 + s, -s))


def _worker_command(batch_path: str) -> list:
  return [sys.executable, '-m', 'targeted_attack.reproduce.cell_worker',
          batch_path]


def execute_batch(runs: Sequence[Run]) -> List[tuple]:
  """Runs `runs` one after another in one process (`cell_worker`); a
  (name, return code, seconds) per run, in order.

  Each run writes to its own log as with `execute`. When the process dies
  before a run has a result (a crash), each run left without one gets a
  process of its own (`execute`), so a run that kills its process fails
  alone. When SIGTERM or SIGHUP stopped it (a cancelled task), the runs
  left are not run (they resume next time).
  """
  if len(runs) == 1:
    return [execute(runs[0])]
  for run in runs:
    os.makedirs(run.output_dir, exist_ok=True)
  scratch = tempfile.mkdtemp(prefix='targeted_attack_batch_')
  try:
    results_path = os.path.join(scratch, 'results.jsonl')
    batch_path = os.path.join(scratch, 'batch.json')
    with open(batch_path, 'w') as f:
      json.dump(dict(results=results_path, runs=[
          dict(name=r.name, log_path=r.log_path, argv=command(r)[3:])
          for r in runs]), f)
    code = _run_dying_with_parent(_worker_command(batch_path),
                                  subprocess.DEVNULL, subprocess.DEVNULL)
    done = {}
    if os.path.exists(results_path):
      with open(results_path) as f:
        for line in f:
          result = json.loads(line)
          done[result['name']] = (result['name'], result['code'],
                                  result['seconds'])
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  stopped_by_signal = code in _STOPPED_CODES
  results = []
  for run in runs:
    if run.name in done:
      results.append(done[run.name])
    elif not stopped_by_signal:
      results.append(execute(run))
  return results


def _batches(runs: Sequence[Run], runs_per_process: int,
             concurrency: int) -> List[List[Run]]:
  """Consecutive runs in batches of at most `runs_per_process`, and of at
  most an equal share of the runs per concurrent task."""
  size = max(1, min(runs_per_process,
                    math.ceil(len(runs) / max(1, concurrency))))
  return [list(runs[i:i + size]) for i in range(0, len(runs), size)]


def _format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  return time.strftime('%H:%M:%S', time.gmtime(max(0.0, seconds)))


def run_all(runs: Sequence[Run], ray_address: Optional[str] = None,
            cpus_per_task: float = 2.0, max_runs: Optional[int] = None,
            stream=sys.stdout, runs_per_process: int = 4) -> List[tuple]:
  """Runs the unfinished `runs` as Ray tasks; returns the failed (run, code).

  Each task runs a batch of up to `runs_per_process` consecutive runs in one
  process (`execute_batch`); 1: each run in a process of its own.

  Without `ray_address`, a local Ray whose processes (GCS, raylet, workers)
  listen on loopback only; with it, Ray joins that cluster, whose servers
  listen beyond this machine (Ray expects a trusted network).

  `max_runs` stops after that many runs have finished (for tests: a sweep
  killed partway; the batch that reaches it finishes).
  """
  if runs_per_process < 1:
    raise ValueError(f'runs_per_process={runs_per_process} must be >= 1')
  import ray  # pylint: disable=g-import-not-at-top
  todo = [r for r in runs if not report_lib.is_finished(r)]
  done = len(runs) - len(todo)
  print(f'{len(runs)} runs, {done} already finished, {len(todo)} to run',
        file=stream, flush=True)
  if not todo:
    return []
  # A Ray already started (the sweep's, for its two phases) is kept.
  started_ray = not ray.is_initialized()
  if started_ray:
    _init_ray(ray_address)
  remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(execute_batch)
  failed = []
  started = time.time()
  by_name = {r.name: r for r in todo}
  try:
    by_ref = {remote.remote(batch): batch for batch in _batches(
        todo, runs_per_process, _concurrency(cpus_per_task))}
    pending = list(by_ref)
    finished_now = 0
    while pending:
      ready, pending = ray.wait(pending, num_returns=1)
      results = ray.get(ready[0])
      left = sum(len(by_ref[ref]) for ref in pending)
      for name, code, seconds in results:
        run = by_name[name]
        finished_now += 1
        done += 1
        rate = (time.time() - started) / finished_now
        eta = rate * left / max(1, min(len(pending), _concurrency(
            cpus_per_task)))
        status = ('ok' if code == 0 else
                  f'FAILED (exit {code}), log: {run.log_path}')
        if code != 0:
          failed.append((run, code))
        print(f'[{done}/{len(runs)}] {name}: {status} in {seconds:.0f}s; '
              f'ETA {_format_eta(eta)}', file=stream, flush=True)
      if max_runs is not None and finished_now >= max_runs:
        for ref in pending:
          ray.cancel(ref, force=True)
        break
  finally:
    if started_ray:
      ray.shutdown()
  return failed


def _concurrency(cpus_per_task: float) -> int:
  return max(1, int((os.cpu_count() or 1) // max(cpus_per_task, 1e-9)))


def sweep(studies: Sequence[studies_lib.Study], scale: str, root: str,
          seeds: Optional[int] = None, ray_address: Optional[str] = None,
          cpus_per_task: float = 2.0, plot_only: bool = False,
          max_runs: Optional[int] = None, extra: Optional[dict] = None,
          stream=sys.stdout, runs_per_process: int = 4,
          results_doc: Optional[str] = None) -> int:
  """Runs (unless `plot_only`) and reports; returns the number failed. With
  `results_doc`, the claims go into that file's generated block too."""
  runs = plan(studies, scale, root, seeds, extra)
  first = [r for r in runs if r.study == PRETRAINING]
  failed_first = []
  keep_ray = bool(first) and not plot_only and not all(
      report_lib.is_finished(r) for r in first)
  if keep_ray:
    # The pretraining runs, before the runs that start from their models,
    # in one Ray session with them. (A failed one fails the runs that start
    # from it, each with its error.)
    _init_ray(ray_address)
  try:
    if first and not plot_only:
      failed_first = run_all(first, ray_address, cpus_per_task, max_runs,
                             stream, runs_per_process)
    return _sweep_cells(studies, [r for r in runs if r.study != PRETRAINING],
                        scale, root, ray_address, cpus_per_task, plot_only,
                        max_runs, stream, runs_per_process, results_doc,
                        failed_first)
  finally:
    if keep_ray:
      import ray  # pylint: disable=g-import-not-at-top
      ray.shutdown()


def _init_ray(ray_address: Optional[str]) -> None:
  """Ray for the sweep: `ray_address`'s cluster, or a local instance whose
  servers listen on loopback only."""
  import ray  # pylint: disable=g-import-not-at-top
  if ray_address:
    ray.init(address=ray_address, log_to_driver=False)
  else:
    ray.init(address='local', num_cpus=max(os.cpu_count() or 1, 1),
             include_dashboard=False, log_to_driver=False,
             _node_ip_address=LOOPBACK)


def _sweep_cells(studies, runs, scale, root, ray_address, cpus_per_task,
                 plot_only, max_runs, stream, runs_per_process, results_doc,
                 failed_first) -> int:
  """`sweep`'s second phase: the studies' own runs, the report."""
  if not plot_only:
    # The definition each run is made under (claims fixed before the runs).
    for study in studies:
      study_runs = [r for r in runs if r.study == study.name]
      registration.record(study, study_runs, [
          r for r in study_runs if not report_lib.is_finished(r)])
  failed = [] if plot_only else run_all(runs, ray_address, cpus_per_task,
                                        max_runs, stream, runs_per_process)
  report_lib.report(studies, runs, root, scale, stream)
  if results_doc:
    with open(os.path.join(root, scale, 'claims.md')) as f:
      report_lib.write_into_document(results_doc, f.read())
  failed = failed_first + failed
  for run, code in failed:
    print(f'failed: {run.name} (exit {code}); log: {run.log_path}',
          file=stream)
  return len(failed)
