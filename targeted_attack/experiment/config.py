"""`ExperimentConfig`: every setting of a run, each with its help and its check.

Each field is declared with `setting(default, help, check)`; the binary
generates its flags from these fields (name, type, default, help, allowed
values) and `validate` applies the checks, which are the library's own
argument checks (`targeted_attack.checks`). A setting that takes one of a
fixed set of names (`OneOf`) is checked against the names the caller passes
(`experiment.registry.CHOICES`: the registries' keys), never a second list
here. Errors are `ConfigError`s naming the setting; only the binary spells it
`--flag`. Validation does no I/O. This module is a leaf: it imports neither
the registry nor TensorFlow.
"""

import dataclasses
import math
import os
import re
from typing import Optional

from targeted_attack import checks


class ConfigError(ValueError):
  """A bad setting: `field` names it, the message gives the allowed range."""

  def __init__(self, field: str, message: str):
    super().__init__(message)
    self.field = field


# ---------------------------------------------------------------------------
# Checks: a callable `(name, value, options) -> value` raising ValueError,
# with `describe(options)` for the help text and `invalid_example()` for
# tests; `options` are the allowed names of a `OneOf` setting (else unused).


@dataclasses.dataclass(frozen=True)
class IntAtLeast:
  minimum: int = 1
  maximum: Optional[int] = None

  def __call__(self, name, value, options=()):
    return checks.integer(name, value, self.minimum, self.maximum)

  def describe(self, options=()):
    if self.maximum is None:
      return f'integer >= {self.minimum}'
    return f'integer in [{self.minimum}, {self.maximum}]'

  def invalid_example(self):
    return self.minimum - 1


@dataclasses.dataclass(frozen=True)
class Number:
  minimum: Optional[float] = None
  maximum: Optional[float] = None
  strict: bool = False
  strict_max: bool = False

  def __call__(self, name, value, options=()):
    return checks.number(name, value, self.minimum, self.strict, self.maximum,
                         self.strict_max)

  def describe(self, options=()):
    low = '(-inf' if self.minimum is None else (
        ('(' if self.strict else '[') + f'{self.minimum:g}')
    high = 'inf)' if self.maximum is None else (
        f'{self.maximum:g}' + (')' if self.strict_max else ']'))
    return f'number in {low}, {high}'

  def invalid_example(self):
    if self.minimum is not None:
      return self.minimum - 1.0
    return math.inf


@dataclasses.dataclass(frozen=True)
class OneOf:
  """One of the names `options` (given by the caller: `registry.CHOICES`)."""

  def __call__(self, name, value, options=()):
    return checks.choice(name, value, tuple(options))

  def describe(self, options=()):
    return ' | '.join(options)

  def invalid_example(self):
    return 'no_such_option'


@dataclasses.dataclass(frozen=True)
class Name:
  """A non-empty file-name component (no path separator)."""

  def __call__(self, name, value, options=()):
    if not isinstance(value, str) or not value or os.sep in value:
      raise ValueError(f'`{name}` must be a non-empty name without '
                       f'"{os.sep}", got {value!r}.')
    return value

  def describe(self, options=()):
    return 'a name'

  def invalid_example(self):
    return ''


@dataclasses.dataclass(frozen=True)
class OrNone:
  """None, or a value passing `check`."""
  check: object

  def __call__(self, name, value, options=()):
    return None if value is None else self.check(name, value, options)

  def describe(self, options=()):
    return self.check.describe(options)

  def invalid_example(self):
    return self.check.invalid_example()


def setting(default, help: str, check=None):  # pylint: disable=redefined-builtin
  return dataclasses.field(default=default,
                           metadata=dict(help=help, check=check))


