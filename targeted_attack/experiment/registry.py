"""The registries: for each choice of a run, its names and their builders.

Each registry maps the value of one setting (`attack`, `defense`, `backdoor`,
`attacker_model`, `dataset`) to an entry: its builder, its help text, an
optional cross-setting check (raising `ConfigError`), and the few facts the
run's set-up needs to know about it (`AttackEntry`, `DefenseEntry`, ...).
The allowed values of a setting are the keys of its registry (`CHOICES`
gathers them, with the other settings that take one of a fixed set of
names). This module is a table; the run's set-up (`experiment.build`) reads it.

Builders, by registry:
  ATTACKS          build(config) -> attacks.base.ClientUpdateStrategy
  DEFENSES         build(config, population) -> tff.aggregators factory
  BACKDOORS        build(config) -> backdoors.base.Backdoor
  ATTACKER_MODELS  build(config, population) -> data.sampling.AttackerModel
  DATASETS         build(config, backdoor) -> data.federated.FederatedDigits
Adding a method is its file, one entry here, and its test.
"""

import collections.abc
import dataclasses
import os
from typing import Callable, Optional, Sequence

import tensorflow_federated as tff

from targeted_attack import runtime
from targeted_attack.attacks import bagdasaryan
from targeted_attack.attacks import base as attack_base
from targeted_attack.attacks import boosting
from targeted_attack.attacks import omniscient
from targeted_attack.attacks import pgd
from targeted_attack.attacks import sign_flip
from targeted_attack.backdoors import a3fl
from targeted_attack.backdoors import base as backdoor_base
from targeted_attack.backdoors import edge_case
from targeted_attack.backdoors import semantic
from targeted_attack.backdoors import sentence
from targeted_attack.backdoors import triggers
from targeted_attack.data import ardis
from targeted_attack.data import cifar
from targeted_attack.data import dirichlet
from targeted_attack.data import federated
from targeted_attack.data import sampling
from targeted_attack.data import shakespeare
from targeted_attack.data import synthetic_digits
from targeted_attack.data import text
from targeted_attack.defenses import clipping
from targeted_attack.defenses import dp_sgd
from targeted_attack.defenses import filtering
from targeted_attack.defenses import foolsgold
from targeted_attack.defenses import robust
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment.config import ConfigError
from targeted_attack.process import batched_training
from targeted_attack.process import learning_process
from targeted_attack.process import models


@dataclasses.dataclass(frozen=True)
class Entry:
  """`build(config, ...)`; `help`; `check(config)` raises ConfigError."""
  name: str
  build: Callable
  help: str
  check: Optional[Callable] = None


@dataclasses.dataclass(frozen=True)
class AttackEntry(Entry):
  has_attackers: bool = True  # False for 'none': no client is malicious


@dataclasses.dataclass(frozen=True)
class DefenseEntry(Entry):
  # The clients' protocol training: a `defenses.dp_sgd.DPSGD` from the
  # config (client-side DP-SGD), or None (ordinary local training).
  client_dp_sgd: Optional[Callable] = None
  # The client-level noise multiplier z of a server DP mechanism, for the
  # privacy accounting (`experiment.privacy`), or None.
  noise_multiplier: Optional[Callable] = None
  # For a rule that needs the server's own update g0 (FLTrust): the setting
  # holding the size of the server's clean root dataset, held out of the
  # clients' data (`data.root_dataset`); every round then gets a trusted
  # root client appended last (`process.round_data`). None: no root client.
  root_dataset_size: Optional[str] = None
  # What each client's aggregation weight is (`learning_process.
  # ClientWeighting`): its number of benign examples, or its identity
  # (client id + 1, for a rule keeping state per client: FoolsGold).
  client_weighting: str = learning_process.ClientWeighting.NUM_EXAMPLES


@dataclasses.dataclass(frozen=True)
class DatasetEntry(Entry):
  # The setting that bounds the number of clients, when the config knows it
  # before loading (generated data); None: known only once loaded (EMNIST).
  num_clients_setting: Optional[str] = None


class Registry(collections.abc.Mapping):
  """An ordered mapping name → entry for one setting."""

  def __init__(self, setting: str, entries: Sequence[Entry]):
    self.setting = setting
    self._entries = {}
    for entry in entries:
      if entry.name in self._entries:
        raise ValueError(f'{setting} {entry.name!r} is registered twice.')
      self._entries[entry.name] = entry

  def __getitem__(self, name):
    return self._entries[name]

  def __iter__(self):
    return iter(self._entries)

  def __len__(self):
    return len(self._entries)

  def chosen(self, config) -> Entry:
    return self._entries[getattr(config, self.setting)]


def _require(condition: bool, field: str, message: str) -> None:
  if not condition:
    raise ConfigError(field, message)


def _at_most_the_clients(c, name: str):
  """`name` <= the configured number of clients, where the config says it."""
  setting = DATASETS.chosen(c).num_clients_setting
  if setting is not None:
    value, clients = getattr(c, name), getattr(c, setting)
    _require(value <= clients, name,
             f'`{name}`={value} must be <= the number of clients ({clients}).')


# ---------------------------------------------------------------------------
# Attacks: how a malicious update is formed.


def _norm_bounded(c):
  beta = c.resolved_boost_factor
  return pgd.ClientProjectBoost(boost_factor=beta,
                                norm_bound=c.norm_bound / beta,
                                round_num=c.client_round_num)


