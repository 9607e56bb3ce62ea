"""The sweep runner: every cell of every study a valid config at every scale;
a study end to end at `smoke` through Ray, stopped partway and resumed; a
failing cell that fails alone.

Each sweep runs in a child process, as from the command line: Ray's driver
then never shares the test process (and its gRPC threads) with TFF.
"""

import csv
import json
import math
import os
import subprocess
import sys
import time

import psutil
import pytest

from targeted_attack.experiment import config as config_lib
from targeted_attack.data import federated
from targeted_attack.experiment import registry
from targeted_attack.reproduce import report
from targeted_attack.reproduce import runner
from targeted_attack.reproduce import studies as studies_lib

# Run end to end (each run is a process importing TF: ~10 s): the single
# shot with its attack window, on a converged start (a pretraining run).
# Every other study is checked cell by cell as a config, in process (CI runs
# every study end to end).
SMOKE_STUDIES = ('bagdasaryan_replacement',)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(*flags: str) -> list:
  return [sys.executable, '-m', 'targeted_attack.reproduce', '--scale=smoke',
          '--cpus_per_task=1', *flags]


_ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED='0')


def _listening_sockets(process: psutil.Process) -> set:
  """(address, port, name) of every socket that `process` and its
  descendants listen on now."""
  found = set()
  for p in [process] + process.children(recursive=True):
    try:
      for c in p.net_connections(kind='inet'):
        if c.status == psutil.CONN_LISTEN:
          found.add((c.laddr.ip, c.laddr.port, p.name()))
    except psutil.Error:
      continue
  return found


def _sweep_watching_sockets(*flags: str) -> tuple:
  """Runs the sweep binary with `flags` at smoke scale, reading the listening
  sockets of its process tree (Ray's GCS, raylet and workers among them)
  every 0.2 s while it runs: (exit status, every socket seen)."""
  with open(os.devnull, 'w') as devnull:
    child = subprocess.Popen(_command(*flags), cwd=ROOT, env=_ENV,
                             stdout=devnull, stderr=subprocess.PIPE,
                             text=True)
    seen = set()
    process = psutil.Process(child.pid)
    while child.poll() is None:
      seen |= _listening_sockets(process)
      time.sleep(0.2)
    stderr = child.stderr.read()
  assert 'Traceback' not in stderr, stderr[-3000:]
  return child.returncode, seen


def _summary(root, scale, study):
  with open(os.path.join(root, scale, study, 'summary.csv'), newline='') as f:
    return list(csv.DictReader(f))


@pytest.mark.parametrize('scale', list(studies_lib.SCALES))
def test_every_cell_of_every_study_is_a_valid_config(scale, tmp_path):
  runs = runner.plan(list(studies_lib.STUDIES.values()), scale,
                        str(tmp_path))
  cells = [r for r in runs if r.study != runner.PRETRAINING]
  assert len(cells) == studies_lib.SCALES[scale]['seeds'] * sum(
      len(s.cells) for s in studies_lib.STUDIES.values())
  for run in runs:
    config = config_lib.ExperimentConfig(**run.settings)
    registry.validate(config)  # raises ConfigError naming the setting
    assert config.output_dir == run.output_dir


def test_a_converged_start_is_a_clean_run_listed_first_and_shared(tmp_path):
  study = studies_lib.STUDIES['bagdasaryan_replacement']
  bigger = studies_lib.bigger_run(study, 'b_long', 'longer', {},
                                  ('no_defense',))
  runs = runner.plan([study, bigger], 'small', str(tmp_path), seeds=2)
  first = [r for r in runs if r.study == runner.PRETRAINING]
  assert runs[:len(first)] == first
  # One per seed, shared by the study and its bigger run (same settings).
  assert [r.seed for r in first] == [0, 1]
  for run in first:
    assert run.settings['attack'] == run.settings['defense'] == 'none'
    assert run.settings['num_rounds'] == studies_lib.SCALES['small'][
        'pretrain_rounds']
    assert run.settings['random_seed'] == run.seed
  for run in runs[len(first):]:
    start = first[run.seed]
    assert run.settings['init_checkpoint'] == os.path.join(
        start.output_dir, 'checkpoint.npz')
    assert run.pretrained == start.cell
    # The cell's own training settings are the pretraining's.
    for key in ('model', 'dataset', 'num_clients_per_round', 'num_epochs',
                'batch_size', 'synthetic_num_clients'):
      assert run.settings[key] == start.settings[key], key
  # A study without a converged start has none.
  plain = runner.plan([studies_lib.STUDIES['sun_fig1']], 'small',
                      str(tmp_path), seeds=1)
  assert all(r.study != runner.PRETRAINING and
             'init_checkpoint' not in r.settings for r in plain)


