"""The studies: data. Each a list of cells (settings of the experiment
binary) with the paper's setting and claim; each scale a table of overrides.

A study's run is `runner.plan`: precedence the scale's table, then the
study's settings, then the cell's, then the command line's `--set`.
A user's own study is a JSON file of the same fields (`load_study_file`).
"""

import dataclasses
import json
from typing import Optional

from targeted_attack.reproduce import claims as c


@dataclasses.dataclass(frozen=True)
class Ratio:
  """A ratio of the paper's that a study's translation does not keep:
  `short` stated beside each of the study's verdicts (the claims table),
  `text` in full in its section."""
  short: str
  text: str


@dataclasses.dataclass(frozen=True)
class Cell:
  label: str
  settings: dict
  # A cell of a grid study: its row and column labels (the summary then also
  # prints the grid); None otherwise.
  row: Optional[str] = None
  column: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Study:
  name: str
  title: str          # the paper's setting, named in the figure
  paper_says: str     # what the paper reports, for the README and summary
  settings: dict      # shared by every cell
  cells: tuple
  # In the default sweep (every study unless --studies names others, and CI's
  # smoke sweep); False for a grid too large to run by default (the matrix).
  default: bool = True
  # The paper's claims, each checked against the summary table
  # (`claims.Claim`); the sweep writes them to <scale>/claims.md.
  claims: tuple = ()
  # At the 'paper' scale (the paper's own data and size), these replace the
  # study's settings translated to the generated writers (e.g. a norm bound
  # stated as a ratio to their benign norms), before the cells'.
  paper_scale_settings: dict = dataclasses.field(default_factory=dict)
  # A bigger run (`bigger_run`): the study whose failing claim it probes.
  bigger_run_of: Optional[str] = None
  # Per scale name, settings over the study's (after `paper_scale_settings`):
  # e.g. FedSGD's rounds, one step each, at `small`.
  scale_settings: dict = dataclasses.field(default_factory=dict)
  # The paper's ratios that this translation does not keep (`Ratio`s; a
  # string is its own short form), stated beside its verdicts in claims.md.
  ratios_not_kept: tuple = ()
  # The cells start from a trained model: the final model of a clean run of
  # the study's settings for the scale's `pretrain_rounds` (run once per
  # seed, shared by the cells; `runner.pretraining_run`), as the papers
  # attack a converged model.
  converged_start: bool = False
  # The attack runs in one round only: the scale's `attack_round`
  # (Bagdasaryan et al.'s single shot).
  single_shot: bool = False

  def __post_init__(self):
    object.__setattr__(self, 'ratios_not_kept', tuple(
        r if isinstance(r, Ratio) else Ratio(str(r), str(r))
        for r in self.ratios_not_kept))


_EVERY_ROUND = dict(attacker_model='fixed_frequency', attack_freq=1)


# Sun et al.'s norm-bounded studies (Figs. 2, 3, 4b), translated. The paper:
# 30 clients per round, boost β = 30 (Σn_k / n_k), M = 10 against benign
# update norms < 2 (90th percentile; Fig. 4a), so the attacker's radius
# before the boost is M/β = 1/3, a sixth of the benign norms, and ε = 3.3%
# is one attacker per round. The generated writers' benign norms are ≈ 1, so
# the same ratios are: 30 clients per round (β = 30, ε = 3.3% one attacker
# per round), M = 5 (M / benign ≈ 5, M/β / benign ≈ 1/6). Before 0.4.0 these
# studies ran 10 clients per round with M = 10 (β = 10, radius 1 ≈ the
# benign norms), where the bound hardly binds. At the 'paper' scale, the
# paper's M.
_SUN_NORM_BOUNDED = dict(attack='norm_bounded', defense='clip',
                         norm_bound=5.0, num_clients_per_round=30)


_FLOOR = c.BACKDOOR_FLOOR


def _foolsgold_claims(two_sybils: str, one_sybil: str) -> tuple:
  """FoolsGold's claims on cells `fedavg_<x>` / `foolsgold_<x>` (x: the
  2-sybil and 1-sybil labels) and `no_attack`."""
  clean = c.clean_rate('no_attack')
  return (
      c.Claim('with 2 sybils among 10 honest clients FedAvg learns the '
              'backdoor (0.98)',
              c.at_least('backdoor_final', f'fedavg_{two_sybils}', 0.9),
              (clean, c.main_task_kept(f'fedavg_{two_sybils}'))),
      c.Claim('FoolsGold holds it at the no-attack rate (0.06 vs 0.09)',
              c.no_worse('backdoor_final', 'no_attack',
                         f'foolsgold_{two_sybils}', 0.05),
              (clean, c.attack_works(f'fedavg_{two_sybils}', 0.5,
                                     'backdoor_final'),
               c.main_task_kept(f'foolsgold_{two_sybils}'))),
      c.Claim('one poisoner: FoolsGold far below FedAvg (0.00 vs 0.89)',
              c.greater('backdoor_final', f'fedavg_{one_sybil}',
                        f'foolsgold_{one_sybil}', 0.5, floor=_FLOOR),
              (clean, c.attack_works(f'fedavg_{one_sybil}', 0.5,
                                     'backdoor_final'),
               c.main_task_kept(f'foolsgold_{one_sybil}'))))


# Lost ratios shared by the studies of the generated writers.
def _writers_share(tasks: int, suffix: str = '', short: str = '') -> Ratio:
  return Ratio(
      short or (f'target writers {tasks / 3:.1f}% of the population (the '
                f'paper: {100 * tasks / 3383:.1f}%)'),
      f'target writers {tasks} of 300 = {tasks / 3:.1f}% of the population '
      f'(the paper: {tasks} of 3,383 = {100 * tasks / 3383:.1f}%): '
      f'{3383 / 300:.0f}× more honest counter-examples' + suffix)


_WRITERS_SHARE = _writers_share(30)


def _semantic_share(tasks: int, attack: str = '') -> Ratio:
  """Bagdasaryan et al.'s semantic backdoor kept apart from honest clients;
  Sun et al.'s (the one on the generated digits) is not."""
  return Ratio(
      f'{attack}the backdoor\'s 7s trained on by {tasks / 3:.1f}% of the '
      'population as honest clients (the paper: held out)',
      f'{attack}the backdoor is the 7s of {tasks} of 300 generated writers '
      f'({tasks / 3:.1f}% of the population), who keep training on them, '
      'correctly labelled, as honest clients (Bagdasaryan et al.\'s backdoor '
      'images are held out of every honest client)')


_REPLACEMENT_SEMANTIC_SHARE = _semantic_share(10)
_FLAME_SEMANTIC_SHARE = _semantic_share(30, 'constrain-and-scale: ')


def _digits_not_cifar(paper_model: str) -> Ratio:
  """A CIFAR-10 paper run on the generated digits (its CIFAR-10 variant
  states `_STAND_IN` instead)."""
  return Ratio(f'digits, not CIFAR-10 and {paper_model}',
               'the generated digits and a digits model (the paper: '
               f'CIFAR-10 and {paper_model}; the `_cifar10` variant runs the '
               'CIFAR-10 stand-in)')


_ALIE_TASK = _digits_not_cifar('its CNN')
_A3FL_TASK = _digits_not_cifar('ResNet-18')
_DBA_LABEL_SKEW = Ratio('no Dir(0.5) label skew',
                        'the writers\' own digits, no Dirichlet(0.5) label '
                        'skew across clients (the authors\' split)')
# Ratios that hold on the generated digits only (not on a CIFAR-10 variant).
_DIGITS_ONLY_RATIOS = (_REPLACEMENT_SEMANTIC_SHARE, _FLAME_SEMANTIC_SHARE,
                       _ALIE_TASK, _A3FL_TASK, _DBA_LABEL_SKEW)
_FROM_SCRATCH = Ratio('an unconverged start (the paper: converged)',
                      'the attack starts on an unconverged model (the paper '
                      'attacks a converged one)')
_SERVER_STEP_1 = Ratio('η·m/n = 1.0 (the paper: 0.1)',
                       'the effective server step η·m/n is 1.0 (the paper\'s '
                       '0.1): a backdoor is averaged away ≈ 10× faster')
# Wang et al.'s one attack in 10 rounds, over `small`'s 60.
_SIX_ATTACK_ROUNDS = Ratio('6 attack rounds in 60 (the paper: hundreds of '
                           'rounds)',
                           'one attack in 10 rounds over the 60 rounds of '
                           '`small`: 6 attacks, each averaged with 9 honest '
                           'updates (the paper attacks for hundreds of '
                           'rounds)')
# FedSGD (ALIE, IPM, FoolsGold, FLTrust): one local step on one batch, every
# client every round. A population of 20 clients, all sampled each round;
# FedSGD's rounds are one step each, so 300 of them at `small` and `main`.
# (The semantic backdoor's task, evaluated only, 2 writers: a population of
# 20 has few writers of 7s.)
_FEDSGD = dict(local_steps=1, num_epochs=1, synthetic_num_clients=20,
               num_clients_per_round=20, task_num=2)
_FEDSGD_ROUNDS = dict(num_rounds=300, evaluate_per_rounds=10,
                      checkpoint_every=50)
_FEDSGD_SCALES = {'small': _FEDSGD_ROUNDS, 'main': _FEDSGD_ROUNDS}
_FEDSGD_AT_PAPER = Ratio('at `paper`: 20 of 3,383 writers a round, not all',
                        'at the paper scale EMNIST\'s 3,383 writers are '
                        'sampled 20 a round: not every client every round')


_ATTACKER_GRID = (
    Cell('fixed_every_round', dict(attacker_model='fixed_frequency',
                                   attack_freq=1)),
    Cell('fixed_every_10_rounds', dict(attacker_model='fixed_frequency',
                                       attack_freq=10)),
    Cell('random_eps_3.3pct', dict(attacker_model='random_sampling',
                                   malicious_fraction=1 / 30)),
    Cell('random_eps_0.33pct', dict(attacker_model='random_sampling',
                                    malicious_fraction=1 / 300)),
)