def _constrain_and_scale(c):
  return bagdasaryan.ConstrainAndScale(
      alpha=c.cs_alpha, gamma=c.cs_gamma or c.resolved_boost_factor,
      anomaly=c.cs_anomaly, poison_per_batch=c.poison_per_batch,
      learning_rate=c.attacker_learning_rate, lr_decay=c.cs_lr_decay,
      lr_step_size=c.cs_lr_step_size, max_epochs=c.cs_max_epochs,
      early_stop_loss=c.cs_early_stop_loss)


def _pgd(c, replacement: bool):
  beta = c.resolved_boost_factor if replacement else None
  default_eps = c.norm_bound / beta if replacement else c.norm_bound
  return pgd.PGDAttack(eps=c.pgd_eps or default_eps,
                       project_frequency=c.project_frequency,
                       learning_rate=c.attacker_learning_rate,
                       replacement_scale=beta)


def _a3fl_attack_check(c):
  _require(c.backdoor == 'a3fl', 'backdoor',
           f'`attack`=a3fl trains on the adaptive trigger: it needs '
           f'backdoor=a3fl, got {c.backdoor!r}.')


ATTACKS = Registry('attack', [
    AttackEntry('none', lambda c: attack_base.NoAttack(),
                'No attacker: every client follows the protocol.',
                has_attackers=False),
    AttackEntry('unconstrained',
                lambda c: attack_base.OnUnion(boosting.ClientExplicitBoosting(
                    c.resolved_boost_factor)),
                'Explicit boosting, the original code: Δ_benign + β·Δ_mal, '
                'Δ_mal trained on D_trn ∪ D_mal (Sun et al.).'),
    AttackEntry('model_replacement',
                lambda c: boosting.ModelReplacement(c.resolved_boost_factor),
                'Sun et al. Eq. 1: β·(w* − w_t), w* trained on D_trn ∪ '
                'D_mal.'),
    AttackEntry('norm_bounded', _norm_bounded,
                'PGD within norm_bound/β of w_t, then boosted by β: ‖Δ‖ ≤ '
                'norm_bound (Sun et al.).'),
    AttackEntry('data_poisoning',
                lambda c: bagdasaryan.DataPoisoning(
                    c.poison_per_batch, boost_factor=c.poison_boost_factor,
                    num_passes=c.poison_passes),
                'Ordinary training on batches with poison_per_batch backdoor '
                'items (Bagdasaryan et al.), scaled by poison_boost_factor '
                '(DBA\'s single shot).'),
    AttackEntry('constrain_and_scale', _constrain_and_scale,
                'Bagdasaryan et al. Algorithm 2: anomaly-regularized '
                'training, scaled by γ.'),
    AttackEntry('train_and_scale',
                lambda c: bagdasaryan.TrainAndScale(norm_bound=c.norm_bound),
                'Bagdasaryan et al. Eq. 5: scaled to norm exactly '
                'norm_bound.'),
    AttackEntry('pgd', lambda c: _pgd(c, replacement=False),
                'Wang et al.: PGD within pgd_eps (default norm_bound) of w_t, '
                'no replacement.'),
    AttackEntry('pgd_replacement', lambda c: _pgd(c, replacement=True),
                'Wang et al.: PGD within pgd_eps (default norm_bound/β), then '
                'scaled by β.'),
    AttackEntry('neurotoxin',
                lambda c: pgd.Neurotoxin(
                    mask_ratio=c.neurotoxin_mask_ratio,
                    eps=c.pgd_eps or c.norm_bound,
                    project_frequency=c.project_frequency,
                    learning_rate=c.attacker_learning_rate,
                    mask_source=c.neurotoxin_mask_source),
                'Zhang et al.: PGD within pgd_eps (default norm_bound), '
                'gradients masked off the top neurotoxin_mask_ratio of the '
                'global model\'s clean gradient (neurotoxin_mask_source).'),
    AttackEntry('alie',
                lambda c: omniscient.ALIE(z=c.alie_z,
                                          knowledge=c.omniscient_knowledge),
                'Baruch et al. (omniscient): μ − alie_z·σ of the round\'s '
                'updates (omniscient_knowledge).'),
    AttackEntry('ipm',
                lambda c: omniscient.IPM(c.ipm_epsilon,
                                         knowledge=c.omniscient_knowledge),
                'Xie et al. (omniscient): −ipm_epsilon·μ of the round\'s '
                'updates (omniscient_knowledge).'),
    AttackEntry('sign_flip', lambda c: sign_flip.SignFlip(),
                'Li et al. (untargeted): −Δ_benign, the opposite of its own '
                'benign update.'),
    AttackEntry('a3fl',
                lambda c: bagdasaryan.DataPoisoning(
                    c.poison_per_batch, boost_factor=c.a3fl_boost_factor,
                    num_passes=c.poison_passes),
                'A3FL (Zhang et al. 2023): poisoned training '
                '(poison_per_batch items per batch) on the trigger the a3fl '
                'backdoor optimises each attack round, scaled by '
                'a3fl_boost_factor.', check=_a3fl_attack_check),
])


# ---------------------------------------------------------------------------
# Defenses: the server's aggregation (or the clients' training).


def _krum_check(c):
  """Blanchard et al.'s condition for Krum's guarantee: n > 2f + 2."""
  _require(c.num_clients_per_round > 2 * c.num_byzantine + 2, 'num_byzantine',
           f'`num_byzantine`={c.num_byzantine}: Krum\'s guarantee (Blanchard '
           f'et al.) needs num_clients_per_round > 2 * num_byzantine + 2 = '
           f'{2 * c.num_byzantine + 2}.')


