"""Every registry entry builds and runs one tiny round through the binary's path."""

import itertools

import pytest

from targeted_attack.experiment import config as config_lib
from targeted_attack.data import cifar
from targeted_attack.data import emnist_cache
from targeted_attack.data import synthetic_images
from targeted_attack.data import shakespeare
from targeted_attack.data import text
from targeted_attack.experiment import registry
from targeted_attack.experiment import build
from targeted_attack.data import federated
from targeted_attack.attacks import pgd
from targeted_attack.experiment import run as run_lib
from builders import tiny_config as tiny

# Settings each entry needs to run on the tiny configuration.
_NEEDS = {
    'edge_case': dict(edge_case_num_train=10, edge_case_num_eval=10),
    'southwest': dict(edge_case_num_train=10, edge_case_num_eval=10),
    # The stand-in's commonest attribute list (3% of the images).
    'semantic_images': dict(poison_images='striped_background_train',
                            poison_images_test='striped_background_test'),
    'krum': dict(num_clients_per_round=5, num_byzantine=1),
    'multi_krum': dict(num_clients_per_round=5, num_byzantine=1,
                       multi_krum_selected=2),
    'bulyan': dict(num_clients_per_round=7, num_byzantine=1),
    'rlr': dict(rlr_threshold=2),
    'fixed_pool': dict(attacker_pool_size=3),
    'forced_pool': dict(attacker_pool_size=2),
    # One attacker, its single shot in round 1 (the run's only round).
    'staggered_pool': dict(attacker_pool_size=1),
    'constrain_and_scale': dict(poison_per_batch=2, cs_max_epochs=1),
    'data_poisoning': dict(poison_per_batch=2),
    # The a3fl attack trains on the a3fl backdoor's trigger; a short search.
    'a3fl': dict(backdoor='a3fl', poison_per_batch=2, a3fl_outer_iterations=1,
                 a3fl_trigger_passes=1, a3fl_unlearn_passes=1),
    'synthetic_cifar10': dict(cifar_num_clients=12,
                              synthetic_cifar_train_size=600,
                              synthetic_cifar_test_size=60),
    'cifar10': dict(cifar_num_clients=12),
    'synthetic_cifar100': dict(cifar_num_clients=12),
    'synthetic_text': dict(model='small_lstm', text_sequence_length=10,
                           sentence_eval_size=20),
    'stackoverflow': dict(model='small_lstm', text_sequence_length=10,
                          text_test_sentences=40, sentence_eval_size=20),
    # Characters: the backdoor sentence's 31 fit in T − 1; TFF's model.
    'synthetic_shakespeare': dict(model='char_lstm', text_sequence_length=32,
                                  text_test_sentences=40,
                                  sentence_eval_size=20),
    'shakespeare': dict(model='small_lstm', text_sequence_length=32,
                        text_test_sentences=40, sentence_eval_size=20),
}


def _fit(cell, pinned=None):
  """Makes `cell`'s entries usable together, changing any setting but
  `pinned` (a backdoor or attack needs a kind of dataset)."""
  def use(setting, value):
    if setting == pinned:
      return False
    cell[setting] = value
    return True

  text_sets = registry.TEXT_DATASETS
  if cell['attack'] == 'a3fl' and cell['dataset'] in text_sets:
    # The a3fl attack trains on the a3fl backdoor's image trigger.
    use('dataset', 'synthetic') or use('attack', 'unconstrained')
  if cell['dataset'] in text_sets and cell['backdoor'] != 'sentence':
    use('backdoor', 'sentence') or use('dataset', 'synthetic')
  if cell['backdoor'] == 'sentence' and cell['dataset'] not in text_sets:
    use('dataset', 'synthetic_text') or use('backdoor', 'semantic')
  if cell['backdoor'] == 'semantic_images' and (
      cell['dataset'] not in registry.POOL_DATASETS):
    use('dataset', 'synthetic_cifar10') or use('backdoor', 'semantic')
  if cell['backdoor'] == 'southwest' and cell['dataset'] != (
      'synthetic_cifar10'):
    use('dataset', 'synthetic_cifar10') or use('backdoor', 'trigger')
  if cell['backdoor'] == 'edge_case' and (
      cell['dataset'] not in registry.DIGIT_DATASETS):
    use('dataset', 'synthetic') or use('backdoor', 'semantic')
  return cell


def _cells():
  """Registry entries zipped so that each name appears at least once, each
  cell's entries usable together (`_fit`)."""
  columns = [(r.setting, list(r)) for r in registry.ALL]
  length = max(len(names) for _, names in columns)
  cells = []
  for i in range(length):
    cell = {setting: names[i % len(names)] for setting, names in columns}
    # The text entries (slow: an LSTM per cell) get only their own cells,
    # added below.
    if cell['dataset'] in registry.TEXT_DATASETS:
      cell['dataset'] = 'synthetic'
    if cell['backdoor'] == 'sentence':
      cell['backdoor'] = 'semantic'
    cells.append(_fit(cell))
  for setting, names in columns:
    for name in names:
      if all(cell[setting] != name for cell in cells):
        # Added cells take an attack (the second cell's) and a filtering
        # defense: the text tasks run under Krum here (client DP-SGD on
        # text: tests/defenses/test_dp_sgd.py).
        base = dict(cells[1], defense='krum')
        cells.append(_fit(dict(base, **{setting: name}), setting))
  for cell in cells:
    # The real text loaders' cells are for the loaders: no attacker (an LSTM
    # traced for the attack too costs seconds); the attacks on text run on
    # their stand-ins, through the same models.
    if cell['dataset'] in ('stackoverflow', 'shakespeare'):
      cell['attack'] = 'none'
  return cells


