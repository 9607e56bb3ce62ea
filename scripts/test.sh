#!/usr/bin/env bash
# Runs the test suite (creating .venv/ first if needed) on two processes
# (pytest-xdist; TEST_WORKERS=0 runs it in this one), then checks that no
# TFF worker_binary was left behind. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/ensure_venv.sh"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
workers() { pgrep -f 'worker_binary --port' | sort || true; }
before="$(workers)"
status=0
workers_flags=()
if [[ "${TEST_WORKERS:-2}" != 0 ]]; then
  # One file's tests stay on one process (its module fixtures built once).
  workers_flags=(-n "${TEST_WORKERS:-2}" --dist loadfile)
fi
# (The guarded expansion: an empty array under `set -u` fails in bash < 4.4.)
.venv/bin/python -m pytest ${workers_flags[@]+"${workers_flags[@]}"} \
  "${@:-tests}" || status=$?
sleep 1
# Workers started during the tests and still running (others are not ours).
left="$(comm -13 <(echo "$before") <(workers) | tr '\n' ' ')"
if [[ -n "${left// /}" ]]; then
  echo "FAILED: TFF worker_binary processes left running: $left" >&2
  exit 1
fi
exit $status