def test_each_runs_command_line_parses_to_its_config(tmp_path):
  # What the binary reads from the command line the runner writes is the
  # config the cell states, a setting of None (the binary's default) too.
  from absl import flags  # pylint: disable=g-import-not-at-top
  from targeted_attack import emnist_experiment  # pylint: disable=g-import-not-at-top
  # A cell resetting its study's setting to the binary's default (None).
  resets = studies_lib.Study('resets', 'resets', '', dict(alie_z=1.5), (
      studies_lib.Cell('default_z', dict(attack='alie', alie_z=None)),))
  runs = runner.plan(list(studies_lib.STUDIES.values()) + [resets], 'small',
                     str(tmp_path))
  assert any(v is None for r in runs for v in r.settings.values())
  for run in runs:
    flag_values = flags.FlagValues()
    emnist_experiment.define_flags(flag_values)
    flag_values(['binary'] + runner.command(run)[3:])
    assert (emnist_experiment.config_from_flags(flag_values) ==
            config_lib.ExperimentConfig(**run.settings)), run.name


def _finished_stamps(root) -> dict:
  """name -> the modification time of metrics.csv, of each finished run."""
  return {r.name: os.path.getmtime(os.path.join(r.output_dir, 'metrics.csv'))
          for r in runner.plan([studies_lib.STUDIES[s] for s in SMOKE_STUDIES],
                               'smoke', root) if report.is_finished(r)}


@pytest.fixture(scope='module')
def smoke_sweep(tmp_path_factory):
  """The smoke studies' sweep as a user runs one: stopped partway, then run
  again to its end, one process at a time on any machine (the suite's other
  process has the other CPUs). The first stops once the pretraining run and
  one run of the cells have finished (`--max_runs=1`, a run a process: the
  cells' other runs are queued and cancelled); the second resumes, the
  cells left in one process. (root, the second's exit status, every socket
  either listened on, the runs finished when it stopped with their metrics'
  modification times)."""
  root = str(tmp_path_factory.mktemp('sweep'))
  flags = ('--studies=' + ','.join(SMOKE_STUDIES), f'--root_output_dir={root}',
           f'--cpus_per_task={os.cpu_count()}')
  stopped, seen_stopped = _sweep_watching_sockets(
      *flags, '--max_runs=1', '--runs_per_process=1')
  assert stopped == 0
  interrupted = _finished_stamps(root)
  failed, seen = _sweep_watching_sockets(*flags)
  return root, failed, seen | seen_stopped, interrupted


def test_studies_run_at_smoke_scale_with_figures_and_tables(smoke_sweep):
  root, failed, _, _ = smoke_sweep
  assert failed == 0
  for study in (studies_lib.STUDIES[s] for s in SMOKE_STUDIES):
    directory = os.path.join(root, 'smoke', study.name)
    assert os.path.getsize(os.path.join(directory, 'figure.png')) > 0
    table = _summary(root, 'smoke', study.name)
    assert [r['cell'] for r in table] == [c.label for c in study.cells]
    for row in table:
      assert row['seeds'] == '1'
      assert 0.0 <= float(row['backdoor_final']) <= 1.0
      assert 0.0 <= float(row['main_task_final']) <= 1.0
    with open(os.path.join(directory, 'summary.md')) as f:
      assert study.paper_says in f.read()
    # Each run recorded the definition it ran under; a converged start's
    # cells started from their pretraining run's final model.
    for run in runner.plan([study], 'smoke', root):
      if run.study == runner.PRETRAINING:
        assert report.is_finished(run)
        continue
      assert os.path.exists(os.path.join(run.output_dir, 'definition.json'))
      if study.converged_start:
        with open(os.path.join(run.output_dir, 'config.json')) as f:
          assert json.load(f)['init_checkpoint'] == run.settings[
              'init_checkpoint']
        assert os.path.exists(run.settings['init_checkpoint'])
  with open(os.path.join(root, 'smoke', 'claims.md')) as f:
    claims_text = f.read()
  rows = [line for line in claims_text.split('\n')
          if line.startswith('| bagdasaryan_replacement |')]
  # One seed cannot give an interval: "cannot tell"; the claims were fixed
  # before their runs: not exploratory.
  assert len(rows) == 2, rows
  for row in rows:
    assert row.endswith('| no |') and 'cannot tell' in row, row
    # Beside the verdict, the ratios its translation does not keep.
    assert row.split(' | ')[5] == (
        'η·m/n = 1.0 (the paper: 0.1); the backdoor\'s 7s trained on by '
        '3.3% of the population as honest clients (the paper: held out)'), row
  assert '### bagdasaryan_replacement' in claims_text
  assert 'Definition ' in claims_text
  # Each study's runs say the kernels they ran on (the workers' TensorFlow).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  assert f' on TensorFlow {tf.__version__}, oneDNN ' in claims_text


def test_the_results_document_gets_the_claims_between_its_marks(tmp_path):
  path = tmp_path / 'RESULTS.md'
  path.write_text(f'# Results\nbefore\n{report.BEGIN_MARK}\nold table\n'
                  f'{report.END_MARK}\nafter\n')
  report.write_into_document(str(path), '# Claims\n| new | table |\n')
  assert path.read_text() == (f'# Results\nbefore\n{report.BEGIN_MARK}\n'
                              f'### Claims\n| new | table |\n'
                              f'{report.END_MARK}\nafter\n')
  path.write_text('no marks\n')
  with pytest.raises(ValueError, match='--results_doc'):
    report.write_into_document(str(path), 'x')