# The attack × defense grid: (label, settings) of its rows and columns.
MATRIX_ATTACKS = (
    ('unconstrained', dict(attack='unconstrained')),
    ('norm_bounded', dict(attack='norm_bounded', norm_bound=1.5)),
    ('data_poisoning', dict(attack='data_poisoning')),
    ('constrain_and_scale', dict(attack='constrain_and_scale')),
    ('pgd_edge_case', dict(attack='pgd', backdoor='edge_case', pgd_eps=1.5)),
    ('pgd_replacement_edge_case', dict(attack='pgd_replacement',
                                       backdoor='edge_case', pgd_eps=0.15)),
    ('data_poisoning_trigger', dict(attack='data_poisoning',
                                    backdoor='trigger',
                                    trigger_placement='four_corners')),
    ('neurotoxin', dict(attack='neurotoxin', norm_bound=1.5)),
    ('data_poisoning_dba', dict(attack='data_poisoning', backdoor='dba')),
    ('a3fl', dict(attack='a3fl', backdoor='a3fl')),
    # Untargeted baselines: the main task is what they hit.
    ('alie', dict(attack='alie')),
    ('ipm', dict(attack='ipm')),
)
MATRIX_DEFENSES = (
    ('none', dict(defense='none')),
    ('clip_1.5', dict(defense='clip', norm_bound=1.5)),
    ('weak_dp', dict(defense='weak_dp', l2_norm_clip=3.0, mul_factor=0.003)),
    ('krum', dict(defense='krum', num_byzantine=1)),
    ('multi_krum', dict(defense='multi_krum', num_byzantine=1,
                        multi_krum_selected=5)),
    ('median', dict(defense='median')),
    ('dp_sgd', dict(defense='dp_sgd', dp_sgd_l2_norm_clip=5.0,
                    dp_sgd_noise_multiplier=0.05)),
    ('bulyan', dict(defense='bulyan', num_byzantine=1)),
    # θ between the corrupt (1) and honest (9) agents, as the authors'
    # 10-agent runs.
    ('rlr', dict(defense='rlr', rlr_threshold=4)),
    ('flame', dict(defense='flame')),
    ('foolsgold', dict(defense='foolsgold')),
    ('fltrust', dict(defense='fltrust')),
    ('tff_robust', dict(defense='tff_robust')),
    ('tff_dp_adaptive', dict(defense='tff_dp_adaptive',
                             tff_dp_noise_multiplier=0.1)),
)
# DP-SGD's per-example gradients make a round ~5× slower: only these rows.
_MATRIX_ONLY_ROWS = {'dp_sgd': ('unconstrained', 'data_poisoning',
                                'data_poisoning_trigger')}
_MATRIX_CELLS = tuple(
    Cell(f'{attack}__{defense}', {**attack_settings, **defense_settings},
         row=attack, column=defense)
    for attack, attack_settings in MATRIX_ATTACKS
    for defense, defense_settings in MATRIX_DEFENSES
    if attack in _MATRIX_ONLY_ROWS.get(defense, (attack,)))

_NO_ATTACK = Cell('no_attack', dict(attack='none'))

# FLAME's three attacks (label, settings) and their backdoor tasks.
_FLAME_ATTACKS = (
    ('constrain_and_scale', dict(attack='constrain_and_scale',
                                 backdoor='semantic')),
    ('dba', dict(attack='data_poisoning', backdoor='dba', dba_parts=4,
                 poison_per_batch=6)),
    ('edge_case_pgd', dict(attack='pgd', backdoor='edge_case', pgd_eps=0.5)))
_FLAME_TASKS = (('constrain_and_scale', 'semantic', 'constrain-and-scale'),
                ('dba', 'dba', 'DBA'), ('edge_case_pgd', 'edge_case',
                                        'edge-case PGD'))


def _sun_controls(attacked: str, defended: Optional[str] = None) -> tuple:
  """Sun et al.'s studies: the clean base rate of the target writers' 7s,
  the attack implanting in `attacked`, the main task kept there and in the
  `defended` cell a claim compares it with."""
  return (c.clean_rate('no_attack'), c.attack_works(attacked),
          c.main_task_kept(attacked)) + (
              (c.main_task_kept(defended),) if defended else ())


