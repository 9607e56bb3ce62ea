#!/usr/bin/env bash
# The main job: creates .venv/ if needed, then runs the EMNIST attack
# experiment on the generated (offline) dataset: an unconstrained boosted
# attacker in every round, no defense. A few minutes on 2 CPU cores.
# Outputs: runs/main/ (config.json, metrics.csv, tensorboard/, plot.png).
# Extra arguments are passed to the binary, e.g. --defense=clip.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/ensure_venv.sh"
cd "$root"
exec .venv/bin/python -m targeted_attack.emnist_experiment \
  --root_output_dir=runs --experiment_name=main \
  --dataset=synthetic --synthetic_num_clients=300 \
  --num_clients_per_round=10 --num_rounds=40 --num_epochs=2 \
  --attack=unconstrained --attack_freq=1 --task_num=10 \
  --evaluate_per_rounds=5 "$@"
