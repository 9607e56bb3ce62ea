r"""The original research code's binary: its flags run its experiment.

  python -m targeted_attack.emnist_with_targeted_attack \
      --num_clients_per_round=30 --attack_freq=10 --norm_bound=0.1 \
      --l2_norm_clip=1.0 --mul_factor=0.0 --drop_prob=0.5

The 19 flags of google-research/federated's
`targeted_attack/emnist_with_targeted_attack.py`, with its defaults and
meanings (`experiment.original.OriginalFlags`), mapped onto this project's run
(`experiment.original.to_experiment_config`: the norm-bounded boosted
attacker, weak DP, federated EMNIST, the paper's CNN). A few of this
project's settings that the original had no flag for: `--dataset` (synthetic
runs offline), `--emnist_cache_dir`, `--experiment_name`,
`--execution_context`, and the synthetic data's size. The run's `config.json`
is the experiment it ran, in this project's settings; `original_flags.json`
beside it, the original flags it was given.
"""

import dataclasses
import json
import os
import sys

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
from targeted_attack import emnist_experiment
from targeted_attack import runtime
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import original
from targeted_attack.experiment import registry
# pylint: enable=g-import-not-at-top

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, str: flags.DEFINE_string}

# This project's settings the binary also takes (the original had no flag).
EXTRA_SETTINGS = ('dataset', 'emnist_cache_dir', 'experiment_name',
                  'execution_context', 'synthetic_num_clients',
                  'synthetic_examples_per_client')


def define_flags(flag_values=flags.FLAGS) -> None:
  """The original's 19 flags, then `EXTRA_SETTINGS` (default dataset:
  emnist, as the original)."""
  for field in original.fields():
    _DEFINE[field.type](field.name, field.default, field.metadata['help'],
                        flag_values=flag_values)
  settings = {f.name: f for f in config_lib.fields()}
  defaults = {'dataset': 'emnist',
              'experiment_name': 'emnist_with_targeted_attack'}
  for name in EXTRA_SETTINGS:
    field = settings[name]
    _DEFINE[emnist_experiment.setting_type(field.type)](name, defaults.get(name, field.default),
                  field.metadata['help'], flag_values=flag_values)


def _original_flag_error(error: Exception) -> str:
  """The library's message with each `setting` that is a flag here written
  as --setting."""
  return emnist_experiment.as_flag_error(
      error, {f.name for f in original.fields()} | set(EXTRA_SETTINGS))


def main(argv, flag_values=flags.FLAGS):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.install_signal_handlers()
  given = original.OriginalFlags(
      **{f.name: flag_values[f.name].value for f in original.fields()})
  extra = {name: flag_values[name].value for name in EXTRA_SETTINGS}
  try:
    config = original.to_experiment_config(given, **extra)
    registry.validate(config)
  except config_lib.ConfigError as e:
    print(f'error: {_original_flag_error(e)}', file=sys.stderr)
    return 2
  present = [f.name for f in original.fields() if flag_values[f.name].present]
  for line in original.notes(given, present):
    print(f'note: {line}', file=sys.stderr)
  print(f'note: the original\'s experiment: --attack={config.attack} '
        f'(radius {given.norm_bound} before boosting by '
        f'{config.boost_factor:g}) --defense={config.defense} (C = '
        f'{config.l2_norm_clip:g}, σ = {given.mul_factor:g}) '
        f'--dataset={config.dataset}; config.json in {config.output_dir}',
        file=sys.stderr)
  os.makedirs(config.output_dir, exist_ok=True)
  with open(os.path.join(config.output_dir, 'original_flags.json'), 'w') as f:
    json.dump(dataclasses.asdict(given), f, indent=1, sort_keys=True)
  return emnist_experiment.run_config(config, _original_flag_error)


def run_main():
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run_main()