_POS_INT = IntAtLeast(1)
_POSITIVE = Number(0.0, strict=True)
_NON_NEGATIVE = Number(0.0)
_FRACTION = Number(0.0, 1.0)
_MOMENTUM = Number(0.0, 1.0, strict_max=True)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Every setting of a run; names follow the original research code's flags."""
  root_output_dir: str = setting('/tmp/targeted_attack',
                                 'Root directory for all outputs.')
  experiment_name: str = setting(
      'emnist_attack', 'Outputs go to root_output_dir/experiment_name/.',
      Name())
  random_seed: int = setting(
      0, 'Seed of every random stream: data generation, sampling, local '
      'shuffles, attackers, noise.', IntAtLeast(0, 2**32 - 1))
  execution_context: str = setting(
      'in_process', 'Where TFF\'s computations run: in_process (interpreted '
      'in this process, every TensorFlow graph on TensorFlow\'s runtime here, '
      'on the GPU when TensorFlow sees one) or tff_cpp (TFF\'s C++ '
      'worker_binary over gRPC, CPU only). A run repeats to the bit within '
      'a context; the two differ in float rounding, which training '
      'amplifies: compare them over seeds.', OneOf())
  client_concurrency: int = setting(
      0, 'in_process: clients of a round trained at once, on threads (0: one '
      'per CPU; the results do not depend on it).', IntAtLeast(0))
  client_batching: str = setting(
      'auto', 'in_process: train a round\'s benign clients as one TensorFlow '
      'computation (process.batched_training) where the model and client '
      'optimizer allow (the reason is logged where not): on; off: each '
      'client by itself; auto: on where TensorFlow sees a GPU, and on a CPU '
      'for models of at most 1M multiply-adds per example (small_cnn: '
      'faster batched, linear by its count; cnn, cifar_cnn: slower; '
      'docs/PERFORMANCE.md). The '
      'models agree with per-client training to float rounding '
      '(docs/RUNNING.md). Ignored by tff_cpp.', OneOf())
  gpu_memory_growth: bool = setting(
      True, 'GPU: allocate its memory as needed, so that several runs (a '
      'sweep\'s tasks) share one; false: TensorFlow\'s default, all of it at '
      'start. No effect without a GPU.')
  op_determinism: bool = setting(
      False, 'TensorFlow\'s op determinism (tf.config.experimental.'
      'enable_op_determinism): the same results run to run on a GPU, whose '
      'kernels may otherwise reduce in any order; slower.')
  spread_clients_over_gpus: bool = setting(
      True, 'in_process, several GPUs: client k of a round runs on GPU k mod '
      'their number; false: TensorFlow\'s placement (the first GPU).')
  evaluate_per_rounds: int = setting(1, 'Evaluate every this many rounds.',
                                     _POS_INT)
  checkpoint_every: int = setting(
      10, 'Checkpoint the process state every this many rounds.', _POS_INT)
  resume: bool = setting(
      False, 'Continue from the checkpoint in the output directory.')
  init_checkpoint: Optional[str] = setting(
      None, 'Start from the model of this checkpoint.npz (e.g. the output of '
      'a clean run), as the literature attacks converged models.')
  durability_threshold: float = setting(
      0.5, 'Durability: rounds after the last attack until backdoor accuracy '
      'falls below this.', _FRACTION)
  # Data.
  dataset: str = setting(
      'synthetic', 'synthetic: generated writer-style digits (offline); '
      'dirichlet: the same writers\' examples pooled and re-split non-IID '
      'by Dir(dirichlet_alpha); emnist: TFF federated EMNIST; cifar10: '
      'CIFAR-10 (python files) split by Dir(dirichlet_alpha); cifar100: '
      'TFF\'s federated CIFAR-100; synthetic_cifar10 / synthetic_cifar100: '
      'their generated stand-ins (offline), read by the real loaders; '
      'stackoverflow: TFF\'s Stack Overflow, next-word prediction; '
      'synthetic_text: its generated stand-in; shakespeare: TFF\'s '
      'Shakespeare, next-character prediction; synthetic_shakespeare: its '
      'generated stand-in.',
      OneOf())
  emnist_cache_dir: Optional[str] = setting(
      None, 'Directory holding TFF\'s emnist_all.sqlite (see the README).')
  only_digits: bool = setting(True, 'EMNIST: digits only (10 classes).')
  synthetic_num_clients: int = setting(
      500, 'Synthetic: number of writers (clients); dirichlet: the number of '
      'writers pooled, and of clients they are re-split over.', _POS_INT)
  synthetic_examples_per_client: int = setting(
      60, 'Synthetic / dirichlet: mean train examples per writer.', _POS_INT)
  dirichlet_alpha: float = setting(
      0.5, 'dirichlet: concentration α; each class c is split over the '
      'clients by p_c ~ Dir(α·1_N) (small α: each class on few clients; '
      'DBA, Xie et al. 2020: 0.5). Clients left empty are dropped. The '
      'semantic backdoor\'s targets stay writers (their 7s, wherever the '
      'split put them).', _POSITIVE)
  stackoverflow_cache_dir: Optional[str] = setting(
      None, 'stackoverflow: the directory holding TFF\'s stackoverflow.sqlite '
      'and stackoverflow.word_count.')
  shakespeare_cache_dir: Optional[str] = setting(
      None, 'shakespeare: the directory holding TFF\'s shakespeare.sqlite.')
  text_vocab_size: int = setting(
      10000, 'stackoverflow / synthetic_text: the V most frequent words; '
      'the rest are out of vocabulary (TFF\'s baseline: 10,000).', _POS_INT)
  text_sequence_length: int = setting(
      20, 'Text datasets: tokens per sequence T. Words (stackoverflow, '
      'synthetic_text; TFF\'s baseline 20), the rest dropped; characters '
      '(shakespeare, synthetic_shakespeare; TFF\'s baseline 80), a snippet '
      'cut into rows of T + 1.', IntAtLeast(3))
  text_test_sentences: int = setting(
      10000, 'Text datasets: test sequences evaluated (the first of the '
      'test split).', _POS_INT)
  cifar10_dir: Optional[str] = setting(
      None, 'cifar10: the python-format CIFAR-10: the directory '
      'cifar-10-batches-py, its parent, or cifar-10-python.tar.gz.')
  cifar100_cache_dir: Optional[str] = setting(
      None, 'cifar100: the directory holding TFF\'s cifar100.sqlite.')
  cifar_num_clients: int = setting(
      100, 'cifar10 / synthetic_cifar10: the clients the training images '
      'are split over by Dir(dirichlet_alpha) (Bagdasaryan et al., BackFed: '
      '100); synthetic_cifar100: its train clients (TFF\'s: 500).',
      _POS_INT)
  synthetic_cifar_train_size: int = setting(
      5000, 'synthetic_cifar10: generated training images, a multiple of 5 '
      '(CIFAR-10: 50,000).', _POS_INT)
  synthetic_cifar_test_size: int = setting(
      1000, 'synthetic_cifar10: generated test images (CIFAR-10: 10,000).',
      _POS_INT)
  # Training (Sun et al. 2019, Sec. 5: 30 clients, 5 epochs, batch 20, η_c 0.1).
  model: str = setting(
      'cnn', 'Digits: cnn (the paper\'s CNN), small_cnn, linear; CIFAR: '
      'cifar_cnn, vgg9, resnet18; words: lstm (TFF\'s Stack Overflow), '
      'small_lstm; characters: char_lstm (TFF\'s Shakespeare), small_lstm, '
      'lstm.',
      OneOf())
  num_clients_per_round: int = setting(30, 'Clients sampled per round.',
                                       _POS_INT)
  num_rounds: int = setting(300, 'Number of rounds.', _POS_INT)
  server_learning_rate: float = setting(1.0, 'Server SGD learning rate η.',
                                        _POSITIVE)
  server_momentum: float = setting(0.0, 'Server momentum.', _MOMENTUM)
  server_nesterov: bool = setting(
      False, 'Server momentum is Nesterov\'s (Keras\' SGD(nesterov=True), as '
      'the original binary) instead of heavy ball.')
  num_epochs: int = setting(5, 'Local epochs per round.', _POS_INT)
  batch_size: int = setting(20, 'Local batch size.', _POS_INT)
  local_steps: int = setting(
      0, 'Local SGD steps per round: a client trains on its first '
      'local_steps·batch_size examples of the epochs\' shuffled order; 0: '
      'every batch of every epoch. FedSGD (ALIE, IPM, FoolsGold, FLTrust) is '
      'local_steps 1 with every client every round.', IntAtLeast(0))
  client_learning_rate: float = setting(0.1, 'Client SGD learning rate.',
                                        _POSITIVE)
  client_momentum: float = setting(0.0, 'Client momentum.', _MOMENTUM)
  # Attack.
  attack: str = setting('unconstrained', 'The malicious clients\' strategy.',
                        OneOf())
  attacker_model: str = setting(
      'fixed_frequency', 'Which sampled clients are malicious.',
      OneOf())
  attack_start_round: int = setting(
      1, 'Attackers act from this round on.', _POS_INT)
  attack_end_round: int = setting(
      0, 'Attackers act up to this round (0: to the last round).',
      IntAtLeast(0))
  attack_freq: int = setting(
      1, 'fixed_frequency: one attacker every this many rounds.', _POS_INT)
  attack_phase: int = setting(
      0, 'fixed_frequency: the attack rounds t are those with t mod '
      'attack_freq = attack_phase mod attack_freq (0: rounds attack_freq, '
      '2·attack_freq, ...; the original binary\'s: attack_freq // 2 + 1).',
      IntAtLeast(0))
  malicious_fraction: float = setting(
      1 / 30, 'random_sampling: fraction ε of malicious clients, '
      'round(ε·N) of the N clients (Sun et al.\'s 3.3% = 1/30).', _FRACTION)
  attacker_pool_size: int = setting(
      10, 'fixed_pool / forced_pool: number of malicious clients in the '
      'population.', _POS_INT)
  attack_stagger: int = setting(
      2, 'staggered_pool: attacker i of the pool attacks once, in round '
      'attack_start_round + i·attack_stagger (DBA\'s single shot: 2).',
      _POS_INT)
  task_num: int = setting(
      30, 'Number of target writers whose 7s are labelled 1.', _POS_INT)
  boost_factor: Optional[float] = setting(
      None, 'Attacker boost β; default: num_clients_per_round / '
      'server_learning_rate (model replacement, Sun et al. Eq. 1).',
      OrNone(_POSITIVE))
  split_boost: bool = setting(
      True, 'Several attackers in a round divide the boost evenly (β/k '
      'each, Sun et al. Sec. 3); false: each sends the full boost.')
  client_round_num: int = setting(
      5, 'norm_bounded: PGD rounds per attack.', _POS_INT)
  # Literature attacks (Bagdasaryan et al. 2018; Wang et al. 2020).
  poison_per_batch: int = setting(
      5, 'data_poisoning / constrain_and_scale / a3fl: backdoor items '
      'replacing benign ones in each batch (c).', _POS_INT)
  poison_boost_factor: Optional[float] = setting(
      None, 'data_poisoning: Δ = γ·(w − w_t) after poisoned training (DBA\'s '
      'single-shot scale_weights_poison; divided among a round\'s attackers '
      'with split_boost); default: no scaling, Δ = w − w_t.',
      OrNone(_POSITIVE))
  poison_passes: int = setting(
      1, 'data_poisoning / a3fl: passes of the attacker\'s poisoned local '
      'training, each over its num_epochs-epoch dataset (DBA\'s attackers '
      'train 10 epochs where benign clients train 1).', _POS_INT)
  attacker_learning_rate: float = setting(
      0.1, 'constrain_and_scale / pgd: the attacker\'s SGD rate.', _POSITIVE)
  cs_alpha: float = setting(
      0.7, 'constrain_and_scale: α in α·L_class + (1−α)·L_ano.', _FRACTION)
  cs_anomaly: str = setting(
      'l2', 'constrain_and_scale: L_ano.',
      OneOf())
  cs_gamma: Optional[float] = setting(
      None, 'constrain_and_scale: scale γ; default: the boost factor.',
      OrNone(_POSITIVE))
  cs_max_epochs: int = setting(
      2, 'constrain_and_scale: at most this many passes.', _POS_INT)
  cs_early_stop_loss: float = setting(
      0.0, 'constrain_and_scale: stop once the backdoor loss < ε.',
      _NON_NEGATIVE)
  cs_lr_decay: float = setting(
      0.1, 'constrain_and_scale: learning-rate decay per step block.',
      _POSITIVE)
  cs_lr_step_size: int = setting(
      1000, 'constrain_and_scale: steps per learning-rate block.', _POS_INT)
  pgd_eps: Optional[float] = setting(
      None, 'pgd / pgd_replacement / neurotoxin: ℓ2 radius ε around w_t; '
      'default: norm_bound (pgd_replacement: norm_bound / boost).',
      OrNone(_POSITIVE))
  project_frequency: int = setting(
      10, 'pgd / pgd_replacement / neurotoxin: project every this many '
      'steps.', _POS_INT)
  # Today's attacks (Zhang et al. 2022; Baruch et al. 2019; Xie et al. 2019).
  neurotoxin_mask_ratio: float = setting(
      0.01, 'neurotoxin: fraction of coordinates masked off (those of largest '
      '|e|, e of neurotoxin_mask_source); the authors\' runs mask 1% '
      '(gradmask_ratio 0.99).', Number(0.0, 1.0, strict_max=True))
  neurotoxin_mask_source: str = setting(
      'global_gradient', 'neurotoxin: e, the estimate the mask ranks '
      '(global_gradient: the global model\'s gradient summed over the '
      'attacker\'s clean batches, as the authors\' code; benign_update: the '
      'attacker\'s own benign update, this project\'s rule before 0.4.0).',
      OneOf())
  alie_z: Optional[float] = setting(
      None, 'alie: Δ = μ − z·σ; default: the paper\'s z_max from the round\'s '
      'n clients and f attackers (0 for 1 attacker in 30).',
      OrNone(_NON_NEGATIVE))
  ipm_epsilon: float = setting(0.5, 'ipm: Δ = −ε·μ.', _POSITIVE)
  omniscient_knowledge: str = setting(
      'benign', 'alie / ipm: μ, σ over the round\'s benign updates (benign) '
      'or over the attackers\' own benign updates (attackers).',
      OneOf())
  # Backdoor task.
  backdoor: str = setting('semantic', 'The backdoor task.',
                          OneOf())
  backdoor_sentence: str = setting(
      'pasta from astoria is delicious', 'sentence backdoor: the attacker\'s '
      'sentence; its last word is to be predicted after the rest '
      '(Bagdasaryan et al.), every word in the vocabulary.')
  sentence_eval_size: int = setting(
      1000, 'sentence backdoor: test sentences, suffixed with the backdoor '
      'sentence, its accuracy is measured on.', _POS_INT)
  poison_images: str = setting(
      'green_car_train', 'semantic_images backdoor: the attacker\'s images '
      '(Bagdasaryan et al.\'s poison_images), indices into the CIFAR-10 '
      'training images ("874,49163,…") or the name of one of the '
      'dataset\'s attribute lists (the stand-in\'s green_car_train, '
      'racing_stripe_car_train, striped_background_train); held out of '
      'every honest client.')
  poison_images_test: str = setting(
      'green_car_test', 'semantic_images backdoor: the images backdoor '
      'accuracy is measured on (poison_images_test; the stand-in\'s '
      '*_test lists), held out likewise.')
  poison_label: int = setting(
      2, 'semantic_images backdoor: the target class (Bagdasaryan et al.: '
      'bird, 2).', IntAtLeast(0))
  edge_case_mix: str = setting(
      'almost_edge_case', 'edge_case backdoor: how many honest writers draw '
      '(correctly labelled) crossbar 7s.',
      OneOf())
  edge_case_num_train: int = setting(
      100, 'Edge-case images the attacker trains on.', _POS_INT)
  edge_case_dir: Optional[str] = setting(
      None, 'southwest backdoor: the directory holding Wang et al.\'s '
      'southwest_images_new_{train,test}.pkl; unset: the CIFAR-10 '
      'stand-in\'s generated planes.')
  ardis_dir: Optional[str] = setting(
      None, 'edge_case backdoor: the directory holding ARDIS IV\'s '
      'ARDIS_{train,test}_2828.csv and ARDIS_{train,test}_labels.csv, whose '
      '7s are the edge case (Wang et al.\'s EMNIST one; 100 test 7s); unset: '
      'generated crossbar 7s.')
  edge_case_num_eval: int = setting(
      200, 'Edge-case images backdoor accuracy is measured on.', _POS_INT)
  trigger_amplitude: float = setting(
      1.0, 'trigger / dba backdoor: pattern amplitude a in x + a·M⊙(P − x).',
      Number(0.0, 1.0, strict=True))
  trigger_placement: str = setting(
      'one_corner', 'trigger backdoor: where the pattern goes.',
      OneOf())
  trigger_source_class: int = setting(
      -1, 'trigger / dba / a3fl backdoor: the class whose images get the '
      'trigger, in the attackers\' poison and in the evaluation (Ozdayi et '
      'al.\'s base class: sandal 5 → sneaker 7); -1: every class but the '
      'target. A class in 0..num_classes − 1 other than the target (1).',
      IntAtLeast(-1))
  dba_parts: int = setting(
      4, 'dba backdoor: the four-corner trigger is split into this many local '
      'triggers; malicious client k stamps part k mod K (Xie et al. 2020).',
      IntAtLeast(1, 36))
  # A3FL (Zhang et al. 2023): the trigger search before each attack round.
  # The defaults are the authors' budget (their config.yaml).
  a3fl_outer_iterations: int = setting(
      200, 'a3fl backdoor: iterations K of the trigger search per attack '
      'round (each: unlearn a copy θ\' of w_t, then trigger passes; the '
      'first without θ\').', _POS_INT)
  a3fl_trigger_passes: int = setting(
      1, 'a3fl backdoor: passes of sign-gradient steps over the attackers\' '
      'images per iteration.', _POS_INT)
  a3fl_trigger_lr: float = setting(
      0.002, 'a3fl backdoor: step α of δ ← clip(δ − α·sign(∇_δ L), 0, 1) in '
      'pixels (the authors\' 0.01 in CIFAR\'s normalised units).', _POSITIVE)
  a3fl_lambda: float = setting(
      0.01, 'a3fl backdoor: λ in CE(f_w(x⊕δ), ỹ) + λ·s·CE(f_w\'(x⊕δ), ỹ), s '
      'the gradient similarity of w\' and w (a3fl_similarity_weighted).',
      _NON_NEGATIVE)
  a3fl_similarity_weighted: bool = setting(
      True, 'a3fl backdoor: scale λ by the similarity s of the gradients of '
      'θ\' and w_t (the authors\'); false: λ alone.')
  a3fl_unlearn_passes: int = setting(
      5, 'a3fl backdoor: SGD passes over the attackers\' triggered images '
      '(true labels) that train θ\' per iteration; 0: no θ\' (the trigger is '
      'optimised against w_t alone).', IntAtLeast(0))
  a3fl_unlearn_lr: float = setting(
      0.01, 'a3fl backdoor: SGD rate of the unlearning steps.', _POSITIVE)
  a3fl_batch_size: int = setting(
      64, 'a3fl backdoor: minibatch of the attackers\' images per step.',
      _POS_INT)
  a3fl_boost_factor: float = setting(
      1.0, 'a3fl attack: β in Δ = β·(w − w_t) after poisoned training (1: '
      'the paper\'s attacker, no boost; divided among a round\'s attackers '
      'with split_boost).', _POSITIVE)
  # Defense.
  defense: str = setting('none', 'The server\'s (or clients\') defense.',
                         OneOf())
  norm_bound: float = setting(
      3.0, 'M: clip / aggregate_clip bound, and the bound the norm-bounded '
      'attacker respects.', _POSITIVE)
  l2_norm_clip: float = setting(5.0, 'weak_dp / tff_dp_fixed: clip norm C.',
                                _POSITIVE)
  mul_factor: float = setting(
      0.005, 'weak_dp: noise multiplier; the noise on the sum has stddev '
      'σ = mul_factor · l2_norm_clip (the paper\'s σ; the original code '
      'passed σ itself).', _NON_NEGATIVE)
  num_byzantine: int = setting(
      1, 'krum / multi_krum / bulyan: assumed Byzantine clients f; Krum and '
      'Multi-Krum refuse n <= 2f + 2 clients per round (Blanchard et al.\'s '
      'condition n > 2f + 2), Bulyan n < 4f + 3.',
      IntAtLeast(0))
  multi_krum_selected: int = setting(
      10, 'multi_krum: updates averaged m.', _POS_INT)
  trim_fraction: float = setting(
      0.1, 'trimmed_mean: fraction trimmed from each end.',
      Number(0.0, 0.5, strict_max=True))
  geometric_median_iters: int = setting(
      10, 'geometric_median: Weiszfeld iterations.', _POS_INT)
  rlr_threshold: int = setting(
      8, 'rlr: θ; the server rate is negated on the coordinates whose net '
      'sign vote |Σ_i sgn(Δ_i)| < θ (Ozdayi et al.: 4 for 10 clients per '
      'round, 8 for 34-40).', IntAtLeast(0))
  flame_noise_lambda: float = setting(
      0.001, 'flame: noise stddev λ·S, S the median update norm (Nguyen et '
      'al.: 0.001 for image classification).', _NON_NEGATIVE)
  flame_cluster_on: str = setting(
      'models', 'flame: what HDBSCAN clusters by cosine distance (models: '
      'the local models w_t − x_k, FLAME\'s Algorithm 1; updates: the '
      'updates x_k, this project\'s rule before 0.4.0).', OneOf())
  foolsgold_features: str = setting(
      'output_layer', 'foolsgold: the weights each client\'s history H_i sums '
      '(output_layer: the output layer\'s kernel, as the authors\' deep '
      'models; all: every weight; the history table is population × this '
      'size).', OneOf())
  foolsgold_confidence: float = setting(
      1.0, 'foolsgold: κ in α_i = κ(ln(α_i / (1 − α_i)) + 0.5) (Fung et al.: '
      '1).', _POSITIVE)
  fltrust_root_size: int = setting(
      100, 'fltrust: examples in the server\'s clean root dataset, held out '
      'of the clients\' training data (one seeded example per client of a '
      'seeded client order, cycling); Cao et al.: 100.', _POS_INT)
  tff_dp_noise_multiplier: float = setting(
      0.1, 'tff_dp_adaptive / tff_dp_fixed: noise multiplier of TFF\'s '
      'DifferentiallyPrivateFactory.', _NON_NEGATIVE)
  dp_sgd_l2_norm_clip: float = setting(
      1.0, 'dp_sgd: per-example clip norm.', _POSITIVE)
  dp_sgd_noise_multiplier: float = setting(
      0.1, 'dp_sgd: noise multiplier σ.', _NON_NEGATIVE)
  privacy_delta_exponent: float = setting(
      1.1, 'Privacy accounting: δ = 1/N^e (client level, N the population) '
      'and 1/n_k^e (DP-SGD, example level, n_k a client\'s examples); e > 1 '
      'keeps δ below 1/N, the usual choice.', Number(1.0, strict=True))

  @property
  def output_dir(self) -> str:
    return os.path.join(self.root_output_dir, self.experiment_name)

  @property
  def resolved_boost_factor(self) -> float:
    """β = n / η by default: model replacement at any server rate (Eq. 1)."""
    if self.boost_factor is None:
      return self.num_clients_per_round / self.server_learning_rate
    return float(self.boost_factor)