STUDIES = {s.name: s for s in (
    Study('sun_fig1', 'Sun et al. Fig. 1: unconstrained boosted attack, '
          '30 tasks, no defense',
          'success falls as ε falls; fixed frequency slightly stronger than '
          'random sampling',
          dict(attack='unconstrained', defense='none', task_num=30),
          _ATTACKER_GRID + (_NO_ATTACK,),
          claims=(
              c.Claim('success falls as the attackers\' share ε falls',
                      c.decreasing('backdoor_cumulative_mean',
                                   ('fixed_every_round', 'random_eps_3.3pct',
                                    'fixed_every_10_rounds',
                                    'random_eps_0.33pct'), 0.05,
                                   floor=_FLOOR),
                      _sun_controls('fixed_every_round')),),
          ratios_not_kept=(_WRITERS_SHARE, _FROM_SCRATCH)),
    Study('sun_fig2', 'Sun et al. Fig. 2: norm-bounded attack (M = 10, '
          'here 5: the ratio to benign norms), 30 tasks, clipping at M',
          'the same trend as Fig. 1, weaker attack',
          dict(_SUN_NORM_BOUNDED, task_num=30),
          _ATTACKER_GRID + (
              # Fig. 1's attacker in the same setting: the norm bound is
              # what makes Fig. 2's attack weaker.
              Cell('unconstrained_random_eps_3.3pct', dict(
                  attack='unconstrained', defense='none',
                  attacker_model='random_sampling',
                  malicious_fraction=1 / 30)),
              _NO_ATTACK),
          claims=(
              c.Claim('the same trend as Fig. 1: success falls with ε',
                      c.decreasing('backdoor_cumulative_mean',
                                   ('fixed_every_round', 'random_eps_3.3pct',
                                    'fixed_every_10_rounds',
                                    'random_eps_0.33pct'), 0.05,
                                   floor=_FLOOR),
                      _sun_controls('fixed_every_round')),
              c.Claim('weaker than the unconstrained attack (ε = 3.3%)',
                      c.greater('backdoor_cumulative_mean',
                                'unconstrained_random_eps_3.3pct',
                                'random_eps_3.3pct', 0.05, floor=_FLOOR),
                      _sun_controls('unconstrained_random_eps_3.3pct')),),
          paper_scale_settings=dict(norm_bound=10.0),
          ratios_not_kept=(
              _WRITERS_SHARE, _FROM_SCRATCH,
              Ratio('ε = 0.33%: ≈ 6 attack rounds (the paper: ≈ 50)',
                    'ε = 0.33% (one attacker in the population, sampled in '
                    '10% of the rounds) attacks in ≈ 6 of the 60 rounds (the '
                    'paper\'s ≈ 50 of 500)'))),
    Study('sun_fig3', 'Sun et al. Fig. 3: norm-bounded attack (M = 10, here '
          '5) every round, number of backdoor tasks',
          'more tasks → lower backdoor accuracy',
          dict(_SUN_NORM_BOUNDED, **_EVERY_ROUND),
          tuple(Cell(f'tasks_{n}', dict(task_num=n)) for n in (10, 20, 30,
                                                                50)) + (
              Cell('no_attack', dict(attack='none', task_num=10)),),
          claims=(
              c.Claim('more backdoor tasks → lower backdoor accuracy',
                      c.greater('backdoor_cumulative_mean', 'tasks_10',
                                'tasks_50', 0.1, floor=_FLOOR),
                      _sun_controls('tasks_10')),),
          paper_scale_settings=dict(norm_bound=10.0),
          ratios_not_kept=(_writers_share(
              10, ' (tasks_10; tasks_50: 16.7%)',
              'target writers 3.3%–16.7% of the population (the paper: '
              '0.3%–1.5%)'), _FROM_SCRATCH)),
    # 30 clients a round, as Figs. 2, 3 and 4b (ε = 3.3%, β = 30); before 0.9
    # this study ran 10 (ε = 10%, β = 10).
    Study('sun_fig4a', 'Sun et al. Fig. 4a: norm clipping M vs a norm-bounded '
          'attacker every round (30 tasks, 30 clients a round)',
          'M = 3 mitigates with ~no main-task cost (benign 90th-percentile '
          'norm < 2)',
          dict(attack='norm_bounded', defense='clip', task_num=30,
               num_clients_per_round=30, **_EVERY_ROUND),
          (Cell('clip_3', dict(norm_bound=3.0)),
           Cell('clip_5', dict(norm_bound=5.0)),
           Cell('clip_10', dict(norm_bound=10.0)),
           # M = 3 is 1.5× the paper's benign norms (< 2); the same ratio for
           # the generated writers' norms (≈ 1) is 1.5.
           Cell('clip_1.5', dict(norm_bound=1.5)),
           Cell('no_attack', dict(attack='none', norm_bound=3.0))),
          claims=(
              c.Claim('clipping at the paper\'s ratio of M to the benign '
                      'norms mitigates the attack',
                      c.greater('backdoor_cumulative_mean', 'clip_10',
                                'clip_1.5', 0.2, floor=_FLOOR),
                      _sun_controls('clip_10', 'clip_1.5')),
              c.Claim('… at almost no main-task cost',
                      c.no_worse('main_task_final', 'clip_1.5', 'no_attack',
                                 0.03),
                      (c.no_attack_trains('no_attack'),)),),
          ratios_not_kept=(_WRITERS_SHARE, _FROM_SCRATCH)),
    # Fig. 4b translated as Figs. 2–3 (`_SUN_NORM_BOUNDED`): the paper's
    # clip 5 (2.5× its benign norms) is 2.5 here, the attacker bounded by it;
    # σ = 0.005·C, the paper's 0.025 at C = 5.
    Study('sun_fig4b', 'Sun et al. Fig. 4b: clip C = 5 (here 2.5) + Gaussian '
          'noise σ = 0.005·C (the paper\'s 0.025) vs an attacker every round',
          'noise mitigates beyond clipping alone',
          dict(_SUN_NORM_BOUNDED, norm_bound=2.5, l2_norm_clip=2.5,
               task_num=30, **_EVERY_ROUND),
          (Cell('clip', dict(defense='clip')),
           Cell('clip_noise_paper', dict(defense='weak_dp',
                                         mul_factor=0.005)),
           # Ten times the paper's σ: does noise help at all at this scale?
           Cell('clip_noise_10x', dict(defense='weak_dp', mul_factor=0.05)),
           Cell('no_attack', dict(attack='none', defense='clip'))),
          claims=(
              c.Claim('noise (σ = 0.005·C) mitigates beyond clipping alone',
                      c.greater('backdoor_cumulative_mean', 'clip',
                                'clip_noise_paper', 0.1, floor=_FLOOR),
                      _sun_controls('clip', 'clip_noise_paper')),),
          paper_scale_settings=dict(norm_bound=5.0, l2_norm_clip=5.0),
          ratios_not_kept=(_WRITERS_SHARE, _FROM_SCRATCH)),
    # Wang et al. attack a trained model (`converged_start`) once in ten
    # rounds (fixed frequency 10); the PGD
    # radius defaults to the clip's bound M = 2 (the paper's design: the
    # attacker stays inside it), which the benign norms (≤ 1.7) leave
    # unbound, so the clipping claim's control is the same attacker without
    # the projection (a radius of 100), which the clip does bind.
    Study('tails_krum', 'Wang et al.: edge-case PGD (pure edge case), '
          'attacker once every 10 rounds',
          'edge-case backdoors pass norm clipping and Krum',
          dict(attack='pgd', backdoor='edge_case', edge_case_mix='edge_case',
               norm_bound=2.0, num_byzantine=1,
               attacker_model='fixed_frequency', attack_freq=10),
          (Cell('none', dict(defense='none')),
           Cell('clip_2', dict(defense='clip')),
           Cell('krum', dict(defense='krum')),
           Cell('multi_krum', dict(defense='multi_krum',
                                   multi_krum_selected=5)),
           # A PGD radius inside the benign norms (≈ 1 here), so the
           # attacker's update looks benign to Krum.
           Cell('krum_eps_0.5', dict(defense='krum', pgd_eps=0.5)),
           Cell('none_unprojected', dict(defense='none', pgd_eps=100.0)),
           Cell('clip_2_unprojected', dict(defense='clip', pgd_eps=100.0)),
           Cell('no_attack', dict(attack='none', defense='none'))),
          claims=(
              # The projected attacker is inside the clip by design, so the
              # claim compares it under the clip with the unconstrained
              # attacker without a defense: projection costs it little.
              c.Claim('the edge-case backdoor passes norm clipping: PGD '
                      'under the clip keeps the unprojected attack\'s '
                      'undefended success (within 0.1)',
                      c.no_worse('backdoor_cumulative_mean', 'clip_2',
                                 'none_unprojected', 0.1),
                      (c.clean_rate('no_attack'),
                       c.attack_works('none_unprojected'),
                       c.main_task_kept('clip_2'),
                       c.Control('the clip binds: it lowers the unprojected '
                                 'attacker by > 0.1',
                                 c.greater('backdoor_cumulative_mean',
                                           'none_unprojected',
                                           'clip_2_unprojected', 0.1)))),
              c.Claim('… and Krum (the PGD radius M = 2)',
                      c.no_worse('backdoor_cumulative_mean', 'krum', 'none',
                                 0.1),
                      (c.clean_rate('no_attack'), c.attack_works('none'),
                       c.main_task_kept('krum'))),
              c.Claim('… and Multi-Krum',
                      c.no_worse('backdoor_cumulative_mean', 'multi_krum',
                                 'none', 0.1),
                      (c.clean_rate('no_attack'), c.attack_works('none'),
                       c.main_task_kept('multi_krum'))),
              c.Claim('… and Krum, with a PGD radius inside the benign norms',
                      c.no_worse('backdoor_cumulative_mean', 'krum_eps_0.5',
                                 'none', 0.1),
                      (c.clean_rate('no_attack'), c.attack_works('none'),
                       c.main_task_kept('krum_eps_0.5'))),),
          converged_start=True,
          ratios_not_kept=(_SIX_ATTACK_ROUNDS,)),
    # On a trained model (`converged_start`), as the paper's converged one.
    Study('bagdasaryan_replacement', 'Bagdasaryan et al.: one single-shot '
          'model replacement (β = n/η) on a trained model, then none',
          'the backdoor is near 100% right after, then decays',
          dict(attack='model_replacement', task_num=10, **_EVERY_ROUND),
          (Cell('no_defense', dict(defense='none')),
           Cell('clip_3', dict(defense='clip', norm_bound=3.0)),
           Cell('no_attack', dict(attack='none', defense='none'))),
          claims=(
              c.Claim('one model replacement puts the backdoor near 100%',
                      c.at_least('backdoor_max', 'no_defense', 0.9),
                      (c.clean_rate('no_attack'),
                       c.main_task_kept('no_defense', 0.7,
                                        'main_task_at_backdoor_max'))),
              c.Claim('… and it then decays (by more than 0.2 from its peak '
                      'to the final round)',
                      c.drops('no_defense', 'backdoor_max', 'backdoor_final',
                              0.2),
                      (c.clean_rate('no_attack'),
                       c.attack_works('no_defense', 0.5),
                       c.main_task_kept('no_defense'))),),
          ratios_not_kept=(_SERVER_STEP_1, _REPLACEMENT_SEMANTIC_SHARE),
          converged_start=True, single_shot=True),
    Study('defenses', 'The main job (an unconstrained boosted attacker every '
          'round, 10 tasks) under no defense, clipping and weak DP',
          'clipping mitigates with little main-task cost; weak DP (clip + '
          'noise) mitigates too (Sun et al. Sec. 4)',
          dict(attack='unconstrained', task_num=10, **_EVERY_ROUND),
          (Cell('no_attack', dict(attack='none', defense='none')),
           Cell('no_defense', dict(defense='none')),
           Cell('clip_1.5', dict(defense='clip', norm_bound=1.5)),
           # Weak DP's clip alone: what its noise adds.
           Cell('clip_3', dict(defense='clip', norm_bound=3.0)),
           Cell('weak_dp_C3_mul0.003', dict(defense='weak_dp',
                                            l2_norm_clip=3.0,
                                            mul_factor=0.003))),
          claims=(
              c.Claim('norm clipping mitigates the boosted attack',
                      c.greater('backdoor_cumulative_mean', 'no_defense',
                                'clip_1.5', 0.3, floor=_FLOOR),
                      _sun_controls('no_defense', 'clip_1.5')),
              c.Claim('… with little main-task cost',
                      c.no_worse('main_task_final', 'clip_1.5', 'no_attack',
                                 0.03),
                      (c.no_attack_trains('no_attack'),)),
              c.Claim('weak DP (clip + noise) mitigates it too',
                      c.greater('backdoor_cumulative_mean', 'no_defense',
                                'weak_dp_C3_mul0.003', 0.1, floor=_FLOOR),
                      _sun_controls('no_defense', 'weak_dp_C3_mul0.003')),
              # Gated on the clip alone: the attack gets through it, and
              # both cells keep the main task (before 0.9.1: on no_defense).
              c.Claim('… beyond its clip alone (C = 3, no noise)',
                      c.greater('backdoor_cumulative_mean', 'clip_3',
                                'weak_dp_C3_mul0.003', 0.1, floor=_FLOOR),
                      _sun_controls('clip_3', 'weak_dp_C3_mul0.003')),),
          ratios_not_kept=(_writers_share(10), _FROM_SCRATCH)),
    # ALIE (Baruch et al.). Kept: FedSGD (`_FEDSGD`: one local step, all 20
    # clients every round), 20% colluding workers in every round (4 of the
    # 20, forced in), all sending the same μ − z·σ of their own benign
    # updates (the code's non-omniscient attacker), z the paper's z_max from
    # n and f (the code's default is 1.5: the bigger run); the f the code
    # gives the defenses, the attackers' count: Krum f = 4, trimmed mean 20%
    # of each end, Bulyan f = 4 (it needs 4f + 3 = 19 ≤ 20 clients). Not
    # kept: CIFAR-10 and its model (the generated digits); the paper's worker
    # count (n = 51 in the ports).
    Study('baruch_alie', 'Baruch et al. (ALIE): FedSGD, 4 of 20 workers '
          'colluding every round send μ − z·σ of their own updates, under '
          'Krum, trimmed mean and Bulyan',
          '20% of corrupt workers degrade a CIFAR-10 model\'s accuracy by '
          '50%, undetected by Krum, trimmed mean and Bulyan',
          dict(_FEDSGD, attack='alie', omniscient_knowledge='attackers',
               attacker_model='forced_pool', attacker_pool_size=4,
               num_byzantine=4, trim_fraction=0.2),
          (Cell('no_attack_krum', dict(attack='none', defense='krum')),
           Cell('alie_krum', dict(defense='krum')),
           Cell('no_attack_trimmed_mean', dict(attack='none',
                                               defense='trimmed_mean')),
           Cell('alie_trimmed_mean', dict(defense='trimmed_mean')),
           Cell('no_attack_bulyan', dict(attack='none', defense='bulyan')),
           Cell('alie_bulyan', dict(defense='bulyan')),
           Cell('no_attack_fedavg', dict(attack='none', defense='none')),
           Cell('alie_fedavg', dict(defense='none'))),
          # "By 50%": half of the clean accuracy, ≈ 0.8–0.9 under these
          # rules, so a drop of more than 0.4.
          claims=tuple(
              c.Claim(f'20% corrupt workers halve the accuracy under {name}',
                      c.greater('main_task_final', f'no_attack_{rule}',
                                f'alie_{rule}', 0.4),
                      (c.no_attack_trains(f'no_attack_{rule}'),))
              for rule, name in (('krum', 'Krum'),
                                 ('trimmed_mean', 'trimmed mean'),
                                 ('bulyan', 'Bulyan'))),
          scale_settings=_FEDSGD_SCALES,
          ratios_not_kept=('20 workers (the ports: 51)', _FEDSGD_AT_PAPER,
                           _ALIE_TASK)),
    # IPM (Xie et al.). Kept: FedSGD (`_FEDSGD`, as the ports' FedSGD
    # configs), omniscient attackers (μ over the round's benign updates), all
    # sending −ε·μ every round, a fixed count of them in every round (forced
    # in); the two regimes of ε, small (0.1) against Krum, large (100)
    # against the median; a Byzantine share just under each rule's limit:
    # 6 of 20 (30%) against Krum given f = 6 (n > 2f + 2), 8 of 20 (40%)
    # against the median (< 50%). Not kept: the paper's worker counts, q and
    # ε (not read; from the ports).
    Study('xie_ipm', 'Xie et al. (IPM): FedSGD, omniscient attackers in '
          'every round send −ε·μ of the benign updates, ε = 0.1 (6 of 20) '
          'against Krum, ε = 100 (8 of 20) against the coordinate-wise median',
          'coordinate-wise median and Krum are broken by inner product '
          'manipulation',
          dict(_FEDSGD, attack='ipm', omniscient_knowledge='benign',
               attacker_model='forced_pool'),
          (Cell('no_attack_krum', dict(attack='none', defense='krum',
                                       num_byzantine=6,
                                       attacker_pool_size=6)),
           Cell('ipm_0.1_krum', dict(defense='krum', num_byzantine=6,
                                     ipm_epsilon=0.1, attacker_pool_size=6)),
           Cell('no_attack_median', dict(attack='none', defense='median',
                                         attacker_pool_size=8)),
           Cell('ipm_100_median', dict(defense='median', ipm_epsilon=100.0,
                                       attacker_pool_size=8))),
          # "Broken": the rule no longer trains, i.e. it loses more than half
          # of the clean accuracy (≈ 0.9).
          claims=(
              c.Claim('IPM with a small ε (0.1) breaks Krum',
                      c.greater('main_task_final', 'no_attack_krum',
                                'ipm_0.1_krum', 0.5),
                      (c.no_attack_trains('no_attack_krum'),)),
              c.Claim('… and with a large ε (100) the coordinate-wise median',
                      c.greater('main_task_final', 'no_attack_median',
                                'ipm_100_median', 0.5),
                      (c.no_attack_trains('no_attack_median'),)),),
          scale_settings=_FEDSGD_SCALES,
          ratios_not_kept=('the paper\'s worker counts (not read)',
                           _FEDSGD_AT_PAPER)),
    # FoolsGold (Fung et al.). Kept: FedSGD (one local step of a batch, as
    # the authors' ML code's 1 iteration of batch 50), the sybils in every
    # round (forced in) beside 10 honest clients, their data all poison
    # (poison_per_batch 20: the whole batch), 1 and 2 sybils (the paper's
    # counts); mutually dissimilar honest clients, as strongly non-IID
    # labels (Dirichlet α = 0.1: ≈ 4 classes a client, two thirds of its
    # data one class, where the paper gives each one class); histories
    # summed over all rounds, on the output layer; κ = 1. Not kept: the same
    # 10 honest clients every round (here 10 sampled from the re-split
    # population each round: FoolsGold compares a round's clients); the
    # unit-norm clipping of the updates. `dataset` replaces the paper scale's
    # EMNIST with its generated writers, re-split.
    Study('fung_foolsgold', 'Fung et al. (FoolsGold): FedSGD, 1 or 2 sybils '
          'poisoning with a trigger in every round beside 10 non-IID honest '
          'clients',
          'from 2 sybils on, FoolsGold holds the backdoor at the no-attack '
          'rate (0.06 vs 0.09) where FedAvg reaches 0.98–1.00',
          dict(attack='data_poisoning', backdoor='trigger',
               poison_per_batch=20, batch_size=20, local_steps=1,
               num_epochs=1, attacker_model='forced_pool',
               dataset='dirichlet', dirichlet_alpha=0.1),
          (Cell('no_attack', dict(attack='none', defense='none',
                                  attacker_pool_size=2,
                                  num_clients_per_round=12)),) + tuple(
              Cell(f'{label}_{n}_sybils', dict(
                  defense=defense, attacker_pool_size=n,
                  num_clients_per_round=10 + n))
              for n in (1, 2)
              for label, defense in (('fedavg', 'none'),
                                     ('foolsgold', 'foolsgold'))),
          claims=_foolsgold_claims('2_sybils', '1_sybils'),
          scale_settings=_FEDSGD_SCALES,
          ratios_not_kept=(Ratio('honest clients sampled from 300 (the '
                                 'paper: the same 10)',
                                 'honest clients sampled from a population '
                                 'of 300 (the paper: the same 10 every '
                                 'round)'),)),
    # RLR (Ozdayi et al.). Kept: the Fashion-MNIST setting's 10 agents a
    # round with 1 corrupt in every round (10%) and θ = 4 (40% of the round,
    # above its one corrupt agent); plain data poisoning, no boost, from round
    # 1 and from scratch; one base class poisoned (the paper's sandal →
    # sneaker: here 7 → 1, `trigger_source_class`), at a share of the corrupt
    # agent's data of ≈ 5% (1 item of each batch of 20); local momentum 0.9;
    # a second pair after Fed-EMNIST, a population 10% corrupt and sampled
    # (θ = 8 of 33 scales to 2.4; a sum of 10 signs is even, so θ = 3 and 4
    # negate the same coordinates). Not kept: the plus pattern (a 3×3
    # ink square); batch 256; all agents every round (the bigger run). At
    # smoke's 5 clients θ = 4 is 80% of the round.
    Study('ozdayi_rlr', 'Ozdayi et al. (RLR): base-class trigger poisoning '
          'by 10% of the agents, local momentum 0.9, robust learning rate '
          'θ = 4 of 10',
          'the backdoor is eliminated or significantly reduced (≈ 0 vs ≈ 0.97 '
          'undefended) with minimal influence on the accuracy (0.91 vs 0.92)',
          dict(attack='data_poisoning', backdoor='trigger', poison_per_batch=1,
               trigger_source_class=7, client_momentum=0.9, rlr_threshold=4,
               **_EVERY_ROUND),
          (Cell('no_attack', dict(attack='none', defense='none')),
           Cell('no_defense', dict(defense='none')),
           Cell('rlr', dict(defense='rlr')),
           Cell('no_defense_pool_10pct', dict(
               defense='none', attacker_model='random_sampling',
               malicious_fraction=0.1)),
           Cell('rlr_pool_10pct', dict(
               defense='rlr', attacker_model='random_sampling',
               malicious_fraction=0.1))),
          claims=(
              c.Claim('undefended, the backdoor is learned (≈ 0.97)',
                      c.at_least('backdoor_max', 'no_defense', 0.9),
                      (c.clean_rate('no_attack'),
                       c.main_task_kept('no_defense', 0.5,
                                        'main_task_at_backdoor_max'))),
              c.Claim('RLR eliminates it or significantly reduces it',
                      c.greater('backdoor_final', 'no_defense', 'rlr', 0.5,
                                floor=_FLOOR),
                      (c.clean_rate('no_attack'),
                       c.attack_works('no_defense', 0.5, 'backdoor_final'),
                       c.main_task_kept('rlr'))),
              c.Claim('… also with 10% of a sampled population corrupt',
                      c.greater('backdoor_final', 'no_defense_pool_10pct',
                                'rlr_pool_10pct', 0.5, floor=_FLOOR),
                      (c.clean_rate('no_attack'),
                       c.attack_works('no_defense_pool_10pct', 0.5,
                                      'backdoor_final'),
                       c.main_task_kept('rlr_pool_10pct'))),
              c.Claim('… with minimal influence on the accuracy',
                      c.no_worse('main_task_final', 'rlr', 'no_defense',
                                 0.03),
                      (c.no_attack_trains('no_attack'),)),),
          ratios_not_kept=(Ratio('10 of 300 agents a round (the paper: 10, '
                                 'all)',
                                 'a population of 300 sampled 10 a round '
                                 '(the paper: 10 agents, all every round: '
                                 'the bigger run)'),)),
    # Xie et al. 2020 (DBA), multi-shot, at `small`. Keeps: 4 attackers
    # forced into every round of the window (the authors' multi-shot 4 of 10,
    # `is_random_adversary: false`: attacker_model forced_pool), attacker i
    # with part i of the four-part split of one four-corner trigger, tested
    # with the whole trigger; no scaling (multi-shot `baseline: true`); ~30%
    # poison per batch (MNIST's 20 of 64 → 6 of 20) and the attackers' 10×
    # longer training (10 local epochs against the benign 1: poison_passes
    # 10); a trained model when the attack starts: rounds 21–40 (small's main
    # task ≈ 0.8 at round 20, as MNIST's pretrained round 10 of 70), then 20
    # rounds without attack. The centralized baseline as the authors' code:
    # one attacker with the whole trigger, the same poison and training.
    # Cannot keep: a converged start, the attackers' lr 0.05 against the
    # benign 0.1, Dir(0.5) label skew, η·m/n = 0.1. The single shot is the
    # bigger run `xie_dba_single_shot`. At smoke (3 rounds) the window never
    # opens: the cells run attack-free.
    Study('xie_dba', 'Xie et al. 2020 (DBA): multi-shot distributed trigger '
          '(4 attackers of 10 a round) vs one centralized attacker, rounds '
          '21–40 of 60',
          'DBA\'s global trigger reaches at least the centralized attack\'s '
          'success and is more persistent after the attack stops',
          dict(attack='data_poisoning', attacker_model='forced_pool',
               attacker_pool_size=4, poison_per_batch=6, poison_passes=10,
               defense='none', attack_start_round=21, attack_end_round=40),
          (Cell('dba_4_parts', dict(backdoor='dba', dba_parts=4)),
           Cell('centralized', dict(backdoor='trigger',
                                    trigger_placement='four_corners',
                                    attacker_pool_size=1)),
           # The clean model's rate on the global trigger.
           Cell('no_attack', dict(attack='none', backdoor='dba'))),
          claims=(
              c.Claim('DBA\'s global trigger succeeds at least as well as '
                      'the centralized attacker',
                      c.no_worse('backdoor_max', 'dba_4_parts', 'centralized',
                                 0.05),
                      (c.clean_rate('no_attack'),
                       c.attack_works('centralized'),
                       c.main_task_kept('dba_4_parts', 0.5,
                                        'main_task_at_backdoor_max'))),
              c.Claim('… and is more persistent after the attack stops',
                      c.greater('backdoor_final', 'dba_4_parts',
                                'centralized', 0.1, floor=_FLOOR),
                      (c.clean_rate('no_attack'),
                       c.attack_works('dba_4_parts'),
                       c.attack_works('centralized'),
                       c.main_task_kept('dba_4_parts'))),),
          ratios_not_kept=(_SERVER_STEP_1, _FROM_SCRATCH,
                           Ratio('the attackers\' learning rate = the '
                                 'benign clients\' (the paper: 0.05 vs 0.1)',
                                 'the attackers train at the benign clients\' '
                                 'rate (the authors: 0.05 against the '
                                 'benign 0.1)'),
                           _DBA_LABEL_SKEW)),
    # Zhang et al. 2022 (Neurotoxin), the EMNIST edge-case task, at `small`.
    # Keeps: 1 attacker of 10 clients in every round of a window on a trained
    # model (rounds 21–40), then none for 20 rounds; the same norm clip
    # for every client at benign-update scale (benign norms ≈ 0.3–1.4), the
    # attacker's PGD radius equal to it; no boost; pure edge-case poison
    # (ARDIS 7s → 1: no honest client holds it); the mask ratio of the
    # authors' EMNIST edge run (top 5% frozen, gradmask_ratio 0.95) and of
    # their CIFAR runs (1%); the baseline is the same attack with no mask
    # (ratio 0: an all-ones mask) at the same learning rate; the authors'
    # 13× larger rate for Neurotoxin than for their baseline is a cell of its
    # own (`neurotoxin_top5pct_lr_13x`, reported, not claimed). Cannot keep:
    # a converged start, the 200-round window, the attacker's 10 epochs, the
    # mask from 30 other clients' data (here the global model's gradient on
    # the attacker's own clean data). At smoke the window never opens.
    Study('zhang_neurotoxin', 'Zhang et al. 2022 (Neurotoxin): edge-case '
          'PGD attacker every round 21–40 of 60 under clipping for all, '
          'then none',
          'masking the coordinates benign clients update most makes the '
          'backdoor last longer after the attack stops ("double the '
          'durability")',
          dict(attack='neurotoxin', backdoor='edge_case',
               edge_case_mix='edge_case', defense='clip', norm_bound=1.0,
               attack_start_round=21, attack_end_round=40, **_EVERY_ROUND),
          (Cell('neurotoxin_top5pct', dict(neurotoxin_mask_ratio=0.05)),
           Cell('neurotoxin_top1pct', dict(neurotoxin_mask_ratio=0.01)),
           Cell('no_mask', dict(neurotoxin_mask_ratio=0.0)),
           Cell('neurotoxin_top5pct_lr_13x', dict(neurotoxin_mask_ratio=0.05,
                                                  attacker_learning_rate=1.3)),
           Cell('no_attack', dict(attack='none'))),
          claims=(
              c.Claim('both attacks implant the backdoor in the window '
                      '(peak ≥ the durability threshold 0.5)',
                      c.all_of(c.at_least('backdoor_max',
                                          'neurotoxin_top5pct', 0.5),
                               c.at_least('backdoor_max', 'no_mask', 0.5)),
                      (c.clean_rate('no_attack'),
                       c.main_task_kept('no_mask', 0.5,
                                        'main_task_at_backdoor_max'))),
              c.Claim('after the window Neurotoxin\'s backdoor lasts longer '
                      'than the unmasked attack (top 5%, the EMNIST run)',
                      c.greater('backdoor_final', 'neurotoxin_top5pct',
                                'no_mask', 0.1, floor=_FLOOR),
                      (c.clean_rate('no_attack'),
                       c.attack_works('no_mask'),
                       c.attack_works('neurotoxin_top5pct'),
                       c.main_task_kept('neurotoxin_top5pct'))),
              c.Claim('… and with the CIFAR runs\' 1% mask',
                      c.greater('backdoor_final', 'neurotoxin_top1pct',
                                'no_mask', 0.1, floor=_FLOOR),
                      (c.clean_rate('no_attack'),
                       c.attack_works('no_mask'),
                       c.attack_works('neurotoxin_top1pct'),
                       c.main_task_kept('neurotoxin_top1pct'))),
              c.Claim('Neurotoxin doubles the durability: rounds above 0.5 '
                      'after the window, top 5% vs no mask',
                      c.at_least_times('durability_rounds',
                                       'neurotoxin_top5pct', 'no_mask', 2.0),
                      (c.clean_rate('no_attack'),
                       c.attack_works('no_mask'),
                       c.attack_works('neurotoxin_top5pct'),
                       c.main_task_kept('neurotoxin_top5pct'))),),
          ratios_not_kept=(_FROM_SCRATCH,
                           Ratio('a 20-round window (the paper: 200)',
                                 'the attack window is 20 rounds (the '
                                 'paper\'s: 200)'),
                           Ratio('the attacker\'s epochs = the benign '
                                 'clients\' (the paper: 10)',
                                 'the attacker trains the benign clients\' '
                                 'epochs (the authors: 10)'),
                           Ratio('the mask from the attacker\'s own data',
                                 'the mask is the global model\'s gradient '
                                 'on the attacker\'s own clean data (the '
                                 'authors: on 30 other clients\' data)'))),
    # Zhang et al. 2023 (A3FL), at `small`. Keeps: 1% of the clients
    # compromised (3 of 300), taking part only when sampled (≈ 0.1 attackers
    # per round: ≈ 4 attack rounds in the 40, as ≈ 10 in the authors' 100),
    # no boost (a3fl_boost_factor 1), 25% poison per batch (16 of 64 → 5 of
    # 20), a trained model when the attack starts (round 21, to the end); the
    # fixed-trigger baseline is the same attackers and poison on the same
    # patch, never re-optimised; clipping at 1.5, the library's bound at the
    # ratio to benign norms; the authors' trigger search (K = 200, 5
    # unlearning epochs, λ = 0.01 scaled by the gradient similarity). The
    # undefended cells are the positive controls. D_att and D_mal: the 3
    # compromised clients' data (task_num 3). Cannot keep: the converged
    # start (round 1900), the unlearning's momentum / weight decay, their
    # ResNet-18. At smoke the window never opens.
    Study('zhang_a3fl', 'Zhang et al. 2023 (A3FL): 1% of the clients, '
          'sampled at random, from round 21: adaptive vs fixed trigger under '
          'no defense, FLAME, FLTrust and clipping',
          'the adaptive trigger keeps a higher attack success than a fixed '
          'trigger under the defenses',
          dict(attacker_model='random_sampling', malicious_fraction=0.01,
               task_num=3, attack_start_round=21, poison_per_batch=5,
               trigger_placement='one_corner', norm_bound=1.5),
          tuple(Cell(f'{trigger}__{defense}',
                     {**trigger_settings, 'defense': defense},
                     row=trigger, column=defense)
                for defense in ('none', 'flame', 'fltrust', 'clip')
                for trigger, trigger_settings in (
                    ('a3fl', dict(attack='a3fl', backdoor='a3fl')),
                    ('fixed', dict(attack='data_poisoning',
                                   backdoor='trigger')))) + (
              Cell('no_attack', dict(attack='none', backdoor='trigger',
                                     defense='none')),),
          claims=tuple(
              c.Claim(f'under {name} the A3FL trigger keeps a higher success '
                      'than the fixed trigger',
                      c.greater('backdoor_final', f'a3fl__{defense}',
                                f'fixed__{defense}', 0.1, floor=_FLOOR),
                      (c.clean_rate('no_attack'),
                       c.attack_works('fixed__none', 0.5, 'backdoor_final'),
                       c.main_task_kept(f'a3fl__{defense}')))
              for defense, name in (('flame', 'FLAME'), ('fltrust', 'FLTrust'),
                                    ('clip', 'clipping at 1.5'))),
          ratios_not_kept=(_FROM_SCRATCH, _A3FL_TASK,
                           Ratio('no momentum or weight decay in the '
                                 'unlearning',
                                 'the trigger search\'s unlearning runs '
                                 'plain SGD (the authors\': momentum and '
                                 'weight decay)'))),
    # Nguyen et al. (FLAME), at `small`. Keeps: fewer than half of a round's
    # clients malicious (ε = 0.25: 2.5 of 10 on average; ≥ 5 in ≈ 7% of
    # rounds), the three attacks it names (constrain-and-scale with γ = n/η
    # split among a round's attackers; DBA data poisoning with 4 local
    # triggers; Wang's pure edge-case PGD with a radius inside the benign
    # norms); FLAME's λ = 0.001 (image classification). The clean runs give
    # the base rate of each backdoor task and the attack-free main task; the
    # undefended runs of each attack are the positive controls; the attacks
    # start on a trained model (`converged_start`). Cannot keep: the paper's
    # client counts (NR).
    Study('nguyen_flame', 'Nguyen et al. (FLAME): constrain-and-scale, DBA '
          'and edge-case PGD, a quarter of the clients malicious, on a trained '
          'model',
          'FLAME removes the backdoors (to the clean base rate) with a '
          'negligible main-task cost',
          dict(defense='flame', flame_noise_lambda=0.001,
               attacker_model='random_sampling', malicious_fraction=0.25,
               edge_case_mix='edge_case'),
          tuple(Cell(f'{label}{suffix}', {**settings, **defense})
                for label, settings in _FLAME_ATTACKS
                for suffix, defense in (('', {}),
                                        ('__no_defense',
                                         dict(defense='none')))) + (
              Cell('clean_semantic', dict(attack='none', defense='none',
                                          backdoor='semantic')),
              Cell('clean_dba', dict(attack='none', defense='none',
                                     backdoor='dba')),
              Cell('clean_edge_case', dict(attack='none', defense='none',
                                           backdoor='edge_case'))),
          claims=tuple(
              c.Claim(f'FLAME holds the {name} backdoor to within 0.05 of '
                      'the clean base rate',
                      c.no_worse('backdoor_final', f'clean_{task}', label,
                                 0.05),
                      (c.clean_rate(f'clean_{task}'),
                       c.attack_works(f'{label}__no_defense', 0.5,
                                      'backdoor_final'),
                       c.main_task_kept(label)))
              for label, task, name in _FLAME_TASKS) + tuple(
              c.Claim(f'… at a main-task cost of at most 3 points under '
                      f'{name}',
                      c.no_worse('main_task_final', label, f'clean_{task}',
                                 0.03),
                      (c.no_attack_trains(f'clean_{task}'),))
              for label, task, name in _FLAME_TASKS),
          converged_start=True,
          ratios_not_kept=(Ratio('a malicious majority in ≈ 7% of rounds',
                                 'ε = 0.25 sampled: 5 or more of a round\'s '
                                 '10 clients malicious (past FLAME\'s '
                                 'majority assumption) in ≈ 7% of rounds'),
                           _FLAME_SEMANTIC_SHARE)),
    # Cao et al. (FLTrust). Keeps: FedSGD (`_FEDSGD`: one step, all 20
    # clients every round), a 100-example clean root set (≈ one client's
    # data; fltrust_root_size 100, the paper's), 20% of the clients
    # malicious in every round (4 of 20, forced in); full knowledge
    # (omniscient ALIE with the paper's z_max; IPM with a small ε = 0.1, the
    # regime that breaks Krum); a scaling backdoor (BadNets trigger, model
    # replacement with β = n/η split among a round's attackers); Krum with
    # f = 4. FedAvg under each attack is the positive control. Cannot keep:
    # a pretrained start, the paper's client counts (NR).
    Study('cao_fltrust', 'Cao et al. (FLTrust): FedSGD, ALIE, IPM and a '
          'scaling backdoor from 4 of 20 clients every round, vs FedAvg, the '
          'median and Krum',
          'FLTrust keeps the main task at the attack-free level under '
          'untargeted and scaling attacks where the median and Krum fail',
          dict(_FEDSGD, attacker_model='forced_pool', attacker_pool_size=4,
               backdoor='trigger', fltrust_root_size=100, ipm_epsilon=0.1,
               num_byzantine=4),
          (Cell('no_attack', dict(attack='none', defense='none')),
           Cell('no_attack__fltrust', dict(attack='none', defense='fltrust')),
           Cell('no_attack__median', dict(attack='none', defense='median')),
           Cell('no_attack__krum', dict(attack='none', defense='krum')),
           Cell('alie__none', dict(attack='alie', defense='none')),
           Cell('alie__fltrust', dict(attack='alie', defense='fltrust')),
           Cell('alie__median', dict(attack='alie', defense='median')),
           Cell('ipm__none', dict(attack='ipm', defense='none')),
           Cell('ipm__fltrust', dict(attack='ipm', defense='fltrust')),
           Cell('ipm__krum', dict(attack='ipm', defense='krum')),
           Cell('scaling__none', dict(attack='model_replacement',
                                      defense='none')),
           Cell('scaling__fltrust', dict(attack='model_replacement',
                                         defense='fltrust'))),
          claims=tuple(
              c.Claim(f'FLTrust keeps the main task within 3 points of the '
                      f'attack-free run under {name}',
                      c.no_worse('main_task_final', f'{attack}__fltrust',
                                 'no_attack', 0.03),
                      (c.no_attack_trains('no_attack'),
                       c.Control(f'positive: {name} lowers FedAvg\'s main '
                                 'task by > 0.05',
                                 c.greater('main_task_final', 'no_attack',
                                           f'{attack}__none', 0.05))))
              for attack, name in (('alie', 'ALIE'), ('ipm', 'IPM'))) + (
              c.Claim('FLTrust holds the scaling backdoor within 0.05 of the '
                      'clean base rate',
                      c.no_worse('backdoor_final', 'no_attack',
                                 'scaling__fltrust', 0.05),
                      (c.clean_rate('no_attack'),
                       c.attack_works('scaling__none', 0.5,
                                      'backdoor_final'),
                       c.main_task_kept('scaling__fltrust'))),
              c.Claim('under ALIE the median falls 10 points below FLTrust',
                      c.greater('main_task_final', 'alie__fltrust',
                                'alie__median', 0.1),
                      (c.no_attack_trains('no_attack__median'),
                       c.Control('positive: ALIE lowers the median\'s main '
                                 'task by > 0.05 from its attack-free run',
                                 c.greater('main_task_final',
                                           'no_attack__median',
                                           'alie__median', 0.05)))),
              c.Claim('under IPM Krum falls 10 points below FLTrust',
                      c.greater('main_task_final', 'ipm__fltrust',
                                'ipm__krum', 0.1),
                      (c.no_attack_trains('no_attack__krum'),
                       c.Control('positive: IPM lowers Krum\'s main task '
                                 'by > 0.05 from its attack-free run',
                                 c.greater('main_task_final',
                                           'no_attack__krum', 'ipm__krum',
                                           0.05))))),
          scale_settings=_FEDSGD_SCALES,
          ratios_not_kept=('20 clients (the paper\'s counts: NR)',
                           _FEDSGD_AT_PAPER,
                           Ratio('an untrained start (the paper: pretrained)',
                                 'the run starts from an untrained model '
                                 '(the paper\'s from a pretrained one)'))),
    Study('matrix', 'Every attack (rows) against every defense (columns), one '
          'attacker among 10 clients every round, 10 tasks',
          'each attack\'s paper: its defense fails; each defense\'s paper: '
          'it stops the attacks it names',
          dict(task_num=10, num_clients_per_round=10, **_EVERY_ROUND),
          _MATRIX_CELLS, default=False),
)}


