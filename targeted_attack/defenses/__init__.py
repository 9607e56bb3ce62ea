"""Defenses: `tff.aggregators` factories, one module per family, plus the
clients' DP-SGD.

- `plumbing`: the weighted/unweighted factory plumbing and the three ways a
  defense is written: per-client transform, server transform of the
  aggregate, robust rule over the stacked updates.
- `clipping`: means, non-finite zeroing, norm clipping, noise, weak DP.
- `robust`: distance- and order-based rules (Krum, Multi-Krum, Bulyan,
  coordinate median, trimmed mean, geometric median).
- `filtering`: filtering and reweighting defenses (robust learning rate,
  FLAME, FLTrust).
- `foolsgold`: FoolsGold, whose state (per-client histories) is keyed by
  client identity (the process's `ClientWeighting.CLIENT_ID`).
- `dp_sgd`, `fast_clipping`: client-side DP-SGD (Turner's defense).

`targeted_attack.aggregate_fn` is the public face that re-exports them.
"""
