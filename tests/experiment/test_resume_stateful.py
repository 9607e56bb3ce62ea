"""A resumed run continues exactly, for every kind of state a run carries.

Each config runs 4 rounds straight, and 2 rounds then a resume to 4, from
the round-2 checkpoint; `metrics.csv` must be the same value for value
(timings aside). The states: FoolsGold's history table, the seeded noise
round counters of weak DP and FLAME, TFF's adaptive clip (with its noise
off, so the run is deterministic) and robust aggregator's quantile
estimates, A3FL's trigger, server momentum 0.9.
"""

import csv
import dataclasses
import os

import pytest

from targeted_attack.experiment import outputs
from targeted_attack.experiment import run as run_lib
from targeted_attack.runtime import devices
import builders
from builders import tiny_config as tiny

_STATEFUL = {
    'foolsgold': dict(defense='foolsgold'),
    'weak_dp': dict(defense='weak_dp', l2_norm_clip=2.0, mul_factor=0.05),
    'flame': dict(defense='flame', flame_noise_lambda=0.01),
    'tff_dp_adaptive': dict(defense='tff_dp_adaptive',
                            tff_dp_noise_multiplier=0.0),
    'tff_robust': dict(defense='tff_robust'),
    'a3fl': dict(attack='a3fl', backdoor='a3fl', defense='none',
                 poison_per_batch=5, a3fl_outer_iterations=2,
                 a3fl_trigger_passes=1, a3fl_unlearn_passes=1,
                 a3fl_trigger_lr=0.05),
    'server_momentum': dict(defense='clip', server_momentum=0.9,
                            server_learning_rate=0.5),
}


def _rows(config):
  with open(os.path.join(config.output_dir, 'metrics.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    del row['round_seconds'], row['eval_seconds']
  return rows


@pytest.mark.parametrize('name', sorted(_STATEFUL))
def test_resumed_stateful_run_is_bit_equal(tmp_path, name):
  settings = dict(_STATEFUL[name], attack_freq=1, evaluate_per_rounds=1,
                  checkpoint_every=2)
  full = tiny(tmp_path, experiment_name='full', num_rounds=4, **settings)
  run_lib.run(full, progress=False)
  part = tiny(tmp_path, experiment_name='part', num_rounds=2, **settings)
  run_lib.run(part, progress=False)
  run_lib.run(dataclasses.replace(part, num_rounds=4, resume=True),
              progress=False)
  expected, got = _rows(full), _rows(part)
  assert [int(r['round']) for r in got] == [1, 2, 3, 4]
  for a, b in zip(got, expected):
    assert a == b, a['round']


def test_resume_with_metrics_but_no_checkpoint_starts_over(tmp_path,
                                                          monkeypatch):
  # Killed in round 2, after round 1 was written but before the first
  # checkpoint (every 2 rounds): the resume starts from round 1 again, with
  # no row repeated, and ends as an uninterrupted run.
  settings = dict(num_rounds=3, checkpoint_every=2, attack_freq=1,
                  evaluate_per_rounds=1)
  reference = tiny(tmp_path, experiment_name='reference', **settings)
  run_lib.run(reference, progress=False)
  config = tiny(tmp_path, **settings)
  builders.run_killed_in_round(config, 2, monkeypatch)
  assert [int(r['round']) for r in _rows(config)] == [1]
  assert not os.path.exists(os.path.join(config.output_dir, 'checkpoint.npz'))
  run_lib.run(dataclasses.replace(config, resume=True), progress=False)
  assert _rows(config) == _rows(reference)


def test_resume_with_an_unreadable_config_is_a_clear_error(tmp_path):
  config = tiny(tmp_path, num_rounds=2)
  run_lib.run(config, progress=False)
  path = os.path.join(config.output_dir, 'config.json')
  with open(path, 'w') as f:
    f.write('{"num_rounds": 2, "defense"')   # cut off mid-write
  with pytest.raises(outputs.CorruptOutputError, match='config.json'):
    run_lib.run(dataclasses.replace(config, num_rounds=3, resume=True),
                progress=False)
  assert len(_rows(config)) == 2                 # nothing lost
  with open(path) as f:
    assert f.read().startswith('{"num_rounds"')  # nor overwritten


@pytest.mark.parametrize('first, second', [('tff_cpp', 'in_process'),
                                           ('in_process', 'tff_cpp')])
def test_a_run_resumed_under_the_other_context_continues_exactly(
    tmp_path, first, second):
  # Checkpoints hold values, not a context's handles: 2 rounds under one
  # context, resumed to 4 under the other, equal (clients trained one by one
  # under both) to 4 rounds under the second alone: bit for bit where this
  # process runs oneDNN's kernels, as the C++ worker does; to float rounding
  # with TensorFlow's own CPU kernels (the contexts then differ by an ulp).
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top
  from targeted_attack import runtime  # pylint: disable=g-import-not-at-top
  previous = tff.framework.get_context_stack().current
  settings = dict(defense='foolsgold', attack_freq=1, evaluate_per_rounds=1,
                  checkpoint_every=2, client_batching='off')
  try:
    runtime.set_local_execution_context(kind=second)
    full = tiny(tmp_path, experiment_name='full', num_rounds=4, **settings)
    run_lib.run(full, progress=False)
    runtime.set_local_execution_context(kind=first)
    part = tiny(tmp_path, experiment_name='part', num_rounds=2,
                execution_context=first, **settings)
    run_lib.run(part, progress=False)
    runtime.set_local_execution_context(kind=second)
    run_lib.run(dataclasses.replace(part, num_rounds=4, resume=True,
                                    execution_context=second),
                progress=False)
  finally:
    tff.framework.set_default_context(previous)
  if devices.numerics()['onednn']:
    assert _rows(part) == _rows(full)
    return
  resumed, alone = _rows(part), _rows(full)
  assert [r.keys() for r in resumed] == [r.keys() for r in alone]
  for a, b in zip(resumed, alone):
    for key in a:
      if a[key] == '' or b[key] == '':
        assert a[key] == b[key], key
      else:
        assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5,
                                              abs=1e-6), (a['round'], key)
