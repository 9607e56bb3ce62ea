"""Name → builder registries: every choice of a run is dispatched here, once.

Each registry maps the value of one setting (`attack`, `defense`, `backdoor`,
`attacker_model`, `dataset`) to an entry: its builder from an
`ExperimentConfig`, its help text, and an optional cross-setting check. The
allowed values of a setting are the keys of its registry. Adding an attack or a
defense is one `register` call here plus its class or builder.
"""

import collections.abc
import dataclasses
import functools
from typing import Callable, Optional

import tensorflow_federated as tff

from targeted_attack import a3fl
from targeted_attack import aggregate_fn
from targeted_attack import attacks
from targeted_attack import data as data_lib
from targeted_attack import local_training
from targeted_attack import privacy
from targeted_attack import modern_attacks
from targeted_attack import triggers
from targeted_attack.config import ConfigError
from targeted_attack.config import ExperimentConfig


@dataclasses.dataclass(frozen=True)
class Entry:
  """`build(config, ...)`; `check(config)` raises ConfigError; `help`."""
  name: str
  build: Callable
  help: str
  check: Optional[Callable[[ExperimentConfig], None]] = None


@dataclasses.dataclass(frozen=True)
class AttackEntry(Entry):
  # False for 'none': no client of any round is malicious.
  has_attackers: bool = True


@dataclasses.dataclass(frozen=True)
class DefenseEntry(Entry):
  # A client-side part (DP-SGD training), built from the config, or None.
  client_dp_sgd: Optional[Callable[[ExperimentConfig],
                                   local_training.DPSGD]] = None
  # The client-level noise multiplier z of a server DP mechanism, for the
  # privacy accounting (`privacy.py`), or None.
  noise_multiplier: Optional[Callable[[ExperimentConfig], float]] = None
  # For a rule that needs the server's own update g0 (FLTrust): the name of
  # the setting holding the size of the server's clean root dataset, which
  # `load_data` holds out of the clients' data; each round then gets a
  # trusted root client appended last (`data.round_client_data`), and the
  # rule reads g0 from the last row. None: no root client.
  root_dataset_size: Optional[str] = None
  # A rule keeping state per client (FoolsGold's histories): its builder is
  # `build(config, population)`, the table sized by the number of clients;
  # the clients' identities reach it through its factory's weight
  # (`plumbing.takes_client_ids`).
  keyed_by_client: bool = False


@dataclasses.dataclass(frozen=True)
class BackdoorEntry(Entry):
  # An adaptive trigger (A3FL): `adapt(config, data)` builds a callable
  # `(task, model_weights, round_num) -> task` that the round loop calls
  # with the global model w_t before every round with attackers; the task it
  # returns stamps the attackers' D_mal and the backdoor evaluation set. Its
  # `get_state()` (an array) goes into the checkpoint, and
  # `restore(task, array) -> task` brings it back on resume.
  # None: the task is fixed for the run.
  adapt: Optional[Callable] = None


class Registry(collections.abc.Mapping):
  """An ordered mapping name → entry for one setting."""

  def __init__(self, setting: str, entry_type=Entry):
    self.setting = setting
    self._entry_type = entry_type
    self._entries = {}

  def register(self, name: str, help: str, **options):  # pylint: disable=redefined-builtin
    def decorator(build):
      if name in self._entries:
        raise ValueError(f'{self.setting} {name!r} is registered twice.')
      self._entries[name] = self._entry_type(name=name, build=build, help=help,
                                             **options)
      return build
    return decorator

  def __getitem__(self, name):
    return self._entries[name]

  def __iter__(self):
    return iter(self._entries)

  def __len__(self):
    return len(self._entries)

  def chosen(self, config: ExperimentConfig):
    return self._entries[getattr(config, self.setting)]


@dataclasses.dataclass(frozen=True)
class DatasetEntry(Entry):
  # The setting that bounds the number of clients, when the config knows it
  # before loading (generated data); None: known only once loaded (EMNIST).
  num_clients_setting: Optional[str] = None


ATTACKS = Registry('attack', AttackEntry)
DEFENSES = Registry('defense', DefenseEntry)
BACKDOORS = Registry('backdoor', BackdoorEntry)
ATTACKER_MODELS = Registry('attacker_model')
DATASETS = Registry('dataset', DatasetEntry)
ALL = (DATASETS, ATTACKS, ATTACKER_MODELS, BACKDOORS, DEFENSES)


