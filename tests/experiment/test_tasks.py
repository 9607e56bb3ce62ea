"""Every task beyond digits through the experiment loop at a tiny size,
with one attack and one filtering defense: the generated CIFAR-10 and text
stand-ins, and the real CIFAR-10, CIFAR-100 and Stack Overflow loaders
reading files written in their real formats."""

import numpy as np
import pytest

from targeted_attack.data import cifar
from targeted_attack.data import dirichlet
from targeted_attack.data import synthetic_images
from targeted_attack.data import text
from targeted_attack.experiment import build
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import run as run_lib
from targeted_attack.experiment.config import ConfigError


def _config(tmp_path, **overrides):
  settings = dict(
      root_output_dir=str(tmp_path), experiment_name='task', random_seed=3,
      model='cifar_cnn', cifar_num_clients=12, synthetic_cifar_train_size=600,
      synthetic_cifar_test_size=100, synthetic_examples_per_client=20,
      num_clients_per_round=5, num_rounds=2, num_epochs=1, batch_size=10,
      task_num=2, attack='unconstrained', attack_freq=1, defense='krum',
      evaluate_per_rounds=1)
  settings.update(overrides)
  return config_lib.ExperimentConfig(**settings)


def _write_cifar100(directory):
  generated = synthetic_images.generate(300, seed=4, num_classes=100)
  clients = [(str(k), generated['images'][k * 20:(k + 1) * 20],
              generated['labels'][k * 20:(k + 1) * 20],
              generated['coarse_labels'][k * 20:(k + 1) * 20])
             for k in range(15)]
  cifar.write_cifar100_cache(directory, clients[:12], clients[12:])


# (CIFAR-100, Stack Overflow and the stand-ins run through the same loop in
# tests/experiment/test_registry.py, the text ones under Krum.)
@pytest.mark.parametrize('dataset,backdoor', [
    ('cifar10', 'semantic_images'),
    ('cifar100', 'dba'),
])
def test_each_task_runs_with_an_attack_and_krum(tmp_path, dataset, backdoor):
  overrides = dict(dataset=dataset, backdoor=backdoor)
  if dataset == 'stackoverflow':
    text.write_synthetic_stackoverflow(str(tmp_path / 'so'), 12, 20, seed=2)
    overrides.update(stackoverflow_cache_dir=str(tmp_path / 'so'),
                     model='small_lstm', text_sequence_length=10,
                     text_test_sentences=40, sentence_eval_size=20)
  if dataset == 'cifar10':
    cifar.write_synthetic_cifar10(str(tmp_path / 'files'), 600, 100, seed=9)
    overrides['cifar10_dir'] = str(tmp_path / 'files')
  if dataset == 'cifar100':
    _write_cifar100(str(tmp_path / 'cache'))
    overrides['cifar100_cache_dir'] = str(tmp_path / 'cache')
  config = _config(tmp_path, **overrides)
  rows = run_lib.run(config, progress=False)
  assert len(rows) == 2
  for row in rows:
    assert 0.0 <= row['main_task_accuracy'] <= 1.0
    assert 0.0 <= row['backdoor_accuracy'] <= 1.0
    # Krum keeps one update, the one closest to its n − f − 2 nearest: the
    # boosted attacker's (β = 5 times its update) is never it.
    assert row['detection_tpr'] == 1.0
  data = build.load_data(config)
  if dataset == 'stackoverflow':
    assert data.image_shape == (10,) and data.kind == 'text'
    return
  assert data.image_shape == (32, 32, 3)
  assert data.num_classes == (100 if dataset == 'cifar100' else 10)


def test_real_cifar10_split_is_the_dirichlet_partition_of_the_files(
    tmp_path):
  # The loader's clients are dirichlet_partition's parts of the training
  # labels, the backdoor's listed images removed first, seeded as documented.
  cifar.write_synthetic_cifar10(str(tmp_path), 600, 100, seed=9)
  config = _config(tmp_path, dataset='cifar10', cifar10_dir=str(tmp_path),
                   backdoor='semantic_images', dirichlet_alpha=0.3)
  data = build.load_data(config)
  train_x, train_y, _, _, lists = cifar.read_cifar10(str(tmp_path))
  held = set(lists['green_car_train']) | set(lists['green_car_test'])
  kept = np.array(sorted(set(range(600)) - held))
  rng = np.random.default_rng(np.random.SeedSequence(
      3, spawn_key=(dirichlet.DIRICHLET_STREAM,)))
  parts = [p for p in dirichlet.dirichlet_partition(train_y[kept], 12, 0.3,
                                                    rng) if len(p)]
  assert data.num_clients == len(parts)
  for k, part in enumerate(parts):
    pixels, labels = data.client_arrays(k)
    np.testing.assert_array_equal(labels, train_y[kept[part]])
    np.testing.assert_allclose(pixels, train_x[kept[part]] / 255.0,
                               atol=1e-7)


def test_task_settings_fail_early_naming_the_setting(tmp_path):
  for overrides, setting in (
      (dict(dataset='cifar10'), 'cifar10_dir'),
      (dict(dataset='cifar10', cifar10_dir=str(tmp_path)), 'cifar10_dir'),
      (dict(dataset='synthetic_cifar10', backdoor='edge_case'), 'backdoor'),
      (dict(dataset='synthetic', model='small_cnn', backdoor='edge_case',
            ardis_dir=str(tmp_path)), 'ardis_dir'),
      (dict(dataset='synthetic_cifar10', backdoor='southwest',
            edge_case_dir=str(tmp_path)), 'edge_case_dir'),
      (dict(dataset='synthetic', backdoor='semantic_images'), 'backdoor'),
      (dict(dataset='synthetic_cifar10', synthetic_cifar_train_size=601),
       'synthetic_cifar_train_size'),
      (dict(dataset='synthetic_cifar10', backdoor='semantic_images',
            poison_images='blue_planes'), 'poison_images'),
      (dict(dataset='synthetic_text', backdoor='sentence'), 'model'),
      (dict(dataset='synthetic_text', model='small_lstm', backdoor='trigger'),
       'backdoor'),
      (dict(dataset='synthetic_cifar10', model='small_lstm'), 'model'),
      (dict(dataset='synthetic_cifar10', backdoor='sentence'), 'backdoor'),
      (dict(dataset='synthetic_text', model='small_lstm', backdoor='sentence',
            text_sequence_length=4), 'backdoor_sentence'),
      (dict(dataset='stackoverflow', model='small_lstm', backdoor='sentence',
            stackoverflow_cache_dir=str(tmp_path)), 'stackoverflow_cache_dir'),
  ):
    with pytest.raises(ConfigError) as error:
      run_lib.run(_config(tmp_path, **overrides), progress=False)
    assert error.value.field == setting, (overrides, error.value)


def test_client_dp_sgd_unrolls_the_recurrent_layers(tmp_path, monkeypatch):
  # Under client DP-SGD the process's text model is built unrolled (the
  # per-sentence Jacobian inside TFF's graphs); otherwise as it is.
  from targeted_attack.process import models  # pylint: disable=g-import-not-at-top
  seen = []

  class Built(Exception):
    pass

  def spy(*args, **kwargs):
    seen.append(kwargs.get('unroll'))
    raise Built()

  monkeypatch.setattr(models, 'build_model_fn', spy)
  for defense in ('dp_sgd', 'none'):
    config = _config(tmp_path, dataset='synthetic_text', model='small_lstm',
                     backdoor='sentence', defense=defense)
    with pytest.raises(Built):
      build.build_process(config, population=10, num_classes=20,
                          image_shape=(20,))
  assert seen == [True, False]
