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
