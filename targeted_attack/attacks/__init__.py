"""How a malicious update is formed, one family per module.

- `base`: the `ClientUpdateStrategy` protocol and the shared post-steps
  (Δ = w − w_t, the PGD projection, the boost and its share), D_trn ∪ D_mal
  and poisoned batches.
- `boosting`: explicit boosting, model replacement (Sun et al.).
- `pgd`: norm-bounded PGD (Sun et al.; Wang et al.), Neurotoxin.
- `bagdasaryan`: data poisoning (+ boost: A3FL's attacker), constrain-and-
  scale, train-and-scale.
- `omniscient`: ALIE, IPM, crafted from the round's benign updates.
- `sign_flip`: the sign-flipping attack, −Δ_benign (untargeted).

What the attacker trains on is the other axis: `targeted_attack.backdoors`.
"""