def _claims_md(scale, rows, sections, ratios_column=True):
  """A claims.md as `report.claims_document` lays it out (before 0.9.1,
  without `ratios_column`); `rows` are (study, verdict) pairs."""
  if ratios_column:
    table = ['| study | the paper\'s claim | controls | seeds per cell | '
             'measured (mean [90% interval]) | the paper\'s ratios not kept | '
             'verdict | exploratory |', '|---|---|---|---|---|---|---|---|']
    table += [f'| {study} | claim {i} | ok | 5 each | 0.5 | r | {verdict} | '
              'no |' for i, (study, verdict) in enumerate(rows)]
  else:
    table = ['| study | the paper\'s claim | controls | seeds per cell | '
             'measured (mean [90% interval]) | verdict | exploratory |',
             '|---|---|---|---|---|---|---|']
    table += [f'| {study} | claim {i} | ok | 5 each | 0.5 | {verdict} | no |'
              for i, (study, verdict) in enumerate(rows)]
  cells = []
  for study, body in sections:
    cells += [f'### {study}', '', body, '']
  return '\n'.join([f'# Claims at the `{scale}` scale', '', 'tally', ''] +
                   table + ['', '## Every cell', ''] + cells) + '\n'


def _results_doc(claims_text, before='', after=''):
  """A results document holding `claims_text` between the marks, its
  headings two levels down, as `report.write_into_document` writes it."""
  return (f'{before}{report.BEGIN_MARK}\n' + '\n'.join(
      '##' + line if line.startswith('#') else line
      for line in claims_text.split('\n')) + f'\n{report.END_MARK}\n{after}')


def test_the_results_document_is_merged_study_by_study(tmp_path):
  path = tmp_path / 'RESULTS.md'
  old = _claims_md('small', [('a', 'holds'), ('b', 'holds'),
                             ('b', 'cannot tell (control not met: x)')],
                   [('a', 'a old'), ('b', 'b old')])
  path.write_text(_results_doc(old, '# Results\n', 'after\n'))
  # b is run again (one claim now fails), c is new; a is kept as it was.
  report.write_into_document(str(path), _claims_md(
      'small', [('b', 'does not hold'), ('c', 'cannot tell'), ('c', 'holds')],
      [('b', 'b new'), ('c', 'c new')]))
  text = path.read_text()
  block = text[text.index(report.BEGIN_MARK):text.index(report.END_MARK)]
  rows = [line.split(' | ')[0][2:] + ':' + line.split(' | ')[-2]
          for line in block.split('\n') if line.startswith('| ') and
          not line.startswith('| study')]
  assert rows == ['a:holds', 'b:does not hold', 'c:cannot tell', 'c:holds']
  # Counted by hand over the merged rows: 2 hold, 1 not, 1 cannot tell.
  assert '2 hold, 1 do not hold, 1 cannot tell (of 4).' in block
  sections = [line for line in block.split('\n') if line.startswith('#####')]
  assert sections == ['##### a', '##### b', '##### c']
  assert 'a old' in block and 'b new' in block and 'b old' not in block
  assert text.endswith(f'{report.END_MARK}\nafter\n')
  # Another scale replaces the block whole.
  report.write_into_document(str(path), _claims_md(
      'paper', [('c', 'holds')], [('c', 'c paper')]))
  block = path.read_text().split(report.BEGIN_MARK)[1]
  assert 'a old' not in block and '1 hold' not in block
  assert '### Claims at the `paper` scale' in block


def test_a_block_without_the_ratios_column_gets_each_studys_ratios(
    tmp_path):
  # A RESULTS block written before the column: its rows are kept, each
  # given its study's ratios (by hand: `sun_fig1`'s two; a study not defined
  # here, none), beside the verdict.
  path = tmp_path / 'RESULTS.md'
  old = _claims_md('small', [('sun_fig1', 'holds'),
                             ('other', 'does not hold')],
                   [('sun_fig1', 'fig1 body'), ('other', 'other body')],
                   ratios_column=False)
  path.write_text(_results_doc(old))
  report.write_into_document(str(path), _claims_md(
      'small', [('c', 'holds')], [('c', 'c body')]))
  block = path.read_text()
  rows = [line for line in block.split('\n') if line.startswith('| ')]
  assert rows[0].split(' | ')[5] == 'the paper\'s ratios not kept'
  assert rows[1] == (
      '| sun_fig1 | claim 0 | ok | 5 each | 0.5 | target writers 10.0% of '
      'the population (the paper: 0.9%); an unconverged start (the paper: '
      'converged) | holds | no |')
  assert rows[2] == ('| other | claim 1 | ok | 5 each | 0.5 | – | '
                     'does not hold | no |')
  assert rows[3] == '| c | claim 0 | ok | 5 each | 0.5 | r | holds | no |'
  assert '2 hold, 1 do not hold, 0 cannot tell (of 3).' in block
  assert 'fig1 body' in block and 'other body' in block


