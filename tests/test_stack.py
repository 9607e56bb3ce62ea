"""The two supported stacks: the set-up picks one from the Python it finds,
the installed packages are the stack's pins, Keras 2 is selected (or one clear
error says what to do), the estimator stand-in imports and refuses use, and
the notebook's install plan keeps the environment's own TensorFlow."""

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = 'released' if sys.version_info < (3, 12) else 'current'
ENSURE_VENV = os.path.join(ROOT, 'scripts', 'ensure_venv.sh')


def _load_colab_install():
  spec = importlib.util.spec_from_file_location(
      'colab_install', os.path.join(ROOT, 'scripts', 'colab_install.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _pins(name):
  """The stack file's pins, read by the notebook's installer."""
  return _load_colab_install().read_pins(
      os.path.join(ROOT, 'requirements', name))


def test_every_installed_package_is_the_stack_pin():
  pins = _pins(f'{STACK}.txt')
  assert len(pins) > 80  # every package, transitive ones included
  wrong = {p: (v, importlib.metadata.version(p)) for p, v in pins.items()
           if importlib.metadata.version(p) != v}
  assert not wrong, wrong


def _fake_python(tmp_path, version):
  """An executable that answers the set-up's version probe with `version`."""
  path = tmp_path / f'python{version}'
  path.write_text(f'#!/bin/sh\necho {version}\n')
  path.chmod(0o755)
  return str(path)


@pytest.mark.parametrize('version', ['3.8', '3.14'])
def test_set_up_refuses_an_unsupported_python_in_one_line(tmp_path, version):
  result = subprocess.run([ENSURE_VENV], capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=_fake_python(
                              tmp_path, version)))
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, lines
  assert f'Python {version}' in lines[0] and 'not supported' in lines[0]
  assert '3.9-3.11' in lines[0] and '3.12-3.13' in lines[0]


@pytest.mark.skipif(os.path.realpath(sys.prefix) != os.path.realpath(
    os.path.join(ROOT, '.venv')), reason='the suite runs outside .venv/')
def test_set_up_keeps_the_venv_stack_unless_asked_for_another(tmp_path):
  other = '3.12' if STACK == 'released' else '3.11'
  result = subprocess.run([ENSURE_VENV], capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=_fake_python(
                              tmp_path, other)))
  assert result.returncode == 1
  assert f'asks for {other}' in result.stderr
  assert 'rm -rf .venv' in result.stderr
  # Without PYTHON, the existing venv's stack is reused and named.
  result = subprocess.run([ENSURE_VENV], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items()
                               if k != 'PYTHON'})
  assert result.returncode == 0, result.stderr
  version = '%d.%d' % sys.version_info[:2]
  assert f'{STACK} stack: Python {version}' in result.stderr


def test_importing_the_package_gives_keras_2_to_tff():
  code = ('import targeted_attack\n'
          'import tensorflow as tf\n'
          'from targeted_attack.process import models\n'
          'model = models.create_keras_model("linear")\n'
          'print(type(model).__module__)\n')
  env = {k: v for k, v in os.environ.items() if k != 'TF_USE_LEGACY_KERAS'}
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env=env, check=True)
  module = result.stdout.strip().splitlines()[-1]
  # Keras 2's classes live in keras.src.engine (TF 2.14) or tf_keras.src.engine.
  assert re.match(r'(tf_)?keras\.src\.engine\.', module), module


@pytest.mark.skipif(STACK == 'released',
                    reason='TensorFlow 2.14 has only Keras 2: no Keras 3 to refuse')
def test_keras_3_gets_one_clear_error():
  code = ('import tensorflow as tf\n'
          'from targeted_attack.process import models\n'
          'models.create_keras_model("linear")\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env=dict(os.environ,
                                              TF_USE_LEGACY_KERAS='0'))
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('targeted_attack.legacy_keras.KerasVersionError: '
                         'tf.keras is Keras 3'), last
  assert 'TF_USE_LEGACY_KERAS=1' in last and 'tf-keras' in last


@pytest.mark.skipif(STACK == 'released',
                    reason='the released stack has the real tensorflow-estimator')
def test_estimator_standin_imports_and_refuses_use():
  import tensorflow_estimator  # pylint: disable=g-import-not-at-top
  assert tensorflow_estimator.STANDIN
  # What tensorflow_privacy imports at load, and its DP estimator.
  from tensorflow_privacy.privacy.estimators import dnn  # pylint: disable=g-import-not-at-top
  from tensorflow_estimator.python.estimator.mode_keys import ModeKeys  # pylint: disable=g-import-not-at-top
  assert ModeKeys.TRAIN is ModeKeys.TRAIN
  with pytest.raises(tensorflow_estimator.EstimatorUnavailableError,
                     match='DNNClassifier cannot be used'):
    dnn.DNNClassifier(hidden_units=[4], feature_columns=[])
  assert importlib.metadata.version('tensorflow-estimator').endswith(
      '+targetedattack.standin')


def _plan(installed):
  colab_install = _load_colab_install()
  pins = colab_install.read_pins()
  wanted, notes, restart = colab_install.plan(pins, installed.get)
  return pins, wanted, notes, restart


def test_colab_plan_keeps_a_fitting_tensorflow_and_installs_the_rest():
  installed = {'tensorflow': '2.19.1', 'numpy': '2.0.2', 'jax': '0.7.2',
               'jaxlib': '0.7.2', 'tf-keras': '2.19.0', 'matplotlib': '3.10.0'}
  pins, wanted, notes, restart = _plan(installed)
  names = {w.split('==')[0] for w in wanted}
  assert not restart
  assert 'tensorflow' not in names and 'tf-keras' not in names
  assert 'numpy' not in names and 'matplotlib' not in names  # Colab's own
  assert f'jax=={pins["jax"]}' in wanted and f'jaxlib=={pins["jaxlib"]}' in wanted
  assert f'tensorflow-federated=={pins["tensorflow-federated"]}' in wanted
  # Every other pin is installed where missing.
  missing = set(pins) - set(installed) - {'tensorflow', 'tf-keras', 'keras', 'pip'}
  assert missing <= names
  assert any('numpy 2.0.2' in n for n in notes)


def test_colab_plan_matches_tf_keras_to_tensorflow_and_replaces_an_unfitting_one():
  _, wanted, _, restart = _plan({'tensorflow': '2.20.0', 'tf-keras': '2.19.0'})
  assert 'tf-keras==2.20.1' in wanted and not restart
  pins, wanted, notes, restart = _plan({'tensorflow': '2.17.1'})
  assert f'tensorflow=={pins["tensorflow"]}' in wanted
  assert f'tf-keras=={pins["tf-keras"]}' in wanted
  assert restart and any('2.17.1' in n for n in notes)


def test_current_pins_cover_the_fitting_tensorflow_keras():
  colab_install = _load_colab_install()
  pins = _pins('current.txt')
  tf_minor = '.'.join(pins['tensorflow'].split('.')[:2])
  assert colab_install.FITTING_TENSORFLOW[tf_minor] == pins['tf-keras']