def _multi_krum_check(c):
  _krum_check(c)
  _require(c.multi_krum_selected <= c.num_clients_per_round,
           'multi_krum_selected',
           f'`multi_krum_selected`={c.multi_krum_selected} must be <= '
           f'num_clients_per_round={c.num_clients_per_round}.')


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


DEFENSES = Registry('defense', [
    DefenseEntry('none', lambda c, n: clipping.build_stateless_mean(),
                 'The weighted mean.'),
    DefenseEntry('clip',
                 lambda c, n: clipping.build_clip_per_client(c.norm_bound),
                 'Per-client norm clipping to norm_bound (Sun et al.).'),
    DefenseEntry('aggregate_clip',
                 lambda c, n: clipping.build_aggregate_and_clip(c.norm_bound),
                 'The mean, clipped to norm_bound (the original code).'),
    DefenseEntry('weak_dp',
                 lambda c, n: clipping.build_dp_aggregate(
                     c.l2_norm_clip, c.mul_factor, c.num_clients_per_round,
                     seed=c.random_seed),
                 'Clip to l2_norm_clip, sum, noise σ = '
                 'mul_factor·l2_norm_clip, divide by the clients per round '
                 '(Sun et al.).', noise_multiplier=lambda c: c.mul_factor),
    DefenseEntry('krum', lambda c, n: robust.build_krum(c.num_byzantine),
                 'Krum with num_byzantine f.', check=_krum_check),
    DefenseEntry('multi_krum',
                 lambda c, n: robust.build_multi_krum(c.num_byzantine,
                                                      c.multi_krum_selected),
                 'Multi-Krum: f = num_byzantine, m = multi_krum_selected.',
                 check=_multi_krum_check),
    DefenseEntry('median', lambda c, n: robust.build_coordinate_median(),
                 'Coordinate-wise median.'),
    DefenseEntry('trimmed_mean',
                 lambda c, n: robust.build_trimmed_mean(c.trim_fraction),
                 'Coordinate-wise trimmed mean, trim_fraction from each end.'),
    DefenseEntry('geometric_median',
                 lambda c, n: robust.build_geometric_median(
                     c.geometric_median_iters),
                 'RFA: smoothed Weiszfeld, geometric_median_iters steps.'),
    DefenseEntry('dp_sgd', lambda c, n: clipping.build_stateless_mean(),
                 'Clients train with DP-SGD (dp_sgd_l2_norm_clip, '
                 'dp_sgd_noise_multiplier); the server takes the weighted '
                 'mean.',
                 client_dp_sgd=lambda c: dp_sgd.DPSGD(
                     c.dp_sgd_l2_norm_clip, c.dp_sgd_noise_multiplier)),
    DefenseEntry('bulyan', lambda c, n: robust.build_bulyan(c.num_byzantine),
                 'Bulyan (El Mhamdi et al.): θ = n − 2f Krum picks, then per '
                 'coordinate the mean of the θ − 2f values closest to the '
                 'median; f = num_byzantine.', check=_bulyan_check),
    DefenseEntry('rlr',
                 lambda c, n: filtering.build_robust_learning_rate(
                     c.rlr_threshold),
                 'Robust learning rate (Ozdayi et al.): the mean, negated '
                 'where |Σ sgn(Δ_i)| < rlr_threshold.', check=_rlr_check),
    DefenseEntry('flame',
                 lambda c, n: filtering.build_flame(
                     c.flame_noise_lambda, seed=c.random_seed,
                     cluster_on=c.flame_cluster_on),
                 'FLAME (Nguyen et al.): HDBSCAN majority cluster on cosine '
                 'distances of the local models (flame_cluster_on), clip to '
                 'the median update norm S, mean, noise λ·S '
                 '(λ = flame_noise_lambda).'),
    DefenseEntry('foolsgold',
                 lambda c, n: foolsgold.build_foolsgold(
                     n, c.foolsgold_features, c.foolsgold_confidence),
                 'FoolsGold (Fung et al.): per-client histories of updates '
                 '(foolsgold_features); clients whose histories point alike '
                 'get a learning rate α ≈ 0; Σ α_i Δ_i / n.',
                 client_weighting=learning_process.ClientWeighting.CLIENT_ID),
    DefenseEntry('fltrust', lambda c, n: filtering.build_fltrust(),
                 'FLTrust (Cao et al.): the server trains on '
                 'fltrust_root_size held-out clean examples (g0); client i '
                 'weighted by ReLU(cos(g_i, g0)), rescaled to ‖g0‖.',
                 root_dataset_size='fltrust_root_size'),
    DefenseEntry('tff_robust',
                 lambda c, n: tff.learning.robust_aggregator(
                     zeroing=True, clipping=True, weighted=True),
                 'TFF\'s tff.learning.robust_aggregator: zeroing of large '
                 'updates, adaptive clipping, weighted mean.'),
    DefenseEntry('tff_dp_adaptive',
                 lambda c, n: tff.aggregators.DifferentiallyPrivateFactory.
                 gaussian_adaptive(c.tff_dp_noise_multiplier,
                                   c.num_clients_per_round),
                 'TFF\'s DifferentiallyPrivateFactory.gaussian_adaptive('
                 'tff_dp_noise_multiplier, clients per round): adaptive clip, '
                 'unweighted.',
                 noise_multiplier=lambda c: c.tff_dp_noise_multiplier),
    DefenseEntry('tff_dp_fixed',
                 lambda c, n: tff.aggregators.DifferentiallyPrivateFactory.
                 gaussian_fixed(c.tff_dp_noise_multiplier,
                                c.num_clients_per_round, c.l2_norm_clip),
                 'TFF\'s DifferentiallyPrivateFactory.gaussian_fixed('
                 'tff_dp_noise_multiplier, clients per round, l2_norm_clip): '
                 'unweighted.',
                 noise_multiplier=lambda c: c.tff_dp_noise_multiplier),
])


