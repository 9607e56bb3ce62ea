#!/usr/bin/env bash
# Produces the README's no-defense vs clip vs weak-DP table: the main job's
# configuration (an unconstrained boosted attacker every round) under each
# defense, plus a no-attack baseline. About 6 minutes on 2 CPU cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/ensure_venv.sh"
cd "$root"
out=runs/compare
run() {  # NAME FLAGS...
  local name="$1"; shift
  ./scripts/run_main.sh --root_output_dir="$out" --experiment_name="$name" "$@" \
    >/dev/null 2>"$out/$name.log" || { tail -5 "$out/$name.log" >&2; exit 1; }
}
mkdir -p "$out"
run no_attack --attack=none
run attack_no_defense --defense=none
run attack_clip --defense=clip --norm_bound=1.5
run attack_weak_dp --defense=weak_dp --l2_norm_clip=3.0 --mul_factor=0.003
.venv/bin/python scripts/summarize_runs.py "$out"/no_attack "$out"/attack_no_defense \
  "$out"/attack_clip "$out"/attack_weak_dp