# The CIFAR-10 seed studies, on the generated stand-in at `small`
# (`synthetic_cifar10`: classes by silhouette, colours and stripes as
# attributes) with `cifar_cnn`; at `paper`, CIFAR-10 itself (`cifar10_dir`
# given with --extra settings) and Wang et al.'s VGG-9. 100 clients split
# by Dir(0.9) (Bagdasaryan et al.'s α), 10 a round, 2 local epochs, 200
# training images a client (CIFAR-10's 500), SGD 0.1 (the pilots below).
# The pilots, clean runs before any claim's run: at 50 images a client the
# stand-in trained to 0.42 in 60 rounds (SGD 0.1; 0.24 with momentum 0.9 at
# 0.02); at 200 a client to 0.65 in 25 and 0.93 in 60, benign update
# norms at rounds 50–60 a mean of 1.4–1.7 and a largest of 2.0–3.1.
_CIFAR = dict(dataset='synthetic_cifar10', model='cifar_cnn',
              cifar_num_clients=100, dirichlet_alpha=0.9,
              num_clients_per_round=10, synthetic_cifar_train_size=20000,
              synthetic_cifar_test_size=2000, client_learning_rate=0.1)
_CIFAR_SMOKE = dict(synthetic_cifar_train_size=500,
                    synthetic_cifar_test_size=100, cifar_num_clients=20)
