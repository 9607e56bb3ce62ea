"""The run's parts, built from its config through the registry.

The order is the run's: the backdoor (what the attackers train on), the
dataset (which the backdoor may shape, and a defense may take a root dataset
from), the backdoor's task, the attacker model, the attack and the defense,
the process. A library error that names a setting (as `name`) becomes a
`ConfigError` for it (`config.as_config_error`).
"""

import collections
import contextlib
import os
import threading


from targeted_attack.data import root_dataset
from targeted_attack.data import sampling
from targeted_attack.defenses import clipping
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import outputs
from targeted_attack.experiment import privacy
from targeted_attack.experiment import registry
from targeted_attack.experiment.config import ConfigError
from targeted_attack.process import learning_process
from targeted_attack.process import models


@contextlib.contextmanager
def naming_settings():
  """Re-raises a ValueError whose message names a setting as its ConfigError."""
  try:
    yield
  except ValueError as e:
    named = config_lib.as_config_error(e)
    if named is e:
      raise
    raise named from e


def build_backdoor(config):
  """The chosen backdoor (`backdoors.base.Backdoor`)."""
  with naming_settings():
    return registry.BACKDOORS.chosen(config).build(config)


def load_data(config, backdoor=None):
  """The chosen dataset (shaped by `backdoor`, default the chosen one), with
  the root dataset of the defense, if it has one."""
  if backdoor is None:
    backdoor = build_backdoor(config)
  with naming_settings():
    data = registry.DATASETS.chosen(config).build(config, backdoor)
  root_size = registry.DEFENSES.chosen(config).root_dataset_size
  if root_size is not None:
    try:
      data = root_dataset.hold_out_root(data, getattr(config, root_size),
                                        config.random_seed)
    except ValueError as e:
      raise ConfigError(root_size, f'`{root_size}`: {e}') from e
  if config.num_clients_per_round > data.num_clients:
    raise ConfigError(
        'num_clients_per_round',
        f'`num_clients_per_round`={config.num_clients_per_round} must be '
        f'<= the number of clients ({data.num_clients}).')
  return data


def initial_task(backdoor, data):
  """The backdoor's task on `data` (`backdoors.base.BackdoorTask`)."""
  with naming_settings():
    return backdoor.initial_task(data)


def build_attackers(config, population: int) -> sampling.AttackerModel:
  """The attacker model, active within the attack window."""
  if not registry.ATTACKS.chosen(config).has_attackers:
    return sampling.NoAttackers()
  with naming_settings():
    attackers = registry.ATTACKER_MODELS.chosen(config).build(config,
                                                              population)
  return sampling.AttackWindow(attackers, config.attack_start_round,
                               config.attack_end_round)


def build_attack(config):
  with naming_settings():
    return registry.ATTACKS.chosen(config).build(config)


def build_defense(config, population: int):
  """(aggregation factory with non-finite updates zeroed, client DP-SGD or
  None); `population`: the number of clients."""
  entry = registry.DEFENSES.chosen(config)
  with naming_settings():
    aggregator = clipping.build_zero_non_finite(entry.build(config,
                                                            population))
    client_dp_sgd = (entry.client_dp_sgd(config)
                     if entry.client_dp_sgd is not None else None)
  return aggregator, client_dp_sgd




def build_process(config, population: int, num_classes: int = 10,
                  image_shape=models.DIGITS_IMAGE_SHAPE):
  """The attacked FedAvg process of `config` (attack, defense, optimizers),
  its model with `num_classes` outputs for images of `image_shape` (the
  dataset's)."""
  c = config
  aggregator, client_dp_sgd = build_defense(c, population)
  return learning_process.build_federated_averaging_process_attacked(
      models.build_model_fn(c.model, num_classes, seed=c.random_seed,
                            image_shape=image_shape,
                            unroll=client_dp_sgd is not None),
      client_optimizer_fn=learning_process.build_sgdm(c.client_learning_rate,
                                                      c.client_momentum),
      server_optimizer_fn=learning_process.build_sgdm(
          c.server_learning_rate, c.server_momentum, c.server_nesterov),
      model_update_aggregation_factory=aggregator,
      client_update_tf=build_attack(c), client_dp_sgd=client_dp_sgd,
      client_weighting=registry.DEFENSES.chosen(c).client_weighting,
      client_batching=c.client_batching)


# How many built processes a Python process keeps (the most recently used).
KEPT_PROCESSES = 4

_kept = collections.OrderedDict()
_kept_lock = threading.Lock()


def reused_process(config, population: int, num_classes: int = 10,
                   image_shape=models.DIGITS_IMAGE_SHAPE):
  """`build_process`, built once per Python process for runs that differ only
  in `config.LOOP_SETTINGS` (a resumed run, a longer one, another output directory).

  A process is a pure function of its state and inputs (TFF computations hold
  no state between calls; the project's randomness is seeded from the state
  and the round), so reusing it changes no value: the tests run a config
  twice, the second time on the kept process, and compare every metric.
  Reuse skips rebuilding it (2–5 s) and the context's compiling it again
  (about 2 s): a reused tiny run takes 0.4 s against 4 s. Code changed in
  this Python process after a build (a notebook cell redefining a model) is
  not seen by the kept process: `forget_processes()` empties the store.
  """
  key = (tuple((f.name, getattr(config, f.name)) for f in config_lib.fields()
               if f.name not in config_lib.LOOP_SETTINGS),
         population, num_classes, tuple(image_shape),
         registry.ATTACKS.chosen(config), registry.DEFENSES.chosen(config))
  with _kept_lock:
    process = _kept.get(key)
    if process is not None:
      _kept.move_to_end(key)
      return process
  process = build_process(config, population, num_classes, image_shape)
  with _kept_lock:
    _kept[key] = process
    while len(_kept) > KEPT_PROCESSES:
      _kept.popitem(last=False)
  return process


def forget_processes() -> None:
  """Empties `reused_process`'s store: the next run builds its process anew."""
  with _kept_lock:
    _kept.clear()


def initial_state(process, config):
  """The process's initial state, with the model of `config.init_checkpoint`."""
  state = process.initialize()
  if config.init_checkpoint:
    state = process.set_model_weights(state, outputs.load_model_weights(
        os.path.expanduser(config.init_checkpoint),
        process.get_model_weights(state)))
  return state


def build_privacy_accountant(config, population: int):
  """The client-level accountant of a server DP defense, or None."""
  entry = registry.DEFENSES.chosen(config)
  if entry.noise_multiplier is None:
    return None
  return privacy.accountant_for(entry.noise_multiplier(config),
                                config.num_clients_per_round, population,
                                config.privacy_delta_exponent)


def build_dp_sgd_tracker(config, num_examples):
  """The example-level tracker of a client DP-SGD defense, or None.

  `num_examples(k)`: client k's number of training examples. z is the
  defense's own `DPSGD.noise_multiplier`; B and E the run's batch size and
  local epochs.
  """
  entry = registry.DEFENSES.chosen(config)
  if entry.client_dp_sgd is None:
    return None
  return privacy.DpSgdTracker(
      privacy.DpSgdAccountant(entry.client_dp_sgd(config).noise_multiplier,
                              config.batch_size, config.num_epochs,
                              delta_exponent=config.privacy_delta_exponent),
      num_examples)
