"""The sweep binary: `python -m targeted_attack.reproduce` (see the package
docstring). Exit status: the number of failed runs (at most 100); 2 for a
bad flag."""

import sys
import typing

from absl import app
from absl import flags

from targeted_attack.experiment import config as config_lib
from targeted_attack.reproduce import report as report_lib
from targeted_attack.reproduce import runner
from targeted_attack.reproduce import studies as studies_lib


def define_flags() -> None:
  """The binary's flags (defined only when run as a program)."""
  flags.DEFINE_list('studies', studies_lib.default_studies(),
                    'Studies to run: ' + ', '.join(studies_lib.STUDIES) +
                    ' (default: all but ' + ', '.join(
                        s.name for s in studies_lib.STUDIES.values()
                        if not s.default) + ').')
  flags.DEFINE_multi_string('study_file', [], 'A study of your own, as a '
                            'JSON file: {"name", "title", "paper_says", '
                            '"settings", "cells": [{"label", "settings"}]}; '
                            'run with --studies (unless listed there).')
  flags.DEFINE_enum('scale', 'small', list(studies_lib.SCALES),
                    'smoke: CI-sized; small: the generated writers; main: '
                    'the main job\'s setting (the README\'s tables); paper: '
                    'federated EMNIST at the paper\'s settings.')
  flags.DEFINE_multi_string('set', [], 'key=value: a setting of the '
                            'experiment binary for every run, over the '
                            'scale\'s, the study\'s and the cell\'s.')
  flags.DEFINE_string('root_output_dir', 'runs/reproduce', 'Where runs, '
                      'figures and tables go.')
  flags.DEFINE_integer('seeds', None, 'Seeds per cell (default: the scale\'s).')
  flags.DEFINE_string('ray_address', None, 'Ray cluster address (auto or '
                      'host:port); default: a local Ray instance.')
  flags.DEFINE_float('cpus_per_task', 2.0, 'CPUs each run asks Ray for.')
  flags.DEFINE_integer('runs_per_process', 4, 'Runs each Ray task runs one '
                       'after another in one process (TensorFlow imported '
                       'once); 1: a process per run. A run that crashes its '
                       'process is rerun alone, and fails alone.',
                       lower_bound=1)
  flags.DEFINE_bool('plot_only', False, 'Redraw figures and tables from what '
                    'exists; run nothing.')
  flags.DEFINE_integer('max_runs', None, 'Stop after this many runs finish '
                       '(the rest resume on the next invocation).')
  flags.DEFINE_string('results_doc', None, 'A Markdown file (e.g. '
                      'docs/RESULTS.md) whose generated claims block (between '
                      '<!-- claims:begin … --> and <!-- claims:end -->) gets '
                      'the claims.md written, merged by study: the studies '
                      'reported replace their own rows, the block keeps the '
                      'others (of the same scale).')
  flags.DEFINE_string('emnist_cache_dir', None, 'paper scale: the directory '
                      'holding TFF\'s emnist_all.sqlite.')


def parse_settings(pairs) -> dict:
  """{setting: value} from 'key=value' strings; ValueError naming a bad one.

  Booleans take true/false (or 1/0); other values go to the binary as
  written, which checks them.
  """
  fields = {f.name: f for f in config_lib.fields()}
  settings = {}
  for pair in pairs:
    key, sep, value = pair.partition('=')
    if not sep or key not in fields:
      raise ValueError(f'--set {pair!r}: expected key=value with key a '
                       'setting of the experiment binary (see its --help)')
    if typing.get_args(fields[key].type) or fields[key].type is not bool:
      settings[key] = value
    elif value.lower() in ('true', '1'):
      settings[key] = True
    elif value.lower() in ('false', '0'):
      settings[key] = False
    else:
      raise ValueError(f'--set {pair!r}: {key} takes true or false')
  return settings


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  known = dict(studies_lib.STUDIES)
  try:
    own = [studies_lib.load_study_file(p) for p in FLAGS.study_file]
    extra = parse_settings(FLAGS.set)
  except (OSError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  known.update((s.name, s) for s in own)
  names = FLAGS.studies
  if own and not FLAGS['studies'].present:
    names = [s.name for s in own]
  unknown = [s for s in names if s not in known]
  if unknown:
    print(f'error: --studies: unknown {", ".join(unknown)}; allowed: '
          f'{", ".join(known)}', file=sys.stderr)
    return 2
  if FLAGS.seeds is not None and FLAGS.seeds < 1:
    print(f'error: --seeds={FLAGS.seeds} must be >= 1', file=sys.stderr)
    return 2
  if FLAGS.results_doc:
    try:
      with open(FLAGS.results_doc) as f:
        text = f.read()
    except OSError as e:
      print(f'error: --results_doc: {e}', file=sys.stderr)
      return 2
    if report_lib.BEGIN_MARK not in text or report_lib.END_MARK not in text:
      print(f'error: --results_doc={FLAGS.results_doc} has no '
            f'{report_lib.BEGIN_MARK} … {report_lib.END_MARK} block',
            file=sys.stderr)
      return 2
  if FLAGS.emnist_cache_dir:
    extra.setdefault('emnist_cache_dir', FLAGS.emnist_cache_dir)
  failed = runner.sweep([known[s] for s in names], FLAGS.scale,
                        FLAGS.root_output_dir, FLAGS.seeds, FLAGS.ray_address,
                        FLAGS.cpus_per_task, FLAGS.plot_only, FLAGS.max_runs,
                        extra, runs_per_process=FLAGS.runs_per_process,
                        results_doc=FLAGS.results_doc)
  return min(failed, 100)


def run_main():
  """The console script `targeted-attack-reproduce`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run_main()
