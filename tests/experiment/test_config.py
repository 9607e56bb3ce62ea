"""Settings: every field validated from its metadata; flags generated from them."""

import dataclasses

from absl import flags
import pytest

from targeted_attack.experiment import config as config_lib
from targeted_attack import emnist_experiment
from targeted_attack.experiment import registry

_CHECKED = [f for f in config_lib.fields() if f.metadata.get('check')]


def _flag_values():
  values = flags.FlagValues()
  emnist_experiment.define_flags(values)
  return values


def test_every_field_has_help_and_a_flag_with_its_default():
  values = _flag_values()
  values(['prog'])
  default = config_lib.ExperimentConfig()
  for field in config_lib.fields():
    assert field.metadata['help'], field.name
    assert values[field.name].value == getattr(default, field.name)
  assert emnist_experiment.config_from_flags(values) == default


def test_choice_flags_list_the_registry_keys():
  values = _flag_values()
  for name, reg in (('attack', registry.ATTACKS),
                    ('defense', registry.DEFENSES),
                    ('backdoor', registry.BACKDOORS),
                    ('attacker_model', registry.ATTACKER_MODELS),
                    ('dataset', registry.DATASETS)):
    for key in reg:
      assert key in values[name].help, (name, key)


@pytest.mark.parametrize('field', _CHECKED, ids=lambda f: f.name)
def test_each_setting_outside_its_range_is_a_one_line_flag_error(field):
  bad = field.metadata['check'].invalid_example()
  values = _flag_values()
  values(['prog', f'--{field.name}={bad}'])
  config = emnist_experiment.config_from_flags(values)
  with pytest.raises(config_lib.ConfigError) as error:
    registry.validate(config)
  assert error.value.field == field.name
  message = emnist_experiment.as_flag_error(error.value)
  assert f'--{field.name}' in message and '\n' not in message
  assert f'`{field.name}`' in str(error.value)  # the library names arguments


@pytest.mark.parametrize('overrides, field', [
    (dict(num_clients_per_round=13, synthetic_num_clients=12),
     'num_clients_per_round'),
    (dict(defense='krum', num_byzantine=1, num_clients_per_round=3),
     'num_byzantine'),
    # Blanchard et al.: n > 2f + 2 (n = f + 3 = 5 computes, but is refused).
    (dict(defense='krum', num_byzantine=2, num_clients_per_round=6),
     'num_byzantine'),
    (dict(defense='multi_krum', num_byzantine=2, num_clients_per_round=5,
          multi_krum_selected=2), 'num_byzantine'),
    (dict(defense='multi_krum', multi_krum_selected=6,
          num_clients_per_round=5), 'multi_krum_selected'),
    (dict(attacker_model='fixed_pool', attacker_pool_size=13,
          synthetic_num_clients=12, num_clients_per_round=3),
     'attacker_pool_size'),
    (dict(attacker_model='forced_pool', attacker_pool_size=4,
          num_clients_per_round=3), 'attacker_pool_size'),
    (dict(boost_factor=0.0), 'boost_factor'),
    # 4 single shots 3 rounds apart from round 5: round 14 > 12 rounds.
    (dict(attacker_model='staggered_pool', attacker_pool_size=4,
          attack_start_round=5, attack_stagger=3, num_rounds=12),
     'attack_stagger'),
    (dict(attacker_model='staggered_pool', attacker_pool_size=4,
          attack_start_round=5, attack_stagger=2, attack_end_round=10,
          num_rounds=60), 'attack_stagger'),
    # One attacker whose single shot would come after the run.
    (dict(attacker_model='staggered_pool', attacker_pool_size=1,
          attack_start_round=70, num_rounds=60), 'attack_start_round'),
    # The trigger's source class: not the target, and a class of the data.
    (dict(backdoor='trigger', trigger_source_class=1), 'trigger_source_class'),
    (dict(backdoor='trigger', trigger_source_class=10),
     'trigger_source_class'),
    (dict(dataset='emnist', only_digits=False, trigger_source_class=62),
     'trigger_source_class'),
])
def test_cross_setting_checks_name_the_setting(overrides, field):
  # (A Krum config at n = 2f + 3 is valid: `test_krum_admits_n_above_2f_plus_2`.)
  config = dataclasses.replace(config_lib.ExperimentConfig(), **overrides)
  with pytest.raises(config_lib.ConfigError) as error:
    registry.validate(config)
  assert error.value.field == field


def test_default_boost_is_model_replacement_at_any_server_rate():
  # β = Σ n_k / (η n_k) = n / η for equal n_k (Sun et al. Eq. 1).
  config = config_lib.ExperimentConfig(num_clients_per_round=30,
                                       server_learning_rate=0.5)
  assert config.resolved_boost_factor == 60.0
  config = dataclasses.replace(config, boost_factor=7.0)
  assert config.resolved_boost_factor == 7.0


def test_validation_does_no_io(tmp_path):
  target = tmp_path / 'never_created'
  config = config_lib.ExperimentConfig(root_output_dir=str(target))
  registry.validate(config)
  assert not target.exists()


def test_a_setting_saved_before_it_existed_counts_as_its_default():
  config = config_lib.ExperimentConfig()
  saved = dataclasses.asdict(config)
  del saved['flame_noise_lambda']  # as in a config.json of an older version
  assert config_lib.first_difference(config, saved) is None
  changed = dataclasses.replace(config, flame_noise_lambda=0.5)
  assert config_lib.first_difference(changed, saved) == 'flame_noise_lambda'
  saved['norm_bound'] = 7.0
  assert config_lib.first_difference(config, saved) == 'norm_bound'


def test_krum_admits_n_above_2f_plus_2():
  for f in (0, 1, 2, 3):
    registry.validate(dataclasses.replace(
        config_lib.ExperimentConfig(), defense='krum', num_byzantine=f,
        num_clients_per_round=2 * f + 3))
