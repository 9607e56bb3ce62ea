"""The sweep runner: every cell of every study a valid config at every scale;
two studies end to end at `smoke` through Ray; resume; a failing cell that
fails alone.

Each sweep runs in a child process, as from the command line: Ray's driver
then never shares the test process (and its gRPC threads) with TFF.
"""

import csv
import os
import subprocess
import sys

import pytest

from targeted_attack import config as config_lib
from targeted_attack import reproduce
import sweep_studies

# Run end to end (each run is a process importing TF: ~10 s): the attacker
# models of Fig. 1, and the single shot with its attack window. Every other
# study is checked cell by cell as a config, in process.
SMOKE_STUDIES = ('sun_fig1', 'bagdasaryan_replacement')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sweep(code: str) -> int:
  """Runs `code` (which calls reproduce.sweep) in a child; its return value."""
  program = ('import sys\nsys.path.insert(0, "tests")\n'
             'from targeted_attack import reproduce\nimport sweep_studies\n'
             f'sys.exit({code})')
  result = subprocess.run([sys.executable, '-c', program], cwd=ROOT,
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, RAY_USAGE_STATS_ENABLED='0'))
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  return result.returncode


def _summary(root, scale, study):
  with open(os.path.join(root, scale, study, 'summary.csv'), newline='') as f:
    return list(csv.DictReader(f))


@pytest.mark.parametrize('scale', list(reproduce.SCALES))
def test_every_cell_of_every_study_is_a_valid_config(scale, tmp_path):
  runs = reproduce.plan(list(reproduce.STUDIES.values()), scale,
                        str(tmp_path))
  assert len(runs) == reproduce.SCALES[scale]['seeds'] * sum(
      len(s.cells) for s in reproduce.STUDIES.values())
  for run in runs:
    config = config_lib.ExperimentConfig(**run.settings)
    config_lib.validate(config)  # raises ConfigError naming the setting
    assert config.output_dir == run.output_dir


@pytest.fixture(scope='module')
def smoke_sweep(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('sweep'))
  studies = ', '.join(f'reproduce.STUDIES[{s!r}]' for s in SMOKE_STUDIES)
  failed = _sweep(f"reproduce.sweep([{studies}], 'smoke', {root!r}, "
                  'cpus_per_task=1)')
  return root, failed


def test_studies_run_at_smoke_scale_with_figures_and_tables(smoke_sweep):
  root, failed = smoke_sweep
  assert failed == 0
  for study in (reproduce.STUDIES[s] for s in SMOKE_STUDIES):
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


def test_single_shot_replacement_attacks_in_one_round_only(smoke_sweep):
  root, _ = smoke_sweep
  attack_round = reproduce.SCALES['smoke']['attack_round']
  path = os.path.join(root, 'smoke', 'bagdasaryan_replacement', 'no_defense',
                      'seed_0', 'metrics.csv')
  with open(path, newline='') as f:
    attacked = [int(r['round']) for r in csv.DictReader(f)
                if int(r['num_attackers']) > 0]
  assert attacked == [attack_round]


def test_interrupted_sweep_resumes_without_recomputing(smoke_sweep, tmp_path):
  reference_root, _ = smoke_sweep
  study = reproduce.STUDIES['bagdasaryan_replacement']  # 2 cells: the cheapest
  root = str(tmp_path)
  call = ("reproduce.sweep([reproduce.STUDIES['bagdasaryan_replacement']], "
          f"'smoke', {root!r}, cpus_per_task=1")
  assert _sweep(call + ', max_runs=1)') == 0
  runs = reproduce.plan([study], 'smoke', root)
  finished = [r for r in runs if reproduce.is_finished(r)]
  assert len(finished) >= 1
  stamps = {r.name: os.path.getmtime(os.path.join(r.output_dir, 'metrics.csv'))
            for r in finished}
  assert _sweep(call + ')') == 0
  for r in finished:  # not recomputed
    assert os.path.getmtime(os.path.join(r.output_dir, 'metrics.csv')) == (
        stamps[r.name])
  assert all(reproduce.is_finished(r) for r in runs)
  # The same numbers as the uninterrupted sweep (runs are deterministic).
  assert _summary(root, 'smoke', 'bagdasaryan_replacement') == _summary(
      reference_root, 'smoke', 'bagdasaryan_replacement')


def test_an_invalid_cell_fails_alone_with_the_flag_error_in_its_log(tmp_path):
  study = sweep_studies.VALID_AND_INVALID
  failed = _sweep('reproduce.sweep([sweep_studies.VALID_AND_INVALID], '
                  f"'smoke', {str(tmp_path)!r}, cpus_per_task=1)")
  assert failed == 1
  runs = reproduce.plan([study], 'smoke', str(tmp_path))
  valid, invalid = runs
  assert reproduce.is_finished(valid) and not reproduce.is_finished(invalid)
  with open(invalid.log_path) as f:
    assert 'error: --num_byzantine' in f.read()


def test_paper_scale_cell_reads_federated_emnist_from_a_tff_cache(tmp_path):
  # The paper scale's data path, offline: a tiny cache in TFF's own format.
  from targeted_attack import data as data_lib  # pylint: disable=g-import-not-at-top
  from targeted_attack import emnist_cache  # pylint: disable=g-import-not-at-top
  digits = data_lib.load_synthetic(8, 20, seed=5)
  writers = [(f'f{k:04d}', *digits.client_arrays(k),
              *digits.client_arrays(k)) for k in range(digits.num_clients)]
  cache = str(tmp_path / 'cache')
  emnist_cache.write_emnist_cache(cache, writers)
  study = reproduce.STUDIES['sun_fig4a']
  tiny = dict(emnist_cache_dir=cache, num_rounds=1, model='linear',
              num_clients_per_round=3, num_epochs=1, client_round_num=1,
              task_num=2)
  run = reproduce.plan([study], 'paper', str(tmp_path / 'out'), seeds=1,
                       extra=tiny)[0]
  assert run.settings['dataset'] == 'emnist'
  name, code, _ = reproduce.execute(run)
  with open(run.log_path) as f:
    assert code == 0, f.read()[-3000:]
  assert reproduce.is_finished(run), name