def test_a_kept_studys_ratios_are_its_definitions_now(tmp_path):
  # The ratios not kept state a definition against its paper (they are not
  # in its hash): a study kept from an older block shows today's, in its
  # row and its section; a study not defined here keeps what it had.
  path = tmp_path / 'RESULTS.md'
  # sun_fig1 had other ratios, sun_fig2 none stated, `matrix` (no ratios
  # now) had some.
  old = _claims_md('small', [('sun_fig1', 'holds'), ('other', 'holds'),
                             ('sun_fig2', 'holds'), ('matrix', 'holds')],
                   [('sun_fig1', 'Definition abc; runs by x.'),
                    ('other', 'other body'),
                    ('sun_fig2', 'Definition def; runs by y.'),
                    ('matrix', 'Definition ghi; runs by z.')])
  for definition in ('abc; runs by x.', 'ghi; runs by z.'):
    old = old.replace(f'Definition {definition}\n',
                      f'Definition {definition}\n\nThe paper\'s ratios not '
                      'kept: an outdated one.\n')
  path.write_text(_results_doc(old))
  report.write_into_document(str(path), _claims_md(
      'small', [('c', 'holds')], [('c', 'c body')]))
  block = path.read_text()
  rows = [line for line in block.split('\n') if line.startswith('| ')]
  assert rows[1].split(' | ')[5] == (
      'target writers 10.0% of the population (the paper: 0.9%); an '
      'unconverged start (the paper: converged)')
  assert rows[2].split(' | ')[5] == 'r'
  lines = block.split('\n')
  at = lines.index('##### sun_fig1')
  assert lines[at:at + 6] == [
      '##### sun_fig1', '', 'Definition abc; runs by x.', '',
      'The paper\'s ratios not kept: target writers 30 of 300 = 10.0% of the '
      'population (the paper: 30 of 3,383 = 0.9%): 11× more honest '
      'counter-examples; the attack starts on an unconverged model (the '
      'paper attacks a converged one).', '']
  at = lines.index('##### sun_fig2')
  assert lines[at + 2:at + 4] == ['Definition def; runs by y.', '']
  assert lines[at + 4].startswith(
      'The paper\'s ratios not kept: target writers 30 of 300 = 10.0%')
  assert lines[at + 4].endswith('(the paper\'s ≈ 50 of 500).')
  assert lines[at + 5] == ''
  at = lines.index('##### matrix')
  assert lines[at:at + 4] == ['##### matrix', '', 'Definition ghi; runs by z.',
                              '']
  assert lines[at + 4] != '' and not lines[at + 4].startswith('The paper')
  assert rows[4].split(' | ')[5] == '–'
  assert 'outdated' not in block and 'other body' in block


def test_the_sweeps_own_claims_merge_beside_another_study(smoke_sweep,
                                                         tmp_path):
  # The format claims_document writes (not a copy of it) merges: a block
  # holding another study keeps it, and a second write changes nothing.
  root, _, _, _ = smoke_sweep
  with open(os.path.join(root, 'smoke', 'claims.md')) as f:
    claims_text = f.read()
  path = tmp_path / 'RESULTS.md'
  path.write_text(f'{report.BEGIN_MARK}\n{report.END_MARK}\n')
  report.write_into_document(str(path), _claims_md(
      'smoke', [('other', 'holds')], [('other', 'other body')]))
  report.write_into_document(str(path), claims_text)
  once = path.read_text()
  report.write_into_document(str(path), claims_text)
  assert path.read_text() == once
  assert 'other body' in once and '##### other' in once
  assert '##### bagdasaryan_replacement' in once
  assert '| other | claim 0 |' in once
  table = once.split('#### Every cell')[0]
  rows = [line for line in table.split('\n')
          if line.startswith('| ') and not line.startswith('| study')]
  holds = sum(' | holds' in row for row in rows)
  assert f'{holds} hold, ' in once and f'(of {len(rows)})' in once


def test_a_local_sweep_listens_on_loopback_only(smoke_sweep):
  _, failed, sockets, _ = smoke_sweep
  assert failed == 0
  names = {name for _, _, name in sockets}
  # Ray's own servers were seen (the check saw the sweep, not an empty tree).
  assert {'gcs_server', 'raylet'} <= names, sockets
  outside = {s for s in sockets
             if s[0] not in ('127.0.0.1', '::ffff:127.0.0.1', '::1')}
  assert not outside, outside


def test_single_shot_replacement_attacks_in_one_round_only(smoke_sweep):
  root, _, _, _ = smoke_sweep
  attack_round = studies_lib.SCALES['smoke']['attack_round']
  path = os.path.join(root, 'smoke', 'bagdasaryan_replacement', 'no_defense',
                      'seed_0', 'metrics.csv')
  with open(path, newline='') as f:
    attacked = [int(r['round']) for r in csv.DictReader(f)
                if int(r['num_attackers']) > 0]
  assert attacked == [attack_round]


def test_interrupted_sweep_resumes_without_recomputing(smoke_sweep):
  # The sweep stopped partway (the fixture) left the pretraining run and
  # one of the cells' runs finished; run again, it ran what was missing and
  # nothing else.
  root, failed, _, interrupted = smoke_sweep
  assert failed == 0
  study = studies_lib.STUDIES['bagdasaryan_replacement']
  runs = runner.plan([study], 'smoke', root)
  pretraining = [r.name for r in runs if r.study == runner.PRETRAINING]
  cells = [r.name for r in runs if r.study != runner.PRETRAINING]
  assert set(pretraining) <= set(interrupted)
  assert len(set(cells) & set(interrupted)) == 1, interrupted
  assert all(report.is_finished(r) for r in runs)
  assert _finished_stamps(root).items() >= interrupted.items()  # not rerun


