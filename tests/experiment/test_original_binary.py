"""The original binary's command line (google-research/federated,
`targeted_attack/emnist_with_targeted_attack.py`) runs the original's
experiment; the main binary names the settings a run ignores.

The expected values are read off the original's code: its flag table
(`ORIGINAL_FLAGS`), `ClientProjectBoost(boost_factor=num_clients_per_round,
norm_bound, round_num=client_round_num)`, `GaussianSumQuery(l2_norm_clip,
mul_factor)` normalized by `num_clients_per_round`, Nesterov server momentum
and `cur_round % attack_freq == attack_freq // 2` over rounds from 0.
"""

import json

from absl import flags
import numpy as np
import pytest

from targeted_attack import emnist_experiment
from targeted_attack import emnist_with_targeted_attack as original_binary
from targeted_attack.data import sampling
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import original
from targeted_attack.experiment import registry

# The original's 19 flags and defaults, as its script defines them.
ORIGINAL_FLAGS = {
    'root_output_dir': '/tmp/emnist_grids/', 'random_seed': 0,
    'evaluate_per_rounds': 1, 'only_digits': True,
    'num_clients_per_round': 5, 'num_rounds': 300,
    'server_learning_rate': 1.0, 'server_momentum': 0.0, 'num_epochs': 5,
    'batch_size': 20, 'client_learning_rate': 0.1, 'client_momentum': 0.0,
    'attack_freq': 1, 'task_num': 30, 'client_round_num': 5,
    'drop_prob': 0.5, 'norm_bound': 0.33, 'l2_norm_clip': 1.0,
    'mul_factor': 0.0,
}


def _flag_values(argv):
  values = flags.FlagValues()
  original_binary.define_flags(values)
  values(['binary'] + argv)
  return values


def test_the_binary_has_the_original_flags_and_defaults():
  values = _flag_values([])
  assert {name: values[name].value for name in ORIGINAL_FLAGS} == (
      ORIGINAL_FLAGS)
  assert values['dataset'].value == 'emnist'  # the original read EMNIST


@pytest.mark.parametrize('momentum', [0.0, 0.9])
def test_the_original_flags_become_the_original_experiment(momentum):
  flags_ = original.OriginalFlags(num_clients_per_round=30, norm_bound=0.1,
                                  l2_norm_clip=2.5, mul_factor=0.05,
                                  server_momentum=momentum, client_round_num=3)
  config = original.to_experiment_config(flags_)
  registry.validate(config)
  assert (config.dataset, config.model, config.attack, config.defense,
          config.attacker_model, config.backdoor) == (
              'emnist', 'cnn', 'norm_bounded', 'weak_dp', 'fixed_frequency',
              'semantic')
  # The attacker: ClientProjectBoost(β = clients per round, M, r).
  attack = registry.ATTACKS.chosen(config).build(config)
  assert (attack.boost_factor, attack.norm_bound, attack.round_num) == (
      pytest.approx(30.0), pytest.approx(0.1), 3)
  # Weak DP: clip C, noise of stddev σ = mul_factor on the sum, / clients.
  assert config.l2_norm_clip == 2.5
  assert config.mul_factor * config.l2_norm_clip == pytest.approx(0.05)
  assert config.num_clients_per_round == 30
  # Server momentum: Nesterov's whenever momentum is used.
  assert config.server_momentum == momentum
  assert config.server_nesterov == (momentum != 0)


