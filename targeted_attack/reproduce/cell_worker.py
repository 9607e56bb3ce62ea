r"""Several runs of a sweep in one process, one after another.

  python -m targeted_attack.reproduce.cell_worker BATCH.json

BATCH.json lists runs as {"name", "log_path", "argv"} (argv: the experiment
binary's flags). Each run's output (Python's and TensorFlow's, fds 1 and 2)
goes to its own log, as if it had its own process; its exit code and seconds
are appended, one JSON line per run, to BATCH.json's `results` path as the
run ends. TensorFlow's and TFF's import, and the conversion of functions
that runs share, are paid once per batch instead of once per run.

A run that raises is written to its log with its traceback and the next run
starts; a run that kills the process (a crash, SIGKILL) leaves the runs after
it without a result, and the runner gives each of them a process of its own
(`runner.execute_batch`). SIGTERM and SIGHUP end the batch after the current
run's checkpoint (the runs resume next time).
"""

import json
import os
import sys
import time
import traceback


def _run_one(argv) -> int:
  """The experiment binary's `main` on `argv` with fresh flag values."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from targeted_attack import emnist_experiment  # pylint: disable=g-import-not-at-top
  values = flags.FlagValues()
  emnist_experiment.define_flags(values)
  try:
    values(['binary'] + list(argv))
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return emnist_experiment.main(['binary'], flag_values=values)


class _LogRedirect:
  """fds 1 and 2 (and sys.stdout/err) to `path`, appended, until exit."""

  def __init__(self, path: str):
    self._path = path

  def __enter__(self):
    sys.stdout.flush()
    sys.stderr.flush()
    self._saved = (os.dup(1), os.dup(2))
    self._log = open(self._path, 'a')
    os.dup2(self._log.fileno(), 1)
    os.dup2(self._log.fileno(), 2)
    return self._log

  def __exit__(self, *exc):
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(self._saved[0], 1)
    os.dup2(self._saved[1], 2)
    for fd in self._saved:
      os.close(fd)
    self._log.close()
    return False


def run_batch(batch: dict) -> int:
  """Runs `batch['runs']` in order; 0, or 128 + signal when one stopped it."""
  import targeted_attack  # pylint: disable=g-import-not-at-top,unused-import  # Keras 2 first
  from targeted_attack import runtime  # pylint: disable=g-import-not-at-top
  runtime.install_signal_handlers()
  for run in batch['runs']:
    started = time.time()
    stopped = None
    with _LogRedirect(run['log_path']) as log:
      log.write(f'$ (in a batch of {len(batch["runs"])}) '
                f'targeted_attack.emnist_experiment {" ".join(run["argv"])}\n')
      log.flush()
      try:
        code = _run_one(run['argv'])
      except SystemExit as e:  # SIGTERM / SIGHUP, or absl's exit
        code = e.code if isinstance(e.code, int) else 1
        stopped = code if code >= 128 else None
      except Exception:  # pylint: disable=broad-except
        traceback.print_exc()
        code = 1
    with open(batch['results'], 'a') as results:
      results.write(json.dumps(dict(name=run['name'], code=code,
                                    seconds=time.time() - started)) + '\n')
    if stopped is not None:
      return stopped
  return 0


def main(argv) -> int:
  if len(argv) != 2:
    print('usage: python -m targeted_attack.reproduce.cell_worker BATCH.json',
          file=sys.stderr)
    return 2
  with open(argv[1]) as f:
    return run_batch(json.load(f))


if __name__ == '__main__':
  sys.exit(main(sys.argv))