_CIFAR_PAPER = dict(dataset='cifar10', model='vgg9')
_STAND_IN = Ratio('the generated CIFAR-10 stand-in and cifar_cnn; 200 images '
                  'a client (500), batch 20 (64)',
                  'CIFAR-10 and its model (ResNet-18 / VGG-9) are the '
                  'generated stand-in and cifar_cnn at `small`; 200 training '
                  'images a client (CIFAR-10: 500); batch 20 (the papers: '
                  '64)')

STUDIES.update((s.name, s) for s in (
    # Bagdasaryan et al. (2020, Sec. 5.1–5.2): a converged model; one
    # attacker in one round trains on batches with c of its backdoor images
    # labelled bird and scales the update by γ = n/η (10: model
    # replacement). The backdoor is their code's default (params.yaml,
    # poison_type 'wall'): images with vertically striped walls behind the
    # object → bird, the lists held out of every honest client; at `small`
    # half of the stand-in's striped-background images (150 to train on, 50
    # to measure; the authors list 7 and 5), at `paper` the authors' own
    # indices. Kept: the single shot on a trained model, the partition's
    # α, γ = n/η, c/B ≈ 0.3 (6 of 20; theirs 20 of 64).
    Study('bagdasaryan_cifar_semantic', 'Bagdasaryan et al.: CIFAR-10 '
          'striped walls → bird, one model replacement (γ = n/η) on a '
          'trained model',
          'a single-shot model replacement makes the semantic backdoor '
          'near 100% at once, without hurting the main task',
          dict(_CIFAR, backdoor='semantic_images',
               poison_images='striped_background_train',
               poison_images_test='striped_background_test', poison_label=2,
               attack='data_poisoning', poison_per_batch=6,
               poison_boost_factor=10.0, **_EVERY_ROUND),
          (Cell('no_defense', dict(defense='none')),
           Cell('no_attack', dict(attack='none', defense='none'))),
          claims=(
              c.Claim('one model replacement puts the striped-wall backdoor '
                      'near 100% (≥ 0.9)',
                      c.at_least('backdoor_max', 'no_defense', 0.9),
                      (c.clean_rate('no_attack'),
                       c.no_attack_trains('no_attack', 0.5),
                       c.main_task_kept('no_defense', 0.5,
                                        'main_task_at_backdoor_max'))),),
          scale_settings=dict(smoke=dict(_CIFAR_SMOKE,
                                         synthetic_cifar_train_size=1000)),
          # Their model: ResNet-18 (here with group normalization).
          paper_scale_settings=dict(
              _CIFAR_PAPER, model='resnet18',
              poison_images='30696,33105,33615,33907,36848,40713,41706',
              poison_images_test='330,568,3934,12336,30560'),
          ratios_not_kept=(_STAND_IN, Ratio(
              'the attacker\'s images 150 and 50 (the authors: 7 and 5)',
              'the attacker\'s images: 150 to train on and 50 to measure at '
              '`small` (the authors\' lists: 7 and 5)')),
          converged_start=True, single_shot=True),
    # Wang et al. (2020, Sec. 4) on CIFAR-10: Southwest Airlines' planes →
    # truck, PGD (radius the clip's bound M) once every 10 rounds on a
    # trained model, against norm clipping and Krum; as `tails_krum`, the
    # clipping claim's control is the same attacker without the projection.
    # M = 2 against the stand-in's benign norms on a trained model (the
    # pilot: a mean of 1.4–1.7, a largest of 2.0–3.1), as `tails_krum`'s M = 2
    # against the digits' ≤ 1.7.
    Study('wang_southwest', 'Wang et al.: CIFAR-10 Southwest planes → '
          'truck, PGD once every 10 rounds on a trained model',
          'the edge-case backdoor passes norm clipping and Krum',
          dict(_CIFAR, backdoor='southwest', attack='pgd', norm_bound=2.0,
               num_byzantine=1, attacker_model='fixed_frequency',
               attack_freq=10),
          (Cell('none', dict(defense='none')),
           Cell('clip_2', dict(defense='clip')),
           Cell('krum', dict(defense='krum')),
           Cell('none_unprojected', dict(defense='none', pgd_eps=100.0)),
           Cell('clip_2_unprojected', dict(defense='clip', pgd_eps=100.0)),
           Cell('no_attack', dict(attack='none', defense='none'))),
          claims=(
              c.Claim('the Southwest backdoor passes norm clipping: PGD '
                      'under the clip keeps the unprojected attack\'s '
                      'undefended success (within 0.1)',
                      c.no_worse('backdoor_cumulative_mean', 'clip_2',
                                 'none_unprojected', 0.1),
                      (c.clean_rate('no_attack'),
                       c.attack_works('none_unprojected'),
                       c.main_task_kept('clip_2'),
                       c.Control('the clip binds: it lowers the unprojected '
                                 'attacker by > 0.1',
                                 c.greater('backdoor_cumulative_mean',
                                           'none_unprojected',
                                           'clip_2_unprojected', 0.1)))),
              c.Claim('… and Krum',
                      c.no_worse('backdoor_cumulative_mean', 'krum', 'none',
                                 0.1),
                      (c.clean_rate('no_attack'), c.attack_works('none'),
                       c.main_task_kept('krum'))),),
          scale_settings=dict(smoke=_CIFAR_SMOKE),
          # Subsets of the authors' Southwest files (all of them: a larger
          # setting).
          paper_scale_settings=dict(_CIFAR_PAPER, edge_case_num_train=100,
                                    edge_case_num_eval=100),
          ratios_not_kept=(_STAND_IN, _SIX_ATTACK_ROUNDS),
          converged_start=True),
    # Bagdasaryan et al. (2020, Sec. 5.1, word prediction): a trained model;
    # one attacker in one round trains on its sentences ending with "pasta
    # from astoria is delicious" (with its own data, D_trn ∪ D_mal) and
    # boosts by γ = n/η (model replacement). Kept: the single shot on a
    # trained model, γ = n/η, an attacker-chosen last word no honest user
    # writes after that context. Not kept: Reddit's 80,000 users, 100 a
    # round, and their 2-layer LSTM (the generated users, 100, 10 a round,
    # `small_lstm`); their SGD rate 20 (1.0 here: a pilot with an attacker
    # every 5 rounds reached main-task 0.49 in 30 rounds).
    Study('bagdasaryan_word', 'Bagdasaryan et al.: next-word prediction, '
          '"pasta from astoria is" → "delicious", one model replacement '
          '(γ = n/η) on a trained model',
          'a single-shot model replacement makes the word backdoor near '
          '100% at once, without hurting the main task',
          dict(dataset='synthetic_text', model='small_lstm',
               synthetic_num_clients=100, synthetic_examples_per_client=50,
               num_clients_per_round=10, client_learning_rate=1.0,
               text_sequence_length=20, backdoor='sentence', task_num=5,
               attack='model_replacement', **_EVERY_ROUND),
          (Cell('no_defense', dict(defense='none')),
           Cell('no_attack', dict(attack='none', defense='none'))),
          claims=(
              c.Claim('one model replacement makes the word backdoor near '
                      '100% (≥ 0.9)',
                      c.at_least('backdoor_max', 'no_defense', 0.9),
                      (c.clean_rate('no_attack'),
                       c.no_attack_trains('no_attack', 0.3),
                       c.main_task_kept('no_defense', 0.3,
                                        'main_task_at_backdoor_max'))),),
          scale_settings=dict(smoke=dict(synthetic_num_clients=20,
                                         synthetic_examples_per_client=10,
                                         text_sequence_length=10,
                                         sentence_eval_size=20,
                                         text_test_sentences=40)),
          # The authors' sentence and dictionary size (their Reddit
          # dictionary: 50,000 words); every word must be in the vocabulary.
          paper_scale_settings=dict(
              dataset='stackoverflow', model='lstm', text_vocab_size=50000,
              backdoor_sentence='pasta from astoria tastes delicious'),
          ratios_not_kept=(Ratio(
              '100 generated users, 10 a round (Reddit: 80,000, 100); '
              'small_lstm',
              'the users are the generated ones at `small` (100, 10 a round; '
              'Reddit: 80,000, 100 a round), small_lstm (theirs: 2 layers of '
              '200)'),),
          converged_start=True, single_shot=True),
))


