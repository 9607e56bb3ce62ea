"""The original binary's settings (google-research/federated,
`targeted_attack/emnist_with_targeted_attack.py`), mapped onto a run.

The original ran one experiment: federated EMNIST, the paper's CNN, in each
attack round one of the sampled clients running the norm-bounded boosted
attack (`ClientProjectBoost`: r rounds of a benign pass, a malicious pass and
the projection onto the ℓ2 ball of radius M around w_t, then boosted by
β = the clients per round), aggregated by weak DP (clip to C, sum, Gaussian
noise of stddev σ, divide by the clients per round). Its 19 flags, their
defaults and meanings, are `OriginalFlags`; `to_experiment_config` gives the
`ExperimentConfig` that runs that experiment, each flag converted to this
project's meaning:

  norm_bound M (radius before boosting)  → norm_bound = β·M (the bound on
                                            the sent update; --attack=
                                            norm_bounded projects onto
                                            norm_bound/β = M)
  mul_factor σ (the noise's stddev)      → mul_factor = σ / C (a multiplier)
  server_momentum m (Keras, Nesterov)    → server_momentum = m,
                                            server_nesterov = (m ≠ 0)
  attack_freq f, attack rounds r mod f = ⌊f/2⌋ counted from 0
                                          → attack_freq = f, attack_phase =
                                            ⌊f/2⌋ + 1 (rounds from 1)
  boost β = num_clients_per_round        → boost_factor = β

What the original ran that this run does differently, and `notes` says so
where a flag is involved:
- `--drop_prob` was never read (the CNN's dropout rates are fixed, 0.25 and
  0.5); it is accepted and unused, as there.
- `--client_learning_rate` and `--client_momentum` were never passed to the
  process: the clients always trained with SGD at 0.1. Here they are used;
  at their defaults the two agree.
- The original evaluated in its rounds r with r mod e = 0 (from 0: its
  rounds 1, 1 + e, ... counted from 1); a run evaluates in rounds t with
  t mod e = 0, and the last.
- The original sampled clients with replacement (`np.random.choice`); a run
  samples without, seeded per round.
- The original's target examples came from its `emnist_target.mat` (the last
  `task_num` of its target tasks) and were one batch, trained once per PGD
  round; here the semantic backdoor's target writers' 7s (labelled 1),
  batched and repeated for the local epochs like any client's data.
- The original's CNN ended in a softmax and its loss took probabilities;
  here it ends in logits and the loss takes them (the same function).
"""

import dataclasses
from typing import List

from targeted_attack.experiment import config as config_lib


def _flag(default, help_text):
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass(frozen=True)
class OriginalFlags:
  """The original binary's flags, with its defaults."""
  root_output_dir: str = _flag('/tmp/emnist_grids/',
                               'Root directory for the outputs.')
  random_seed: int = _flag(0, 'Random seed.')
  evaluate_per_rounds: int = _flag(1, 'Evaluate every this many rounds.')
  only_digits: bool = _flag(True, 'EMNIST: True: 10 classes, False: 62.')
  num_clients_per_round: int = _flag(
      5, 'Clients sampled per round; also the attacker\'s boost β.')
  num_rounds: int = _flag(300, 'Number of rounds.')
  server_learning_rate: float = _flag(1.0, 'Server SGD learning rate.')
  server_momentum: float = _flag(
      0.0, 'Server momentum (Nesterov\'s, as the original).')
  num_epochs: int = _flag(5, 'Local epochs per round.')
  batch_size: int = _flag(20, 'Local batch size.')
  client_learning_rate: float = _flag(
      0.1, 'Client SGD learning rate (the original never used it: its '
      'clients trained at 0.1).')
  client_momentum: float = _flag(
      0.0, 'Client momentum (the original never used it).')
  attack_freq: int = _flag(
      1, 'One attacker every this many rounds, in the middle of each period '
      '(rounds r with r mod attack_freq = attack_freq // 2, from 0).')
  task_num: int = _flag(30, 'Number of target tasks (target writers).')
  client_round_num: int = _flag(
      5, 'Rounds of the norm-bounded attack\'s local training.')
  drop_prob: float = _flag(
      0.5, 'Unused, as in the original (the CNN\'s dropout rates are fixed).')
  norm_bound: float = _flag(
      0.33, 'The attacker\'s projection radius M, before boosting by β.')
  l2_norm_clip: float = _flag(1.0, 'Weak DP: the clip norm C.')
  mul_factor: float = _flag(
      0.0, 'Weak DP: the stddev σ of the noise on the sum of clipped '
      'updates.')


