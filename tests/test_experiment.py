"""The experiment loop and binary on a tiny synthetic configuration."""

import csv
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from targeted_attack import data as data_lib
from targeted_attack import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(tmp_path, **overrides):
  settings = dict(
      root_output_dir=str(tmp_path), experiment_name='tiny', random_seed=1,
      synthetic_num_clients=12, synthetic_examples_per_client=20,
      model='linear', num_clients_per_round=3, num_rounds=4, num_epochs=1,
      batch_size=10, task_num=2, attack='unconstrained', attack_freq=2,
      defense='clip', norm_bound=1.0, checkpoint_every=2)
  settings.update(overrides)
  return experiment.ExperimentConfig(**settings)


def _rows(config):
  with open(os.path.join(config.output_dir, 'metrics.csv'), newline='') as f:
    return list(csv.DictReader(f))


def test_run_writes_config_metrics_tensorboard_checkpoint_and_plot(tmp_path):
  config = _tiny(tmp_path)
  experiment.run(config, progress=False)
  out = config.output_dir
  for name in ('config.json', 'metrics.csv', 'checkpoint.npz', 'plot.png'):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  assert any(f.startswith('events') for f in
             os.listdir(os.path.join(out, 'tensorboard')))
  rows = _rows(config)
  assert [int(r['round']) for r in rows] == [1, 2, 3, 4]
  for column in experiment.METRIC_COLUMNS:
    assert column in rows[0], column
  # Fixed frequency 2: attacks in rounds 2 and 4, one attacker each.
  assert [int(r['num_attackers']) for r in rows] == [0, 1, 0, 1]
  assert float(rows[1]['malicious_update_norm_max']) > 0
  assert float(rows[0]['malicious_update_norm_max']) == 0
  history = [float(r['backdoor_accuracy']) for r in rows]
  np.testing.assert_allclose(
      [float(r['backdoor_accuracy_cumulative_mean']) for r in rows],
      np.cumsum(history) / np.arange(1, 5), rtol=1e-6)
  for r in rows:
    assert 0.0 <= float(r['main_task_accuracy']) <= 1.0
    assert 'aggregator/inner/clip/fraction' in r


def test_resume_continues_without_repeating_or_losing_rounds(tmp_path,
                                                              monkeypatch):
  full = _tiny(tmp_path, experiment_name='full', num_rounds=5)
  experiment.run(full, progress=False)

  killed = _tiny(tmp_path, experiment_name='killed', num_rounds=5)
  real_sample = data_lib.sample_clients

  def dies_in_round_4(num_clients, per_round, seed, round_num):
    if round_num == 4:
      raise KeyboardInterrupt('simulated kill')
    return real_sample(num_clients, per_round, seed, round_num)

  monkeypatch.setattr(data_lib, 'sample_clients', dies_in_round_4)
  with pytest.raises(KeyboardInterrupt):
    experiment.run(killed, progress=False)
  assert [int(r['round']) for r in _rows(killed)] == [1, 2, 3]
  monkeypatch.setattr(data_lib, 'sample_clients', real_sample)

  experiment.run(dataclasses.replace(killed, resume=True), progress=False)
  resumed = _rows(killed)
  assert [int(r['round']) for r in resumed] == [1, 2, 3, 4, 5]
  # The resumed run (from the round-2 checkpoint) matches the uninterrupted one.
  reference = _rows(full)
  for a, b in zip(resumed, reference):
    for column in ('train_loss', 'main_task_accuracy', 'backdoor_accuracy',
                   'backdoor_accuracy_cumulative_mean'):
      assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-4), (
          a['round'], column)


@pytest.mark.parametrize('overrides, flag', [
    (dict(num_rounds=-1), 'num_rounds'),
    (dict(attack_freq=0), 'attack_freq'),
    (dict(num_clients_per_round=13), 'num_clients_per_round'),
    (dict(dataset='mnist'), 'dataset'),
    (dict(defense='bulyan'), 'defense'),
    (dict(attack='label_flip'), 'attack'),
    (dict(trim_fraction=0.5, defense='trimmed_mean'), 'trim_fraction'),
    (dict(defense='krum', num_byzantine=1), 'num_byzantine'),
    (dict(root_output_dir='/etc/hostname/not_a_dir'), 'root_output_dir'),
])
def test_bad_settings_name_the_flag(tmp_path, overrides, flag):
  config = _tiny(tmp_path, **overrides)
  with pytest.raises(experiment.ConfigError, match=f'--{flag}'):
    experiment.validate(config)


def test_task_num_larger_than_clients_with_sevens_fails_before_training(
    tmp_path):
  with pytest.raises(experiment.ConfigError, match='--task_num'):
    experiment.run(_tiny(tmp_path, task_num=50), progress=False)
  assert not os.path.exists(os.path.join(str(tmp_path), 'tiny', 'metrics.csv'))


def test_binary_bad_flag_exits_with_one_line_error(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'targeted_attack.emnist_experiment',
       f'--root_output_dir={tmp_path}', '--num_rounds=-3'],
      capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert result.returncode != 0
  lines = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and '--num_rounds' in lines[0], result.stderr
  assert not os.path.exists(os.path.join(str(tmp_path), 'emnist_attack',
                                         'metrics.csv'))


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


@pytest.mark.parametrize('overrides', [
    dict(attack='data_poisoning', poison_per_batch=2),
    dict(attack='constrain_and_scale', poison_per_batch=2, cs_max_epochs=1),
    dict(attack='train_and_scale', backdoor='edge_case',
         edge_case_num_train=10, edge_case_num_eval=10),
    dict(attack='pgd_replacement', backdoor='trigger', defense='dp_sgd',
         attacker_model='fixed_pool', attacker_pool_size=3),
])
def test_literature_attacks_backdoors_and_defenses_run(tmp_path, overrides):
  config = _tiny(tmp_path, num_rounds=2, attack_freq=1, **overrides)
  rows = experiment.run(config, progress=False)
  assert len(rows) == 2
  for r in rows:
    assert 0.0 <= float(r['backdoor_accuracy']) <= 1.0
  if overrides.get('attacker_model') != 'fixed_pool':
    assert all(int(r['num_attackers']) == 1 for r in rows)


@pytest.mark.parametrize('overrides, flag', [
    (dict(cs_alpha=1.5), 'cs_alpha'),
    (dict(cs_gamma=0.0), 'cs_gamma'),
    (dict(trigger_placement='center'), 'trigger_placement'),
    (dict(trigger_amplitude=0.0), 'trigger_amplitude'),
    (dict(backdoor='blend'), 'backdoor'),
    (dict(attacker_model='fixed_pool', attacker_pool_size=13),
     'attacker_pool_size'),
])
def test_bad_literature_settings_name_the_flag(tmp_path, overrides, flag):
  with pytest.raises(experiment.ConfigError, match=f'--{flag}'):
    experiment.validate(_tiny(tmp_path, **overrides))


def test_emnist_unavailable_suggests_cache_dir_or_synthetic(tmp_path,
                                                            monkeypatch):
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top

  def offline(**kwargs):
    raise OSError('Name or service not known')

  monkeypatch.setattr(tff.simulation.datasets.emnist, 'load_data',
                      lambda *a, **k: offline())
  with pytest.raises(experiment.ConfigError,
                     match='--emnist_cache_dir.*--dataset=synthetic'):
    experiment.run(_tiny(tmp_path, dataset='emnist'), progress=False)
