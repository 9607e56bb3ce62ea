#!/usr/bin/env bash
# Creates and fills .venv/ at the repo root, idempotently (a stamp records the
# hash of requirements.txt; a matching stamp means there is nothing to do).
#
# requirements.txt pins every package, transitive ones included, and is installed
# with --no-deps: tensorflow-federated==0.87.0 pins jax/jaxlib==0.4.14, which the
# registry no longer serves, so pip's resolver must not see TFF's own metadata.
# jax/jaxlib 0.4.13 stand in for them (TFF imports jax at import time).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
  exit 0
fi

python="${PYTHON:-python3}"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "[ensure_venv] creating $venv with $("$python" --version)" >&2
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
echo "[ensure_venv] installing pinned requirements (first time: several minutes)" >&2
"${pip[@]}" install -q --upgrade pip==24.0
"${pip[@]}" install -q --no-deps -r "$root/requirements.txt"
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$root"
"${pip[@]}" check >&2 || echo "[ensure_venv] note: pip check reports TFF's jax pin (0.4.14); 0.4.13 is intended" >&2
echo "$want" > "$stamp"
