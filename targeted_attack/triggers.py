"""Distributed backdoor triggers: DBA (Xie et al., ICLR 2020).

DBA (Sec. 3.1, Fig. 1): the global trigger G — a pixel mask M_G with a pattern
P on it — is decomposed into K local triggers with disjoint masks
M_1, …, M_K, ∪_i M_i = M_G. Attacker group i poisons its images with its
local trigger only,
    x_i = x + a · 1[M_i] ⊙ (P − x)        (Turner's amplitude a; a = 1 pastes),
relabelled to the target, while the backdoor is evaluated with the full
global trigger, x + a · 1[M_G] ⊙ (P − x).

Here G is the `four_corners` BadNets trigger of `data.stamp_trigger` (four
3×3 checkerboard patches, 36 pixels), the analog of the paper's four-bar
MNIST trigger: with K = 4 each local trigger is one corner patch. For other
K the 36 pixels, ordered patch by patch (top-left, top-right, bottom-left,
bottom-right; row-major within a patch), are cut into K contiguous groups of
near-equal size (`np.array_split`).

All attackers share one backdoor task in this library, so the task holds K
training parts (every part stamps the same source images with its local
trigger, so each attacker has as much poison as with `trigger`), and
`data.round_client_data` gives malicious client k (population index) part
k mod K: an attacker keeps its local trigger across rounds, as in the paper.
"""

import functools

import numpy as np

from targeted_attack import checks
from targeted_attack import data as data_lib

DBA_PLACEMENT = 'four_corners'


def global_trigger(size: int, placement: str = DBA_PLACEMENT) -> tuple:
  """(M_G bool[size, size], P float32[size, size]) of `data.stamp_trigger`.

  Read off the BadNets stamp itself, so both agree by construction: M_G is
  where stamping a constant 0.5 image at a = 1 changes it (the pattern is
  0/1), P is the stamp of a zero image (0 off the mask).
  """
  probe = np.full([size, size], 0.5, np.float32)
  mask = data_lib.stamp_trigger(probe, 1.0, placement) != 0.5
  pattern = data_lib.stamp_trigger(np.zeros([size, size], np.float32), 1.0,
                                   placement)
  return mask, pattern


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


def stamp(pixels: np.ndarray, mask: np.ndarray, pattern: np.ndarray,
          amplitude: float) -> np.ndarray:
  """x + a · 1[M] ⊙ (P − x), for images `pixels` [..., size, size]."""
  checks.number('trigger_amplitude', amplitude, 0.0, strict=True, maximum=1.0)
  pixels = np.asarray(pixels, np.float32)
  return np.where(mask, pixels + amplitude * (pattern - pixels),
                  pixels).astype(np.float32)


def dba_task(data: data_lib.FederatedDigits, task_num: int, amplitude: float,
             parts: int, seed: int,
             target_label: int = data_lib.BACKDOOR_TARGET_LABEL
            ) -> data_lib.BackdoorTask:
  """DBA's backdoor task: K training parts, evaluated with the global trigger.

  The images are `trigger`'s (`data.trigger_source_images`: the non-target
  images of `task_num` seeded clients; the non-target test images). Part i:
  all training images stamped with local trigger M_i; `train_pixels` is the
  K parts concatenated (the parts are views of it). For the per-part attack
  success (Xie et al. 2020, Sec. 4: each local trigger alone), the task
  also holds the unstamped evaluation images and K stamps, stamp i putting
  local trigger M_i on images.
  """
  train, eval_pixels, clients = data_lib.trigger_source_images(
      data, task_num, seed, target_label)
  size = train.shape[-1]
  mask, pattern = global_trigger(size)
  local = split_trigger(mask, parts)
  train_pixels = np.concatenate(
      [stamp(train, m, pattern, amplitude) for m in local])
  return data_lib.BackdoorTask(
      f'dba_{parts}', train_pixels, stamp(eval_pixels, mask, pattern,
                                          amplitude),
      target_label, clients,
      train_parts=tuple(np.split(train_pixels, parts)),
      eval_source_pixels=eval_pixels,
      eval_part_stamps=tuple(
          functools.partial(stamp, mask=m, pattern=pattern,
                            amplitude=amplitude) for m in local))