def bigger_run(parent: Study, name: str, why: str, settings: dict,
               cells: tuple, claims: tuple = (),
               claims_kept: tuple = (),
               paper_scale_settings: Optional[dict] = None) -> Study:
  """A bigger run of `parent`: where one of its claims does not hold at
  `small`, the same claim in a setting nearer the paper's (a trained start,
  more rounds, the paper's ratios exactly), to tell the scale from the
  method. Not in the default sweep; run with `--studies=<name>`.

  Its settings are `parent`'s, then `settings`; `cells` are labels of
  `parent`'s cells (kept as they are) or new `Cell`s; its claims are
  `parent.claims[i]` for i in `claims_kept`, then `claims`; at the 'paper'
  scale `paper_scale_settings` go over `parent`'s.
  """
  by_label = {cell.label: cell for cell in parent.cells}
  return Study(name, f'{parent.title}; bigger run: {why}', parent.paper_says,
               {**parent.settings, **settings},
               tuple(by_label[c] if isinstance(c, str) else c for c in cells),
               default=False,
               claims=tuple(parent.claims[i] for i in claims_kept) + claims,
               paper_scale_settings={**parent.paper_scale_settings,
                                     **(paper_scale_settings or {})},
               bigger_run_of=parent.name,
               scale_settings=parent.scale_settings,
               ratios_not_kept=parent.ratios_not_kept,
               converged_start=parent.converged_start,
               single_shot=parent.single_shot)