def _metrics_without_times(run) -> list:
  with open(os.path.join(run.output_dir, 'metrics.csv'), newline='') as f:
    return [{k: v for k, v in row.items() if not k.endswith('_seconds')}
            for row in csv.DictReader(f)]


def test_an_invalid_cell_fails_alone_and_a_batch_runs_as_separate_processes(
    tmp_path):
  # A user's study file: two valid cells around one with a bad setting, run
  # as one batch in one process (the sweep's Ray tasks call execute_batch;
  # Ray itself is exercised by the smoke sweep).
  spec = dict(name='custom', title='a valid and an invalid cell',
              settings=dict(attack='unconstrained', task_num=2),
              cells=[dict(label='valid', settings={}),
                     dict(label='invalid', settings=dict(num_byzantine=-2)),
                     dict(label='clipped', settings=dict(defense='clip',
                                                         norm_bound=0.5))])
  study_file = tmp_path / 'custom.json'
  study_file.write_text(json.dumps(spec))
  study = studies_lib.load_study_file(str(study_file))
  runs = runner.plan([study], 'smoke', str(tmp_path / 'batch'))
  results = runner.execute_batch(runs)
  assert [(name, code) for name, code, _ in results] == [
      (runs[0].name, 0), (runs[1].name, 2), (runs[2].name, 0)]
  valid, invalid, clipped = runs
  assert report.is_finished(valid) and not report.is_finished(invalid)
  assert report.is_finished(clipped)
  with open(invalid.log_path) as f:
    log = f.read()
  assert 'in a batch of 3' in log and 'error: --num_byzantine' in log
  # The run after the failed one, alone in its own process: the same rows.
  alone = runner.plan([study], 'smoke', str(tmp_path / 'alone'))[2]
  name, code, _ = runner.execute(alone)
  assert code == 0, name
  assert _metrics_without_times(alone) == _metrics_without_times(clipped)


def _fake_worker(tmp_path, monkeypatch, signum):
  """A worker that finishes the batch's first run, then dies of `signum`;
  `runner.execute` records the runs given a process of their own."""
  script = tmp_path / 'worker.py'
  script.write_text(
      'import json, os, sys\n'
      'batch = json.load(open(sys.argv[1]))\n'
      'with open(batch["results"], "a") as f:\n'
      '  f.write(json.dumps(dict(name=batch["runs"][0]["name"], code=0, '
      'seconds=1.0)) + "\\n")\n'
      f'os.kill(os.getpid(), {int(signum)})\n')
  monkeypatch.setattr(runner, '_worker_command',
                      lambda path: [sys.executable, str(script), path])
  alone = []
  monkeypatch.setattr(runner, 'execute',
                      lambda run: alone.append(run.name) or (run.name, 0, 2.0))
  runs = [runner.Run('s', f'c{i}', 0, {}, str(tmp_path / f'c{i}'))
          for i in range(3)]
  return runs, alone


def test_runs_left_by_a_crashed_batch_each_get_their_own_process(
    tmp_path, monkeypatch):
  import signal  # pylint: disable=g-import-not-at-top
  runs, alone = _fake_worker(tmp_path, monkeypatch, signal.SIGKILL)
  results = runner.execute_batch(runs)
  assert [r[0] for r in results] == [r.name for r in runs]
  assert results[0][2] == 1.0  # from the batch
  assert alone == [runs[1].name, runs[2].name]


def test_runs_left_by_a_stopped_batch_are_not_run(tmp_path, monkeypatch):
  import signal  # pylint: disable=g-import-not-at-top
  runs, alone = _fake_worker(tmp_path, monkeypatch, signal.SIGTERM)
  assert [r[0] for r in runner.execute_batch(runs)] == [runs[0].name]
  assert not alone


def test_batches_split_the_runs_over_the_concurrent_tasks():
  runs = list(range(10))
  assert runner._batches(runs, 8, 2) == [runs[:5], runs[5:]]
  assert runner._batches(runs, 3, 1) == [runs[:3], runs[3:6], runs[6:9],
                                         runs[9:]]
  assert runner._batches(runs, 1, 4) == [[r] for r in runs]


def test_paper_scale_cell_reads_federated_emnist_from_a_tff_cache(tmp_path):
  # The paper scale's data path, offline: a tiny cache in TFF's own format.
  from targeted_attack import data as data_lib  # pylint: disable=g-import-not-at-top
  from targeted_attack.data import emnist_cache  # pylint: disable=g-import-not-at-top
  digits = federated.load_synthetic(8, 20, seed=5)
  writers = [(f'f{k:04d}', *digits.client_arrays(k),
              *digits.client_arrays(k)) for k in range(digits.num_clients)]
  cache = str(tmp_path / 'cache')
  emnist_cache.write_emnist_cache(cache, writers)
  study = studies_lib.STUDIES['sun_fig4a']
  tiny = dict(emnist_cache_dir=cache, num_rounds=1, model='linear',
              num_clients_per_round=3, num_epochs=1, client_round_num=1,
              task_num=2)
  run = runner.plan([study], 'paper', str(tmp_path / 'out'), seeds=1,
                       extra=tiny)[0]
  assert run.settings['dataset'] == 'emnist'
  name, code, _ = runner.execute(run)
  with open(run.log_path) as f:
    assert code == 0, f.read()[-3000:]
  assert report.is_finished(run), name


