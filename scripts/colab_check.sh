#!/usr/bin/env bash
# Runs the notebook as Colab would: a fresh Python 3.12 venv that has only
# TensorFlow ($COLAB_TENSORFLOW, default the current stack's) and what runs a
# kernel and draws (ipykernel, nbclient, matplotlib), as Colab's image does;
# then the notebook's own install cell, executed as written (it installs the
# rest from this checkout with scripts/colab_install.py), then every cell.
# Needs the package registry (or pip's cache of the current stack).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3.12}"
if ! "$python" -c '' 2>/dev/null; then  # a pyenv shim not selected: its interpreter
  pyenv_root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  python="$(ls -d "$pyenv_root"/versions/3.12*/bin/python3.12 | sort -V | tail -n 1)"
fi
tensorflow="${COLAB_TENSORFLOW:-$(sed -n 's/^tensorflow==//p' "$root/requirements/current.txt")}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"$python" -m venv "$scratch/venv"
pip=("$scratch/venv/bin/python" -m pip install -q --disable-pip-version-check)
echo "[colab_check] a fresh $("$python" --version) venv with tensorflow==$tensorflow" >&2
"${pip[@]}" "tensorflow==$tensorflow" ipykernel nbclient nbformat matplotlib
TF_CPP_MIN_LOG_LEVEL=2 "$scratch/venv/bin/python" "$root/tests/test_notebook.py" "$scratch"
