"""The sweep runner: every cell-seed of the studies a Ray task running the
experiment binary in its own process.

A run is finished when its metrics.csv holds every round; finished runs are
skipped, an interrupted one resumes from its checkpoint (`--resume`). A failed
run is reported with its log and does not stop the others.
"""

import dataclasses
import math
import os
import subprocess
import sys
import time
from typing import List, Optional, Sequence

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

  @property
  def log_path(self) -> str:
    return os.path.join(self.output_dir, 'log.txt')

  @property
  def name(self) -> str:
    return f'{self.study}/{self.cell}/seed_{self.seed}'


def plan(studies: Sequence[studies_lib.Study], scale: str, root: str,
         seeds: Optional[int] = None, extra: Optional[dict] = None
        ) -> List[Run]:
  """Every cell-seed of `studies` at `scale`, as settings of the binary.

  Precedence: the scale's table, then the study's settings (at the 'paper'
  scale, its `paper_scale_settings` over them), then the cell's, then
  `extra`.
  """
  overrides = dict(studies_lib.SCALES[scale])
  num_seeds = seeds or overrides['seeds']
  attack_round = overrides['attack_round']
  for key in studies_lib.SWEEP_KEYS:
    overrides.pop(key)
  runs = []
  # Seed by seed, so that a partial sweep has every cell at least once.
  for seed in range(num_seeds):
    for study in studies:
      for cell in study.cells:
        at_paper_scale = study.paper_scale_settings if scale == 'paper' else {}
        settings = {**overrides, **study.settings, **at_paper_scale,
                    **cell.settings}
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
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  started = time.time()
  with open(run.log_path, 'a') as log:
    log.write(f'$ {" ".join(command(run))}\n')
    log.flush()
    code = subprocess.run(
        [sys.executable, '-c', _EXEC_DYING_WITH_PARENT, *command(run)],
        stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
  return run.name, code, time.time() - started


def _format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  return time.strftime('%H:%M:%S', time.gmtime(max(0.0, seconds)))


def run_all(runs: Sequence[Run], ray_address: Optional[str] = None,
            cpus_per_task: float = 2.0, max_runs: Optional[int] = None,
            stream=sys.stdout) -> List[tuple]:
  """Runs the unfinished `runs` as Ray tasks; returns the failed (run, code).

  Without `ray_address`, a local Ray whose processes (GCS, raylet, workers)
  listen on loopback only; with it, Ray joins that cluster, whose servers
  listen beyond this machine (Ray expects a trusted network).

  `max_runs` stops after that many runs have finished (for tests: a sweep
  killed partway).
  """
  import ray  # pylint: disable=g-import-not-at-top
  todo = [r for r in runs if not report_lib.is_finished(r)]
  done = len(runs) - len(todo)
  print(f'{len(runs)} runs, {done} already finished, {len(todo)} to run',
        file=stream, flush=True)
  if not todo:
    return []
  if ray_address:
    ray.init(address=ray_address, log_to_driver=False)
  else:
    # Ray's servers are unauthenticated: a local sweep's listen on loopback.
    ray.init(address='local', num_cpus=max(os.cpu_count() or 1, 1),
             include_dashboard=False, log_to_driver=False,
             _node_ip_address=LOOPBACK)
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


def sweep(studies: Sequence[studies_lib.Study], scale: str, root: str,
          seeds: Optional[int] = None, ray_address: Optional[str] = None,
          cpus_per_task: float = 2.0, plot_only: bool = False,
          max_runs: Optional[int] = None, extra: Optional[dict] = None,
          stream=sys.stdout) -> int:
  """Runs (unless `plot_only`) and reports; returns the number failed."""
  runs = plan(studies, scale, root, seeds, extra)
  failed = [] if plot_only else run_all(runs, ray_address, cpus_per_task,
                                        max_runs, stream)
  report_lib.report(studies, runs, root, scale, stream)
  for run, code in failed:
    print(f'failed: {run.name} (exit {code}); log: {run.log_path}',
          file=stream)
  return len(failed)