def _require(condition: bool, field: str, message: str) -> None:
  if not condition:
    raise ConfigError(field, message)


def check(config: ExperimentConfig) -> None:
  """The cross-setting checks of every chosen entry (and of the window)."""
  _require(config.attack_end_round == 0 or
           config.attack_end_round >= config.attack_start_round,
           'attack_end_round',
           f'`attack_end_round`={config.attack_end_round} must be 0 or >= '
           f'attack_start_round={config.attack_start_round}.')
  for registry in ALL:
    entry = registry.chosen(config)
    if entry.check is not None:
      entry.check(config)


# ---------------------------------------------------------------------------
# Attacks: `build(config) -> attacks.ClientUpdateStrategy`.


@ATTACKS.register('none', 'No attacker: every client follows the protocol.',
                  has_attackers=False)
def _no_attack(c):
  del c
  return attacks.NoAttack()


@ATTACKS.register('unconstrained', 'Explicit boosting, the original code: '
                  'Δ_benign + β·Δ_mal (Sun et al.).')
def _unconstrained(c):
  return attacks.ClientExplicitBoosting(c.resolved_boost_factor)


@ATTACKS.register('model_replacement', 'Sun et al. Eq. 1: β·(w* − w_t), w* '
                  'trained on D_trn ∪ D_mal.')
def _model_replacement(c):
  return attacks.ModelReplacement(c.resolved_boost_factor)


@ATTACKS.register('norm_bounded', 'PGD within norm_bound/β of w_t, then '
                  'boosted by β: ‖Δ‖ ≤ norm_bound (Sun et al.).')
def _norm_bounded(c):
  beta = c.resolved_boost_factor
  return attacks.ClientProjectBoost(boost_factor=beta,
                                    norm_bound=c.norm_bound / beta,
                                    round_num=c.client_round_num)


@ATTACKS.register('data_poisoning', 'Ordinary training on batches with '
                  'poison_per_batch backdoor items (Bagdasaryan et al.).')
def _data_poisoning(c):
  return attacks.DataPoisoning(c.poison_per_batch)


@ATTACKS.register('constrain_and_scale', 'Bagdasaryan et al. Algorithm 2: '
                  'anomaly-regularized training, scaled by γ.')
def _constrain_and_scale(c):
  return attacks.ConstrainAndScale(
      alpha=c.cs_alpha, gamma=c.cs_gamma or c.resolved_boost_factor,
      anomaly=c.cs_anomaly, poison_per_batch=c.poison_per_batch,
      learning_rate=c.attacker_learning_rate, lr_decay=c.cs_lr_decay,
      lr_step_size=c.cs_lr_step_size, max_epochs=c.cs_max_epochs,
      early_stop_loss=c.cs_early_stop_loss)


@ATTACKS.register('train_and_scale', 'Bagdasaryan et al. Eq. 5: scaled to '
                  'norm exactly norm_bound.')
def _train_and_scale(c):
  return attacks.TrainAndScale(norm_bound=c.norm_bound)


@ATTACKS.register('pgd', 'Wang et al.: PGD within pgd_eps (default '
                  'norm_bound) of w_t, no replacement.')
def _pgd(c):
  return attacks.PGDAttack(
      eps=c.pgd_eps or c.norm_bound, project_frequency=c.project_frequency,
      learning_rate=c.attacker_learning_rate)


@ATTACKS.register('pgd_replacement', 'Wang et al.: PGD within pgd_eps '
                  '(default norm_bound/β), then scaled by β.')
def _pgd_replacement(c):
  beta = c.resolved_boost_factor
  return attacks.PGDAttack(
      eps=c.pgd_eps or c.norm_bound / beta,
      project_frequency=c.project_frequency,
      learning_rate=c.attacker_learning_rate, replacement_scale=beta)


@ATTACKS.register('neurotoxin', 'Zhang et al.: PGD within pgd_eps (default '
                  'norm_bound), gradients masked off the top '
                  'neurotoxin_mask_ratio of |Δ_benign|.')
def _neurotoxin(c):
  return modern_attacks.Neurotoxin(
      mask_ratio=c.neurotoxin_mask_ratio, eps=c.pgd_eps or c.norm_bound,
      project_frequency=c.project_frequency,
      learning_rate=c.attacker_learning_rate)