def test_set_overrides_parse_and_take_precedence_over_the_cell(tmp_path):
  from targeted_attack.reproduce import __main__ as binary  # pylint: disable=g-import-not-at-top
  extra = binary.parse_settings(['num_rounds=7', 'split_boost=false',
                                 'norm_bound=2.5'])
  assert extra == dict(num_rounds='7', split_boost=False, norm_bound='2.5')
  study = studies_lib.STUDIES['sun_fig4a']   # its cells set norm_bound
  runs = runner.plan([study], 'smoke', str(tmp_path), extra=extra)
  assert {r.settings['norm_bound'] for r in runs} == {'2.5'}
  assert all(r.settings['num_rounds'] == '7' for r in runs)
  assert '--nosplit_boost' in runner.command(runs[0])
  for bad in (['no_such_setting=1'], ['num_rounds'], ['resume=maybe']):
    with pytest.raises(ValueError, match='--set'):
      binary.parse_settings(bad)


def test_a_study_file_must_name_its_cells(tmp_path):
  path = tmp_path / 'bad.json'
  path.write_text(json.dumps(dict(name='x', cells=[dict(settings={})])))
  with pytest.raises(ValueError, match='not a study'):
    studies_lib.load_study_file(str(path))


def test_sun_norm_bounded_studies_keep_the_papers_ratios(tmp_path):
  # Paper: 30 clients per round (β = 30), M = 10 against benign norms < 2.
  # Generated writers' benign norms ≈ 1: M = 5, so M/benign ≈ 5 and the
  # pre-boost radius M/β ≈ 1/6 of the benign norms, as the paper's; at the
  # 'paper' scale, the paper's M itself.
  for name, translated, literal in (('sun_fig2', 5.0, 10.0),
                                    ('sun_fig3', 5.0, 10.0),
                                    ('sun_fig4b', 2.5, 5.0)):
    study = studies_lib.STUDIES[name]
    for scale, bound in (('small', translated), ('paper', literal)):
      for run in runner.plan([study], scale, str(tmp_path)):
        assert run.settings['num_clients_per_round'] == 30, (name, scale)
        assert run.settings['norm_bound'] == bound, (name, scale)
        if name == 'sun_fig4b':
          assert run.settings['l2_norm_clip'] == bound


def test_a_semantic_backdoor_on_the_digits_states_its_writers_share(
    tmp_path):
  # Sun et al.'s semantic backdoor: the 7s of task_num of the 300 generated
  # writers, who also train on them honestly; Bagdasaryan et al. keep their
  # backdoor images away from honest clients: a ratio not kept, stated with
  # the run's own task_num, and not on CIFAR-10 (another backdoor).
  for name, cell in (('bagdasaryan_replacement', 'no_defense'),
                     ('nguyen_flame', 'constrain_and_scale')):
    config = config_lib.ExperimentConfig(**_cells(name, tmp_path)[cell])
    assert config.backdoor == 'semantic'
    writers = config.task_num
    stated = [r.text for r in studies_lib.STUDIES[name].ratios_not_kept
              if f' {writers} of 300 generated writers ' in r.text]
    assert len(stated) == 1, name
    assert f'({100 * writers / 300:.1f}% of the population)' in stated[0]
  variant = studies_lib.STUDIES['nguyen_flame_cifar10']
  assert not any('generated writers' in r.text
                 for r in variant.ratios_not_kept)


def _cells(name, tmp_path, scale='small'):
  """{cell: settings} of study `name` at `scale`, seed 0."""
  return {r.cell: r.settings for r in runner.plan(
      [studies_lib.STUDIES[name]], scale, str(tmp_path), seeds=1)
          if r.study != runner.PRETRAINING}


