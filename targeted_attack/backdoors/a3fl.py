"""A3FL: adversarially adaptive backdoor triggers (Zhang et al., NeurIPS 2023).

A3FL (Zhang, Jia, Chen, Lin, Wu, "A3FL: Adversarially Adaptive Backdoor
Attacks to Federated Learning", Sec. 4) optimises the trigger δ against the
current global model θ_t *and* against an adversarially adapted copy θ'_t
that simulates how the benign training of the coming rounds would remove the
backdoor:

    θ'_t = argmin_θ E_{(x, y) ∈ D_att} CE(f_θ(x ⊕ δ), y)          (unlearning,
           a few SGD steps from θ_t on triggered inputs with TRUE labels)
    δ*   = argmin_δ E_{x ∈ D_att} [ CE(f_{θ_t}(x ⊕ δ), ỹ)
                                    + λ · CE(f_{θ'_t}(x ⊕ δ), ỹ) ]

with ỹ the target label and x ⊕ δ = (1 − m) ⊙ x + m ⊙ δ the stamp of the
pattern δ on the mask m. The search, as the authors' `search_trigger`
(`fl_utils/attacker.py`), runs `outer_iterations` K iterations; iteration k:
- for k ≥ 1 (the authors skip the first), θ' ← θ_t and θ' is trained for
  `unlearn_passes` passes over D_att by SGD (rate `unlearn_lr`) on
  CE(f_θ'(x ⊕ δ), y), the TRUE labels (it unlearns the current δ); its weight
  in the loss is λ · s, λ = `lam` (the authors' 0.01) and s the similarity
  of θ' and θ_t: the mean over the model's layers of cos(g'_ℓ, g_ℓ), g' the
  gradient of θ''s last unlearning batch, g θ_t's gradient of CE(f_θt(x ⊕ δ),
  ỹ) on that batch (the authors average over conv layers; here every layer's
  kernel). With `similarity_weighted=False`, the weight is λ alone;
- `trigger_passes` passes over D_att of sign-gradient (PGD) steps

    δ ← clip(δ − α · sign(∇_δ L(δ)), lo, hi),   [lo, hi] = [0, 1] pixels,

  α = `trigger_lr`, L the objective above on a minibatch (its second term
  from k ≥ 1). ∇_δ L vanishes off the mask, so δ changes only on m.
The attacker then trains ordinarily on poisoned data with the optimised
trigger (`attacks.bagdasaryan.DataPoisoning` with a boost, `--attack=a3fl`).

The authors' budget is the default: K = 200, 5 unlearning epochs, one pass of
trigger steps per iteration, λ = 0.01 scaled by s; their step 0.01 is in
CIFAR's normalised units (std ≈ 0.2 per channel), 0.002 in pixels here.
The studies' `smoke` scale overrides it with a cheap search.

Where the trigger is optimised. A3FL's attacker receives θ_t every round it
is selected and keeps its trigger across rounds (the authors' code stores it
in the attacker and resumes from it). TFF's client work runs in the C++
runtime, sees only θ_t and its datasets and keeps no state, and a trigger
optimised there could not reach the evaluator. So the optimisation is done by
the simulation, as the attacker with θ_t would, between rounds:
`AdaptiveTrigger(task, weights_of_θ_t, round)` runs before every round that
has attackers (`A3FLBackdoor.adapt`, which the round loop calls),
re-stamps the attackers' D_mal *and* the backdoor evaluation set with the
new δ, and keeps δ for the next attack round. Backdoor accuracy is
therefore always measured with the trigger the attackers last trained on.

Choices, where this differs from the authors' code:
- s: the authors' θ_t gradient is whatever `.grad` the trigger steps
  accumulated on the global model; here it is the gradient on the last
  unlearning batch. One adversarial copy (the authors' `dm_adv_model_count`
  is 1 too).
- θ' is trained with plain SGD (the code: momentum 0.9, weight decay 5e-4)
  and both models are run with `training=False` (no dropout), so the trigger
  is a deterministic function of θ_t, δ, the data and the seed.
- The mask is the `trigger_placement` patch(es) of the BadNets trigger and δ
  starts as its pattern (`triggers.TRIGGER_PATTERN`, every pixel in contrast
  to the white background), so before the first attack round the backdoor
  equals the 'trigger' backdoor at amplitude 1.
- D_att, the attacker's images, are the non-target images (or those of
  `trigger_source_class`) of the task's `task_num` clients (those the
  'trigger' backdoor stamps), with their labels.
- δ is checkpointed with the run (`get_state`, `restore`): a resumed run goes
  on from the last trigger.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from targeted_attack import checks
from targeted_attack.backdoors import base
from targeted_attack.backdoors import triggers
from targeted_attack.process import models

PIXEL_RANGE = (0.0, 1.0)


def _cross_entropy(model, pixels, labels):
  logits = model(models.model_input(pixels), training=False)
  return tf.reduce_mean(
      tf.keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                      from_logits=True))


def trigger_step(model, adversarial_model, pixels, delta, mask,
                 target_label: int, lam, step_size: float,
                 pixel_range=PIXEL_RANGE):
  """One PGD step on δ: clip(δ − α · sign(∇_δ L), lo, hi).

  L = CE(f_θ(x ⊕ δ), ỹ) + λ · CE(f_θ'(x ⊕ δ), ỹ), the mean over the batch
  `pixels` [N, H, W] (the second term is left out when `adversarial_model`
  is None); `mask` m and `delta` δ are [H, W] float32.
  """
  delta = tf.convert_to_tensor(delta, tf.float32)
  targets = tf.fill([tf.shape(pixels)[0]], tf.constant(target_label,
                                                        tf.int64))
  with tf.GradientTape() as tape:
    tape.watch(delta)
    stamped = triggers.stamp(pixels, mask, delta)
    loss = _cross_entropy(model, stamped, targets)
    if adversarial_model is not None:
      loss += lam * _cross_entropy(adversarial_model, stamped, targets)
  gradient = tape.gradient(loss, delta)
  return tf.clip_by_value(delta - step_size * tf.sign(gradient),
                          pixel_range[0], pixel_range[1])


def unlearn_step(adversarial_model, pixels, labels, delta, mask,
                 learning_rate: float):
  """One SGD step of θ' on CE(f_θ'(x ⊕ δ), y), y the TRUE labels; returns
  the step's gradient (a list, one tensor per variable of θ')."""
  variables = adversarial_model.trainable_variables
  with tf.GradientTape() as tape:
    loss = _cross_entropy(adversarial_model, triggers.stamp(pixels, mask, delta),
                          labels)
  gradients = tape.gradient(loss, variables)
  for variable, gradient in zip(variables, gradients):
    variable.assign_sub(learning_rate * gradient)
  return gradients


def gradient_similarity(model, adversarial_gradients, pixels, delta, mask,
                        target_label: int):
  """s = mean over kernels ℓ of cos(g'_ℓ, g_ℓ), g = ∇_θ CE(f_θ(x ⊕ δ), ỹ).

  `adversarial_gradients` g': θ''s gradient (as `unlearn_step` returns), one
  per variable of `model`; the kernels are the variables of rank ≥ 2.
  """
  variables = model.trainable_variables
  targets = tf.fill([tf.shape(pixels)[0]], tf.constant(target_label,
                                                        tf.int64))
  with tf.GradientTape() as tape:
    loss = _cross_entropy(model, triggers.stamp(pixels, mask, delta), targets)
  cosines = []
  for variable, g, g_adv in zip(variables, tape.gradient(loss, variables),
                                adversarial_gradients):
    if variable.shape.rank >= 2:
      g, g_adv = tf.reshape(g, [-1]), tf.reshape(g_adv, [-1])
      cosines.append(tf.math.divide_no_nan(
          tf.reduce_sum(g * g_adv), tf.norm(g) * tf.norm(g_adv)))
  return tf.reduce_mean(tf.stack(cosines))


@dataclasses.dataclass(frozen=True)
class A3FLSettings:
  """The trigger search of one attack round (see the module docstring); the
  defaults are the authors' (`main/configs/config.yaml`)."""
  outer_iterations: int = 200
  trigger_passes: int = 1
  trigger_lr: float = 0.002
  lam: float = 0.01
  similarity_weighted: bool = True
  unlearn_passes: int = 5
  unlearn_lr: float = 0.01
  batch_size: int = 64

  def __post_init__(self):
    checks.integer('a3fl_outer_iterations', self.outer_iterations)
    checks.integer('a3fl_trigger_passes', self.trigger_passes)
    checks.positive('a3fl_trigger_lr', self.trigger_lr)
    checks.number('a3fl_lambda', self.lam, 0.0)
    checks.integer('a3fl_unlearn_passes', self.unlearn_passes, 0)
    checks.positive('a3fl_unlearn_lr', self.unlearn_lr)
    checks.integer('a3fl_batch_size', self.batch_size)


class AdaptiveTrigger:
  """A3FL's trigger search, run by the simulation before each attack round.

  `self(task, model_weights, round_num)` assigns θ_t (anything with
  `assign_weights_to`, e.g. `tff.learning.models.ModelWeights`) to a Keras
  model, alternates unlearning and trigger steps (`search`), keeps the new
  δ and returns `task` with its training images (the attackers' D_mal) and
  its evaluation images stamped with it. Minibatches are drawn from a
  permutation seeded by (seed, round).
  """

  def __init__(self, model_name: str, pixels, labels, eval_pixels, mask,
               initial_delta, target_label: int, settings: A3FLSettings,
               seed: int, name: str = 'a3fl', source_clients: tuple = (),
               num_classes: int = 10):
    self.settings = settings
    self.name = name
    self.source_clients = tuple(source_clients)
    self.target_label = int(target_label)
    self.seed = int(seed)
    self.mask = tf.constant(np.asarray(mask, np.float32))
    self.delta = tf.constant(np.asarray(initial_delta, np.float32))
    self._pixels = np.asarray(pixels, np.float32)
    self._labels = np.asarray(labels, np.int64)
    self._eval_pixels = np.asarray(eval_pixels, np.float32)
    image_shape = self._pixels.shape[1:]
    self.model = models.create_keras_model(model_name, num_classes,
                                           image_shape=image_shape)
    self.adversarial_model = models.create_keras_model(
        model_name, num_classes, image_shape=image_shape)
    s = settings
    spec = tf.TensorSpec([None] + list(self._pixels.shape[1:]), tf.float32)
    delta_spec = tf.TensorSpec(self._pixels.shape[1:], tf.float32)
    scalar = tf.TensorSpec([], tf.float32)
    self._trigger_step = tf.function(
        lambda x, d, lam: trigger_step(self.model, self.adversarial_model, x,
                                       d, self.mask, self.target_label, lam,
                                       s.trigger_lr),
        input_signature=[spec, delta_spec, scalar])
    self._global_trigger_step = tf.function(
        lambda x, d: trigger_step(self.model, None, x, d, self.mask,
                                  self.target_label, 0.0, s.trigger_lr),
        input_signature=[spec, delta_spec])
    self._unlearn_step = tf.function(
        lambda x, y, d: unlearn_step(self.adversarial_model, x, y, d,
                                     self.mask, s.unlearn_lr),
        input_signature=[spec, tf.TensorSpec([None], tf.int64), delta_spec])
    gradient_specs = [tf.TensorSpec(v.shape, v.dtype)
                      for v in self.adversarial_model.trainable_variables]
    self._similarity = tf.function(
        lambda x, d, g: gradient_similarity(self.model, g, x, d, self.mask,
                                            self.target_label),
        input_signature=[spec, delta_spec, gradient_specs])

  def _pass(self, rng):
    """One pass over D_att: the minibatch indices of a fresh permutation
    (full minibatches only; one of all images when there are fewer)."""
    n = len(self._pixels)
    size = min(self.settings.batch_size, n)
    order = rng.permutation(n)
    return [order[start:start + size]
            for start in range(0, n - size + 1, size)]

  def search(self, delta, round_num: int = 0):
    """δ after the K iterations, from `delta`, against `self.model` (θ_t)."""
    s = self.settings
    rng = np.random.default_rng([self.seed, round_num, 0xa3f1])
    delta = tf.convert_to_tensor(delta, tf.float32)
    for iteration in range(s.outer_iterations):
      weight = None
      if iteration > 0 and s.unlearn_passes > 0:
        for copy, w in zip(self.adversarial_model.weights,
                           self.model.weights):
          copy.assign(w)                                      # θ' ← θ_t
        for _ in range(s.unlearn_passes):
          for b in self._pass(rng):
            gradients = self._unlearn_step(self._pixels[b], self._labels[b],
                                           delta)
        weight = s.lam
        if s.similarity_weighted:
          weight *= float(self._similarity(self._pixels[b], delta, gradients))
      for _ in range(s.trigger_passes):
        for b in self._pass(rng):
          if weight is None:
            delta = self._global_trigger_step(self._pixels[b], delta)
          else:
            delta = self._trigger_step(self._pixels[b], delta,
                                       tf.constant(weight, tf.float32))
    return delta

  def stamped(self, pixels) -> np.ndarray:
    return np.asarray(triggers.stamp(np.asarray(pixels, np.float32), self.mask,
                                     self.delta))

  def initial_task(self) -> base.BackdoorTask:
    """The backdoor task stamped with the current δ (δ₀ before any round)."""
    return base.BackdoorTask(
        self.name, self.stamped(self._pixels),
        self.stamped(self._eval_pixels), self.target_label,
        self.source_clients)

  def __call__(self, task: base.BackdoorTask, model_weights,
               round_num: int) -> base.BackdoorTask:
    model_weights.assign_weights_to(self.model)
    return self.restore(task, self.search(self.delta, round_num))

  def get_state(self) -> np.ndarray:
    """δ, for the run's checkpoint."""
    return np.asarray(self.delta)

  def restore(self, task: base.BackdoorTask,
              delta) -> base.BackdoorTask:
    """Sets δ (e.g. from a checkpoint); `task` stamped with it."""
    self.delta = tf.constant(np.asarray(delta, np.float32))
    return dataclasses.replace(task, train_pixels=self.stamped(self._pixels),
                               eval_pixels=self.stamped(self._eval_pixels))


def adaptive_trigger(data, task_num: int,
                     placement: str, model_name: str, settings: A3FLSettings,
                     seed: int,
                     target_label: int = base.BACKDOOR_TARGET_LABEL,
                     source_class: int = triggers.ALL_SOURCE_CLASSES
                    ) -> AdaptiveTrigger:
  """The 'a3fl' backdoor's trigger search, δ₀ the BadNets pattern.

  D_att: the non-target images (or those of `source_class`) of `task_num`
  seeded clients (`triggers.trigger_source_images`, the 'trigger'
  backdoor's) with their true labels; evaluation: the test images of the
  same classes; m, δ₀: the mask and pattern of `placement`
  (`triggers.global_trigger`: every pixel in contrast to the background).
  """
  train, eval_pixels, clients = triggers.trigger_source_images(
      data, task_num, seed, target_label, source_class)
  labels = []
  for k in clients:
    client_labels = data.client_arrays(k)[1]
    labels.append(client_labels[triggers.source_rows(
        client_labels, target_label, source_class)])
  mask, pattern = triggers.global_trigger(train.shape[1:], placement,
                                          data.trigger_value)
  # δ has the images' shape (one value per pixel and channel).
  pattern = np.broadcast_to(pattern, train.shape[1:]).copy()
  return AdaptiveTrigger(model_name, train, np.concatenate(labels),
                         eval_pixels, mask, pattern, target_label, settings,
                         seed, name=f'a3fl_{placement}',
                         source_clients=clients,
                         num_classes=data.num_classes)


class A3FLBackdoor(base.Backdoor):
  """The 'a3fl' backdoor: its task is re-stamped with the trigger the
  attackers optimise against w_t before every round with attackers
  (`AdaptiveTrigger`, built from the data by `adaptive_trigger`); δ is the
  state a checkpoint keeps."""
  adaptive = True

  def __init__(self, task_num: int, placement: str, model_name: str,
               settings: A3FLSettings, seed: int,
               source_class: int = triggers.ALL_SOURCE_CLASSES):
    self.task_num = task_num
    self.placement = placement
    self.model_name = model_name
    self.settings = settings
    self.seed = seed
    self.source_class = source_class
    self.trigger = None  # an AdaptiveTrigger, once the data is known

  def initial_task(self, data) -> base.BackdoorTask:
    self.trigger = adaptive_trigger(data, self.task_num, self.placement,
                                    self.model_name, self.settings, self.seed,
                                    source_class=self.source_class)
    return self.trigger.initial_task()

  def adapt(self, task, model_weights, round_num):
    return self.trigger(task, model_weights, round_num)

  def get_state(self):
    return self.trigger.get_state()

  def restore(self, task, state):
    return self.trigger.restore(task, state)
