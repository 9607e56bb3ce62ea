"""Every numeric flag's range, written here by hand from what the setting
means (not read from the config's metadata), tried through the binary's
`main` at each boundary and just past it, and with NaN and ±inf: a refused
value exits 2 with one line naming the flag, before anything is written."""

import math

from absl import flags
import pytest

from targeted_attack import emnist_experiment

INF = math.inf
# name: (lowest allowed, lower bound included, highest allowed, upper bound
# included); integers are listed as ints.
RANGES = {
    'random_seed': (0, True, 2**32 - 1, True),        # NumPy's seed range
    'client_concurrency': (0, True, INF, False),      # threads; 0: CPUs
    'evaluate_per_rounds': (1, True, INF, False),
    'checkpoint_every': (1, True, INF, False),
    'durability_threshold': (0.0, True, 1.0, True),   # an accuracy
    'synthetic_num_clients': (1, True, INF, False),
    'synthetic_examples_per_client': (1, True, INF, False),
    'cifar_num_clients': (1, True, INF, False),
    'text_vocab_size': (1, True, INF, False),
    'text_sequence_length': (3, True, INF, False),
    'text_test_sentences': (1, True, INF, False),
    'sentence_eval_size': (1, True, INF, False),
    'synthetic_cifar_train_size': (1, True, INF, False),
    'synthetic_cifar_test_size': (1, True, INF, False),
    'poison_label': (0, True, INF, False),
    'dirichlet_alpha': (0.0, False, INF, False),      # Dir(α), α > 0
    'num_clients_per_round': (1, True, INF, False),
    'num_rounds': (1, True, INF, False),
    'server_learning_rate': (0.0, False, INF, False),
    'server_momentum': (0.0, True, 1.0, False),       # μ < 1 converges
    'num_epochs': (1, True, INF, False),
    'batch_size': (1, True, INF, False),
    'local_steps': (0, True, INF, False),             # 0: every batch
    'client_learning_rate': (0.0, False, INF, False),
    'client_momentum': (0.0, True, 1.0, False),
    'attack_start_round': (1, True, INF, False),      # rounds count from 1
    'attack_end_round': (0, True, INF, False),        # 0: to the end
    'attack_freq': (1, True, INF, False),
    'attack_phase': (0, True, INF, False),            # t mod attack_freq
    'malicious_fraction': (0.0, True, 1.0, True),     # ε, a fraction
    'attacker_pool_size': (1, True, INF, False),
    'task_num': (1, True, INF, False),
    'boost_factor': (0.0, False, INF, False),
    'client_round_num': (1, True, INF, False),
    'poison_per_batch': (1, True, INF, False),
    'poison_passes': (1, True, INF, False),
    'poison_boost_factor': (0.0, False, INF, False),
    'attack_stagger': (1, True, INF, False),
    'attacker_learning_rate': (0.0, False, INF, False),
    'cs_alpha': (0.0, True, 1.0, True),               # α·L_class + (1−α)·L_ano
    'cs_gamma': (0.0, False, INF, False),
    'cs_max_epochs': (1, True, INF, False),
    'cs_early_stop_loss': (0.0, True, INF, False),
    'cs_lr_decay': (0.0, False, INF, False),
    'cs_lr_step_size': (1, True, INF, False),
    'pgd_eps': (0.0, False, INF, False),              # a radius
    'project_frequency': (1, True, INF, False),
    'neurotoxin_mask_ratio': (0.0, True, 1.0, False),  # 1 masks everything
    'alie_z': (0.0, True, INF, False),
    'ipm_epsilon': (0.0, False, INF, False),
    'edge_case_num_train': (1, True, INF, False),
    'edge_case_num_eval': (1, True, INF, False),
    'trigger_amplitude': (0.0, False, 1.0, True),     # a blend weight
    'dba_parts': (1, True, 36, True),                 # the trigger's pixels
    # -1: every class but the target; else a class of the default dataset's
    # 10 (the target, 1, is refused too: test_config's cross-setting checks).
    'trigger_source_class': (-1, True, 9, True),
    'a3fl_outer_iterations': (1, True, INF, False),
    'a3fl_trigger_passes': (1, True, INF, False),
    'a3fl_trigger_lr': (0.0, False, INF, False),
    'a3fl_lambda': (0.0, True, INF, False),
    'a3fl_unlearn_passes': (0, True, INF, False),     # 0: no θ'
    'a3fl_unlearn_lr': (0.0, False, INF, False),
    'a3fl_batch_size': (1, True, INF, False),
    'a3fl_boost_factor': (0.0, False, INF, False),
    'norm_bound': (0.0, False, INF, False),
    'l2_norm_clip': (0.0, False, INF, False),
    'mul_factor': (0.0, True, INF, False),            # σ = mul·C ≥ 0
    'num_byzantine': (0, True, INF, False),
    'multi_krum_selected': (1, True, INF, False),
    'trim_fraction': (0.0, True, 0.5, False),         # from each end
    'geometric_median_iters': (1, True, INF, False),
    'rlr_threshold': (0, True, INF, False),
    'flame_noise_lambda': (0.0, True, INF, False),
    'foolsgold_confidence': (0.0, False, INF, False),
    'fltrust_root_size': (1, True, INF, False),
    'tff_dp_noise_multiplier': (0.0, True, INF, False),
    'dp_sgd_l2_norm_clip': (0.0, False, INF, False),
    'dp_sgd_noise_multiplier': (0.0, True, INF, False),
    'privacy_delta_exponent': (1.0, False, INF, False),  # δ = N^−e < 1/N
}