def test_method_studies_keep_their_papers_threat_models(tmp_path):
  # FedSGD (one local step, every client every round) with a fixed count of
  # attackers in every round, and each rule's f the attackers' count.
  for name, shares in (('baruch_alie', {'alie_krum': 0.2}),
                       ('xie_ipm', {'ipm_0.1_krum': 0.3,
                                    'ipm_100_median': 0.4}),
                       ('cao_fltrust', {'ipm__krum': 0.2})):
    for cell, settings in _cells(name, tmp_path).items():
      assert settings['local_steps'] == 1, (name, cell)
      assert settings['num_clients_per_round'] == settings[
          'synthetic_num_clients'], (name, cell)
      assert settings['attacker_model'] == 'forced_pool', (name, cell)
      if settings.get('defense') in ('krum', 'bulyan'):
        assert settings['num_byzantine'] == settings['attacker_pool_size']
      if settings.get('defense') == 'bulyan':
        assert settings['num_clients_per_round'] >= (
            4 * settings['num_byzantine'] + 3)
    for cell, share in shares.items():
      settings = _cells(name, tmp_path)[cell]
      assert settings['attacker_pool_size'] == share * settings[
          'num_clients_per_round'], (name, cell)
  foolsgold = _cells('fung_foolsgold', tmp_path)
  for cell in ('fedavg_1_sybils', 'foolsgold_2_sybils'):
    settings = foolsgold[cell]
    assert settings['local_steps'] == 1
    assert settings['attacker_model'] == 'forced_pool'
    assert settings['num_clients_per_round'] == 10 + settings[
        'attacker_pool_size']
    assert settings['poison_per_batch'] == settings['batch_size']
  # DBA's centralized baseline is one attacker; its distributed attack four.
  dba = _cells('xie_dba', tmp_path)
  assert dba['centralized']['attacker_pool_size'] == 1
  assert dba['dba_4_parts']['attacker_pool_size'] == 4
  # RLR: one base class poisoned, local momentum 0.9.
  rlr = _cells('ozdayi_rlr', tmp_path)['rlr']
  assert rlr['trigger_source_class'] not in (-1, 1)
  assert rlr['client_momentum'] == 0.9
  # Neurotoxin: the authors' 13× learning rate is a cell beside the equal-rate
  # comparison.
  neurotoxin = _cells('zhang_neurotoxin', tmp_path)
  assert neurotoxin['neurotoxin_top5pct_lr_13x'][
      'attacker_learning_rate'] == pytest.approx(
          13 * config_lib.ExperimentConfig().attacker_learning_rate)
  assert 'attacker_learning_rate' not in neurotoxin['no_mask']
  # Wang et al.: one attack in ten rounds; on a trained model.
  for settings in _cells('tails_krum', tmp_path).values():
    if settings['attack'] != 'none':
      assert settings['attack_freq'] == 10
    assert settings['init_checkpoint'].endswith('checkpoint.npz')
  # Sun et al. Fig. 4a: 30 clients a round, as Figs. 2, 3 and 4b.
  assert {s['num_clients_per_round']
          for s in _cells('sun_fig4a', tmp_path).values()} == {30}
  # Bagdasaryan et al. on CIFAR-10: a single shot on a trained model, scaled
  # by γ = n/η, c/B ≈ 20/64 of each batch poisoned, green cars → bird.
  for scale in ('small', 'paper'):
    replacement = _cells('bagdasaryan_cifar_semantic', tmp_path,
                         scale)['no_defense']
    assert replacement['poison_boost_factor'] == (
        replacement['num_clients_per_round'] /
        replacement.get('server_learning_rate', 1.0))
    assert abs(replacement['poison_per_batch'] / replacement['batch_size'] -
               20 / 64) < 0.02
    assert replacement['attack_start_round'] == replacement[
        'attack_end_round']
    assert replacement['init_checkpoint'].endswith('checkpoint.npz')
    assert replacement['poison_label'] == 2
    assert replacement['dataset'] == ('cifar10' if scale == 'paper' else
                                      'synthetic_cifar10')
  # Wang et al. on CIFAR-10: Southwest → truck once in ten rounds, trained
  # model; VGG-9 on CIFAR-10 at the paper scale.
  for scale in ('small', 'paper'):
    for settings in _cells('wang_southwest', tmp_path, scale).values():
      assert settings['backdoor'] == 'southwest'
      if settings['attack'] != 'none':
        assert settings['attack_freq'] == 10
      assert settings['init_checkpoint'].endswith('checkpoint.npz')
      if scale == 'paper':
        assert settings['model'] == 'vgg9'