@ATTACKS.register('alie', 'Baruch et al. (omniscient): μ − alie_z·σ of the '
                  'round\'s updates (omniscient_knowledge).')
def _alie(c):
  return modern_attacks.ALIE(z=c.alie_z, knowledge=c.omniscient_knowledge)


@ATTACKS.register('ipm', 'Xie et al. (omniscient): −ipm_epsilon·μ of the '
                  'round\'s updates (omniscient_knowledge).')
def _ipm(c):
  return modern_attacks.IPM(c.ipm_epsilon, knowledge=c.omniscient_knowledge)


def _a3fl_attack_check(c):
  _require(c.backdoor == 'a3fl', 'backdoor',
           f'`attack`=a3fl trains on the adaptive trigger: it needs '
           f'backdoor=a3fl, got {c.backdoor!r}.')


@ATTACKS.register('a3fl', 'A3FL (Zhang et al. 2023): poisoned training '
                  '(poison_per_batch items per batch) on the trigger the '
                  'a3fl backdoor optimises each attack round, scaled by '
                  'a3fl_boost_factor.', check=_a3fl_attack_check)
def _a3fl(c):
  return a3fl.A3FLPoisoning(c.poison_per_batch, c.a3fl_boost_factor)


def build_attack(config: ExperimentConfig) -> attacks.ClientUpdateStrategy:
  return ATTACKS.chosen(config).build(config)


# ---------------------------------------------------------------------------
# Defenses: `build(config) -> tff.aggregators factory`, and an optional
# client-side part.


def _krum_check(c):
  _require(c.num_clients_per_round >= c.num_byzantine + 3, 'num_byzantine',
           f'`num_byzantine`={c.num_byzantine}: Krum needs '
           f'num_clients_per_round >= num_byzantine + 3 = '
           f'{c.num_byzantine + 3}.')


def _multi_krum_check(c):
  _krum_check(c)
  _require(c.multi_krum_selected <= c.num_clients_per_round,
           'multi_krum_selected',
           f'`multi_krum_selected`={c.multi_krum_selected} must be <= '
           f'num_clients_per_round={c.num_clients_per_round}.')


DEFENSES.register('none', 'The weighted mean.')(
    lambda c: aggregate_fn.build_stateless_mean())
DEFENSES.register('clip', 'Per-client norm clipping to norm_bound (Sun et '
                  'al.).')(
                      lambda c: aggregate_fn.build_clip_per_client(
                          c.norm_bound))
DEFENSES.register('aggregate_clip', 'The mean, clipped to norm_bound (the '
                  'original code).')(
                      lambda c: aggregate_fn.build_aggregate_and_clip(
                          c.norm_bound))
DEFENSES.register('weak_dp', 'Clip to l2_norm_clip, sum, noise σ = '
                  'mul_factor·l2_norm_clip, divide by the clients per round '
                  '(Sun et al.).',
                  noise_multiplier=lambda c: c.mul_factor)(
                      lambda c: aggregate_fn.build_dp_aggregate(
                          c.l2_norm_clip, c.mul_factor,
                          c.num_clients_per_round, seed=c.random_seed))
DEFENSES.register('krum', 'Krum with num_byzantine f.', check=_krum_check)(
    lambda c: aggregate_fn.build_krum(c.num_byzantine))
DEFENSES.register('multi_krum', 'Multi-Krum: f = num_byzantine, m = '
                  'multi_krum_selected.', check=_multi_krum_check)(
                      lambda c: aggregate_fn.build_multi_krum(
                          c.num_byzantine, c.multi_krum_selected))
DEFENSES.register('median', 'Coordinate-wise median.')(
    lambda c: aggregate_fn.build_coordinate_median())
DEFENSES.register('trimmed_mean', 'Coordinate-wise trimmed mean, '
                  'trim_fraction from each end.')(
                      lambda c: aggregate_fn.build_trimmed_mean(
                          c.trim_fraction))
DEFENSES.register('geometric_median', 'RFA: smoothed Weiszfeld, '
                  'geometric_median_iters steps.')(
                      lambda c: aggregate_fn.build_geometric_median(
                          c.geometric_median_iters))