def _cases():
  for name, (low, low_in, high, high_in) in sorted(RANGES.items()):
    integer = isinstance(low, int)
    step = 1 if integer else 1e-6
    if math.isfinite(low):
      yield name, low, low_in
      yield name, low - step, False
      if not low_in and not integer:
        yield name, low + step, True
    if math.isfinite(high):
      yield name, high, high_in
      yield name, high + step, False
      if not high_in:
        yield name, high - step, True
    if not integer:
      for special in ('nan', 'inf', '-inf'):
        yield name, special, False


# Settings an allowed value of another needs, so that no cross-setting
# check (tested elsewhere) refuses it.
_CONTEXT = {
    'synthetic_num_clients': dict(num_clients_per_round=1, task_num=1),
}


class _Started(Exception):
  """Raised in place of the run: the binary got past validation."""


def _main(tmp_path, name, value, capsys, monkeypatch):
  from targeted_attack.experiment import run as run_lib  # pylint: disable=g-import-not-at-top

  def run(config, **kwargs):
    raise _Started()

  monkeypatch.setattr(emnist_experiment.runtime, 'set_local_execution_context',
                      lambda *a, **k: None)
  monkeypatch.setattr(run_lib, 'run', run)
  values = flags.FlagValues()
  emnist_experiment.define_flags(values)
  context = [f'--{k}={v}' for k, v in _CONTEXT.get(name, {}).items()]
  values(['binary', f'--root_output_dir={tmp_path}', *context,
          f'--{name}={value}'])
  try:
    code = emnist_experiment.main(['binary'], flag_values=values)
  except _Started:
    code = 0
  return code, capsys.readouterr().err


def test_every_numeric_setting_has_a_hand_written_range():
  from targeted_attack.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
  numeric = {f.name for f in config_lib.fields()
             if 'int' in str(f.type) or 'float' in str(f.type)}
  assert numeric == set(RANGES)


@pytest.mark.parametrize('name, value, allowed', list(_cases()))
def test_flag_range_through_the_binary(tmp_path, capsys, monkeypatch, name,
                                       value, allowed):
  code, err = _main(tmp_path, name, value, capsys, monkeypatch)
  lines = [l for l in err.splitlines() if l.startswith('error:')]
  if allowed:
    assert code == 0 and not lines, err
  else:
    assert code == 2, (value, err)
    assert len(lines) == 1 and f'--{name}' in lines[0], err
    assert list(tmp_path.iterdir()) == []
