"""Norm-bounded attacks: projected gradient descent around w_t.

Sun et al.'s norm-bounded boosted attack (`ClientProjectBoost`), Wang et al.'s
PGD with or without model replacement (`PGDAttack`) and Neurotoxin, PGD on
the coordinates benign clients rarely change (`Neurotoxin`). The projection
w ← w_t + Π_ε(w − w_t) is `base.project_around`; the boost, `base.boost`.
"""

from typing import Optional

import tensorflow as tf

from targeted_attack import checks
from targeted_attack import update_math
from targeted_attack.attacks import base


class ClientProjectBoost(base.ClientUpdateStrategy):
  """Norm-bounded (PGD) boosted attack (Sun et al. 2019, Sec. 3).

  From w = w_t, `round_num` times: one pass over D_trn, one pass over D_mal,
  then w ← w_t + Π_M(w − w_t), the projection onto the ℓ2 ball of radius
  M = `norm_bound` (global norm over all trainable tensors). Sends
  Δ = β · (w − w_t) (β multiplied by `boost_share`), so ‖Δ‖₂ ≤ β · M. Its
  aggregation weight is the number of benign examples in one pass; its
  training metrics, those of the first benign pass (from w_t).
  """

  def __init__(self, boost_factor: float, norm_bound: float, round_num: int):
    self.boost_factor = checks.number('boost_factor', boost_factor)
    self.norm_bound = checks.positive('norm_bound', norm_bound)
    self.round_num = checks.integer('round_num', round_num)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    trainer.assign_trainable(initial_weights)
    num_examples = tf.constant(0, tf.int64)
    for i in range(self.round_num):
      # The training metrics are those of the first benign pass, from w_t
      # (what the original reported); the later passes leave them.
      if i == 0:
        num_examples = trainer.train_pass(benign_dataset)
      else:
        num_examples = trainer.preserving_metrics(
            lambda: trainer.train_pass(benign_dataset))
      trainer.train_pass_without_metrics(malicious_dataset)
      trainer.assign_trainable(base.project_around(
          trainer.read_trainable(), initial_weights, self.norm_bound))
    return base.ClientDelta(
        base.boost(base.delta_from(trainer, initial_weights),
                   self.boost_factor, boost_share), num_examples)


def projected_sgd(trainer, initial_weights, dataset, eps: float,
                  project_frequency: int, learning_rate: float,
                  num_passes: int, mask=None):
  """Wang et al.'s PGD: the weights after `num_passes` passes of SGD.

  SGD at rate `learning_rate` on `dataset`; after each step the masked
  coordinates (m = 0 of `mask`, a structure like the weights; None: no mask)
  are reset, w ← w_t + m ⊙ (w − w_t), and every `project_frequency` steps
  (and at the end) w ← w_t + Π_ε(w − w_t), ε = `eps`.
  """
  trainer.assign_trainable(initial_weights)
  project = lambda w: base.project_around(w, initial_weights, eps)

  def after_step(step, weights):
    if mask is not None:
      weights = tf.nest.map_structure(lambda w, w0, m: w0 + m * (w - w0),
                                      weights, initial_weights, mask)
    return tf.cond(tf.equal(step % project_frequency, 0),
                   lambda: project(weights), lambda: weights)

  step = tf.constant(0, tf.int64)
  for _ in range(num_passes):
    _, step = trainer.sgd_pass(dataset, lambda t: learning_rate,
                               after_step=after_step, initial_step=step)
  return project(trainer.read_trainable())


class PGDAttack(base.ClientUpdateStrategy):
  """PGD with or without model replacement (Wang et al. 2020).

  `projected_sgd` on D_trn ∪ D_mal within ε = `eps` of w_t. With model
  replacement (`replacement_scale` β, not None), the update is then
  multiplied by β (times `boost_share`); the experiment uses ε = M/β then, so
  the sent norm is at most M.
  """

  def __init__(self, eps: float, project_frequency: int = 1,
               learning_rate: float = 0.1, num_passes: int = 1,
               replacement_scale: Optional[float] = None):
    self.eps = checks.positive('eps', eps)
    self.project_frequency = checks.integer('project_frequency',
                                            project_frequency)
    self.learning_rate = checks.positive('learning_rate', learning_rate)
    self.num_passes = checks.integer('num_passes', num_passes)
    self.replacement_scale = (None if replacement_scale is None else
                              checks.positive('replacement_scale',
                                              replacement_scale))

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    final = projected_sgd(
        trainer, initial_weights,
        base.trainer_union(trainer, benign_dataset, malicious_dataset),
        self.eps, self.project_frequency, self.learning_rate, self.num_passes)
    delta = update_math.subtract(final, initial_weights)
    return base.ClientDelta(
        base.boost(delta, self.replacement_scale, boost_share),
        base.count_examples(benign_dataset))


