"""Trigger backdoors: BadNets' pixel pattern, and DBA's distributed trigger.

One stamp for every trigger of the library (BadNets, DBA, A3FL):
    x ⊕ (M, P, a) = x + a · M ⊙ (P − x)
on images x [..., H, W] (grayscale) or [..., H, W, C] (colour: M and P are
then [H, W, 1], the same on every channel), mask M, pattern P, amplitude a
(Turner's; a = 1 pastes the pattern, small a makes it faint).

The pattern contrasts with the background it is stamped on, on every pixel
of the mask. BadNets' triggers are pixels set to the contrast of the image's
background (bright pixels on MNIST's black; DBA's bars and RLR's plus are
likewise pixels at the maximum on a dark background). Both datasets here (the
generated digits and TFF's EMNIST) have a white background b = `BACKGROUND`
= 1 and dark ink `INK` = 0, and the corner patches are background in (nearly)
every image; so
    P = ink on the mask:  each 3×3 patch is a square of ink (`TRIGGER_PATTERN`,
                          all 0),
and a stamp at amplitude a turns every white pixel of the mask to 1 − a: all
of the mask differs from the background. On CIFAR (no common background)
the patches are white (`data.trigger_value` = 1), BadNets' and Bagdasaryan
et al.'s pixel pattern on colour images; a dataset names its value
(`FederatedImages.trigger_value`). (Up to 0.8.0 P was the checkerboard
[[0, 1, 0], [1, 0, 1], [0, 1, 0]], whose four 1-pixels are the background
itself: only 5 of a patch's 9 pixels differed from a white image. Trained
centrally, `small_cnn`, 5 epochs, 1 poisoned item in 40, one corner: the ink
square's attack success 0.94–0.98 over 3 seeds, the checkerboard's
0.55–0.86; at 1 in 20, both ≥ 0.92 over 4 seeds.)

BadNets (`trigger_task`): the ink square in one corner patch (1 pixel from
the border, bottom-right) or in all four (`four_corners`), on images of
any class but the target (or, with a source class, of that class only: RLR's
base class, Ozdayi et al. 2021), relabelled.

DBA (Xie et al., ICLR 2020, Sec. 3.1, Fig. 1): the global trigger G — a pixel
mask M_G with a pattern P on it — is decomposed into K local triggers with
disjoint masks M_1, …, M_K, ∪_i M_i = M_G. Attacker group i poisons its
images with its local trigger only, x_i = x ⊕ (M_i, P, a), relabelled to the
target, while the backdoor is evaluated with the full global trigger,
x ⊕ (M_G, P, a). Here G is the `four_corners` BadNets trigger (four 3×3
ink squares, 36 pixels), the analog of the paper's four-bar MNIST trigger:
with K = 4 each local trigger is one corner patch. For other K the 36
pixels, ordered patch by patch (top-left, top-right, bottom-left,
bottom-right; row-major within a patch), are cut into K contiguous groups of
near-equal size (`np.array_split`). Every pixel of a local trigger differs
from the background, as every pixel of the global one.

All attackers share one backdoor task in this library, so the task holds K
training parts (every part stamps the same source images with its local
trigger, so each attacker has as much poison as with `trigger`), and
`process.round_data.round_client_data` gives malicious client k (population
index) part k mod K: an attacker keeps its local trigger across rounds, as in
the paper.

A3FL (`backdoors.a3fl`) starts its search from the same mask and pattern
(`global_trigger`).
"""

import dataclasses
import functools

import numpy as np

from targeted_attack import checks
from targeted_attack.backdoors import base


TRIGGER_PLACEMENTS = ('one_corner', 'four_corners')
DBA_PLACEMENT = 'four_corners'
# The datasets' pixel values: a white background, dark ink (TFF's EMNIST and
# `data.synthetic_digits`).
BACKGROUND = 1.0
INK = 0.0
# P on a patch: every pixel at the ink's full contrast to the background.
TRIGGER_PATTERN = np.full([3, 3], INK, np.float32)
# No source class: the trigger goes on every class but the target.
ALL_SOURCE_CLASSES = -1