DEFENSES.register(
    'dp_sgd', 'Clients train with DP-SGD (dp_sgd_l2_norm_clip, '
    'dp_sgd_noise_multiplier); the server takes the weighted mean.',
    client_dp_sgd=lambda c: local_training.DPSGD(c.dp_sgd_l2_norm_clip,
                                                 c.dp_sgd_noise_multiplier))(
                                                     lambda c: aggregate_fn.
                                                     build_stateless_mean())


def _bulyan_check(c):
  _require(c.num_clients_per_round >= 4 * c.num_byzantine + 3,
           'num_byzantine',
           f'`num_byzantine`={c.num_byzantine}: Bulyan needs '
           f'num_clients_per_round >= 4 * num_byzantine + 3 = '
           f'{4 * c.num_byzantine + 3}.')


def _rlr_check(c):
  _require(c.rlr_threshold <= c.num_clients_per_round, 'rlr_threshold',
           f'`rlr_threshold`={c.rlr_threshold} must be <= '
           f'num_clients_per_round={c.num_clients_per_round} (else every '
           'coordinate\'s rate is negated).')


DEFENSES.register('bulyan', 'Bulyan (El Mhamdi et al.): θ = n − 2f Krum '
                  'picks, then per coordinate the mean of the θ − 2f values '
                  'closest to the median; f = num_byzantine.',
                  check=_bulyan_check)(
                      lambda c: aggregate_fn.build_bulyan(c.num_byzantine))
DEFENSES.register('rlr', 'Robust learning rate (Ozdayi et al.): the mean, '
                  'negated where |Σ sgn(Δ_i)| < rlr_threshold.',
                  check=_rlr_check)(
                      lambda c: aggregate_fn.build_robust_learning_rate(
                          c.rlr_threshold))
DEFENSES.register('flame', 'FLAME (Nguyen et al.): HDBSCAN majority cluster '
                  'on cosine distances, clip to the median norm S, mean, '
                  'noise λ·S (λ = flame_noise_lambda).')(
                      lambda c: aggregate_fn.build_flame(
                          c.flame_noise_lambda, seed=c.random_seed))
DEFENSES.register('foolsgold', 'FoolsGold (Fung et al.): per-client '
                  'histories of updates (foolsgold_features); clients whose '
                  'histories point alike get a learning rate α ≈ 0; '
                  'Σ α_i Δ_i / n.', keyed_by_client=True)(
                      lambda c, population: aggregate_fn.build_foolsgold(
                          population, c.foolsgold_features,
                          c.foolsgold_confidence))
DEFENSES.register('fltrust', 'FLTrust (Cao et al.): the server trains on '
                  'fltrust_root_size held-out clean examples (g0); client i '
                  'weighted by ReLU(cos(g_i, g0)), rescaled to ‖g0‖.',
                  root_dataset_size='fltrust_root_size')(
                      lambda c: aggregate_fn.build_fltrust())
DEFENSES.register('tff_robust', 'TFF\'s tff.learning.robust_aggregator: '
                  'zeroing of large updates, adaptive clipping, weighted '
                  'mean.')(
                      lambda c: tff.learning.robust_aggregator(
                          zeroing=True, clipping=True, weighted=True))
DEFENSES.register('tff_dp_adaptive', 'TFF\'s DifferentiallyPrivateFactory.'
                  'gaussian_adaptive(tff_dp_noise_multiplier, clients per '
                  'round): adaptive clip, unweighted.',
                  noise_multiplier=lambda c: c.tff_dp_noise_multiplier)(
                      lambda c: tff.aggregators.DifferentiallyPrivateFactory.
                      gaussian_adaptive(c.tff_dp_noise_multiplier,
                                        c.num_clients_per_round))
DEFENSES.register('tff_dp_fixed', 'TFF\'s DifferentiallyPrivateFactory.'
                  'gaussian_fixed(tff_dp_noise_multiplier, clients per round, '
                  'l2_norm_clip): unweighted.',
                  noise_multiplier=lambda c: c.tff_dp_noise_multiplier)(
                      lambda c: tff.aggregators.DifferentiallyPrivateFactory.
                      gaussian_fixed(c.tff_dp_noise_multiplier,
                                     c.num_clients_per_round,
                                     c.l2_norm_clip))