# The settings of a run's loop and outputs: its process is built without them.
LOOP_SETTINGS = ('num_rounds', 'resume', 'root_output_dir', 'experiment_name',
                 'evaluate_per_rounds', 'checkpoint_every',
                 'durability_threshold')

# Settings that may differ between a run and its resumption.
RESUMABLE_CHANGES = LOOP_SETTINGS + (
    'execution_context', 'client_concurrency', 'client_batching',
    'gpu_memory_growth', 'op_determinism', 'spread_clients_over_gpus')


def fields():
  return dataclasses.fields(ExperimentConfig)


def validate(config: ExperimentConfig, choices) -> None:
  """Every field's own check; `choices[name]`: the names a `OneOf` setting
  allows (`registry.validate` passes the registries', then runs the chosen
  entries' cross-setting checks)."""
  for field in fields():
    check = field.metadata.get('check')
    if check is None:
      continue
    try:
      check(field.name, getattr(config, field.name), choices.get(field.name, ()))
    except ValueError as e:
      raise ConfigError(field.name, str(e)) from e


def as_config_error(error: ValueError) -> ValueError:
  """`error` as a ConfigError naming the first setting its message names
  (written `name`); `error` itself when it names none."""
  if isinstance(error, ConfigError):
    return error
  names = {f.name for f in fields()}
  for name in re.findall(r'`([a-z0-9_]+)`', str(error)):
    if name in names:
      return ConfigError(name, str(error))
  return error


def first_difference(a: ExperimentConfig, b: dict,
                     ignore=RESUMABLE_CHANGES) -> Optional[str]:
  """The first setting (in field order) whose value differs, or None.

  A setting missing from `b` (saved before the setting existed) counts as its
  default, so runs of an older version resume if it is left at the default.
  """
  for field in fields():
    if field.name in ignore:
      continue
    if b.get(field.name, field.default) != getattr(a, field.name):
      return field.name
  return None
