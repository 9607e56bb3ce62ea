"""The package's layout: dependencies point one way, Bazel's graph says so,
the config is a leaf, tests import no test file, and the original public API
and flag names still work."""

import ast
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'targeted_attack')

# The stages, bottom up: a unit may import only units of a lower layer.
LAYERS = (
    {'legacy_keras'},
    {'runtime', 'checks', 'update_math', 'dataset_loops'},
    {'attacks', 'defenses', 'data'},
    {'process'},
    {'backdoors'},
    {'experiment', 'aggregate_fn', 'attacked_fedavg'},
    {'emnist_experiment'},
    {'reproduce', 'emnist_with_targeted_attack'},
)


def _unit(path):
  parts = os.path.relpath(path, PACKAGE).split(os.sep)
  return parts[0] if len(parts) > 1 else parts[0][:-len('.py')]


def _imported_units(path):
  """The units of targeted_attack that `path` imports (any depth)."""
  units = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module.split('.')[0] == 'targeted_attack'):
      parts = node.module.split('.')
      units |= ({a.name for a in node.names} if len(parts) == 1 else
                {parts[1]})
    elif isinstance(node, ast.Import):
      units |= {a.name.split('.')[1] for a in node.names
                if a.name.startswith('targeted_attack.')}
  return units


def _package_graph():
  graph = {}
  for directory, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith('.py') and name != '__init__.py' or (
          name == '__init__.py' and directory != PACKAGE):
        path = os.path.join(directory, name)
        unit = _unit(path)
        graph.setdefault(unit, set()).update(_imported_units(path) - {unit})
  return graph


def _layer(unit):
  return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def test_every_import_points_down_the_layers():
  graph = _package_graph()
  assert set(graph) == set().union(*LAYERS)
  for unit, imported in graph.items():
    for other in imported:
      assert _layer(other) < _layer(unit), f'{unit} imports {other}'


def test_bazel_deps_are_the_import_graph():
  with open(os.path.join(PACKAGE, 'BUILD')) as f:
    build = f.read()
  declared = {}
  for block in re.findall(r'py_(?:library|binary)\((.*?)\n\)', build, re.S):
    name = re.search(r'name = "([a-z_]+)"', block).group(1)
    declared[name] = set(re.findall(r'"(?://targeted_attack)?:([a-z_]+)"',
                                    block))
  for unit, imported in _package_graph().items():
    assert unit in declared, f'no Bazel target for {unit}'
    assert imported <= declared[unit], (unit, imported - declared[unit])


def test_config_imports_neither_the_registry_nor_tensorflow():
  code = ('import sys\nfrom targeted_attack.experiment import config\n'
          'c = config.ExperimentConfig()\n'
          'config.validate(c, {f.name: (getattr(c, f.name),) '
          'for f in config.fields()})\n'
          'loaded = [m for m in ("tensorflow", "tensorflow_federated", '
          '"targeted_attack.experiment.registry") if m in sys.modules]\n'
          'assert not loaded, loaded')
  subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True)


def test_no_test_file_imports_another():
  tests = os.path.dirname(os.path.abspath(__file__))
  names = {f[:-3] for _, _, files in os.walk(tests) for f in files
           if f.startswith('test_') and f.endswith('.py')}
  for directory, _, files in os.walk(tests):
    for name in files:
      if name.endswith('.py'):
        tree = ast.parse(open(os.path.join(directory, name)).read())
        for node in ast.walk(tree):
          if isinstance(node, ast.Import):
            imported = {a.name for a in node.names}
          elif isinstance(node, ast.ImportFrom):
            imported = {node.module}
          else:
            continue
          assert not imported & names, (name, imported & names)


# The original research code's public names, and the binary's flag names.
ATTACKED_FEDAVG = ('build_federated_averaging_process_attacked',
                   'build_client_data', 'ClientExplicitBoosting',
                   'ClientProjectBoost', 'ModelReplacement', 'NoAttack',
                   'ClientUpdateStrategy', 'DPSGD', 'ClientWeighting')
AGGREGATE_FN = ('build_dp_aggregate', 'build_aggregate_and_clip',
                'build_clip_per_client', 'build_gaussian_noise',
                'build_stateless_mean', 'build_zero_non_finite',
                'build_default_aggregation', 'build_krum', 'build_multi_krum',
                'build_bulyan', 'build_coordinate_median',
                'build_trimmed_mean', 'build_geometric_median',
                'build_flame', 'build_fltrust', 'build_foolsgold',
                'build_robust_learning_rate', 'build_client_transform',
                'build_server_transform', 'build_stacked_aggregator')
FLAGS = ('root_output_dir', 'experiment_name', 'evaluate_per_rounds',
         'only_digits', 'batch_size', 'num_epochs', 'num_clients_per_round',
         'num_rounds', 'client_learning_rate', 'server_learning_rate',
         'client_round_num', 'attack_freq', 'task_num', 'boost_factor',
         'norm_bound', 'l2_norm_clip', 'mul_factor', 'random_seed')


@pytest.mark.parametrize('module, names', [('attacked_fedavg', ATTACKED_FEDAVG),
                                           ('aggregate_fn', AGGREGATE_FN)])
def test_the_original_public_names_import(module, names):
  face = __import__(f'targeted_attack.{module}', fromlist=['_'])
  missing = [n for n in names if not callable(getattr(face, n, None))]
  assert not missing


def test_the_original_flag_names_are_flags_of_the_binary():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from targeted_attack import emnist_experiment  # pylint: disable=g-import-not-at-top
  values = flags.FlagValues()
  emnist_experiment.define_flags(values)
  assert set(FLAGS) <= set(values)