# ---------------------------------------------------------------------------
# Backdoors: what the attacker trains on.


# The datasets of digits (28×28 grayscale, 10 classes or EMNIST's 62).
DIGIT_DATASETS = ('synthetic', 'dirichlet', 'emnist')
# The datasets with a training pool that index lists address.
POOL_DATASETS = ('cifar10', 'synthetic_cifar10')


def _require_dataset(c, backdoor: str, datasets: tuple, why: str):
  """ConfigError naming `backdoor` unless the dataset is one of `datasets`."""
  _require(c.dataset in datasets, 'backdoor',
           f'`backdoor`={backdoor} {why}; `dataset` must be one of '
           f'{", ".join(datasets)}, got {c.dataset}.')


def _needs_digits(c, backdoor: str):
  _require_dataset(c, backdoor, DIGIT_DATASETS, 'renders digits')


# The next-token datasets (token sequences): words, and characters.
CHAR_DATASETS = ('shakespeare', 'synthetic_shakespeare')
TEXT_DATASETS = ('stackoverflow', 'synthetic_text') + CHAR_DATASETS
TEXT_BACKDOORS = ('sentence',)


def _needs_images(c, backdoor: str):
  _require(c.dataset not in TEXT_DATASETS, 'backdoor',
           f'`backdoor`={backdoor} is an image backdoor; `dataset`='
           f'{c.dataset} is text (its backdoor: '
           f'{", ".join(TEXT_BACKDOORS)}).')


def _sentence_check(c):
  _require_dataset(c, 'sentence', TEXT_DATASETS, 'is a next-word backdoor')
  chars = c.dataset in CHAR_DATASETS
  words = c.backdoor_sentence.split()
  length = len(' '.join(words)) if chars else len(words)
  _require(length <= c.text_sequence_length - 1, 'backdoor_sentence',
           f'`backdoor_sentence` has {length} '
           f'{"characters" if chars else "words"}; at most '
           f'text_sequence_length − 1 = {c.text_sequence_length - 1}.')


def _files_check(c, setting: str, backdoor: str, files: tuple, what: str):
  """ConfigError naming `setting` (a directory) where it lacks one of
  `files`."""
  given = getattr(c, setting)
  if given:
    directory = os.path.expanduser(given)
    missing = [f for f in files
               if not os.path.isfile(os.path.join(directory, f))]
    _require(not missing, setting,
             f'`{setting}`={given}: `backdoor`={backdoor} reads {what} '
             f'there ({", ".join(files)}); missing {", ".join(missing)}.')


def _edge_case_check(c):
  _needs_digits(c, 'edge_case')
  _files_check(c, 'ardis_dir', 'edge_case', ardis.FILES, 'ARDIS IV\'s files')


def _southwest_check(c):
  _require_dataset(c, 'southwest', POOL_DATASETS, 'is a CIFAR-10 edge case')
  _files_check(c, 'edge_case_dir', 'southwest', cifar.SOUTHWEST_FILES,
               'Wang et al.\'s Southwest pickles')


def _semantic_images_check(c):
  _needs_pool(c, 'semantic_images')
  _require(c.poison_label < num_classes(c), 'poison_label',
           f'`poison_label`={c.poison_label}: allowed range 0..'
           f'{num_classes(c) - 1} (the dataset\'s classes).')


def _needs_pool(c, backdoor: str):
  _require_dataset(c, backdoor, POOL_DATASETS, 'takes images by their index '
                   'in CIFAR-10\'s training set')



