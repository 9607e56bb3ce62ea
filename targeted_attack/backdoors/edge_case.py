"""The edge-case backdoor (Wang et al. 2020, Attack of the Tails)."""

import dataclasses

import numpy as np

from targeted_attack.backdoors import base
from targeted_attack.data import cifar
from targeted_attack.data import synthetic_digits
from targeted_attack.data import synthetic_images


EDGE_CASE_MIXES = {'edge_case': 0.0, 'almost_edge_case': 0.02,
                   'normal_case': 0.25}


def edge_case_task(num_train: int, num_eval: int, seed: int,
                   target_label: int = base.BACKDOOR_TARGET_LABEL) -> base.BackdoorTask:
  """Edge-case backdoor (Wang et al. 2020): 7s with a crossbar (the European
  style, a tail of the generated writers' 7s), in fresh writer styles,
  labelled `target_label`; separate train and evaluation images."""
  rng = np.random.RandomState(seed + 7)
  styles = [synthetic_digits.sample_writer_style(rng)
            for _ in range(num_train + num_eval)]
  images = synthetic_digits.render(styles, '7_crossbar', rng)
  return base.BackdoorTask('edge_case', images[:num_train], images[num_train:],
                      target_label)


@dataclasses.dataclass(frozen=True)
class EdgeCaseBackdoor(base.Backdoor):
  """`edge_case_task(num_train, num_eval, seed)`; `mix` (a key of
  `EDGE_CASE_MIXES`) sets the fraction of generated writers whose 7 has a
  crossbar: 0 for the pure edge case, which no honest client holds."""
  num_train: int
  num_eval: int
  mix: str
  seed: int

  @property
  def crossbar_seven_rate(self) -> float:
    return EDGE_CASE_MIXES[self.mix]

  def initial_task(self, data) -> base.BackdoorTask:
    del data
    return edge_case_task(self.num_train, self.num_eval, self.seed)


# Wang et al. label the Southwest planes truck.
SOUTHWEST_TARGET_LABEL = synthetic_images.TRUCK


def southwest_task(num_train: int, num_eval: int, seed: int,
                   directory=None) -> base.BackdoorTask:
  """Wang et al.'s CIFAR-10 edge case: Southwest Airlines' planes labelled
  truck (9). The attacker trains on the first `num_train` images of their
  train file and backdoor accuracy is measured on the first `num_eval` of
  their test file (`cifar.read_southwest(directory)`); without a
  directory, on the CIFAR-10 stand-in's planes in its unseen livery
  (`synthetic_images.generate_edge_case`, seeded)."""
  if directory:
    train, test = cifar.read_southwest(directory)
  else:
    images = synthetic_images.generate_edge_case(num_train + num_eval, seed)
    train, test = images[:num_train], images[num_train:]
  for setting, wanted, have in (('edge_case_num_train', num_train,
                                 len(train)),
                                ('edge_case_num_eval', num_eval, len(test))):
    if wanted > have:
      raise ValueError(f'`{setting}`={wanted}: the Southwest files hold '
                       f'{have}; allowed range: 1..{have}.')
  as_float = lambda x: np.asarray(x, np.float32) / np.float32(255.0)
  return base.BackdoorTask('southwest', as_float(train[:num_train]),
                           as_float(test[:num_eval]), SOUTHWEST_TARGET_LABEL)


@dataclasses.dataclass(frozen=True)
class SouthwestBackdoor(base.Backdoor):
  """`southwest_task(num_train, num_eval, seed, directory)`, fixed."""
  num_train: int
  num_eval: int
  seed: int
  directory: str = None

  def initial_task(self, data) -> base.BackdoorTask:
    if not self.directory and data.name != 'synthetic_cifar10':
      raise ValueError(
          f'`edge_case_dir`: `backdoor`=southwest on {data.name} reads Wang '
          'et al.\'s Southwest files from edge_case_dir (not set); only the '
          'generated synthetic_cifar10 has generated planes.')
    return southwest_task(self.num_train, self.num_eval, self.seed,
                          self.directory)