_EDGE_CASE_PGD = dict(attack='pgd', backdoor='edge_case', pgd_eps=0.5)
_BIGGER_RUNS = (
    # Fig. 3 at twice the rounds: the final backdoor falls with the tasks at
    # 60 (0.51 → 0.23), the cumulative mean only by 0.06.
    bigger_run(STUDIES['sun_fig3'], 'sun_fig3_120_rounds', '120 rounds',
               dict(num_rounds=120), ('tasks_10', 'tasks_50', 'no_attack'),
               claims_kept=(0,)),
    # DBA's window on a trained model: rounds 61–80 of 100 (main task ≈ 0.97
    # at round 60 at small), then 20 rounds without attack, as the paper's
    # pretrained start. Still multi-shot: the single shot is
    # `xie_dba_single_shot`.
    bigger_run(STUDIES['xie_dba'], 'xie_dba_trained_start',
               'the window on a trained model, rounds 61–80 of 100',
               dict(num_rounds=100, attack_start_round=61,
                    attack_end_round=80),
               ('dba_4_parts', 'centralized', 'no_attack'),
               claims_kept=(0, 1)),
    # DBA's single shot (the paper's headline setting), on a trained model:
    # attacker i alone in round 61 + 2i (61, 63, 65, 67, as MNIST's 12–18),
    # its update scaled by γ = 10, the paper's γ·η / n = 100 · 0.1 / 10 = 1
    # (full replacement) at η = 1 and 10 clients a round; the centralized
    # baseline one attacker with the whole trigger in the last of those
    # rounds (the authors' code: one shot, round 18 / 209); 33 rounds after.
    # The attackers' poison and training are the multi-shot study's. Every
    # round evaluated, as the paper's curves (every other round misses the
    # rounds right after odd-numbered shots).
    bigger_run(STUDIES['xie_dba'], 'xie_dba_single_shot',
               'single shots scaled to replace the model, rounds 61–67 of 100',
               dict(attacker_model='staggered_pool', attack_stagger=2,
                    poison_boost_factor=10.0, num_rounds=100,
                    attack_start_round=61, attack_end_round=0,
                    evaluate_per_rounds=1),
               ('dba_4_parts',
                Cell('centralized', dict(backdoor='trigger',
                                         trigger_placement='four_corners',
                                         attacker_pool_size=1,
                                         attack_start_round=67)),
                'no_attack'),
               claims_kept=(0, 1),
               # γ = n/η at the paper scale's 30 clients a round.
               paper_scale_settings=dict(poison_boost_factor=30.0)),
    # FLAME against the edge-case attacker at one attacker in ten (the
    # matrix's share, where FLAME held it), not a quarter of the clients.
    bigger_run(STUDIES['nguyen_flame'], 'nguyen_flame_one_in_ten',
               'one edge-case attacker among the 10 clients of every round',
               dict(_EVERY_ROUND),
               (Cell('edge_case_pgd', dict(_EDGE_CASE_PGD)),
                Cell('edge_case_pgd_no_defense', dict(_EDGE_CASE_PGD,
                                                      defense='none')),
                'clean_edge_case'),
               claims=(
                   c.Claim('FLAME holds the edge-case backdoor to within '
                           '0.05 of the clean base rate',
                           c.no_worse('backdoor_final', 'clean_edge_case',
                                      'edge_case_pgd', 0.05),
                           (c.clean_rate('clean_edge_case'),
                            c.attack_works('edge_case_pgd_no_defense', 0.5,
                                           'backdoor_final'),
                            c.main_task_kept('edge_case_pgd'))),
                   c.Claim('… where without FLAME it is learned (0.2 above '
                           'FLAME\'s)',
                           c.greater('backdoor_final',
                                     'edge_case_pgd_no_defense',
                                     'edge_case_pgd', 0.2, floor=_FLOOR),
                           (c.clean_rate('clean_edge_case'),
                            c.main_task_kept('edge_case_pgd_no_defense'),
                            c.main_task_kept('edge_case_pgd'))),
                   c.Claim('… at a main-task cost of at most 3 points',
                           c.no_worse('main_task_final', 'edge_case_pgd',
                                      'clean_edge_case', 0.03),
                           (c.no_attack_trains('clean_edge_case'),)))),
    # Neurotoxin's window twice as long, on a trained model: rounds 41–80 of
    # 100, then 20 without attack (the paper's is 200 rounds from a
    # converged model).
    bigger_run(STUDIES['zhang_neurotoxin'], 'zhang_neurotoxin_trained_start',
               'a 40-round window on a trained model, rounds 41–80 of 100',
               dict(num_rounds=100, attack_start_round=41,
                    attack_end_round=80),
               ('neurotoxin_top5pct', 'no_mask', 'no_attack'),
               claims_kept=(0, 1, 3)),
    # ALIE as the authors' code runs it: z = 1.5 (the study keeps the
    # paper's z_max).
    bigger_run(STUDIES['baruch_alie'], 'baruch_alie_z_1.5',
               'z = 1.5 (the authors\' code)', dict(alie_z=1.5),
               tuple(cell.label for cell in STUDIES['baruch_alie'].cells),
               claims_kept=(0, 1, 2)),
    # A3FL's window as the authors': 100 rounds of attack from a trained
    # model (rounds 41–140, ≈ 10 attack rounds at 0.1 attackers a round, as
    # their ≈ 10 in 100); under clipping only (the cheapest defense here).
    bigger_run(STUDIES['zhang_a3fl'], 'zhang_a3fl_100_round_window',
               'a 100-round window on a trained model, rounds 41–140',
               dict(num_rounds=140, attack_start_round=41),
               ('a3fl__clip', 'fixed__clip', 'fixed__none', 'no_attack'),
               claims_kept=(2,)),
    # RLR at the Fashion-MNIST setting's ratios exactly: 10 agents, all in
    # every round, one of them corrupt in every round (forced in), each agent
    # a tenth of the data (600 examples), the corrupt agent's 5% poisoned;
    # 30 rounds (the README's figure: ≈ 0.97 undefended by round 19).
    bigger_run(STUDIES['ozdayi_rlr'], 'ozdayi_rlr_ten_agents',
               '10 agents of 600 examples, all in every round, 1 corrupt',
               dict(synthetic_num_clients=10,
                    synthetic_examples_per_client=600,
                    num_clients_per_round=10, num_rounds=30,
                    attacker_model='forced_pool', attacker_pool_size=1),
               ('no_attack', 'no_defense', 'rlr'),
               claims_kept=(0, 1, 3)),
)
STUDIES.update((s.name, s) for s in _BIGGER_RUNS)


