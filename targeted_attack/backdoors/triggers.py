"""Trigger backdoors: BadNets' pixel pattern, and DBA's distributed trigger.

One stamp for every trigger of the library (BadNets, DBA, A3FL):
    x ⊕ (M, P, a) = x + a · M ⊙ (P − x)
on images x [..., H, W], mask M, pattern P, amplitude a (Turner's; a = 1
pastes the pattern, small a makes it faint).

BadNets (`trigger_task`): the 3×3 checkerboard `TRIGGER_PATTERN` in one
corner patch (1 pixel from the border, bottom-right) or in all four
(`four_corners`), on images of any class but the target, relabelled.

DBA (Xie et al., ICLR 2020, Sec. 3.1, Fig. 1): the global trigger G — a pixel
mask M_G with a pattern P on it — is decomposed into K local triggers with
disjoint masks M_1, …, M_K, ∪_i M_i = M_G. Attacker group i poisons its
images with its local trigger only, x_i = x ⊕ (M_i, P, a), relabelled to the
target, while the backdoor is evaluated with the full global trigger,
x ⊕ (M_G, P, a). Here G is the `four_corners` BadNets trigger (four 3×3
checkerboard patches, 36 pixels), the analog of the paper's four-bar MNIST
trigger: with K = 4 each local trigger is one corner patch. For other K the
36 pixels, ordered patch by patch (top-left, top-right, bottom-left,
bottom-right; row-major within a patch), are cut into K contiguous groups of
near-equal size (`np.array_split`).

All attackers share one backdoor task in this library, so the task holds K
training parts (every part stamps the same source images with its local
trigger, so each attacker has as much poison as with `trigger`), and
`process.round_data.round_client_data` gives malicious client k (population
index) part k mod K: an attacker keeps its local trigger across rounds, as in
the paper.
"""

import dataclasses
import functools

import numpy as np

from targeted_attack import checks
from targeted_attack.backdoors import base


TRIGGER_PLACEMENTS = ('one_corner', 'four_corners')
TRIGGER_PATTERN = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)
DBA_PLACEMENT = 'four_corners'


def global_trigger(size: int, placement: str = DBA_PLACEMENT) -> tuple:
  """(M bool[size, size], P float32[size, size]): the BadNets trigger.

  M: the 3×3 patch(es) of `placement` — the bottom-right one (1 pixel from
  the border), or all four corners; P: `TRIGGER_PATTERN` on each patch, 0
  off the mask.
  """
  checks.choice('trigger_placement', placement, TRIGGER_PLACEMENTS)
  corners = [(size - 4, size - 4)]
  if placement == 'four_corners':
    corners += [(1, 1), (1, size - 4), (size - 4, 1)]
  mask = np.zeros([size, size], bool)
  pattern = np.zeros([size, size], np.float32)
  for r, c in corners:
    mask[r:r + 3, c:c + 3] = True
    pattern[r:r + 3, c:c + 3] = TRIGGER_PATTERN
  return mask, pattern


def stamp(pixels, mask, pattern, amplitude: float = 1.0):
  """x + a · M ⊙ (P − x), for images `pixels` [..., H, W] (NumPy or TF).

  `mask` M (bool or 0/1), `pattern` P [H, W]; a = `amplitude` ∈ (0, 1].
  Off the mask the pixels are unchanged, bit for bit.
  """
  checks.number('trigger_amplitude', amplitude, 0.0, strict=True, maximum=1.0)
  if isinstance(mask, np.ndarray):
    mask = mask.astype(np.float32)
    pixels = np.asarray(pixels, np.float32)
  return pixels + amplitude * mask * (pattern - pixels)


def stamp_trigger(pixels: np.ndarray, amplitude: float,
                  placement: str) -> np.ndarray:
  """BadNets' trigger of `placement` stamped at amplitude a (`stamp`)."""
  mask, pattern = global_trigger(pixels.shape[-1], placement)
  return stamp(pixels, mask, pattern, amplitude)