def top_k_mask(estimate, mask_ratio: float):
  """m: 0 on the ⌊ρ·d⌋ coordinates of largest |estimate|, 1 elsewhere.

  Over all tensors of `estimate` taken as one vector of d coordinates
  (ρ = `mask_ratio`); a structure like `estimate`.
  """
  flat = update_math.flatten_to_vector(estimate)
  size = int(flat.shape[0])
  k = int(mask_ratio * size)
  mask = tf.ones([size], tf.float32)
  if k > 0:
    _, indices = tf.math.top_k(tf.abs(flat), k)
    mask = tf.tensor_scatter_nd_update(mask, indices[:, tf.newaxis],
                                       tf.zeros([k], tf.float32))
  return update_math.unflatten_like(mask, estimate)


NEUROTOXIN_MASK_SOURCES = ('global_gradient', 'benign_update')


class Neurotoxin(base.ClientUpdateStrategy):
  """Neurotoxin (Zhang et al., ICML 2022, Sec. 3, Alg. 1).

  Mask m over all d coordinates: m_j = 0 for the ⌊ρ·d⌋ coordinates of largest
  |e_j|, e the estimate of the coordinates benign clients change most
  (ρ = `mask_ratio`), 1 elsewhere. From w = w_t, SGD at rate
  η = `learning_rate` on D_trn ∪ D_mal with masked gradients,
      w ← w − η · m ⊙ ∇L(w),
  and every `project_frequency` steps (and at the end)
  w ← w_t + Π_ε(w − w_t), the ℓ2 ball of radius ε = `eps` (Wang et al.'s
  PGD, as in the paper: `projected_sgd` with the mask). Sends Δ = w − w_t: 0
  on the masked coordinates, ‖Δ‖₂ ≤ ε. Its aggregation weight is its number
  of benign examples.

  The estimate e (`mask_source`):
  - 'global_gradient' (the authors' code, `grad_mask_cv`): the global
    model's gradient on clean data, summed over its batches,
    e = Σ_b ∇L(b; w_t). The authors sum it over the clean data of 30
    randomly chosen participants; a client's stateless work here holds only
    its own, so b runs over the attacker's D_trn.
  - 'benign_update': e = LocalTrain(w_t, D_trn) − w_t, the attacker's own
    benign update of this round (this project's rule before 0.4.0): the
    paper's text masks the top-k% of the last global update w_t − w_{t−1},
    which benign clients' updates from w_t approximate.
  Masking the gradient with a 0/1 mask is applied as w ← w_t + m ⊙ (w − w_t)
  after each step: the masked coordinates never leave w_t, so the two are
  identical.
  """

  def __init__(self, mask_ratio: float, eps: float,
               project_frequency: int = 1, learning_rate: float = 0.1,
               num_passes: int = 1, mask_source: str = 'global_gradient'):
    self.mask_ratio = checks.number('mask_ratio', mask_ratio, 0.0,
                                    maximum=1.0, strict_max=True)
    self.eps = checks.positive('eps', eps)
    self.project_frequency = checks.integer('project_frequency',
                                            project_frequency)
    self.learning_rate = checks.positive('learning_rate', learning_rate)
    self.num_passes = checks.integer('num_passes', num_passes)
    if mask_source not in NEUROTOXIN_MASK_SOURCES:
      raise ValueError(f'`mask_source` must be one of '
                       f'{NEUROTOXIN_MASK_SOURCES}, got {mask_source!r}.')
    self.mask_source = mask_source

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    del boost_share
    if self.mask_source == 'global_gradient':
      trainer.assign_trainable(initial_weights)
      estimate = trainer.summed_gradient(benign_dataset)
      num_examples = base.count_examples(benign_dataset)
    else:
      benign = base.benign_update(trainer, initial_weights, benign_dataset)
      estimate, num_examples = benign.delta, benign.num_benign_examples
    final = projected_sgd(
        trainer, initial_weights,
        base.trainer_union(trainer, benign_dataset, malicious_dataset),
        self.eps, self.project_frequency, self.learning_rate, self.num_passes,
        mask=top_k_mask(estimate, self.mask_ratio))
    return base.ClientDelta(update_math.subtract(final, initial_weights),
                            num_examples)
