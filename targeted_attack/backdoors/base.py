"""The backdoor task: what the attacker trains on, and what it is measured on.

A backdoor says *what the attacker trains on* (its D_mal) and on which images
backdoor accuracy is measured; how the malicious update is formed is the
other axis (`targeted_attack.attacks`).
"""

import dataclasses
from typing import Optional

import numpy as np


BACKDOOR_SOURCE_LABEL = 7
BACKDOOR_TARGET_LABEL = 1


@dataclasses.dataclass(frozen=True)
class BackdoorTask:
  """What the attacker wants: `train_pixels` (its D_mal) and `eval_pixels`
  (on which backdoor accuracy is measured) classified as `target_label`.

  `train_parts`: K arrays, one per attacker group (DBA's local triggers):
  malicious client k trains on part k mod K; empty: all use `train_pixels`.
  `eval_part_stamps`: K functions, stamp k putting local trigger k on images;
  the evaluator then also measures backdoor accuracy part k on
  `eval_part_stamps[k](eval_source_pixels)` (the evaluation images before
  any trigger; DBA's per-part attack success, Xie et al. 2020, Sec. 4).
  `target_clients`: the target clients' indices (the semantic backdoor on a
  re-partitioned dataset: the target writers' indices in `data.writers`).
  `train_labels`: D_mal's labels when they are not all `target_label`
  (next-word sequences: the next tokens [n, T]); None: `target_label`.
  `eval_positions`: for sequences, the position read in each evaluation
  sequence (the backdoor sentence's last word), [n]; or [n, k], the
  positions of the last word's k characters, all k to be predicted
  (`eval_targets`, else `target_label`); None: images.
  """
  name: str
  train_pixels: np.ndarray
  eval_pixels: np.ndarray
  target_label: int = BACKDOOR_TARGET_LABEL
  target_clients: tuple = ()
  train_parts: tuple = ()
  eval_source_pixels: Optional[np.ndarray] = None
  eval_part_stamps: tuple = ()
  train_labels: Optional[np.ndarray] = None
  eval_positions: Optional[np.ndarray] = None
  eval_targets: tuple = ()


class Backdoor:
  """A backdoor over a run: its task, and how the task changes.

  The run's loop drives it:

      task = backdoor.initial_task(data)
      for each round t with attackers:
        task = backdoor.adapt(task, model_weights_t, t)   # before the round
      checkpoint:  backdoor.get_state()                   # None: nothing
      resume:      task = backdoor.restore(task, state)

  A static backdoor (the task fixed for the run) implements `initial_task`
  only and inherits the rest as no-ops; an adaptive one (A3FL) overrides
  `adapt`, `get_state` and `restore`.

  `crossbar_seven_rate`: for a backdoor that fixes how the generated writers
  draw their 7s (the edge case: how many honest writers hold crossbar 7s),
  the fraction with a crossbar; None: the dataset's default.
  `held_out_specs`: the images an index-list backdoor (Bagdasaryan et al.'s
  semantic one) takes, which no honest client holds.
  """
  crossbar_seven_rate: Optional[float] = None
  # Index lists (`semantic.parse_index_list` specs) of training images a
  # dataset with a training pool (CIFAR-10) holds out of every client.
  held_out_specs: tuple = ()
  adaptive = False  # True: `adapt` changes the task (the loop then calls it)

  def initial_task(self, data) -> BackdoorTask:
    raise NotImplementedError

  def adapt(self, task: BackdoorTask, model_weights,
            round_num: int) -> BackdoorTask:
    del model_weights, round_num
    return task

  def get_state(self) -> Optional[np.ndarray]:
    return None

  def restore(self, task: BackdoorTask, state) -> BackdoorTask:
    del state
    return task