def fields():
  return dataclasses.fields(OriginalFlags)


def to_experiment_config(flags: OriginalFlags,
                         **settings) -> config_lib.ExperimentConfig:
  """The `ExperimentConfig` of the original's experiment with `flags`.

  `settings`: other `ExperimentConfig` settings the original had no flag
  for (`dataset` to run it offline, `experiment_name`, `execution_context`,
  ...). Raises `ConfigError` naming the original flag whose value is out of
  range.
  """
  f = flags
  positive_int = config_lib.IntAtLeast(1)
  checks = (('num_clients_per_round', f.num_clients_per_round, positive_int),
            ('attack_freq', f.attack_freq, positive_int),
            ('client_round_num', f.client_round_num, positive_int),
            ('norm_bound', f.norm_bound, config_lib.Number(0.0, strict=True)),
            ('l2_norm_clip', f.l2_norm_clip,
             config_lib.Number(0.0, strict=True)),
            ('mul_factor', f.mul_factor, config_lib.Number(0.0)),
            ('drop_prob', f.drop_prob, config_lib.Number(0.0, 1.0)))
  for name, value, check in checks:
    try:
      check(name, value)
    except ValueError as e:
      raise config_lib.ConfigError(name, str(e)) from e
  beta = float(f.num_clients_per_round)
  defaults = dict(
      experiment_name='emnist_with_targeted_attack', dataset='emnist',
      model='cnn', attack='norm_bounded', attacker_model='fixed_frequency',
      backdoor='semantic', defense='weak_dp')
  defaults.update(settings)
  return config_lib.ExperimentConfig(
      root_output_dir=f.root_output_dir,
      random_seed=f.random_seed,
      evaluate_per_rounds=f.evaluate_per_rounds,
      only_digits=f.only_digits,
      num_clients_per_round=f.num_clients_per_round,
      num_rounds=f.num_rounds,
      server_learning_rate=f.server_learning_rate,
      server_momentum=f.server_momentum,
      server_nesterov=f.server_momentum != 0,
      num_epochs=f.num_epochs,
      batch_size=f.batch_size,
      client_learning_rate=f.client_learning_rate,
      client_momentum=f.client_momentum,
      attack_freq=f.attack_freq,
      attack_phase=f.attack_freq // 2 + 1,
      task_num=f.task_num,
      client_round_num=f.client_round_num,
      boost_factor=beta,
      norm_bound=beta * f.norm_bound,
      l2_norm_clip=f.l2_norm_clip,
      mul_factor=f.mul_factor / f.l2_norm_clip,
      **defaults)


def notes(flags: OriginalFlags, given=()) -> List[str]:
  """One line per flag whose effect differs from the original's: set
  (`given`: the flags on the command line) or away from the original's
  default."""
  default = OriginalFlags()
  changed = {f.name for f in fields()
             if getattr(flags, f.name) != getattr(default, f.name)}
  lines = []
  if 'drop_prob' in changed | set(given):
    lines.append('--drop_prob is unused, as in the original binary (the '
                 'CNN\'s dropout rates are fixed: 0.25 and 0.5).')
  for name in ('client_learning_rate', 'client_momentum'):
    if name in changed:
      lines.append(f'--{name}={getattr(flags, name)} is applied; the '
                   'original binary never used it (its clients trained with '
                   'SGD at 0.1).')
  return lines
