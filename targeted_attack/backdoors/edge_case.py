"""The edge-case backdoor (Wang et al. 2020, Attack of the Tails)."""

import dataclasses
from typing import Optional

import numpy as np

from targeted_attack.backdoors import base
from targeted_attack.data import ardis
from targeted_attack.data import cifar
from targeted_attack.data import synthetic_digits
from targeted_attack.data import synthetic_images


EDGE_CASE_MIXES = {'edge_case': 0.0, 'almost_edge_case': 0.02,
                   'normal_case': 0.25}


def _first(train, test, num_train: int, num_eval: int, files: str) -> tuple:
  """The first `num_train` / `num_eval` images of a published edge case's
  train / test images; more than they hold is an error naming the
  setting."""
  for setting, wanted, have in (('edge_case_num_train', num_train,
                                 len(train)),
                                ('edge_case_num_eval', num_eval, len(test))):
    if wanted > have:
      raise ValueError(f'`{setting}`={wanted}: {files} hold {have}; allowed '
                       f'range: 1..{have}.')
  return train[:num_train], test[:num_eval]


def edge_case_task(num_train: int, num_eval: int, seed: int,
                   target_label: int = base.BACKDOOR_TARGET_LABEL,
                   directory=None) -> base.BackdoorTask:
  """Edge-case backdoor (Wang et al. 2020): 7s labelled `target_label` (1).
  With `directory`, the real ones: ARDIS IV's 7s (`ardis.read_sevens`), the
  attacker's the first `num_train` of its train file, backdoor accuracy
  measured on the first `num_eval` of its test file, as Wang et al.'s code.
  Without, 7s with a crossbar (the European style, a tail of the generated
  writers' 7s) in fresh writer styles, separate train and evaluation
  images."""
  if directory:
    train, test = _first(*ardis.read_sevens(directory), num_train, num_eval,
                         'the ARDIS files\' 7s')
    return base.BackdoorTask('edge_case', train, test, target_label)
  rng = np.random.RandomState(seed + 7)
  styles = [synthetic_digits.sample_writer_style(rng)
            for _ in range(num_train + num_eval)]
  images = synthetic_digits.render(styles, '7_crossbar', rng)
  return base.BackdoorTask('edge_case', images[:num_train], images[num_train:],
                      target_label)


@dataclasses.dataclass(frozen=True)
class EdgeCaseBackdoor(base.Backdoor):
  """`edge_case_task(num_train, num_eval, seed, directory=directory)`; `mix`
  (a key of `EDGE_CASE_MIXES`) sets the fraction of generated writers whose
  7 has a crossbar: 0 for the pure edge case, which no honest client holds
  (EMNIST's writers are what they are: there `mix` does nothing)."""
  num_train: int
  num_eval: int
  mix: str
  seed: int
  directory: Optional[str] = None

  @property
  def crossbar_seven_rate(self) -> float:
    return EDGE_CASE_MIXES[self.mix]

  def initial_task(self, data) -> base.BackdoorTask:
    del data
    return edge_case_task(self.num_train, self.num_eval, self.seed,
                          directory=self.directory)


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
  train, test = _first(train, test, num_train, num_eval,
                       'the Southwest files')
  as_float = lambda x: np.asarray(x, np.float32) / np.float32(255.0)
  return base.BackdoorTask('southwest', as_float(train), as_float(test),
                           SOUTHWEST_TARGET_LABEL)


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