@pytest.mark.parametrize('attack_freq', [1, 2, 3, 4, 10, 11])
def test_the_attack_rounds_are_the_originals(attack_freq):
  config = original.to_experiment_config(
      original.OriginalFlags(attack_freq=attack_freq))
  model = registry.ATTACKER_MODELS.chosen(config).build(config, 100)
  sampled = np.arange(5)
  ours = [bool(model.malicious_mask(sampled, r + 1, 0).any())
          for r in range(60)]
  theirs = [r % attack_freq == attack_freq // 2 for r in range(60)]
  assert ours == theirs
  assert isinstance(model, sampling.FixedFrequencyAttackers)


def test_an_out_of_range_original_flag_is_named():
  with pytest.raises(config_lib.ConfigError, match='norm_bound'):
    original.to_experiment_config(original.OriginalFlags(norm_bound=0.0))
  with pytest.raises(config_lib.ConfigError, match='drop_prob'):
    original.to_experiment_config(original.OriginalFlags(drop_prob=1.5))


def test_notes_say_what_the_original_ignored():
  assert original.notes(original.OriginalFlags()) == []
  lines = original.notes(original.OriginalFlags(client_learning_rate=0.05),
                         given=['drop_prob'])
  assert any('--drop_prob is unused' in line for line in lines)
  assert any('--client_learning_rate=0.05 is applied' in line
             for line in lines)


def test_the_original_command_line_runs_the_original_experiment(tmp_path,
                                                                capsys):
  # Two rounds, offline: the attack in round 2 (r = 1 = 2 // 2), the sent
  # update of norm β·M (the projection binds), noise σ/N on the mean. The
  # binary's `main` in this process (its `python -m` start is the main
  # binary's, tested in `test_run`).
  argv = [
      '--num_rounds=2', '--attack_freq=2', '--num_clients_per_round=5',
      '--norm_bound=0.2', '--l2_norm_clip=1.0', '--mul_factor=0.01',
      '--drop_prob=0.5', '--num_epochs=1', '--task_num=5',
      f'--root_output_dir={tmp_path}', '--dataset=synthetic',
      '--synthetic_num_clients=20', '--synthetic_examples_per_client=20',
      '--execution_context=in_process']
  code = original_binary.main(['binary'], _flag_values(argv))
  err = capsys.readouterr().err
  assert code == 0, err[-2000:]
  assert '--drop_prob is unused' in err
  out = tmp_path / 'emnist_with_targeted_attack'
  config = json.loads((out / 'config.json').read_text())
  assert (config['attack'], config['defense'], config['boost_factor'],
          config['attack_phase']) == ('norm_bounded', 'weak_dp', 5.0, 2)
  assert config['norm_bound'] == pytest.approx(5 * 0.2)
  given = json.loads((out / 'original_flags.json').read_text())
  assert given['norm_bound'] == 0.2 and given['mul_factor'] == 0.01
  rows = (out / 'metrics.csv').read_text().splitlines()
  header = rows[0].split(',')
  first, second = (dict(zip(header, r.split(','))) for r in rows[1:3])
  assert (first['attacked'], second['attacked']) == ('0', '1')
  assert float(second['malicious_update_norm_max']) == pytest.approx(
      5 * 0.2, rel=1e-5)
  stddev = [k for k in header if k.endswith('noise_stddev')]
  assert stddev and float(second[stddev[0]]) == pytest.approx(0.01 / 5,
                                                               rel=1e-5)


def test_the_original_binary_names_its_flag_on_a_bad_value(capsys):
  code = original_binary.main(['binary'], _flag_values(['--norm_bound=-1']))
  assert code == 2
  assert '--norm_bound' in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Settings a run ignores.


def test_every_entry_says_what_it_reads():
  fields = {f.name for f in config_lib.fields()}
  for registry_ in registry.ALL:
    table = registry.READS[registry_.setting]
    assert set(table) == set(registry_), registry_.setting
    for name, reads in table.items():
      assert set(reads) <= fields, (registry_.setting, name)


def test_a_bound_without_a_bounded_attack_or_defense_is_ignored():
  config = config_lib.ExperimentConfig(attack='unconstrained', defense='none',
                                       norm_bound=2.0)
  ignored = dict(registry.ignored_settings(config))
  assert 'norm_bound' in ignored
  assert 'attack=unconstrained' in ignored['norm_bound']
  clipped = config_lib.ExperimentConfig(attack='unconstrained',
                                        defense='clip', norm_bound=2.0)
  assert 'norm_bound' not in dict(registry.ignored_settings(clipped))
  # Given on the command line at its default, it is still named.
  assert 'mul_factor' in dict(registry.ignored_settings(
      config_lib.ExperimentConfig(), given=['mul_factor']))
  # Privacy accounting's δ exponent: read with a DP defense only.
  assert 'privacy_delta_exponent' in dict(registry.ignored_settings(
      config_lib.ExperimentConfig(), given=['privacy_delta_exponent']))
  assert not registry.ignored_settings(
      config_lib.ExperimentConfig(defense='weak_dp'),
      given=['privacy_delta_exponent'])
  # A setting no entry reads (the number of rounds) is never named.
  assert not registry.ignored_settings(config_lib.ExperimentConfig(),
                                       given=['num_rounds'])


def test_the_main_binary_names_an_ignored_setting_before_training(
    monkeypatch, capsys):
  values = flags.FlagValues()
  emnist_experiment.define_flags(values)
  values(['binary', '--attack=unconstrained', '--defense=none',
          '--norm_bound=2', '--attack_freq=3'])
  ran = []
  monkeypatch.setattr(emnist_experiment, 'run_config',
                      lambda config, *_: ran.append(config) or 0)
  assert emnist_experiment.main(['binary'], flag_values=values) == 0
  err = capsys.readouterr().err
  assert 'note: --norm_bound is ignored' in err
  assert '--attack_freq' not in err  # fixed_frequency reads it
  assert ran and ran[0].norm_bound == 2.0
