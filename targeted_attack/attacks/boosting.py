"""Boosted attacks: explicit boosting and model replacement (Sun et al. 2019).

With β = Σ_k n_k / (η n_k) the boosted update replaces the global model:
w_{t+1} ≈ w* (Bagdasaryan et al. 2018, Eq. 3). β is multiplied by the
client's `boost_share` (`base.boost`).
"""

from targeted_attack import checks
from targeted_attack import update_math
from targeted_attack.attacks import base


class ClientExplicitBoosting(base.ClientUpdateStrategy):
  """Explicit boosting, as in the original research code.

  Δ = Δ_benign + β · Δ_mal, where Δ_benign = LocalTrain(w_t, D_trn) − w_t
  and Δ_mal = LocalTrain(w_t, D_mal) − w_t are trained separately from w_t
  (β multiplied by `boost_share`), D_mal the malicious dataset it is given:
  the original code trains Δ_mal on that dataset alone (its script passed
  the target examples). The experiment's `--attack=unconstrained` hands it
  D_trn ∪ D_mal instead (`base.OnUnion`), Sun et al.'s reading (the
  attacker trains on its data plus the backdoor). Sun et al.'s Eq. 1 sends
  β(w* − w_t) alone: that is `ModelReplacement`.
  """

  def __init__(self, boost_factor: float = 1.0):
    self.boost_factor = checks.number('boost_factor', boost_factor)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    benign = base.benign_update(trainer, initial_weights, benign_dataset)
    trainer.assign_trainable(initial_weights)
    trainer.train_pass_without_metrics(malicious_dataset)
    boosted = base.boost(base.delta_from(trainer, initial_weights),
                         self.boost_factor, boost_share)
    return base.ClientDelta(
        update_math.add_scaled(benign.delta, boosted, 1.0),
        benign.num_benign_examples)


class ModelReplacement(base.ClientUpdateStrategy):
  """Boosted model replacement (Sun et al. 2019, Eq. 1; Bagdasaryan Eq. 3).

  w* = LocalTrain(w_t, D_trn ∪ D_mal); Δ = β · (w* − w_t) (β multiplied by
  `boost_share`). With β = Σ_k n_k / (η n_k), w_{t+1} ≈ w*. Its aggregation
  weight is the number of benign examples in one pass.
  """

  def __init__(self, boost_factor: float):
    self.boost_factor = checks.positive('boost_factor', boost_factor)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    trainer.assign_trainable(initial_weights)
    trainer.train_pass_without_metrics(
        base.trainer_union(trainer, benign_dataset, malicious_dataset))
    return base.ClientDelta(
        base.boost(base.delta_from(trainer, initial_weights),
                   self.boost_factor, boost_share),
        base.count_examples(benign_dataset))
