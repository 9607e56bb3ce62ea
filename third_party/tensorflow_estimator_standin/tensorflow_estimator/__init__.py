"""A stand-in for `tensorflow_estimator`, importable on TensorFlow >= 2.16.

TensorFlow removed estimators in 2.16 and the last `tensorflow-estimator`
(2.15) cannot import beside TensorFlow 2.21; tensorflow_privacy 0.9.0 still
imports `tensorflow_estimator.python.estimator.*` when it loads. Any submodule
of this package imports; any name in it is a placeholder class that can be
subclassed and read at import time, and raises `EstimatorUnavailableError`
when it is called.
"""

import importlib.abc
import importlib.machinery
import sys
import types

STANDIN = True
_MESSAGE = (
    'tensorflow_estimator is a stand-in here (TensorFlow >= 2.16 has no '
    'estimators); {name} cannot be used. Use the released stack '
    '(TensorFlow 2.14, Python 3.9-3.11) for tf.estimator code.')


class EstimatorUnavailableError(RuntimeError):
  """Raised when code calls anything of the stand-in."""


class _PlaceholderMeta(type):
  """Class attributes of a placeholder are placeholders too."""

  def __getattr__(cls, name):
    if name.startswith('__'):
      raise AttributeError(name)
    value = _placeholder(cls.__module__, f'{cls.__qualname__}.{name}')
    setattr(cls, name, value)
    return value

  def __call__(cls, *args, **kwargs):
    raise EstimatorUnavailableError(_MESSAGE.format(name=cls.__qualname__))


def _placeholder(module_name, qualname):
  return _PlaceholderMeta(qualname.rsplit('.', 1)[-1], (), {
      '__module__': module_name, '__qualname__': qualname})


def _module_getattr(module_name):
  def __getattr__(name):  # pylint: disable=invalid-name
    if name.startswith('__'):
      raise AttributeError(name)
    value = _placeholder(module_name, name)
    setattr(sys.modules[module_name], name, value)
    return value
  return __getattr__


class _StandinFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Finds every `tensorflow_estimator.<...>` submodule as an empty package."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname.startswith(__name__ + '.'):
      return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
    return None

  def create_module(self, spec):
    module = types.ModuleType(spec.name)
    module.__path__ = []
    module.__getattr__ = _module_getattr(spec.name)
    return module

  def exec_module(self, module):
    pass


if not any(isinstance(f, _StandinFinder) for f in sys.meta_path):
  sys.meta_path.append(_StandinFinder())
__getattr__ = _module_getattr(__name__)