def test_summary_is_recomputed_from_each_seeds_metrics(tmp_path):
  # Two cells × 2 seeds of hand-written metrics.csv files (smoke: 3 rounds,
  # the 2nd not evaluated); one seed of cell b unfinished. The summary must
  # be NumPy's mean / sample std (ddof 1) over the finished seeds of, and
  # each seed's value of: the last evaluated row, its cumulative mean, the
  # highest backdoor accuracy and the main task at its round; and the mean
  # over attack rounds of the detection rates.
  import numpy as np  # pylint: disable=g-import-not-at-top
  study = studies_lib.Study('hand', 'hand', 'hand', {}, (
      studies_lib.Cell('a', {}), studies_lib.Cell('b', {})))
  runs = runner.plan([study], 'smoke', str(tmp_path), seeds=2)
  rng = np.random.RandomState(0)
  written = {}
  for run in runs:
    rounds = 2 if (run.cell, run.seed) == ('b', 1) else 3
    rows = []
    for t in range(1, rounds + 1):
      evaluated = t != 2
      rows.append(dict(
          round=t, attacked=int(t != 1), num_attackers=int(t != 1),
          main_task_accuracy=round(rng.rand(), 4) if evaluated else '',
          backdoor_accuracy=round(rng.rand(), 4) if evaluated else '',
          backdoor_accuracy_cumulative_mean=round(rng.rand(), 4)
          if evaluated else '',
          detection_tpr=round(rng.rand(), 4),
          detection_fpr=round(rng.rand(), 4)))
    os.makedirs(run.output_dir)
    with open(os.path.join(run.output_dir, 'metrics.csv'), 'w',
              newline='') as f:
      writer = csv.DictWriter(f, fieldnames=list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)
    written[(run.cell, run.seed)] = rows
  table = {row['cell']: row for row in report.summarize(study, runs)}
  for cell, seeds in (('a', (0, 1)), ('b', (0,))):
    finished = [written[(cell, s)] for s in seeds]
    last = [rows[-1] for rows in finished]
    row = table[cell]
    assert row['seeds'] == len(seeds)
    for key, values in (
        ('backdoor_final', [r['backdoor_accuracy'] for r in last]),
        ('main_task_final', [r['main_task_accuracy'] for r in last]),
        ('backdoor_cumulative_mean',
         [r['backdoor_accuracy_cumulative_mean'] for r in last]),
        ('backdoor_max', [max(r['backdoor_accuracy'] for r in rows
                              if r['backdoor_accuracy'] != '')
                          for rows in finished]),
        ('main_task_at_backdoor_max', [
            max((r for r in rows if r['backdoor_accuracy'] != ''),
                key=lambda r: r['backdoor_accuracy'])['main_task_accuracy']
            for rows in finished])):
      assert row[key] == pytest.approx(np.mean(values)), (cell, key)
      assert row['per_seed'][key] == pytest.approx(
          dict(zip(seeds, values))), (cell, key)
      if len(values) > 1:
        assert row[key + '_std'] == pytest.approx(np.std(values, ddof=1))
      else:
        assert math.isnan(row[key + '_std'])
    for key in ('detection_tpr', 'detection_fpr'):
      per_seed = [np.mean([r[key] for r in rows if r['num_attackers']])
                  for rows in finished]
      assert row[key] == pytest.approx(np.mean(per_seed)), (cell, key)


def test_summary_durability_counts_rounds_above_the_threshold(tmp_path):
  # Attacks in rounds 1–3, threshold 0.5 (the default): the backdoor first
  # below it in round 6 (seed 0: 6 − 3 = 3 rounds) and round 4 (seed 1: 1);
  # cell b never falls below it in 8 rounds (8 − 3 = 5, a lower bound); cell
  # c has no attack (NaN).
  import numpy as np  # pylint: disable=g-import-not-at-top
  study = studies_lib.Study('hand', 'hand', 'hand', {}, tuple(
      studies_lib.Cell(label, {}) for label in 'abc'))
  runs = runner.plan([study], 'smoke', str(tmp_path), seeds=2)
  series = {('a', 0): [.9, .9, .9, .8, .6, .4, .3, .2],
            ('a', 1): [.9, .9, .9, .45, .6, .6, .6, .6],
            ('b', 0): [.9] * 8, ('b', 1): [.9] * 8,
            ('c', 0): [.9] * 8, ('c', 1): [.9] * 8}
  for run in runs:
    run.settings['num_rounds'] = 8
    os.makedirs(run.output_dir)
    with open(os.path.join(run.output_dir, 'metrics.csv'), 'w',
              newline='') as f:
      writer = csv.writer(f)
      writer.writerow(['round', 'attacked', 'num_attackers',
                       'main_task_accuracy',
                       'backdoor_accuracy',
                       'backdoor_accuracy_cumulative_mean'])
      for t, value in enumerate(series[(run.cell, run.seed)], start=1):
        attacked = int(run.cell != 'c' and t <= 3)
        writer.writerow([t, attacked, attacked, 0.9, value, value])
  table = {row['cell']: row for row in report.summarize(study, runs)}
  assert table['a']['durability_rounds'] == pytest.approx(np.mean([3, 1]))
  assert table['a']['durability_rounds_std'] == pytest.approx(
      np.std([3, 1], ddof=1))
  assert table['a']['censored']['durability_rounds'] == {0: False, 1: False}
  assert table['b']['durability_rounds'] == 5
  # b lasted to the end: censored, its durability at least 5.
  assert table['b']['censored']['durability_rounds'] == {0: True, 1: True}
  assert math.isnan(table['c']['durability_rounds'])


def test_a_runs_process_ends_with_the_process_that_started_it(tmp_path):
  # runner.execute's wrapper: PR_SET_PDEATHSIG, then exec. A parent starts
  # `sleep 60` through it and exits at once: the sleep must get SIGTERM.
  import time  # pylint: disable=g-import-not-at-top
  import psutil  # pylint: disable=g-import-not-at-top
  parent = subprocess.run(
      [sys.executable, '-c',
       'import subprocess, sys\n'
       'from targeted_attack.reproduce import runner\n'
       'child = subprocess.Popen([sys.executable, "-c", '
       'runner._EXEC_DYING_WITH_PARENT, "/bin/sleep", "60"])\n'
       'print(child.pid, flush=True)\n'
       'import time; time.sleep(1)\n'],
      capture_output=True, text=True, cwd=ROOT, timeout=60)
  pid = int(parent.stdout.split()[0])
  deadline = time.time() + 10
  while time.time() < deadline:
    if not psutil.pid_exists(pid) or psutil.Process(pid).status() == (
        psutil.STATUS_ZOMBIE):
      break
    time.sleep(0.1)
  else:
    os.kill(pid, 9)
    pytest.fail('the run outlived the process that started it')
