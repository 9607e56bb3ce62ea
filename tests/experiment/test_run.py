"""The experiment loop and binary on a tiny synthetic configuration."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from targeted_attack.experiment import config as config_lib
from targeted_attack.data import federated
from targeted_attack.experiment import outputs
from targeted_attack.experiment import build
from targeted_attack.experiment import run as run_lib
from targeted_attack.data import sampling
import reference
import builders
from builders import tiny_config as tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(config):
  with open(os.path.join(config.output_dir, 'metrics.csv'), newline='') as f:
    return list(csv.DictReader(f))


def test_run_writes_config_metrics_tensorboard_checkpoint_and_plot(tmp_path):
  config = tiny(tmp_path)
  run_lib.run(config, progress=False)
  out = config.output_dir
  for name in ('config.json', 'metrics.csv', 'checkpoint.npz', 'plot.png'):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  assert any(f.startswith('events') for f in
             os.listdir(os.path.join(out, 'tensorboard')))
  rows = _rows(config)
  assert [int(r['round']) for r in rows] == [1, 2, 3, 4]
  for column in outputs.METRIC_COLUMNS:
    assert column in rows[0], column
  # Fixed frequency 2: attacks in rounds 2 and 4, one attacker each.
  assert [int(r['num_attackers']) for r in rows] == [0, 1, 0, 1]
  assert float(rows[1]['malicious_update_norm_max']) > 0
  assert float(rows[0]['malicious_update_norm_max']) == 0
  assert float(rows[1]['malicious_boost_share']) == 1.0
  history = [float(r['backdoor_accuracy']) for r in rows]
  np.testing.assert_allclose(
      [float(r['backdoor_accuracy_cumulative_mean']) for r in rows],
      np.cumsum(history) / np.arange(1, 5), rtol=1e-6)
  for r in rows:
    assert 0.0 <= float(r['main_task_accuracy']) <= 1.0
    assert 'aggregator/zero_non_finite/num_non_finite_clients' in r
    assert 'aggregator/inner/clip/fraction' in r


def test_a_run_records_the_kernels_it_ran_on(tmp_path, monkeypatch):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  config = tiny(tmp_path, num_rounds=1)
  run_lib.run(config, progress=False)
  path = os.path.join(config.output_dir, outputs.NUMERICS_FILE)
  with open(path) as f:
    records = json.load(f)
  assert len(records) == 1
  assert records[0]['tensorflow'] == tf.__version__
  assert records[0]['execution_context'] == config.execution_context
  if not tf.config.list_physical_devices('GPU'):
    assert records[0]['device'].startswith('CPU: ')
  assert records[0]['onednn_env'] == os.environ.get('TF_ENABLE_ONEDNN_OPTS')
  assert records[0]['onednn'] in (True, False)
  # A resume on the same kernels adds nothing; on others, a second record.
  outputs.record_numerics(path, dict(records[0]))
  outputs.record_numerics(path, dict(records[0], onednn=not records[0][
      'onednn']))
  assert outputs.read_numerics(path) == [
      records[0], dict(records[0], onednn=not records[0]['onednn'])]
  assert outputs.read_numerics(str(tmp_path / 'none.json')) == []


def test_numerics_in_a_few_words():
  from targeted_attack.runtime import devices  # pylint: disable=g-import-not-at-top
  assert devices.numerics_text(dict(
      tensorflow='2.14.1', onednn=True, op_determinism=False,
      device='CPU: AMD EPYC')) == 'TensorFlow 2.14.1, oneDNN on, CPU: AMD EPYC'
  assert devices.numerics_text(dict(
      tensorflow='2.21.0', onednn=None, op_determinism=True,
      device='NVIDIA H100 (compute 9.0)')) == (
          'TensorFlow 2.21.0, oneDNN unknown, op determinism, NVIDIA H100 '
          '(compute 9.0)')
  assert devices.numerics_text(dict(
      execution_context='tff_cpp', tensorflow='2.14.1', onednn=False,
      device='CPU: AMD EPYC')) == "TFF's C++ worker, CPU: AMD EPYC"


def test_resume_continues_without_repeating_or_losing_rounds(tmp_path,
                                                              monkeypatch):
  full = tiny(tmp_path, experiment_name='full', num_rounds=5)
  run_lib.run(full, progress=False)

  killed = tiny(tmp_path, experiment_name='killed', num_rounds=5)
  builders.run_killed_in_round(killed, 4, monkeypatch)
  assert [int(r['round']) for r in _rows(killed)] == [1, 2, 3]

  run_lib.run(dataclasses.replace(killed, resume=True), progress=False)
  resumed = _rows(killed)
  assert [int(r['round']) for r in resumed] == [1, 2, 3, 4, 5]
  # The resumed run (from the round-2 checkpoint) matches the uninterrupted one.
  reference = _rows(full)
  for a, b in zip(resumed, reference):
    for column in ('train_loss', 'main_task_accuracy', 'backdoor_accuracy',
                   'backdoor_accuracy_cumulative_mean'):
      assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-4), (
          a['round'], column)

  # Resuming with another setting (but num_rounds) is refused, naming it.
  with pytest.raises(config_lib.ConfigError) as error:
    run_lib.run(dataclasses.replace(killed, resume=True, num_rounds=6,
                                       defense='median'), progress=False)
  assert error.value.field == 'defense'
  assert len(_rows(killed)) == 5


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path):
  path = str(tmp_path / 'checkpoint.npz')
  template = [np.zeros(3, np.float32), np.zeros((), np.int64)]
  outputs.save_checkpoint(path, [np.ones(3, np.float32), np.int64(4)], 2)
  outputs.save_checkpoint(path, [2 * np.ones(3, np.float32), np.int64(9)], 4)
  state, round_num, note = outputs.load_checkpoint(path, template)
  assert round_num == 4 and note is None
  np.testing.assert_array_equal(state[0], [2, 2, 2])
  with open(path, 'r+b') as f:  # a torn write
    f.truncate(40)
  state, round_num, note = outputs.load_checkpoint(path, template)
  assert round_num == 2 and 'checkpoint.npz' in note
  np.testing.assert_array_equal(state[0], [1, 1, 1])
  with open(outputs.previous_checkpoint_path(path), 'wb') as f:
    f.write(b'garbage')
  with pytest.raises(outputs.CorruptOutputError, match='checkpoint.prev.npz'):
    outputs.load_checkpoint(path, template)
  # A checkpoint of another model is not silently loaded.
  outputs.save_checkpoint(path, [np.ones(5, np.float32), np.int64(1)], 6)
  outputs.save_checkpoint(path, [np.ones(5, np.float32), np.int64(1)], 8)
  with pytest.raises(outputs.CorruptOutputError, match='shape'):
    outputs.load_checkpoint(path, template)


def test_corrupt_metrics_file_is_a_clear_error(tmp_path):
  path = str(tmp_path / 'metrics.csv')
  log = outputs.MetricsLog(path, keep_through_round=None)
  for r in (1, 2, 3):
    log.append(dict(round=r, attacked=0, backdoor_accuracy=0.5))
  assert len(outputs.MetricsLog(path, keep_through_round=2).rows) == 2
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:  # round 2's row torn in half
    f.write(text.replace('\n2,0', '\nx2,0'))
  with pytest.raises(outputs.CorruptOutputError, match='line 3'):
    outputs.MetricsLog(path, keep_through_round=2)


def test_task_num_larger_than_clients_with_sevens_fails_before_training(
    tmp_path):
  with pytest.raises(config_lib.ConfigError) as error:
    run_lib.run(tiny(tmp_path, task_num=50), progress=False)
  assert error.value.field == 'task_num'
  assert not os.path.exists(os.path.join(str(tmp_path), 'tiny', 'metrics.csv'))


def test_unwritable_output_directory_names_root_output_dir(tmp_path):
  with pytest.raises(config_lib.ConfigError) as error:
    run_lib.run(tiny(tmp_path, root_output_dir='/etc/hostname/not_a_dir'),
                   progress=False)
  assert error.value.field == 'root_output_dir'


def test_binary_bad_flag_exits_with_one_line_error(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'targeted_attack.emnist_experiment',
       f'--root_output_dir={tmp_path}', '--random_seed=-1'],
      capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and '--random_seed' in lines[0], result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(os.path.join(str(tmp_path), 'emnist_attack'))


def test_binary_runs_end_to_end(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'targeted_attack.emnist_experiment',
       f'--root_output_dir={tmp_path}', '--experiment_name=bin',
       '--synthetic_num_clients=12', '--synthetic_examples_per_client=20',
       '--model=linear', '--num_clients_per_round=3', '--num_rounds=2',
       '--num_epochs=1', '--task_num=2', '--defense=weak_dp'],
      capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'final round 2' in result.stdout
  with open(os.path.join(str(tmp_path), 'bin', 'metrics.csv')) as f:
    assert len(list(csv.DictReader(f))) == 2
  with open(os.path.join(str(tmp_path), 'bin', 'config.json')) as f:
    assert json.load(f)['defense'] == 'weak_dp'


def test_emnist_unavailable_suggests_cache_file_or_synthetic(tmp_path,
                                                             monkeypatch):
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top

  def offline(**kwargs):
    raise OSError('Name or service not known')

  monkeypatch.setattr(tff.simulation.datasets.emnist, 'load_data',
                      lambda *a, **k: offline())
  with pytest.raises(config_lib.ConfigError,
                     match='emnist_all.sqlite.*synthetic') as error:
    run_lib.run(tiny(tmp_path, dataset='emnist'), progress=False)
  assert error.value.field == 'emnist_cache_dir'


def test_durability_counts_rounds_from_last_attack_until_below_threshold():
  def rows(backdoor, attacked):
    return [dict(round=i + 1, attacked=a, backdoor_accuracy=b)
            for i, (b, a) in enumerate(zip(backdoor, attacked))]
  # Last attack in round 3; first evaluation below 0.5 after it: round 6.
  series = rows([0.1, 0.9, 1.0, 0.8, 0.6, 0.4, 0.7],
                [0, 1, 1, 0, 0, 0, 0])
  d = outputs.durability(series, 0.5)
  assert d['last_attack_round'] == 3 and d['rounds_above_threshold'] == 3
  assert d['lasted_to_end'] is False
  assert d['backdoor_after_last_attack'] == 1.0
  lasting = outputs.durability(rows([0.9, 0.95, 0.9], [1, 0, 0]), 0.5)
  assert lasting['lasted_to_end'] and lasting['rounds_above_threshold'] is None
  none = outputs.durability(rows([0.1, 0.1], [0, 0]), 0.5)
  assert none['last_attack_round'] is None
  # An attack that did not take: 0 rounds.
  assert outputs.durability(rows([0.2, 0.1], [1, 0]), 0.5)[
      'rounds_above_threshold'] == 0
  # Unevaluated rounds ('') are skipped.
  gaps = rows([0.9, '', 0.3], [1, 0, 0])
  assert outputs.durability(gaps, 0.5)['rounds_above_threshold'] == 2


def test_init_checkpoint_starts_from_the_saved_model_exactly(tmp_path):
  from targeted_attack.experiment import evaluation  # pylint: disable=g-import-not-at-top
  from targeted_attack.experiment import registry  # pylint: disable=g-import-not-at-top
  clean = tiny(tmp_path, experiment_name='clean', attack='none', num_rounds=2)
  rows = run_lib.run(clean, progress=False)
  with open(os.path.join(clean.output_dir, 'summary.json')) as f:
    assert json.load(f)['main_task_accuracy'] == float(
        rows[-1]['main_task_accuracy'])
  checkpoint = os.path.join(clean.output_dir, 'checkpoint.npz')
  attacked = tiny(tmp_path, experiment_name='from_clean',
                  init_checkpoint=checkpoint)
  process = build.build_process(attacked, population=12)
  weights = process.get_model_weights(
      build.initial_state(process, attacked))
  with np.load(checkpoint) as saved:
    for i, w in enumerate(weights.trainable):
      np.testing.assert_array_equal(w, saved[f'model_trainable_{i}'])
  data = build.load_data(attacked)
  task = build.initial_task(build.build_backdoor(attacked), data)
  evaluator = evaluation.Evaluator(attacked.model, data.test_pixels,
                                   data.test_labels, task)
  assert evaluator.metrics(weights)['main_task_accuracy'] == float(
      rows[-1]['main_task_accuracy'])
  with pytest.raises(config_lib.ConfigError) as error:
    bad = tiny(tmp_path, init_checkpoint=str(tmp_path / 'missing.npz'))
    build.initial_state(build.build_process(bad, population=12), bad)
  assert error.value.field == 'init_checkpoint'


def test_detection_metrics_compare_the_kept_clients_with_the_truth():
  kept = [1, 0, 1, 0, 1]
  malicious = [False, True, True, False, False]
  d = run_lib.detection_metrics(kept, malicious)
  assert d['detection_tpr'] == 0.5       # 1 of 2 attackers excluded
  assert d['detection_fpr'] == 1 / 3     # 1 of 3 benign excluded
  assert d['attackers_kept_share'] == 1 / 3
  assert run_lib.detection_metrics([1, 1], [False, False])[
      'detection_tpr'] == ''


def test_krum_run_reports_detection_per_round(tmp_path):
  rows = run_lib.run(tiny(tmp_path, defense='krum', num_clients_per_round=5,
                             num_rounds=2, attack_freq=1), progress=False)
  for r in rows:
    assert r['detection_tpr'] in (0.0, 1.0)  # one attacker: kept or not
    assert 0.0 <= r['detection_fpr'] <= 1.0


def test_dp_runs_report_the_privacy_spent_each_round(tmp_path):
  rows = run_lib.run(tiny(tmp_path, defense='weak_dp', num_rounds=3,
                             mul_factor=1.0), progress=False)
  epsilons = [float(r['privacy_epsilon']) for r in rows]
  assert epsilons[0] > 0 and epsilons == sorted(epsilons)
  # δ = 1/N^1.1 < 1/N (12 clients), the usual choice; a setting.
  assert float(rows[0]['privacy_delta']) == pytest.approx(12**-1.1)


def test_dp_sgd_runs_report_the_example_level_privacy_each_round(tmp_path):
  from targeted_attack.experiment import registry  # pylint: disable=g-import-not-at-top
  config = tiny(tmp_path, defense='dp_sgd', num_rounds=3,
                dp_sgd_noise_multiplier=1.0, checkpoint_every=1)
  rows = run_lib.run(config, progress=False)
  # Resumed with one more round: the participations of rounds 1-3 recounted.
  rows = run_lib.run(dataclasses.replace(config, resume=True, num_rounds=4),
                        progress=False)
  data = build.load_data(config)
  counts = {}
  for round_num, row in enumerate(rows, start=1):
    for k in sampling.sample_clients(12, 3, 1, round_num):
      counts[int(k)] = counts.get(int(k), 0) + 1
    expected = {}
    for k, p in counts.items():
      n = len(data.client_arrays(k)[1])  # B = 10, E = 1: ⌈n/10⌉ steps
      expected[k] = (reference.poisson_gaussian_epsilon(
          min(1, 10 / n), 1.0, p * int(np.ceil(n / 10)), n**-1.1), n**-1.1, p)
    eps, delta, p = max(expected.values())
    assert float(row['dp_sgd_example_epsilon']) == pytest.approx(eps, rel=0.01)
    assert float(row['dp_sgd_example_delta']) == pytest.approx(delta)
    assert int(row['dp_sgd_worst_case_participations']) == p
    assert 'privacy_epsilon' not in row  # no client-level claim for DP-SGD


@pytest.mark.parametrize('defense, model', [('clip', 'linear'),
                                            ('weak_dp', 'linear'),
                                            ('flame', 'small_cnn')])
def test_a_run_repeats_exactly(tmp_path, monkeypatch, defense, model):
  # The README: runs are deterministic from the seed (timings aside), so
  # runs of one config give the same metrics.csv, value for value: the
  # first and last on a process built anew, the second on the process the
  # first built (`build.reused_process`), which must keep no state between
  # runs (noise and dropout draws included).
  built = []
  real_build = build.build_process
  monkeypatch.setattr(build, 'build_process',
                      lambda *a, **k: built.append(1) or real_build(*a, **k))

  def metrics(name):
    config = tiny(tmp_path, experiment_name=name, defense=defense,
                  model=model, num_rounds=3, attack_freq=1,
                  evaluate_per_rounds=1)
    run_lib.run(config, progress=False)
    rows = _rows(config)
    for row in rows:
      del row['round_seconds'], row['eval_seconds']
    return rows

  build.forget_processes()
  first = metrics('first')
  second = metrics('second')
  assert len(built) == 1           # the second run reused the first's process
  build.forget_processes()
  third = metrics('third')
  assert len(built) == 2
  assert len(first) == 3 and first == second == third


def test_a_process_is_reused_only_by_runs_that_differ_in_their_loop(
    tmp_path, monkeypatch):
  built = []
  real_build = build.build_process
  monkeypatch.setattr(build, 'build_process',
                      lambda *a, **k: built.append(a[0]) or real_build(*a, **k))
  build.forget_processes()
  base = tiny(tmp_path, num_rounds=2)
  build.reused_process(base, 12)
  for name in config_lib.LOOP_SETTINGS:            # each loop setting: reused
    value = getattr(base, name)
    changed = {'num_rounds': 3, 'resume': not value, 'root_output_dir':
               str(tmp_path / 'elsewhere'), 'experiment_name': 'other',
               'evaluate_per_rounds': 2, 'checkpoint_every': 1,
               'durability_threshold': 0.25}[name]
    assert changed != value, name
    build.reused_process(dataclasses.replace(base, **{name: changed}), 12)
  assert len(built) == 1
  # Any other setting, or another population: built anew.
  build.reused_process(dataclasses.replace(base, norm_bound=2.0), 12)
  build.reused_process(dataclasses.replace(base, random_seed=2), 12)
  build.reused_process(base, 13)
  assert len(built) == 4
  assert built[1].norm_bound == 2.0 and built[2].random_seed == 2
  build.forget_processes()


def test_emnist_with_letters_builds_a_62_class_model(tmp_path):
  # `--noonly_digits`: labels up to 61 reach the model, which must have 62
  # outputs (before, a 10-class model died in TFF's worker on label ≥ 10).
  from targeted_attack.data import emnist_cache  # pylint: disable=g-import-not-at-top
  digits = federated.load_synthetic(8, 20, seed=5)
  writers = []
  for k in range(digits.num_clients):
    pixels, labels = digits.client_arrays(k)
    letters = np.where(labels == 3, 10 + 7 * k, labels)  # a letter per writer
    writers.append((f'f{k:04d}', pixels, letters, pixels, letters))
  assert max(w[2].max() for w in writers) == 59
  cache = str(tmp_path / 'cache')
  emnist_cache.write_emnist_cache(cache, writers, only_digits=False)
  config = tiny(tmp_path, dataset='emnist', emnist_cache_dir=cache,
                only_digits=False, num_rounds=2, task_num=2)
  data = build.load_data(config)
  assert data.num_classes == 62
  rows = run_lib.run(config, progress=False)
  assert [int(r['round']) for r in rows] == [1, 2]
  with np.load(f'{config.output_dir}/checkpoint.npz') as saved:
    assert saved['model_trainable_0'].shape == (28 * 28, 62)  # linear


def _emnist_cache(tmp_path, num_writers):
  from targeted_attack.data import emnist_cache  # pylint: disable=g-import-not-at-top
  digits = federated.load_synthetic(num_writers, 20, seed=5)
  writers = [(f'f{k:04d}',) + digits.client_arrays(k) * 2
             for k in range(digits.num_clients)]
  cache = str(tmp_path / 'cache')
  emnist_cache.write_emnist_cache(cache, writers, only_digits=True)
  return cache


@pytest.mark.parametrize('make, field', [
    # The window ends before it starts.
    (lambda tmp: tiny(tmp, attack_start_round=5, attack_end_round=3),
     'attack_end_round'),
    # A pool larger than the EMNIST population (known only once loaded).
    (lambda tmp: tiny(tmp, dataset='emnist',
                      emnist_cache_dir=_emnist_cache(tmp, 8), task_num=2,
                      attacker_model='fixed_pool', attacker_pool_size=9),
     'attacker_pool_size'),
    # More clients per round than the Dirichlet split leaves (9 of 12 here:
    # Dir(0.01) leaves some clients empty).
    (lambda tmp: tiny(tmp, dataset='dirichlet', synthetic_num_clients=12,
                      dirichlet_alpha=0.01, num_clients_per_round=12,
                      task_num=1),
     'num_clients_per_round'),
])
def test_cross_setting_errors_name_the_setting_before_anything_is_written(
    tmp_path, make, field):
  config = make(tmp_path)
  with pytest.raises(config_lib.ConfigError) as error:
    run_lib.run(config, progress=False)
  assert error.value.field == field, str(error.value)
  assert not os.path.exists(os.path.join(config.output_dir, 'metrics.csv'))
