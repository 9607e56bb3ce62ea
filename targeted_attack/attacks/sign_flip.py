"""The sign-flipping attack (untargeted; Li et al., AAAI 2019, "RSA").

The attacker trains like a benign client and sends the opposite of its
update, Δ = −Δ_benign, pulling the global model away from the benign
direction; it has no backdoor.
"""

from targeted_attack import update_math
from targeted_attack.attacks import base


class SignFlip(base.ClientUpdateStrategy):
  """Δ = −(LocalTrain(w_t, D_trn) − w_t); its weight its number of benign
  examples."""

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    del malicious_dataset, boost_share
    benign = base.benign_update(trainer, initial_weights, benign_dataset)
    return base.ClientDelta(update_math.scale(benign.delta, -1.0),
                            benign.num_benign_examples)