def build_privacy_accountant(config: ExperimentConfig, population: int):
  """The client-level accountant of a server DP defense, or None."""
  entry = DEFENSES.chosen(config)
  if entry.noise_multiplier is None:
    return None
  return privacy.accountant_for(entry.noise_multiplier(config),
                                config.num_clients_per_round, population)


def build_dp_sgd_tracker(config: ExperimentConfig, num_examples):
  """The example-level tracker of a client DP-SGD defense, or None.

  `num_examples(k)`: client k's number of training examples. z is the
  defense's own `DPSGD.noise_multiplier`; B and E the run's batch size and
  local epochs.
  """
  entry = DEFENSES.chosen(config)
  if entry.client_dp_sgd is None:
    return None
  return privacy.DpSgdTracker(
      privacy.DpSgdAccountant(entry.client_dp_sgd(config).noise_multiplier,
                              config.batch_size, config.num_epochs),
      num_examples)


def build_defense(config: ExperimentConfig, population: Optional[int] = None):
  """(aggregation factory with non-finite updates zeroed, client DP-SGD or None).

  `population`: the number of clients, for a defense `keyed_by_client`
  (default: that of `load_data(config)`, which is then loaded).
  """
  entry = DEFENSES.chosen(config)
  if entry.keyed_by_client:
    if population is None:
      population = load_data(config).num_clients
    defense = entry.build(config, population)
  else:
    defense = entry.build(config)
  aggregator = aggregate_fn.build_zero_non_finite(defense)
  client_dp_sgd = (entry.client_dp_sgd(config)
                   if entry.client_dp_sgd is not None else None)
  return aggregator, client_dp_sgd


# ---------------------------------------------------------------------------
# Datasets: `build(config) -> data.FederatedDigits`.


def _at_most_the_clients(c, name: str):
  """`name` <= the configured number of clients, where the config says it."""
  setting = DATASETS.chosen(c).num_clients_setting
  if setting is not None:
    value, clients = getattr(c, name), getattr(c, setting)
    _require(value <= clients, name,
             f'`{name}`={value} must be <= the number of clients ({clients}).')


def _synthetic_check(c):
  _at_most_the_clients(c, 'num_clients_per_round')


@DATASETS.register('synthetic', 'Generated writer-style digits (offline).',
                   check=_synthetic_check,
                   num_clients_setting='synthetic_num_clients')
def _synthetic(c):
  rate = 0.03
  if c.backdoor == 'edge_case':
    rate = data_lib.EDGE_CASE_MIXES[c.edge_case_mix]
  return data_lib.load_synthetic(c.synthetic_num_clients,
                                 c.synthetic_examples_per_client,
                                 c.random_seed, crossbar_seven_rate=rate)


@DATASETS.register('dirichlet', 'The generated writers\' examples pooled and '
                   're-split over synthetic_num_clients clients, each class c '
                   'by p_c ~ Dir(dirichlet_alpha·1) (non-IID labels).',
                   check=_synthetic_check,
                   num_clients_setting='synthetic_num_clients')
def _dirichlet(c):
  return data_lib.repartition_dirichlet(_synthetic(c), c.synthetic_num_clients,
                                        c.dirichlet_alpha, c.random_seed)


@DATASETS.register('emnist', 'TFF federated EMNIST (3,383 writers).')
def _emnist(c):
  try:
    return data_lib.load_emnist(c.only_digits, c.emnist_cache_dir)
  except data_lib.DatasetUnavailableError as e:
    raise ConfigError('emnist_cache_dir', f'`dataset`=emnist: {e}') from e


def load_data(config: ExperimentConfig) -> data_lib.FederatedDigits:
  """The chosen dataset; with the root dataset of the defense, if it has one."""
  data = DATASETS.chosen(config).build(config)
  root_size = DEFENSES.chosen(config).root_dataset_size
  if root_size is not None:
    try:
      data = data_lib.hold_out_root(data, getattr(config, root_size),
                                    config.random_seed)
    except ValueError as e:
      raise ConfigError(root_size, f'`{root_size}`: {e}') from e
  _require(config.num_clients_per_round <= data.num_clients,
           'num_clients_per_round',
           f'`num_clients_per_round`={config.num_clients_per_round} must be '
           f'<= the number of clients ({data.num_clients}).')
  return data


# ---------------------------------------------------------------------------
# Backdoors: `build(config, data) -> data.BackdoorTask`.


