"""The semantic backdoor (Sun et al. 2019, Sec. 5): the 7s of `task_num`
target writers, labelled 1.

The attacker trains on them; every benign client, the target writers
included, keeps its correctly labelled 7s.
"""

import dataclasses

import numpy as np

from targeted_attack.backdoors import base


def select_backdoor_task(data, task_num: int, seed: int,
                         source_label: int = base.BACKDOOR_SOURCE_LABEL,
                         target_label: int = base.BACKDOOR_TARGET_LABEL
                        ) -> base.BackdoorTask:
  """The paper's semantic backdoor: the `source_label` images of `task_num`
  target clients (seeded choice), to be classified as `target_label`; trained
  and evaluated on the same images (Sun et al. 2019, Sec. 5).

  The targets are writers: on a dataset re-partitioned from writers' data
  (`data.writers`, e.g. `repartition_dirichlet`) they are chosen among the
  writers, and their images lie, correctly labelled, on whichever clients
  the partition gave them to.
  Raises ValueError naming `task_num` when fewer clients hold that label.
  """
  if data.writers is not None:
    data = data.writers
  order = np.random.RandomState(seed).permutation(data.num_clients)
  chosen, images = [], []
  for index in order:
    pixels, labels = data.client_arrays(int(index))
    mask = labels == source_label
    if mask.any():
      chosen.append(int(index))
      images.append(pixels[mask])
      if len(chosen) == task_num:
        images = np.concatenate(images)
        return base.BackdoorTask('semantic', images, images, target_label,
                            tuple(chosen))
  raise ValueError(
      f'`task_num`={task_num} but only {len(chosen)} clients hold images of '
      f'label {source_label}; allowed range: 1..{len(chosen)}.')


@dataclasses.dataclass(frozen=True)
class SemanticBackdoor(base.Backdoor):
  """`select_backdoor_task(data, task_num, seed)`, fixed for the run."""
  task_num: int
  seed: int

  def initial_task(self, data) -> base.BackdoorTask:
    return select_backdoor_task(data, self.task_num, self.seed)