BACKDOORS = Registry('backdoor', [
    Entry('semantic',
          lambda c: semantic.SemanticBackdoor(c.task_num, c.random_seed),
          'The target writers\' 7s → 1 (Sun et al.).',
          check=lambda c: _needs_images(c, 'semantic')),
    Entry('sentence',
          lambda c: sentence.SentenceBackdoor(
              c.backdoor_sentence, c.task_num, c.sentence_eval_size,
              c.random_seed),
          'Bagdasaryan et al.\'s word backdoor: backdoor_sentence\'s last '
          'word predicted after the rest; D_mal: task_num clients\' '
          'sentences ending with it. Text only.',
          check=_sentence_check),
    Entry('semantic_images',
          lambda c: semantic.IndexListBackdoor(
              c.poison_images, c.poison_images_test, c.poison_label),
          'Bagdasaryan et al.\'s semantic backdoor: the CIFAR-10 training '
          'images of poison_images (e.g. green cars) → poison_label (bird), '
          'measured on poison_images_test; both held out of honest clients.',
          check=_semantic_images_check),
    Entry('edge_case',
          lambda c: edge_case.EdgeCaseBackdoor(
              c.edge_case_num_train, c.edge_case_num_eval, c.edge_case_mix,
              c.random_seed, c.ardis_dir),
          'Edge-case 7s → 1 (Wang et al.): ARDIS IV\'s 7s from ardis_dir '
          '(the real ones), else generated crossbar 7s; edge_case_mix sets '
          'how many generated writers hold them. Digits only.',
          check=_edge_case_check),
    Entry('southwest',
          lambda c: edge_case.SouthwestBackdoor(
              c.edge_case_num_train, c.edge_case_num_eval, c.random_seed,
              c.edge_case_dir),
          'Wang et al.\'s CIFAR-10 edge case: Southwest Airlines\' planes → '
          'truck (9), from edge_case_dir (the authors\' files) or the '
          'stand-in\'s generated ones. CIFAR-10 only.',
          check=_southwest_check),
    Entry('trigger',
          lambda c: triggers.TriggerBackdoor(
              c.task_num, c.trigger_amplitude, c.trigger_placement,
              c.random_seed, c.trigger_source_class),
          'A 3×3 square of ink (BadNets; Turner\'s amplitude) on any class '
          'but the target, or on trigger_source_class, → 1.',
          check=lambda c: _needs_images(c, 'trigger')),
    Entry('dba',
          lambda c: triggers.DBABackdoor(c.task_num, c.trigger_amplitude,
                                         c.dba_parts, c.random_seed,
                                         c.trigger_source_class),
          'DBA (Xie et al.): the four-corner trigger split into dba_parts '
          'local triggers, one per attacker; evaluated with the full '
          'trigger, and with each local one alone '
          '(backdoor_accuracy_part_k).',
          check=lambda c: _needs_images(c, 'dba')),
    Entry('a3fl',
          lambda c: a3fl.A3FLBackdoor(
              c.task_num, c.trigger_placement, c.model,
              a3fl.A3FLSettings(
                  outer_iterations=c.a3fl_outer_iterations,
                  trigger_passes=c.a3fl_trigger_passes,
                  trigger_lr=c.a3fl_trigger_lr, lam=c.a3fl_lambda,
                  similarity_weighted=c.a3fl_similarity_weighted,
                  unlearn_passes=c.a3fl_unlearn_passes,
                  unlearn_lr=c.a3fl_unlearn_lr,
                  batch_size=c.a3fl_batch_size), c.random_seed,
              c.trigger_source_class),
          'A3FL (Zhang et al. 2023): the trigger_placement pattern, '
          're-optimised against w_t and an unlearned copy before each attack '
          'round; D_mal and the evaluation use the latest.',
          check=lambda c: _needs_images(c, 'a3fl')),
])


# ---------------------------------------------------------------------------
# Attacker models: which sampled clients are malicious.


def _fixed_pool_check(c):
  _at_most_the_clients(c, 'attacker_pool_size')


def _forced_pool_check(c):
  _fixed_pool_check(c)
  _require(c.attacker_pool_size <= c.num_clients_per_round,
           'attacker_pool_size',
           f'`attacker_pool_size`={c.attacker_pool_size}: `attacker_model`='
           'forced_pool puts every attacker in every round, so at most '
           f'num_clients_per_round={c.num_clients_per_round}; allowed range: '
           f'1..{c.num_clients_per_round}.')


def _staggered_pool_check(c):
  """Every attacker's single shot within the window and the run."""
  _fixed_pool_check(c)
  last_round = min(c.num_rounds, c.attack_end_round or c.num_rounds)
  _require(c.attack_start_round <= last_round, 'attack_start_round',
           f'`attack_start_round`={c.attack_start_round}: the first single '
           f'shot would be after round {last_round} (the end of the attack '
           f'window or of the run); allowed range: 1..{last_round}.')
  if c.attacker_pool_size < 2:
    return
  widest = (last_round - c.attack_start_round) // (c.attacker_pool_size - 1)
  _require(c.attack_stagger <= widest, 'attack_stagger',
           f'`attack_stagger`={c.attack_stagger}: the last of the '
           f'{c.attacker_pool_size} single shots would be in round '
           f'{c.attack_start_round + (c.attacker_pool_size - 1) * c.attack_stagger}'
           f', after round {last_round} (the end of the attack window or of '
           f'the run); allowed range: 1..{widest}.')


ATTACKER_MODELS = Registry('attacker_model', [
    Entry('fixed_frequency',
          lambda c, n: sampling.FixedFrequencyAttackers(c.attack_freq,
                                                        c.attack_phase),
          'One attacker every attack_freq rounds, in the rounds t with t mod '
          'attack_freq = attack_phase (Sun et al.).'),
    Entry('random_sampling',
          lambda c, n: sampling.RandomSamplingAttackers(
              c.malicious_fraction, n, c.num_clients_per_round),
          'round(ε·N) malicious clients, ε = malicious_fraction; sampled '
          'like all others.'),
    Entry('fixed_pool',
          lambda c, n: sampling.FixedPoolAttackers(c.attacker_pool_size, n,
                                                   c.random_seed),
          'attacker_pool_size fixed malicious clients (Wang et al.).',
          check=_fixed_pool_check),
    Entry('forced_pool',
          lambda c, n: sampling.ForcedPoolAttackers(
              c.attacker_pool_size, n, c.random_seed,
              c.num_clients_per_round),
          'attacker_pool_size fixed malicious clients, all forced into every '
          'round of the window, attacker i of the pool with part i of a '
          'backdoor with parts (DBA\'s multi-shot, Xie et al.).',
          check=_forced_pool_check),
    Entry('staggered_pool',
          lambda c, n: sampling.StaggeredPoolAttackers(
              c.attacker_pool_size, n, c.random_seed, c.attack_start_round,
              c.attack_stagger),
          'attacker_pool_size fixed malicious clients, attacker i forced '
          'into round attack_start_round + i·attack_stagger only, with part '
          'i of a backdoor with parts (DBA\'s single shot, Xie et al.).',
          check=_staggered_pool_check),
])


