r"""Backdoor attacks and defenses on federated EMNIST (or generated digits).

  python -m targeted_attack.emnist_experiment --dataset=synthetic \
      --attack=unconstrained --defense=clip --num_rounds=50

Parses flags into an `experiment.ExperimentConfig` and calls `experiment.run`;
bad flags end the program with a one-line error naming the flag, before any
training starts.
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from targeted_attack import experiment  # pylint: disable=g-import-not-at-top
from targeted_attack import runtime  # pylint: disable=g-import-not-at-top

_D = experiment.ExperimentConfig()

flags.DEFINE_string('root_output_dir', _D.root_output_dir,
                    'Root directory for all outputs.')
flags.DEFINE_string('experiment_name', _D.experiment_name,
                    'Outputs go to root_output_dir/experiment_name/.')
flags.DEFINE_integer('random_seed', _D.random_seed,
                     'Seed for data generation, sampling and noise.')
flags.DEFINE_integer('evaluate_per_rounds', _D.evaluate_per_rounds,
                     'Evaluate every this many rounds.')
flags.DEFINE_integer('checkpoint_every', _D.checkpoint_every,
                     'Checkpoint the process state every this many rounds.')
flags.DEFINE_bool('resume', _D.resume,
                  'Continue from the checkpoint in the output directory.')
flags.DEFINE_string('dataset', _D.dataset,
                  'synthetic (generated writer-style digits, offline) | '
                  'emnist (TFF federated EMNIST).')
flags.DEFINE_string('emnist_cache_dir', _D.emnist_cache_dir,
                    'Directory with a cached copy of federated EMNIST.')
flags.DEFINE_bool('only_digits', _D.only_digits,
                  'EMNIST: digits only (10 classes).')
flags.DEFINE_integer('synthetic_num_clients', _D.synthetic_num_clients,
                     'Synthetic: number of writers (clients).')
flags.DEFINE_integer('synthetic_examples_per_client',
                     _D.synthetic_examples_per_client,
                     'Synthetic: mean train examples per writer.')
flags.DEFINE_string('model', _D.model,
                  'cnn: the paper\'s CNN; small_cnn: fewer filters; linear.')
flags.DEFINE_integer('num_clients_per_round', _D.num_clients_per_round,
                     'Clients sampled per round.')
flags.DEFINE_integer('num_rounds', _D.num_rounds, 'Number of rounds.')
flags.DEFINE_float('server_learning_rate', _D.server_learning_rate,
                   'Server SGD learning rate η.')
flags.DEFINE_float('server_momentum', _D.server_momentum, 'Server momentum.')
flags.DEFINE_integer('num_epochs', _D.num_epochs, 'Local epochs per round.')
flags.DEFINE_integer('batch_size', _D.batch_size, 'Local batch size.')
flags.DEFINE_float('client_learning_rate', _D.client_learning_rate,
                   'Client SGD learning rate.')
flags.DEFINE_float('client_momentum', _D.client_momentum, 'Client momentum.')
flags.DEFINE_string('attack', _D.attack,
                    'none | unconstrained (explicit boosting) | norm_bounded '
                    '(PGD within norm_bound/boost_factor, then boosted) | '
                    'data_poisoning | constrain_and_scale | train_and_scale | '
                    'pgd | pgd_replacement.')
flags.DEFINE_string('attacker_model', _D.attacker_model,
                  'fixed_frequency: one attacker every attack_freq rounds; '
                  'random_sampling: a malicious_fraction of the population; '
                  'fixed_pool: attacker_pool_size fixed malicious clients.')
flags.DEFINE_integer('attack_freq', _D.attack_freq,
                     'Fixed frequency: attack every this many rounds.')
flags.DEFINE_float('malicious_fraction', _D.malicious_fraction,
                   'Random sampling: fraction ε of malicious clients.')
flags.DEFINE_integer('attacker_pool_size', _D.attacker_pool_size,
                     'Fixed pool: number of malicious clients in the '
                     'population.')
flags.DEFINE_integer('task_num', _D.task_num,
                     'Number of target writers whose 7s are labelled 1.')
flags.DEFINE_float('boost_factor', _D.boost_factor,
                   'Attacker boost β; default: num_clients_per_round.')
flags.DEFINE_integer('client_round_num', _D.client_round_num,
                     'Norm-bounded attack: PGD rounds per attack.')
flags.DEFINE_integer('poison_per_batch', _D.poison_per_batch,
                     'data_poisoning / constrain_and_scale: backdoor items '
                     'replacing benign ones in each batch (c).')
flags.DEFINE_float('attacker_learning_rate', _D.attacker_learning_rate,
                   'constrain_and_scale / pgd: the attacker\'s SGD rate.')
flags.DEFINE_float('cs_alpha', _D.cs_alpha,
                   'constrain_and_scale: α in α·L_class + (1−α)·L_ano, [0, 1].')
flags.DEFINE_string('cs_anomaly', _D.cs_anomaly,
                    'constrain_and_scale: L_ano: l2 | cosine.')
flags.DEFINE_float('cs_gamma', _D.cs_gamma,
                   'constrain_and_scale: scale γ > 0; default: boost factor.')
flags.DEFINE_integer('cs_max_epochs', _D.cs_max_epochs,
                     'constrain_and_scale: at most this many passes.')
flags.DEFINE_float('cs_early_stop_loss', _D.cs_early_stop_loss,
                   'constrain_and_scale: stop once the backdoor loss < ε.')
flags.DEFINE_float('cs_lr_decay', _D.cs_lr_decay,
                   'constrain_and_scale: learning-rate decay per step block.')
flags.DEFINE_integer('cs_lr_step_size', _D.cs_lr_step_size,
                     'constrain_and_scale: steps per learning-rate block.')
flags.DEFINE_float('pgd_eps', _D.pgd_eps,
                   'pgd / pgd_replacement: ℓ2 radius ε around w_t; default: '
                   'norm_bound (pgd_replacement: norm_bound / boost).')
flags.DEFINE_integer('project_frequency', _D.project_frequency,
                     'pgd / pgd_replacement: project every this many steps.')
flags.DEFINE_string('backdoor', _D.backdoor,
                    'semantic (target writers\' 7s → 1, the paper) | '
                    'edge_case (crossbar 7s → 1) | trigger (pixel pattern).')
flags.DEFINE_string('edge_case_mix', _D.edge_case_mix,
                    'edge_case | almost_edge_case | normal_case: how many '
                    'honest writers draw (correctly labelled) crossbar 7s.')
flags.DEFINE_integer('edge_case_num_train', _D.edge_case_num_train,
                     'Edge-case images the attacker trains on.')
flags.DEFINE_integer('edge_case_num_eval', _D.edge_case_num_eval,
                     'Edge-case images backdoor accuracy is measured on.')
flags.DEFINE_float('trigger_amplitude', _D.trigger_amplitude,
                   'Trigger backdoor: pattern amplitude in (0, 1].')
flags.DEFINE_string('trigger_placement', _D.trigger_placement,
                    'Trigger backdoor: one_corner | four_corners.')
flags.DEFINE_float('dp_sgd_l2_norm_clip', _D.dp_sgd_l2_norm_clip,
                   'defense=dp_sgd: per-example clip norm.')
flags.DEFINE_float('dp_sgd_noise_multiplier', _D.dp_sgd_noise_multiplier,
                   'defense=dp_sgd: noise multiplier σ.')
flags.DEFINE_string('defense', _D.defense,
                    'Server-side defense: ' + ' | '.join(experiment.DEFENSES))
flags.DEFINE_float('norm_bound', _D.norm_bound,
                   'M: clip / aggregate_clip bound, and the bound the '
                   'norm-bounded attacker respects.')
flags.DEFINE_float('l2_norm_clip', _D.l2_norm_clip, 'Weak DP: clip norm C.')
flags.DEFINE_float('mul_factor', _D.mul_factor,
                   'Weak DP noise multiplier: the noise on the sum has '
                   'stddev mul_factor * l2_norm_clip (the original code used '
                   'mul_factor as the raw stddev).')
flags.DEFINE_integer('num_byzantine', _D.num_byzantine,
                     'Krum / Multi-Krum: assumed Byzantine clients f.')
flags.DEFINE_integer('multi_krum_selected', _D.multi_krum_selected,
                     'Multi-Krum: updates averaged m.')
flags.DEFINE_float('trim_fraction', _D.trim_fraction,
                   'Trimmed mean: fraction trimmed from each end, [0, 0.5).')
flags.DEFINE_integer('geometric_median_iters', _D.geometric_median_iters,
                     'Geometric median: Weiszfeld iterations.')

FLAGS = flags.FLAGS


def config_from_flags() -> experiment.ExperimentConfig:
  names = [f.name for f in dataclasses.fields(experiment.ExperimentConfig)]
  return experiment.ExperimentConfig(**{n: FLAGS[n].value for n in names})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  runtime.install_signal_handlers()
  config = config_from_flags()
  try:
    experiment.validate(config)
  except experiment.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  runtime.set_local_execution_context()
  try:
    rows = experiment.run(config)
  except experiment.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  last = [r for r in rows if r.get('main_task_accuracy') not in ('', None)]
  if last:
    print(f'final round {last[-1]["round"]}: main task accuracy '
          f'{float(last[-1]["main_task_accuracy"]):.4f}, backdoor accuracy '
          f'{float(last[-1]["backdoor_accuracy"]):.4f}; outputs in '
          f'{config.output_dir}')
  return 0


if __name__ == '__main__':
  app.run(main)