def trigger_source_images(data, task_num: int, seed: int,
                          target_label: int = base.BACKDOOR_TARGET_LABEL) -> tuple:
  """(train, eval, clients): the unstamped images a trigger backdoor uses.

  train: the non-target images of `task_num` seeded random clients; eval: the
  test images whose true label is not the target.
  """
  order = np.random.RandomState(seed).permutation(data.num_clients)[:task_num]
  train = []
  for index in order:
    pixels, labels = data.client_arrays(int(index))
    train.append(pixels[labels != target_label])
  eval_pixels = data.test_pixels[data.test_labels != target_label]
  return (np.concatenate(train), eval_pixels, tuple(int(i) for i in order))


def trigger_task(data, task_num: int, amplitude: float,
                 placement: str, seed: int,
                 target_label: int = base.BACKDOOR_TARGET_LABEL) -> base.BackdoorTask:
  """Trigger backdoor: stamped images of any class but the target, relabelled.

  D_mal: the non-target images of `task_num` random clients, stamped; the
  evaluation set: the stamped test images whose true label is not the target.
  """
  train, eval_pixels, clients = trigger_source_images(data, task_num, seed,
                                                      target_label)
  return base.BackdoorTask(
      f'trigger_{placement}', stamp_trigger(train, amplitude, placement),
      stamp_trigger(eval_pixels, amplitude, placement), target_label, clients)


def split_trigger(mask: np.ndarray, parts: int) -> list:
  """M_1, …, M_K: `mask`'s pixels, quadrant by quadrant (then row-major),
  cut into K = `parts` contiguous groups; disjoint, their union is `mask`."""
  size = mask.shape[-1]
  coords = np.argwhere(mask)
  checks.integer('dba_parts', parts, 1, len(coords))
  half = size // 2
  order = np.lexsort((coords[:, 1], coords[:, 0], coords[:, 1] >= half,
                      coords[:, 0] >= half))
  masks = []
  for group in np.array_split(coords[order], parts):
    part = np.zeros_like(mask, bool)
    part[group[:, 0], group[:, 1]] = True
    masks.append(part)
  return masks


def dba_task(data, task_num: int, amplitude: float,
             parts: int, seed: int,
             target_label: int = base.BACKDOOR_TARGET_LABEL
            ) -> base.BackdoorTask:
  """DBA's backdoor task: K training parts, evaluated with the global trigger.

  The images are `trigger`'s (`trigger_source_images`: the non-target
  images of `task_num` seeded clients; the non-target test images). Part i:
  all training images stamped with local trigger M_i; `train_pixels` is the
  K parts concatenated (the parts are views of it). For the per-part attack
  success (Xie et al. 2020, Sec. 4: each local trigger alone), the task
  also holds the unstamped evaluation images and K stamps, stamp i putting
  local trigger M_i on images.
  """
  train, eval_pixels, clients = trigger_source_images(
      data, task_num, seed, target_label)
  size = train.shape[-1]
  mask, pattern = global_trigger(size)
  local = split_trigger(mask, parts)
  train_pixels = np.concatenate(
      [stamp(train, m, pattern, amplitude) for m in local])
  return base.BackdoorTask(
      f'dba_{parts}', train_pixels, stamp(eval_pixels, mask, pattern,
                                          amplitude),
      target_label, clients,
      train_parts=tuple(np.split(train_pixels, parts)),
      eval_source_pixels=eval_pixels,
      eval_part_stamps=tuple(
          functools.partial(stamp, mask=m, pattern=pattern,
                            amplitude=amplitude) for m in local))


@dataclasses.dataclass(frozen=True)
class TriggerBackdoor(base.Backdoor):
  """`trigger_task(data, task_num, amplitude, placement, seed)`, fixed."""
  task_num: int
  amplitude: float
  placement: str
  seed: int

  def initial_task(self, data) -> base.BackdoorTask:
    return trigger_task(data, self.task_num, self.amplitude, self.placement,
                        self.seed)


@dataclasses.dataclass(frozen=True)
class DBABackdoor(base.Backdoor):
  """`dba_task(data, task_num, amplitude, parts, seed)`, fixed."""
  task_num: int
  amplitude: float
  parts: int
  seed: int

  def initial_task(self, data) -> base.BackdoorTask:
    return dba_task(data, self.task_num, self.amplitude, self.parts,
                    self.seed)