# ---------------------------------------------------------------------------
# Datasets.


def _synthetic(c, backdoor):
  rate = backdoor.crossbar_seven_rate
  return federated.load_synthetic(
      c.synthetic_num_clients, c.synthetic_examples_per_client, c.random_seed,
      crossbar_seven_rate=0.03 if rate is None else rate)


def _from_cache(c, setting: str, load):
  """`load()`, a dataset read from TFF's cache: its DatasetUnavailableError
  a ConfigError naming `setting`, the cache's directory."""
  try:
    return load()
  except federated.DatasetUnavailableError as e:
    raise ConfigError(setting, f'`dataset`={c.dataset}: {e}') from e


def _emnist(c, backdoor):
  del backdoor
  return _from_cache(c, 'emnist_cache_dir', lambda: federated.load_emnist(
      c.only_digits, c.emnist_cache_dir))


def _synthetic_check(c):
  _at_most_the_clients(c, 'num_clients_per_round')


def _synthetic_cifar10_check(c):
  _require(c.synthetic_cifar_train_size % 5 == 0,
           'synthetic_cifar_train_size',
           f'`synthetic_cifar_train_size`={c.synthetic_cifar_train_size} '
           'must be a multiple of 5 (CIFAR-10\'s five training files).')


def _cifar10(c, backdoor):
  if not c.cifar10_dir:
    raise ConfigError('cifar10_dir', '`dataset`=cifar10 reads the '
                      'python-format CIFAR-10 at `cifar10_dir` (not set); or '
                      'use `dataset`=synthetic_cifar10')
  try:
    return cifar.load_cifar10(c.cifar10_dir, c.cifar_num_clients,
                              c.dirichlet_alpha, c.random_seed,
                              backdoor.held_out_specs)
  except (OSError, EOFError) as e:
    raise ConfigError('cifar10_dir', f'`cifar10_dir`: {e}') from e


def _stackoverflow(c, backdoor):
  del backdoor
  return _from_cache(c, 'stackoverflow_cache_dir',
                     lambda: text.load_stackoverflow(
                         c.stackoverflow_cache_dir, c.text_vocab_size,
                         c.text_sequence_length, c.text_test_sentences))


def _shakespeare(c, backdoor):
  del backdoor
  return _from_cache(c, 'shakespeare_cache_dir',
                     lambda: shakespeare.load_shakespeare(
                         c.shakespeare_cache_dir, c.text_sequence_length,
                         c.text_test_sentences))


def _text_check(c):
  _require(c.model in models.TEXT_MODELS, 'model',
           f'`dataset`={c.dataset} is next-word prediction; `model` must be '
           f'one of {", ".join(models.TEXT_MODELS)}, got {c.model}.')


def _image_model_check(c):
  if c.dataset not in TEXT_DATASETS:
    _require(c.model not in models.TEXT_MODELS, 'model',
             f'`model`={c.model} is a next-word model; `dataset`={c.dataset} '
             f'has images.')


def _cifar100(c, backdoor):
  del backdoor
  return _from_cache(c, 'cifar100_cache_dir',
                     lambda: cifar.load_cifar100(c.cifar100_cache_dir))


DATASETS = Registry('dataset', [
    DatasetEntry('synthetic', _synthetic,
                 'Generated writer-style digits (offline).',
                 check=_synthetic_check,
                 num_clients_setting='synthetic_num_clients'),
    DatasetEntry('dirichlet',
                 lambda c, backdoor: dirichlet.repartition_dirichlet(
                     _synthetic(c, backdoor), c.synthetic_num_clients,
                     c.dirichlet_alpha, c.random_seed),
                 'The generated writers\' examples pooled and re-split over '
                 'synthetic_num_clients clients, each class c by p_c ~ '
                 'Dir(dirichlet_alpha·1) (non-IID labels).',
                 check=_synthetic_check,
                 num_clients_setting='synthetic_num_clients'),
    DatasetEntry('emnist', _emnist, 'TFF federated EMNIST (3,383 writers).'),
    DatasetEntry('cifar10', _cifar10,
                 'CIFAR-10 from its python files (cifar10_dir), the 50,000 '
                 'training images split over cifar_num_clients clients by '
                 'Dir(dirichlet_alpha).',
                 num_clients_setting='cifar_num_clients'),
    DatasetEntry('synthetic_cifar10',
                 lambda c, backdoor: cifar.load_synthetic_cifar10(
                     c.synthetic_cifar_train_size, c.synthetic_cifar_test_size,
                     c.cifar_num_clients, c.dirichlet_alpha, c.random_seed,
                     backdoor.held_out_specs),
                 'Generated CIFAR-10 stand-in (offline; classes by shape, '
                 'colours and stripes as attributes), written in CIFAR-10\'s '
                 'format and read by the cifar10 loader.',
                 check=_synthetic_cifar10_check,
                 num_clients_setting='cifar_num_clients'),
    DatasetEntry('stackoverflow', _stackoverflow,
                 'TFF\'s federated Stack Overflow (342,477 users), next-word '
                 'prediction over the text_vocab_size most frequent words.',
                 check=_text_check),
    DatasetEntry('synthetic_text',
                 lambda c, backdoor: text.load_synthetic_text(
                     c.synthetic_num_clients, c.synthetic_examples_per_client,
                     c.random_seed, c.text_sequence_length),
                 'Generated users\' sentences (offline), written as TFF\'s '
                 'Stack Overflow cache and read by its loader.',
                 check=lambda c: (_text_check(c), _synthetic_check(c)),
                 num_clients_setting='synthetic_num_clients'),
    DatasetEntry('shakespeare', _shakespeare,
                 'TFF\'s federated Shakespeare (715 roles), next-character '
                 'prediction over TFF\'s 86 characters.',
                 check=_text_check),
    DatasetEntry('synthetic_shakespeare',
                 lambda c, backdoor: shakespeare.load_synthetic_shakespeare(
                     c.synthetic_num_clients, c.synthetic_examples_per_client,
                     c.random_seed, c.text_sequence_length,
                     c.text_test_sentences),
                 'The generated users\' sentences as snippets (offline), '
                 'written as TFF\'s Shakespeare cache and read by its loader.',
                 check=lambda c: (_text_check(c), _synthetic_check(c)),
                 num_clients_setting='synthetic_num_clients'),
    DatasetEntry('cifar100', _cifar100,
                 'TFF\'s federated CIFAR-100 (500 clients, 100 classes).'),
    DatasetEntry('synthetic_cifar100',
                 lambda c, backdoor: cifar.load_synthetic_cifar100(
                     c.cifar_num_clients, c.synthetic_examples_per_client,
                     c.random_seed),
                 'Generated CIFAR-100 stand-in (offline, 100 classes), '
                 'written as TFF\'s cifar100.sqlite and read by TFF\'s loader.',
                 num_clients_setting='cifar_num_clients'),
])

