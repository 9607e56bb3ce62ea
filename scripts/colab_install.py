"""Installs targeted-attack beside an environment's own TensorFlow (Colab's).

Run by the notebook's first cell with the kernel's Python:

  python scripts/colab_install.py

The current stack (requirements/current.txt) is the reference. What it does:
- TensorFlow: kept where its version is one the current stack fits
  (`FITTING_TENSORFLOW`), so no second TensorFlow is installed; otherwise the
  current stack's TensorFlow and tf-keras are installed, and the runtime must
  be restarted.
- tf-keras: installed at the TensorFlow's own version where missing or
  mismatched (TFF 0.87 needs Keras 2; TF_USE_LEGACY_KERAS=1 selects it).
- `MUST_MATCH` (TFF, tensorflow-privacy, jax/jaxlib, dp-accounting): the
  current stack's pins, whatever is installed: TFF imports jax's
  `xla_client`, which newer jax removed.
- Every other pin of the current stack: installed only where the package is
  missing; what the environment has is kept.
- The tensorflow-estimator stand-in where `tensorflow_estimator` cannot
  import, then this project (editable).
All with `--no-deps` (TFF's own pins ask for TensorFlow 2.14 and Python <
3.12). Prints each decision, and what it left as it was.
"""

import importlib.metadata
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CURRENT = os.path.join(ROOT, 'requirements', 'current.txt')
STANDIN = os.path.join(ROOT, 'third_party', 'tensorflow_estimator_standin')
# TensorFlow minor versions the current stack runs on, each with its tf-keras.
FITTING_TENSORFLOW = {'2.19': '2.19.0', '2.20': '2.20.1', '2.21': '2.21.0'}
MUST_MATCH = ('tensorflow-federated', 'tensorflow-privacy', 'jax', 'jaxlib',
              'dp-accounting')
# Kept as the environment has them (with TensorFlow, or irrelevant to a run).
LEFT_ALONE = ('tensorflow', 'tf-keras', 'keras', 'pip')


def canonical(name: str) -> str:
  return re.sub(r'[-_.]+', '-', name).lower()


def read_pins(path: str = CURRENT) -> dict:
  """{canonical name: version} of a `name==version` requirements file."""
  pins = {}
  with open(path) as f:
    for line in f:
      line = line.split('#', 1)[0].strip()
      if line:
        name, version = line.split('==')
        pins[canonical(name)] = version.strip()
  return pins


def installed_version(name: str):
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def minor(version: str) -> str:
  return '.'.join(version.split('.')[:2])


def plan(pins: dict, installed) -> tuple:
  """(requirements to install, notes, whether to restart), given
  `installed(name) -> version or None`."""
  wanted, notes = [], []
  restart = False
  tf_version = installed('tensorflow')
  if tf_version and minor(tf_version) in FITTING_TENSORFLOW:
    notes.append(f'keeping TensorFlow {tf_version}')
    keras_version = FITTING_TENSORFLOW[minor(tf_version)]
  else:
    wanted.append(f'tensorflow=={pins["tensorflow"]}')
    keras_version = pins['tf-keras']
    restart = tf_version is not None
    notes.append(f'TensorFlow {tf_version or "(none)"} is not one the current '
                 f'stack fits ({", ".join(FITTING_TENSORFLOW)}): installing '
                 f'{pins["tensorflow"]}')
  have_keras = installed('tf-keras')
  if have_keras is None or minor(have_keras) != minor(keras_version):
    wanted.append(f'tf-keras=={keras_version}')
  else:
    notes.append(f'keeping tf-keras {have_keras}')
  for name, version in sorted(pins.items()):
    if name in LEFT_ALONE:
      continue
    have = installed(name)
    if have is None or (name in MUST_MATCH and have != version):
      wanted.append(f'{name}=={version}')
  kept = {n: installed(n) for n, v in sorted(pins.items())
          if n not in LEFT_ALONE and n not in MUST_MATCH and
          installed(n) not in (None, v)}
  if kept:
    notes.append('keeping the environment\'s own ' + ', '.join(
        f'{n} {v}' for n, v in kept.items()))
  return wanted, notes, restart


def pip(*args) -> None:
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                  '--disable-pip-version-check', '--no-deps', *args],
                 check=True)


def estimator_imports() -> bool:
  return subprocess.run(
      [sys.executable, '-c', 'import tensorflow_estimator.python.estimator'],
      env=dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='3'),
      capture_output=True).returncode == 0


def main() -> int:
  wanted, notes, restart = plan(read_pins(), installed_version)
  for note in notes:
    print(f'[colab_install] {note}')
  if wanted:
    print(f'[colab_install] installing {len(wanted)}: {" ".join(wanted)}')
    pip('--ignore-requires-python', *wanted)
  if not estimator_imports():
    print('[colab_install] installing the tensorflow-estimator stand-in')
    pip('--no-build-isolation', STANDIN)
  pip('--no-build-isolation', '-e', ROOT)
  if restart:
    print('[colab_install] TensorFlow was replaced: restart the runtime '
          '(Runtime > Restart session), then run the cells below.')
  print('[colab_install] done')
  return 0


if __name__ == '__main__':
  sys.exit(main())