def test_the_cells_cover_every_entry():
  for setting, names in ((r.setting, list(r)) for r in registry.ALL):
    assert {cell[setting] for cell in _cells()} == set(names), setting


def _emnist_cache(tmp_path):
  from targeted_attack import data as data_lib  # pylint: disable=g-import-not-at-top
  digits = federated.load_synthetic(8, 20, seed=3)
  writers = []
  for k in range(digits.num_clients):
    pixels, labels = digits.client_arrays(k)
    writers.append((f'f{k:04d}', pixels, labels, pixels[:5], labels[:5]))
  emnist_cache.write_emnist_cache(str(tmp_path / 'emnist'), writers)
  return str(tmp_path / 'emnist')


@pytest.mark.parametrize('cell', _cells(),
                         ids=lambda c: '-'.join(c.values()))
def test_registry_entry_runs_a_round(tmp_path, cell):
  settings = dict(cell, num_rounds=1, attack_freq=1)
  for name in cell.values():
    settings.update(_NEEDS.get(name, {}))
  if cell['dataset'] == 'emnist':
    settings['emnist_cache_dir'] = _emnist_cache(tmp_path)
  if cell['dataset'] == 'stackoverflow':
    text.write_synthetic_stackoverflow(str(tmp_path / 'so'), 12, 20, seed=3)
    settings['stackoverflow_cache_dir'] = str(tmp_path / 'so')
  if cell['dataset'] == 'shakespeare':
    shakespeare.write_synthetic_shakespeare(str(tmp_path / 'shk'), 12, 10,
                                            seed=3)
    settings['shakespeare_cache_dir'] = str(tmp_path / 'shk')
  if cell['dataset'] == 'cifar10':
    settings['cifar10_dir'] = cifar.write_synthetic_cifar10(
        str(tmp_path / 'cifar10'), 300, 60, seed=3)
  if cell['dataset'] == 'cifar100':
    generated = synthetic_images.generate(300, seed=3, num_classes=100)
    clients = [(str(k), generated['images'][20 * k:20 * k + 20],
                generated['labels'][20 * k:20 * k + 20],
                generated['coarse_labels'][20 * k:20 * k + 20])
               for k in range(15)]
    cifar.write_cifar100_cache(str(tmp_path / 'cifar100'), clients[:12],
                               clients[12:])
    settings['cifar100_cache_dir'] = str(tmp_path / 'cifar100')
  config = tiny(tmp_path, **settings)
  registry.validate(config)
  rows = run_lib.run(config, progress=False)
  assert len(rows) == 1
  assert 0.0 <= float(rows[0]['backdoor_accuracy']) <= 1.0
  expected_attackers = registry.ATTACKS[cell['attack']].has_attackers
  if cell['attacker_model'] in ('fixed_frequency', 'staggered_pool'):
    assert int(rows[0]['num_attackers']) == int(expected_attackers)
  if not expected_attackers:
    assert int(rows[0]['num_attackers']) == 0


def test_every_setting_name_is_dispatched_by_exactly_one_registry():
  settings = [r.setting for r in registry.ALL]
  assert len(settings) == len(set(settings))
  fields = {f.name for f in config_lib.fields()}
  assert set(settings) <= fields


def test_pgd_replacement_uses_one_boost_for_radius_and_scale():
  # ε = M/β and scale β: the sent norm is at most M, whatever β is.
  for beta, clients in itertools.product((7.0, 30.0), (3, 10)):
    config = config_lib.ExperimentConfig(
        attack='pgd_replacement', boost_factor=beta, norm_bound=2.0,
        num_clients_per_round=clients)
    strategy = build.build_attack(config)
    assert isinstance(strategy, pgd.PGDAttack)
    assert strategy.replacement_scale == beta
    assert strategy.eps * strategy.replacement_scale == pytest.approx(2.0)


def test_norm_bounded_radius_is_bound_over_boost():
  config = config_lib.ExperimentConfig(attack='norm_bounded', norm_bound=10.0,
                                       num_clients_per_round=30)
  strategy = build.build_attack(config)
  assert strategy.boost_factor == 30.0
  assert strategy.norm_bound * strategy.boost_factor == pytest.approx(10.0)


def test_data_poisoning_sends_its_update_scaled_by_the_poison_boost():
  # DBA's single shot: Δ = γ·(w − w_t); by default Δ = w − w_t (γ unset).
  plain = build.build_attack(config_lib.ExperimentConfig(
      attack='data_poisoning'))
  boosted = build.build_attack(config_lib.ExperimentConfig(
      attack='data_poisoning', poison_boost_factor=10.0, poison_passes=3))
  assert plain.boost_factor is None
  assert (boosted.boost_factor, boosted.num_passes) == (10.0, 3)
