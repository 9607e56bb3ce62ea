#!/usr/bin/env bash
# Bazel, offline: installs Debian's bazel-bootstrap (Bazel 4.2.3) if missing,
# creates .venv/ if needed, then runs every Bazel test and each binary once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/ensure_venv.sh"
cd "$root"
if ! command -v bazel >/dev/null; then
  echo "[bazel_check] installing bazel-bootstrap with apt" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq bazel-bootstrap >/dev/null
fi
bazel test //...
out="$(mktemp -d)"
bazel run //targeted_attack:emnist_experiment -- --root_output_dir="$out" \
  --experiment_name=bazel --synthetic_num_clients=12 \
  --synthetic_examples_per_client=20 --model=linear --num_clients_per_round=3 \
  --num_rounds=2 --num_epochs=1 --task_num=2 --defense=clip --norm_bound=1.0
test -s "$out/bazel/metrics.csv"
bazel run //targeted_attack:emnist_with_targeted_attack -- \
  --root_output_dir="$out" --dataset=synthetic --synthetic_num_clients=12 \
  --synthetic_examples_per_client=20 --num_rounds=2 --num_epochs=1 \
  --task_num=2 --attack_freq=2 --drop_prob=0.5
test -s "$out/emnist_with_targeted_attack/metrics.csv"
rm -rf "$out"
echo "[bazel_check] bazel test //... and bazel run of both binaries passed"