ALL = (DATASETS, ATTACKS, ATTACKER_MODELS, BACKDOORS, DEFENSES)

# Every setting that takes one of a fixed set of names, and the names.
CHOICES = {
    **{registry.setting: tuple(registry) for registry in ALL},
    'model': models.MODEL_NAMES,
    'cs_anomaly': bagdasaryan.ANOMALY_TERMS,
    'omniscient_knowledge': omniscient.KNOWLEDGE,
    'edge_case_mix': tuple(edge_case.EDGE_CASE_MIXES),
    'trigger_placement': triggers.TRIGGER_PLACEMENTS,
    'foolsgold_features': foolsgold.FEATURES,
    'flame_cluster_on': filtering.FLAME_CLUSTER_ON,
    'neurotoxin_mask_source': pgd.NEUROTOXIN_MASK_SOURCES,
    'execution_context': runtime.EXECUTION_CONTEXTS,
    'client_batching': batched_training.CLIENT_BATCHING,
}


def num_classes(config) -> int:
  """The number of classes of the configured dataset (as its loader sets
  `FederatedImages.num_classes`): 10 digits, EMNIST's 62 with letters,
  CIFAR-10's 10, CIFAR-100's 100."""
  if config.dataset == 'emnist' and not config.only_digits:
    return 62
  if config.dataset in ('cifar100', 'synthetic_cifar100'):
    return 100
  if config.dataset in CHAR_DATASETS:
    return len(shakespeare.char_vocab()) + 4  # PAD, OOV, BOS, EOS
  if config.dataset in TEXT_DATASETS:
    return config.text_vocab_size + 4  # an upper bound: PAD, OOV, BOS, EOS
  return synthetic_digits.NUM_CLASSES


def check(config) -> None:
  """The cross-setting checks of every chosen entry (and of the window and
  of the trigger's source class, whatever the backdoor)."""
  _require(config.attack_end_round == 0 or
           config.attack_end_round >= config.attack_start_round,
           'attack_end_round',
           f'`attack_end_round`={config.attack_end_round} must be 0 or >= '
           f'attack_start_round={config.attack_start_round}.')
  try:
    triggers.check_source_class(config.trigger_source_class,
                                backdoor_base.BACKDOOR_TARGET_LABEL,
                                num_classes(config))
  except ValueError as e:
    raise ConfigError('trigger_source_class', str(e)) from e
  _image_model_check(config)
  for registry in ALL:
    entry = registry.chosen(config)
    if entry.check is not None:
      entry.check(config)


def validate(config) -> None:
  """Every setting's own check (names against `CHOICES`), then the chosen
  entries' cross-setting checks; raises ConfigError."""
  config_lib.validate(config, CHOICES)
  check(config)


# ---------------------------------------------------------------------------
# What each entry reads: the settings its builder (or its check) uses, beyond
# the one that chose it. A setting that some entry reads and none of the
# run's chosen entries does is ignored by that run (`ignored_settings`).

_BOOSTED = ('boost_factor',)
_PGD = ('pgd_eps', 'norm_bound', 'project_frequency', 'attacker_learning_rate')
_A3FL_SEARCH = ('a3fl_outer_iterations', 'a3fl_trigger_passes',
                'a3fl_trigger_lr', 'a3fl_lambda', 'a3fl_similarity_weighted',
                'a3fl_unlearn_passes', 'a3fl_unlearn_lr', 'a3fl_batch_size')
_SYNTHETIC = ('synthetic_num_clients', 'synthetic_examples_per_client')

