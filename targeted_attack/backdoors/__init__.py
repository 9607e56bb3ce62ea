"""What the attacker trains on: one `base.Backdoor` per module.

- `base`: `BackdoorTask` (D_mal's images, the evaluation images, the target
  label) and `Backdoor`, its lifecycle over a run.
- `semantic`: the target writers' 7s → 1 (Sun et al.).
- `edge_case`: crossbar 7s → 1 (Wang et al., Attack of the Tails).
- `triggers`: the stamp, written once; BadNets' pixel pattern; DBA's
  distributed trigger.
- `a3fl`: A3FL's adaptive trigger, re-optimised every attack round.

How the update is formed is the other axis: `targeted_attack.attacks`.
"""
