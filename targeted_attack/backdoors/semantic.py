"""The semantic backdoor (Sun et al. 2019, Sec. 5): the 7s of `task_num`
target writers, labelled 1.

The attacker trains on them; every benign client, the target writers
included, keeps its correctly labelled 7s.
"""

import dataclasses

import numpy as np

from targeted_attack.backdoors import base
from targeted_attack.data import cifar


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


def index_list_task(data, train_spec: str, test_spec: str,
                    target_label: int) -> base.BackdoorTask:
  """Bagdasaryan et al.'s (2020, Sec. 5.1) semantic backdoor as their code
  sets it: the training images at the indices of `train_spec`
  (`poison_images`: e.g. green cars) are the attacker's D_mal, labelled
  `target_label` (their bird, 2); backdoor accuracy is measured on those of
  `test_spec` (`poison_images_test`). Indices are into the dataset's
  training pool (`data.pool`: CIFAR-10's 50,000 training images); the
  loader holds both lists out of every honest client's data
  (`IndexListBackdoor.held_out_specs`)."""
  pool = getattr(data, 'pool', None)
  if pool is None:
    raise ValueError(
        f'`backdoor`=semantic_images indexes a training pool (CIFAR-10: '
        f'`dataset`=cifar10 or synthetic_cifar10), which dataset '
        f'{data.name!r} has not.')
  if not 0 <= target_label < data.num_classes:
    raise ValueError(f'`poison_label`={target_label}: allowed range 0..'
                     f'{data.num_classes - 1}.')
  pixels, _ = pool
  attributes = getattr(data, 'attributes', {}) or {}
  chosen = {}
  for setting, spec in (('poison_images', train_spec),
                        ('poison_images_test', test_spec)):
    indices = np.asarray(cifar.parse_index_list(spec, attributes, setting))
    if indices.min() < 0 or indices.max() >= len(pixels):
      raise ValueError(f'`{setting}`: indices must be in 0..'
                       f'{len(pixels) - 1}, got {indices.min()}..'
                       f'{indices.max()}.')
    chosen[setting] = pixels[indices]
  return base.BackdoorTask('semantic_images', chosen['poison_images'],
                           chosen['poison_images_test'], int(target_label))


@dataclasses.dataclass(frozen=True)
class IndexListBackdoor(base.Backdoor):
  """`index_list_task(data, train_spec, test_spec, target_label)`, fixed;
  both lists held out of the honest clients' data."""
  train_spec: str
  test_spec: str
  target_label: int

  @property
  def held_out_specs(self) -> tuple:
    return (('poison_images', self.train_spec),
            ('poison_images_test', self.test_spec))

  def initial_task(self, data) -> base.BackdoorTask:
    return index_list_task(data, self.train_spec, self.test_spec,
                           self.target_label)