READS = {
    'attack': {
        'none': (),
        'unconstrained': _BOOSTED,
        'model_replacement': _BOOSTED,
        'norm_bounded': _BOOSTED + ('norm_bound', 'client_round_num'),
        'data_poisoning': ('poison_per_batch', 'poison_boost_factor',
                           'poison_passes'),
        'constrain_and_scale': _BOOSTED + (
            'cs_alpha', 'cs_gamma', 'cs_anomaly', 'poison_per_batch',
            'attacker_learning_rate', 'cs_lr_decay', 'cs_lr_step_size',
            'cs_max_epochs', 'cs_early_stop_loss'),
        'train_and_scale': ('norm_bound',),
        'pgd': _PGD,
        'pgd_replacement': _PGD + _BOOSTED,
        'neurotoxin': _PGD + ('neurotoxin_mask_ratio',
                              'neurotoxin_mask_source'),
        'alie': ('alie_z', 'omniscient_knowledge'),
        'ipm': ('ipm_epsilon', 'omniscient_knowledge'),
        'sign_flip': (),
        'a3fl': ('poison_per_batch', 'a3fl_boost_factor', 'poison_passes'),
    },
    'defense': {
        'none': (),
        'clip': ('norm_bound',),
        'aggregate_clip': ('norm_bound',),
        'weak_dp': ('l2_norm_clip', 'mul_factor', 'privacy_delta_exponent'),
        'krum': ('num_byzantine',),
        'multi_krum': ('num_byzantine', 'multi_krum_selected'),
        'median': (),
        'trimmed_mean': ('trim_fraction',),
        'geometric_median': ('geometric_median_iters',),
        'dp_sgd': ('dp_sgd_l2_norm_clip', 'dp_sgd_noise_multiplier',
                   'privacy_delta_exponent'),
        'bulyan': ('num_byzantine',),
        'rlr': ('rlr_threshold',),
        'flame': ('flame_noise_lambda', 'flame_cluster_on'),
        'foolsgold': ('foolsgold_features', 'foolsgold_confidence'),
        'fltrust': ('fltrust_root_size',),
        'tff_robust': (),
        'tff_dp_adaptive': ('tff_dp_noise_multiplier', 'privacy_delta_exponent'),
        'tff_dp_fixed': ('tff_dp_noise_multiplier', 'l2_norm_clip',
                         'privacy_delta_exponent'),
    },
    'backdoor': {
        'semantic': ('task_num',),
        'sentence': ('backdoor_sentence', 'task_num', 'sentence_eval_size'),
        'semantic_images': ('poison_images', 'poison_images_test',
                            'poison_label'),
        'edge_case': ('edge_case_num_train', 'edge_case_num_eval',
                      'edge_case_mix', 'ardis_dir'),
        'southwest': ('edge_case_num_train', 'edge_case_num_eval',
                      'edge_case_dir'),
        'trigger': ('task_num', 'trigger_amplitude', 'trigger_placement',
                    'trigger_source_class'),
        'dba': ('task_num', 'trigger_amplitude', 'dba_parts',
                'trigger_source_class'),
        'a3fl': ('task_num', 'trigger_placement',
                 'trigger_source_class') + _A3FL_SEARCH,
    },
    'attacker_model': {
        'fixed_frequency': ('attack_freq', 'attack_phase'),
        'random_sampling': ('malicious_fraction',),
        'fixed_pool': ('attacker_pool_size',),
        'forced_pool': ('attacker_pool_size',),
        'staggered_pool': ('attacker_pool_size', 'attack_stagger'),
    },
    'dataset': {
        'synthetic': _SYNTHETIC,
        'dirichlet': _SYNTHETIC + ('dirichlet_alpha',),
        'emnist': ('emnist_cache_dir', 'only_digits'),
        'cifar10': ('cifar10_dir', 'cifar_num_clients', 'dirichlet_alpha'),
        'synthetic_cifar10': ('cifar_num_clients', 'dirichlet_alpha',
                              'synthetic_cifar_train_size',
                              'synthetic_cifar_test_size'),
        'cifar100': ('cifar100_cache_dir',),
        'stackoverflow': ('stackoverflow_cache_dir', 'text_vocab_size',
                          'text_sequence_length', 'text_test_sentences'),
        'synthetic_text': _SYNTHETIC + ('text_sequence_length',),
        'shakespeare': ('shakespeare_cache_dir', 'text_sequence_length',
                        'text_test_sentences'),
        'synthetic_shakespeare': _SYNTHETIC + ('text_sequence_length',
                                               'text_test_sentences'),
        'synthetic_cifar100': ('cifar_num_clients',
                               'synthetic_examples_per_client'),
    },
}


def ignored_settings(config, given=None) -> list:
  """(setting, reason) for each setting in `given` (default: those away
  from their defaults) that some entry of the registries reads and none of
  `config`'s chosen entries does: the run ignores it."""
  if given is None:
    given = [f.name for f in config_lib.fields()
             if getattr(config, f.name) != f.default]
  chosen = {registry.setting: getattr(config, registry.setting)
            for registry in ALL}
  read_now = set()
  for setting, name in chosen.items():
    read_now.update(READS[setting][name])
  ignored = []
  for name in given:
    readers = [f'{setting}={entry}' for setting, table in READS.items()
               for entry, reads in table.items() if name in reads]
    if readers and name not in read_now:
      ignored.append((name, f'read only with {", ".join(readers)}; this run '
                      'has ' + ', '.join(f'{s}={chosen[s]}' for s in sorted(
                          {r.split('=')[0] for r in readers}))))
  return ignored
