"""The edge-case backdoor (Wang et al. 2020, Attack of the Tails)."""

import dataclasses

import numpy as np

from targeted_attack.backdoors import base
from targeted_attack.data import synthetic_digits


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
