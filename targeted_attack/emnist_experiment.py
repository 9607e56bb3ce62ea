r"""Backdoor attacks and defenses on federated EMNIST (or generated digits).

  python -m targeted_attack.emnist_experiment --dataset=synthetic \
      --attack=unconstrained --defense=clip --num_rounds=50

The flags are generated from `experiment.config.ExperimentConfig` (name,
default, help, allowed values: the registry's names); the binary parses them
into a config and calls `experiment.run.run`. A bad setting ends the program
with a one-line error naming the flag, before any training starts. Installed,
it is also the console script `targeted-attack`.
"""

import os
import re
import sys
import typing

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
from targeted_attack import runtime
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import outputs
from targeted_attack.experiment import registry
# pylint: enable=g-import-not-at-top

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, str: flags.DEFINE_string}


def setting_type(annotation):
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  return args[0] if args else annotation


def define_flags(flag_values=flags.FLAGS) -> None:
  """One flag per `ExperimentConfig` field, its help with the allowed values."""
  for field in config_lib.fields():
    check = field.metadata.get('check')
    help_text = field.metadata['help']
    if check is not None:
      options = registry.CHOICES.get(field.name, ())
      help_text += f' Allowed: {check.describe(options)}.'
    _DEFINE[setting_type(field.type)](field.name, field.default, help_text,
                                    flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> config_lib.ExperimentConfig:
  return config_lib.ExperimentConfig(
      **{f.name: flag_values[f.name].value for f in config_lib.fields()})


def as_flag_error(error: Exception, names=None) -> str:
  """The library's message with each `setting` written as --setting, for the
  settings in `names` (default: every `ExperimentConfig` field)."""
  if names is None:
    names = {f.name for f in config_lib.fields()}
  return re.sub(r'`([a-z0-9_]+)`',
                lambda m: f'--{m.group(1)}' if m.group(1) in names else
                m.group(0), str(error))


FLAGS = flags.FLAGS


def run_config(config, describe_error=as_flag_error) -> int:
  """Runs `config` (already validated) in TFF's chosen context; prints the
  final round's accuracies, or one line for an error (`describe_error`
  writes the library's message in the binary's flag names). The exit code."""
  gpus = runtime.configure_devices(config.gpu_memory_growth,
                                   config.op_determinism)
  runtime.set_local_execution_context(
      kind=config.execution_context,
      max_concurrency=config.client_concurrency or None,
      client_devices=gpus if config.spread_clients_over_gpus else None)
  from targeted_attack.experiment import run  # pylint: disable=g-import-not-at-top
  try:
    rows = run.run(config)
  except (config_lib.ConfigError, outputs.CorruptOutputError) as e:
    print(f'error: {describe_error(e)}', file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    # A computation failed (in TFF's worker or in this process): its
    # TensorFlow error in one line, not a page of gRPC frames.
    line = runtime.computation_error_line(e)
    if line is None:
      raise
    print(f'error: a TFF computation failed: {line}', file=sys.stderr)
    return 1
  last = [r for r in rows if r.get('main_task_accuracy') not in ('', None)]
  if last:
    print(f'final round {last[-1]["round"]}: main task accuracy '
          f'{float(last[-1]["main_task_accuracy"]):.4f}, backdoor accuracy '
          f'{float(last[-1]["backdoor_accuracy"]):.4f}; outputs in '
          f'{config.output_dir}')
  return 0


def main(argv, flag_values=FLAGS):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.install_signal_handlers()
  config = config_from_flags(flag_values)
  try:
    registry.validate(config)
  except config_lib.ConfigError as e:
    print(f'error: {as_flag_error(e)}', file=sys.stderr)
    return 2
  given = [f.name for f in config_lib.fields() if flag_values[f.name].present]
  for name, reason in registry.ignored_settings(config, given):
    print(f'note: --{name} is ignored: {reason}', file=sys.stderr)
  return run_config(config)


def run_main():
  """The console script `targeted-attack`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run_main()
