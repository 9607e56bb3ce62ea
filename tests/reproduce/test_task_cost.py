"""The paper scale's cost formula (`benchmarks.task_cost`) from a given step
time, against the study's own numbers."""

import math

import pytest

from benchmarks import task_cost
from targeted_attack.reproduce import studies as studies_lib


def test_study_cost_is_steps_times_clients_times_rounds(monkeypatch):
  monkeypatch.setattr(task_cost, 'step_seconds', lambda *a: 0.5)
  cost = task_cost.study_cost('wang_southwest', steps=1)
  paper = studies_lib.SCALES['paper']
  study = studies_lib.STUDIES['wang_southwest']
  clients = study.settings['num_clients_per_round']
  per_client = 50_000 / study.settings['cifar_num_clients']
  round_seconds = clients * math.ceil(per_client / paper['batch_size']) * (
      paper['num_epochs'] * 0.5)
  assert cost['round_seconds'] == pytest.approx(round_seconds)
  # Cells × seeds runs of the paper's rounds, and a converged start's clean
  # run per seed of its own.
  rounds = paper['seeds'] * (len(study.cells) * paper['num_rounds'] +
                             paper['pretrain_rounds'])
  assert study.converged_start
  assert cost['study_hours'] == pytest.approx(
      rounds * round_seconds / 3600, abs=0.05)
  assert cost['model'] == 'vgg9'


def test_a_fedsgd_client_takes_its_one_step(monkeypatch):
  monkeypatch.setattr(task_cost, 'step_seconds', lambda *a: 0.5)
  cost = task_cost.study_cost('baruch_alie_cifar10', steps=1)
  study = studies_lib.STUDIES['baruch_alie_cifar10']
  assert study.settings['local_steps'] == 1
  assert cost['round_seconds'] == pytest.approx(
      study.settings['num_clients_per_round'] * 0.5)


def test_a_seed_of_a_small_study_is_its_runs_rounds_of_benign_steps(
    monkeypatch):
  # At `small` the generated writers' 60 examples stand in for EMNIST's:
  # ⌈60 / 20⌉ · 2 epochs of 0.5 s for each of 10 clients a round, over
  # the rounds of every cell of one seed and the converged start's clean run.
  monkeypatch.setattr(task_cost, 'step_seconds', lambda *a: 0.5)
  small = studies_lib.SCALES['small']
  study = studies_lib.STUDIES['tails_krum']
  assert study.converged_start
  cost = task_cost.study_cost('tails_krum', steps=1, scale='small')
  round_seconds = 10 * math.ceil(60 / 20) * 2 * 0.5
  assert (small['synthetic_examples_per_client'], small['batch_size'],
          small['num_epochs'], small['num_clients_per_round']) == (
              60, 20, 2, 10)
  assert cost['round_seconds'] == pytest.approx(round_seconds)
  rounds = len(study.cells) * small['num_rounds'] + small['pretrain_rounds']
  assert cost['seeds'] == small['seeds']
  assert cost['seed_minutes'] == pytest.approx(
      rounds * round_seconds / 60, abs=0.01)