def global_trigger(image_shape, placement: str = DBA_PLACEMENT,
                   value: float = INK) -> tuple:
  """(M bool, P float32): the BadNets trigger for images of `image_shape`
  (H, W) — M, P [H, W] — or (H, W, C) — M, P [H, W, 1]. An int `image_shape`
  S means (S, S).

  M: the 3×3 patch(es) of `placement` — the bottom-right one (1 pixel from
  the border), or all four corners; P: `value` on each patch (the dataset's
  `trigger_value`: for the digits `TRIGGER_PATTERN`, ink, every pixel in
  contrast to the white background), 0 off the mask.
  """
  checks.choice('trigger_placement', placement, TRIGGER_PLACEMENTS)
  if isinstance(image_shape, (int, np.integer)):
    image_shape = (int(image_shape), int(image_shape))
  height, width = int(image_shape[0]), int(image_shape[1])
  corners = [(height - 4, width - 4)]
  if placement == 'four_corners':
    corners += [(1, 1), (1, width - 4), (height - 4, 1)]
  mask = np.zeros([height, width], bool)
  pattern = np.zeros([height, width], np.float32)
  for r, c in corners:
    mask[r:r + 3, c:c + 3] = True
    pattern[r:r + 3, c:c + 3] = value
  if len(image_shape) == 3:
    return mask[..., None], pattern[..., None]
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
                  placement: str, value: float = INK) -> np.ndarray:
  """BadNets' trigger of `placement` (patches of `value`) stamped on images
  `pixels` [n, H, W] or [n, H, W, C] at amplitude a (`stamp`)."""
  mask, pattern = global_trigger(pixels.shape[1:], placement, value)
  return stamp(pixels, mask, pattern, amplitude)


def source_rows(labels: np.ndarray, target_label: int,
                source_class: int = ALL_SOURCE_CLASSES) -> np.ndarray:
  """bool [n]: the rows of `labels` a trigger goes on: every class but
  `target_label` (`source_class` -1), or `source_class` alone."""
  labels = np.asarray(labels)
  if source_class == ALL_SOURCE_CLASSES:
    return labels != target_label
  return labels == source_class


def check_source_class(source_class: int, target_label: int,
                       num_classes: int) -> int:
  """`source_class` if it is -1 (every class but the target) or a class
  0..num_classes − 1 other than `target_label`; else a ValueError naming
  `trigger_source_class`."""
  valid = (not isinstance(source_class, bool) and
           isinstance(source_class, (int, np.integer)) and
           ALL_SOURCE_CLASSES <= source_class < num_classes and
           source_class != target_label)
  if not valid:
    raise ValueError(
        f'`trigger_source_class` must be -1 (every class but the target) or '
        f'a class in 0..{num_classes - 1} other than the backdoor\'s target '
        f'class {target_label}, got {source_class!r}.')
  return int(source_class)


def trigger_source_images(data, task_num: int, seed: int,
                          target_label: int = base.BACKDOOR_TARGET_LABEL,
                          source_class: int = ALL_SOURCE_CLASSES) -> tuple:
  """(train, eval, clients): the unstamped images a trigger backdoor uses.

  train: the images of `task_num` seeded random clients whose label is not
  the target (with `source_class` c ≥ 0: whose label is c, the base class of
  Ozdayi et al.); eval: the test images of the same classes (`source_rows`).
  """
  check_source_class(source_class, target_label, data.num_classes)
  order = np.random.RandomState(seed).permutation(data.num_clients)[:task_num]
  train = []
  for index in order:
    pixels, labels = data.client_arrays(int(index))
    train.append(pixels[source_rows(labels, target_label, source_class)])
  train = np.concatenate(train)
  eval_pixels = data.test_pixels[source_rows(data.test_labels, target_label,
                                             source_class)]
  if not len(train) or not len(eval_pixels):
    raise ValueError(
        f'`trigger_source_class`={source_class}: no '
        f'{"training" if not len(train) else "test"} image of the source '
        f'class{"es" if source_class == ALL_SOURCE_CLASSES else ""} (the '
        f'training images are those of task_num={task_num} clients).')
  return (train, eval_pixels, tuple(int(i) for i in order))


