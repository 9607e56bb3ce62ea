#!/usr/bin/env bash
# Creates and fills .venv/ at the repo root, idempotently, with one of the two
# supported stacks, picked from the Python it finds ($PYTHON, else python3):
#   Python 3.9-3.11  -> released: TensorFlow 2.14, TFF 0.87 with its own pins
#                       (requirements/released.txt)
#   Python 3.12-3.13 -> current:  TensorFlow 2.21, tf-keras, numpy 2
#                       (requirements/current.txt + the tensorflow-estimator
#                       stand-in, third_party/tensorflow_estimator_standin)
# A stamp records the hash of what was installed; a matching stamp means there
# is nothing to do. An existing .venv/ keeps its stack unless PYTHON asks for
# another Python, which is an error (remove .venv/ to switch).
#
# Every package, transitive ones included, is pinned and installed with
# --no-deps: TFF 0.87.0 pins packages the registry no longer serves
# (jax/jaxlib 0.4.14) and, on the current stack, Python < 3.12 and TF 2.14.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
say() { echo "[ensure_venv] $*" >&2; }

python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

# A pyenv shim (`python3.12`) refuses until pyenv selects its version: fall
# back to the newest pyenv interpreter of that name.
resolve_python() {
  local name="$1"
  if python_version "$name" >/dev/null; then echo "$name"; return; fi
  if [[ "$name" != */* ]]; then
    local pyenv_root candidate
    pyenv_root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
    candidate="$(ls -d "$pyenv_root"/versions/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$candidate" ]] && python_version "$candidate" >/dev/null; then
      echo "$candidate"; return
    fi
  fi
  echo "$name"
}

stack_of() {
  case "$1" in
    3.9|3.10|3.11) echo released ;;
    3.12|3.13) echo current ;;
    *) echo none ;;
  esac
}

if [[ -x "$venv/bin/python" && -z "${PYTHON:-}" ]]; then
  python="$venv/bin/python"
else
  python="$(resolve_python "${PYTHON:-python3}")"
fi
version="$(python_version "$python")" || {
  say "cannot run '$python' (set PYTHON to a Python 3.9-3.13 interpreter)"; exit 1; }
stack="$(stack_of "$version")"
if [[ "$stack" == none ]]; then
  say "Python $version ($python) is not supported: use 3.9-3.11 (released stack, TensorFlow 2.14) or 3.12-3.13 (current stack, TensorFlow 2.21), e.g. PYTHON=python3.12"
  exit 1
fi
if [[ -x "$venv/bin/python" ]]; then
  have="$(python_version "$venv/bin/python")"
  if [[ "$have" != "$version" ]]; then
    say ".venv/ holds Python $have ($(stack_of "$have") stack) but PYTHON asks for $version: remove .venv/ (rm -rf .venv) to switch"
    exit 1
  fi
fi

requirements="$root/requirements/$stack.txt"
standin="$root/third_party/tensorflow_estimator_standin"
sources=("$requirements" "$root/pyproject.toml")
[[ "$stack" == current ]] && sources+=("$standin/pyproject.toml" "$standin/tensorflow_estimator/__init__.py")
want="$(echo "$stack $version" | cat - "${sources[@]}" | sha256sum | cut -d' ' -f1)"
case "$stack" in
  released) what="released stack: Python $version, TensorFlow 2.14, TFF 0.87 (requirements/released.txt)" ;;
  current) what="current stack: Python $version, TensorFlow 2.21 + tf-keras, TFF 0.87 (requirements/current.txt)" ;;
esac

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  say "using .venv/: $what"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  say "creating $venv with Python $version ($python)"
  "$python" -m venv "$venv"
fi
say "setting up the $what (first time: a few minutes)"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
if [[ "$stack" == released ]]; then
  "${pip[@]}" install -q --upgrade pip==24.0
  "${pip[@]}" install -q --no-deps -r "$requirements"
else
  "${pip[@]}" install -q --upgrade pip==25.3
  "${pip[@]}" install -q --no-deps --ignore-requires-python -r "$requirements"
  # Built outside the source tree, which stays clean.
  build="$(mktemp -d)"
  cp -r "$standin" "$build/standin"
  "${pip[@]}" install -q --no-deps --no-build-isolation "$build/standin"
  rm -rf "$build"
fi
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$root"
"${pip[@]}" check >/dev/null 2>&1 || say "note: pip check reports TFF's and tensorflow-privacy's own pins, which the $stack stack overrides on purpose"
echo "$want" > "$stamp"
say "ready: $what"