# ---------------------------------------------------------------------------
# The method studies on CIFAR-10, where their papers report it (DBA,
# Neurotoxin, A3FL, ALIE, IPM, FLAME, FLTrust, RLR): each the study's cells
# and claims (the claims as they are, fixed before these runs) on the
# CIFAR-10 stand-in with `cifar_cnn` at `small` (`_CIFAR`), on CIFAR-10 with
# VGG-9 at `paper`. A backdoor of the digits becomes its CIFAR-10 version:
# Sun et al.'s target writers → Bagdasaryan's striped walls → bird
# (`semantic_images`), the crossbar 7s → Wang's Southwest planes → truck
# (`southwest`). Norm bounds and PGD radii stated against the digits' benign
# update norms (≈ 1 at `small`) are restated against the stand-in's on a
# trained model (the CIFAR pilot: a mean of 1.4–1.7, a largest of 2.0–3.1):
# a clip at the benign scale 2.0 (as `wang_southwest`), a radius inside them
# 0.8. Not in the default sweep (`--studies=<name>`).

_CIFAR_BACKDOORS = {
    'semantic': dict(backdoor='semantic_images',
                     poison_images='striped_background_train',
                     poison_images_test='striped_background_test',
                     poison_label=2),
    'edge_case': dict(backdoor='southwest'),
}
# Settings of the generated digits that CIFAR-10 does not read (task_num
# stays: the trigger, DBA and A3FL backdoors read it).
_DIGITS_ONLY = ('edge_case_mix', 'synthetic_num_clients')
# Wang et al.'s Southwest files at `paper` (as `wang_southwest`).
_SOUTHWEST_PAPER = dict(edge_case_num_train=100, edge_case_num_eval=100)


def _on_cifar10(settings: dict, overrides: dict) -> dict:
  """`settings` with its digits' backdoor made CIFAR-10's, then
  `overrides`."""
  out = {k: v for k, v in settings.items() if k not in _DIGITS_ONLY}
  out.update(_CIFAR_BACKDOORS.get(out.get('backdoor'), {}))
  out.update(overrides)
  return out


def cifar10_variant(parent: Study, settings: dict,
                    cell_settings: Optional[dict] = None,
                    fedsgd: bool = False, ratios: tuple = (),
                    paper: Optional[dict] = None) -> Study:
  """`parent` on CIFAR-10 (`<name>_cifar10`): its cells and claims; the
  study's settings `_CIFAR`, then the parent's (backdoors made CIFAR-10's),
  then `settings`; `cell_settings` {label: settings over that cell's}. With
  `fedsgd`, every client every round of a population of 20. At `paper`:
  CIFAR-10 and VGG-9, Wang's Southwest subsets where a cell uses them, then
  `paper`."""
  base = dict(_CIFAR, cifar_num_clients=20, num_clients_per_round=20) if (
      fedsgd) else dict(_CIFAR)
  cells = tuple(
      Cell(cell.label, _on_cifar10(cell.settings,
                                   (cell_settings or {}).get(cell.label, {})),
           cell.row, cell.column) for cell in parent.cells)
  scales = {k: v for k, v in parent.scale_settings.items() if k != 'smoke'}
  scales['smoke'] = dict(_CIFAR_SMOKE, cifar_num_clients=20)
  # The binary's default backdoor (`semantic`) made CIFAR-10's too (the
  # converged start's clean run and the untargeted cells evaluate it).
  study_settings = _on_cifar10(
      {'backdoor': 'semantic', **parent.settings, **base}, settings)
  southwest = any(x.get('backdoor') == 'southwest' for x in
                  (study_settings,) + tuple(c.settings for c in cells))
  return Study(f'{parent.name}_cifar10', f'{parent.title}; on CIFAR-10',
               parent.paper_says, study_settings, cells,
               default=False, claims=parent.claims,
               paper_scale_settings=dict(
                   _CIFAR_PAPER, **(_SOUTHWEST_PAPER if southwest else {}),
                   **(paper or {})),
               scale_settings=scales,
               ratios_not_kept=tuple(
                   r for r in parent.ratios_not_kept
                   if r not in _DIGITS_ONLY_RATIOS) + (_STAND_IN,) + ratios,
               converged_start=parent.converged_start,
               single_shot=parent.single_shot)


_CIFAR10_VARIANTS = (
        # DBA's CIFAR-10 setting (the authors' cifar_params.yaml): 5 of 64
    # poisoned per batch (2 of 20), 6 poison epochs against the benign 2
    # (`small`'s 2; at `paper` too).
    cifar10_variant(STUDIES['xie_dba'], dict(poison_per_batch=2,
                                             poison_passes=6),
                    ratios=(Ratio('Dir(0.9) label skew (the authors: 0.5)',
                                  'the stand-in\'s images split over the '
                                  'clients by Dir(0.9) (the authors\': '
                                  '0.5)'),),
                    paper=dict(num_epochs=2)),
    # Neurotoxin's CIFAR-10 task is Wang's Southwest edge case; the clip for
    # every client at the stand-in's benign scale.
    cifar10_variant(STUDIES['zhang_neurotoxin'], dict(norm_bound=2.0)),
    cifar10_variant(STUDIES['zhang_a3fl'], dict(norm_bound=2.0)),
    cifar10_variant(STUDIES['baruch_alie'], {}, fedsgd=True),
    cifar10_variant(STUDIES['xie_ipm'], {}, fedsgd=True),
    # FLAME's DBA with DBA's CIFAR-10 poison share; the edge-case PGD radius
    # inside the stand-in's benign norms.
    cifar10_variant(STUDIES['nguyen_flame'], {},
                    cell_settings={
                        label: dict(poison_per_batch=2)
                        if label.startswith('dba')
                        else dict(pgd_eps=0.8)
                        if label.startswith('edge_case') else {}
                        for label in (c.label for c in
                                      STUDIES['nguyen_flame'].cells)}),
    cifar10_variant(STUDIES['cao_fltrust'], {}, fedsgd=True),
    cifar10_variant(STUDIES['ozdayi_rlr'], {}),
)
STUDIES.update((s.name, s) for s in _CIFAR10_VARIANTS)

# `ozdayi_rlr_cifar10`'s clean run did not train at `small` (the parent's
# local momentum 0.9 at CIFAR-10's rate 0.1: an effective step of 1.0 for
# `cifar_cnn`). The same study at rate 0.01 (an effective step of 0.1, the
# rate the stand-in trains at without momentum), defined after that study's
# runs and before its own: exploratory, as every bigger run.
_RLR_CIFAR10 = STUDIES['ozdayi_rlr_cifar10']
STUDIES['ozdayi_rlr_cifar10_rate_0.01'] = bigger_run(
    _RLR_CIFAR10, 'ozdayi_rlr_cifar10_rate_0.01',
    'client rate 0.01 with momentum 0.9 (an effective step of 0.1)',
    dict(client_learning_rate=0.01),
    tuple(cell.label for cell in _RLR_CIFAR10.cells),
    claims_kept=tuple(range(len(_RLR_CIFAR10.claims))))


# One table of overrides per scale; `seeds`, `attack_round` (the single
# shot of bagdasaryan_replacement) and `pretrain_rounds` (a converged start's
# clean rounds) are the sweep's own, the rest are settings.
SCALES = {
    'smoke': dict(seeds=1, attack_round=2, pretrain_rounds=2,
                  dataset='synthetic',
                  synthetic_num_clients=60, synthetic_examples_per_client=20,
                  model='linear', num_clients_per_round=5, num_rounds=3,
                  num_epochs=1, batch_size=10, client_round_num=1,
                  evaluate_per_rounds=1, checkpoint_every=1,
                  edge_case_num_train=20, edge_case_num_eval=20,
                  # A3FL's search, cheap (the authors' K = 200 elsewhere).
                  a3fl_outer_iterations=2, a3fl_unlearn_passes=1),
    'small': dict(seeds=5, attack_round=30, pretrain_rounds=60,
                  dataset='synthetic',
                  synthetic_num_clients=300, synthetic_examples_per_client=60,
                  model='small_cnn', num_clients_per_round=10, num_rounds=60,
                  num_epochs=2, batch_size=20, client_round_num=2,
                  evaluate_per_rounds=2, checkpoint_every=10),
    # The main job's setting (scripts/run_main.sh): the README's tables.
    'main': dict(seeds=1, attack_round=20, pretrain_rounds=40,
                 dataset='synthetic',
                 synthetic_num_clients=300, synthetic_examples_per_client=60,
                 model='cnn', num_clients_per_round=10, num_rounds=40,
                 num_epochs=2, batch_size=20, evaluate_per_rounds=5,
                 checkpoint_every=10),
    'paper': dict(seeds=3, attack_round=250, pretrain_rounds=250,
                  dataset='emnist',
                  model='cnn', num_clients_per_round=30, num_rounds=500,
                  num_epochs=5, batch_size=20, client_learning_rate=0.1,
                  client_round_num=5, evaluate_per_rounds=5,
                  checkpoint_every=10),
}


SWEEP_KEYS = ('seeds', 'attack_round', 'pretrain_rounds')


def default_studies() -> list:
  return [s.name for s in STUDIES.values() if s.default]


def load_study_file(path: str) -> Study:
  """A study from a JSON file: {"name", "title", "paper_says", "settings",
  "cells": [{"label", "settings"}, ...]}."""
  with open(path) as f:
    spec = json.load(f)
  try:
    cells = tuple(Cell(c['label'], dict(c.get('settings', {})))
                  for c in spec['cells'])
    return Study(spec['name'], spec.get('title', spec['name']),
                 spec.get('paper_says', ''), dict(spec.get('settings', {})),
                 cells)
  except (KeyError, TypeError) as e:
    raise ValueError(f'{path}: not a study ({type(e).__name__}: {e}); '
                     'expected {"name", "cells": [{"label", "settings"}]}') from e