@BACKDOORS.register('semantic', 'The target writers\' 7s → 1 (Sun et al.).')
def _semantic(c, data):
  return data_lib.select_backdoor_task(data, c.task_num, c.random_seed)


@BACKDOORS.register('edge_case', 'Crossbar 7s → 1 (Wang et al.); '
                    'edge_case_mix sets how many honest writers hold them.')
def _edge_case(c, data):
  del data
  return data_lib.edge_case_task(c.edge_case_num_train, c.edge_case_num_eval,
                                 c.random_seed)


@BACKDOORS.register('trigger', 'A 3×3 pixel pattern on any class → 1 '
                    '(BadNets; Turner\'s amplitude).')
def _trigger(c, data):
  return data_lib.trigger_task(data, c.task_num, c.trigger_amplitude,
                               c.trigger_placement, c.random_seed)


@BACKDOORS.register('dba', 'DBA (Xie et al.): the four-corner trigger split '
                    'into dba_parts local triggers, one per attacker; '
                    'evaluated with the full trigger, and with each local '
                    'one alone (backdoor_accuracy_part_k).')
def _dba(c, data):
  return triggers.dba_task(data, c.task_num, c.trigger_amplitude, c.dba_parts,
                           c.random_seed)


@functools.lru_cache(maxsize=1)
def _a3fl_trigger(c, data):
  """One trigger search per run: the backdoor's initial task and the loop's
  `adapt` hook share it (the same config and dataset object)."""
  settings = a3fl.A3FLSettings(
      outer_iterations=c.a3fl_outer_iterations,
      trigger_steps=c.a3fl_trigger_steps, trigger_lr=c.a3fl_trigger_lr,
      lam=c.a3fl_lambda, unlearn_steps=c.a3fl_unlearn_steps,
      unlearn_lr=c.a3fl_unlearn_lr, batch_size=c.a3fl_batch_size)
  return a3fl.adaptive_trigger(data, c.task_num, c.trigger_placement,
                               c.model, settings, c.random_seed)


@BACKDOORS.register('a3fl', 'A3FL (Zhang et al. 2023): the trigger_placement '
                    'pattern, re-optimised against w_t and an unlearned copy '
                    'before each attack round; D_mal and the evaluation use '
                    'the latest.', adapt=_a3fl_trigger)
def _a3fl_backdoor(c, data):
  return _a3fl_trigger(c, data).initial_task()


def build_backdoor_adapter(config: ExperimentConfig, data):
  """The chosen backdoor's per-round trigger update, or None (fixed)."""
  entry = BACKDOORS.chosen(config)
  return None if entry.adapt is None else entry.adapt(config, data)


def build_backdoor(config: ExperimentConfig, data) -> data_lib.BackdoorTask:
  try:
    return BACKDOORS.chosen(config).build(config, data)
  except ValueError as e:
    raise ConfigError('task_num', str(e)) from e


# ---------------------------------------------------------------------------
# Attacker models: `build(config, population) -> data.AttackerModel`.


ATTACKER_MODELS.register('fixed_frequency', 'One attacker every attack_freq '
                         'rounds (Sun et al.).')(
                             lambda c, n: data_lib.FixedFrequencyAttackers(
                                 c.attack_freq))
ATTACKER_MODELS.register('random_sampling', 'round(ε·N) malicious clients, '
                         'ε = malicious_fraction; sampled like all others.')(
                             lambda c, n: data_lib.RandomSamplingAttackers(
                                 c.malicious_fraction, n,
                                 c.num_clients_per_round))


def _fixed_pool_check(c):
  _at_most_the_clients(c, 'attacker_pool_size')


ATTACKER_MODELS.register('fixed_pool', 'attacker_pool_size fixed malicious '
                         'clients (Wang et al.).', check=_fixed_pool_check)(
                             lambda c, n: data_lib.FixedPoolAttackers(
                                 c.attacker_pool_size, n, c.random_seed))


def build_attackers(config: ExperimentConfig,
                    population: int) -> data_lib.AttackerModel:
  if not ATTACKS.chosen(config).has_attackers:
    return data_lib.NoAttackers()
  try:
    attackers = ATTACKER_MODELS.chosen(config).build(config, population)
  except ValueError as e:
    raise ConfigError('attacker_pool_size', str(e)) from e
  return data_lib.AttackWindow(attackers, config.attack_start_round,
                               config.attack_end_round)