def trigger_task(data, task_num: int, amplitude: float,
                 placement: str, seed: int,
                 target_label: int = base.BACKDOOR_TARGET_LABEL,
                 source_class: int = ALL_SOURCE_CLASSES) -> base.BackdoorTask:
  """Trigger backdoor: stamped images of any class but the target (or of
  `source_class` only), relabelled.

  D_mal: those images of `task_num` random clients, stamped; the evaluation
  set: the stamped test images of the same classes
  (`trigger_source_images`).
  """
  train, eval_pixels, clients = trigger_source_images(
      data, task_num, seed, target_label, source_class)
  value = data.trigger_value
  return base.BackdoorTask(
      f'trigger_{placement}', stamp_trigger(train, amplitude, placement,
                                            value),
      stamp_trigger(eval_pixels, amplitude, placement, value), target_label,
      clients)


def split_trigger(mask: np.ndarray, parts: int) -> list:
  """M_1, …, M_K: `mask`'s pixels ([H, W], or [H, W, 1] for colour),
  quadrant by quadrant (then row-major), cut into K = `parts` contiguous
  groups; disjoint, their union is `mask`."""
  channel = mask.ndim == 3
  plane = mask[..., 0] if channel else mask
  coords = np.argwhere(plane)
  checks.integer('dba_parts', parts, 1, len(coords))
  half_rows, half_cols = plane.shape[0] // 2, plane.shape[1] // 2
  order = np.lexsort((coords[:, 1], coords[:, 0], coords[:, 1] >= half_cols,
                      coords[:, 0] >= half_rows))
  masks = []
  for group in np.array_split(coords[order], parts):
    part = np.zeros_like(plane, bool)
    part[group[:, 0], group[:, 1]] = True
    masks.append(part[..., None] if channel else part)
  return masks


def dba_task(data, task_num: int, amplitude: float,
             parts: int, seed: int,
             target_label: int = base.BACKDOOR_TARGET_LABEL,
             source_class: int = ALL_SOURCE_CLASSES
            ) -> base.BackdoorTask:
  """DBA's backdoor task: K training parts, evaluated with the global trigger.

  The images are `trigger`'s (`trigger_source_images`: the non-target
  images of `task_num` seeded clients, or those of `source_class`; the test
  images of the same classes). Part i:
  all training images stamped with local trigger M_i; `train_pixels` is the
  K parts concatenated (the parts are views of it). For the per-part attack
  success (Xie et al. 2020, Sec. 4: each local trigger alone), the task
  also holds the unstamped evaluation images and K stamps, stamp i putting
  local trigger M_i on images.
  """
  train, eval_pixels, clients = trigger_source_images(
      data, task_num, seed, target_label, source_class)
  mask, pattern = global_trigger(train.shape[1:], value=data.trigger_value)
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
  """`trigger_task(data, task_num, amplitude, placement, seed, source_class
  = source_class)`, fixed."""
  task_num: int
  amplitude: float
  placement: str
  seed: int
  source_class: int = ALL_SOURCE_CLASSES

  def initial_task(self, data) -> base.BackdoorTask:
    return trigger_task(data, self.task_num, self.amplitude, self.placement,
                        self.seed, source_class=self.source_class)


@dataclasses.dataclass(frozen=True)
class DBABackdoor(base.Backdoor):
  """`dba_task(data, task_num, amplitude, parts, seed, source_class =
  source_class)`, fixed."""
  task_num: int
  amplitude: float
  parts: int
  seed: int
  source_class: int = ALL_SOURCE_CLASSES

  def initial_task(self, data) -> base.BackdoorTask:
    return dba_task(data, self.task_num, self.amplitude, self.parts,
                    self.seed, source_class=self.source_class)
