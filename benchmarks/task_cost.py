r"""A scale's cost per study, from a measured SGD step of its model.

  .venv/bin/python -m benchmarks.task_cost                  # every task study
  .venv/bin/python -m benchmarks.task_cost --studies=wang_southwest --steps=20
  .venv/bin/python -m benchmarks.task_cost --scale=small --default_studies

For each study (default: those on CIFAR-10 and text, whose `paper` scale
needs a GPU), its runs at --scale (`runner.plan`; default `paper`) give the
model, batch size B, local epochs E, clients per round K (its first cell's),
rounds R, cells and seeds; the real dataset's mean examples per client n
(CIFAR-10: 50,000 over `cifar_num_clients`; Stack Overflow: 135,818,730
sentences over 342,477 users; EMNIST digits: 341,873 over 3,383 writers). It times the model's
compiled training step (forward, backward, SGD) on one batch of B random
inputs on this device, the median of --steps after a warm-up, and prints per
study one JSON line:

  client seconds = ⌈n / B⌉ · E · step seconds   (at most `local_steps`
                   steps where a study sets it: FedSGD's one)
  round seconds  = K · client seconds                (clients one by one)
  run hours      = R · round seconds / 3600
  study hours    = the rounds of all its runs (cells × seeds, and a
                   converged start's clean runs) · round seconds / 3600

a lower bound: the attacked process adds its overhead (aggregation,
evaluation, attacks; `benchmarks.round_time`'s a/c ratio on digits), and
the malicious clients' longer training.

At `--scale=small` (or `main`) the generated datasets' sizes stand in for the
real ones (`synthetic`, `dirichlet`: synthetic_examples_per_client;
`synthetic_cifar10`: synthetic_cifar_train_size over cifar_num_clients;
`synthetic_text`: synthetic_examples_per_client sentences), and a last line
sums the studies per seed: the minutes of benign SGD steps, one client after
another, in one seed of them, against which a sweep's measured time per seed
reads as overhead (or as the batched path's gain).
"""

import json
import math
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import targeted_attack  # pylint: disable=g-import-not-at-top,unused-import  # Keras 2 before TF loads
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from targeted_attack.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
from targeted_attack.process import models  # pylint: disable=g-import-not-at-top
from targeted_attack.reproduce import runner  # pylint: disable=g-import-not-at-top
from targeted_attack.reproduce import studies as studies_lib  # pylint: disable=g-import-not-at-top

TASK_STUDIES = ('bagdasaryan_cifar_semantic', 'wang_southwest',
                'bagdasaryan_word') + tuple(
                    s for s in studies_lib.STUDIES if s.endswith('_cifar10'))

flags.DEFINE_list('studies', list(TASK_STUDIES), 'Studies to cost.')
flags.DEFINE_bool('default_studies', False,
                  'Cost the default studies (the sweep\'s), not --studies.')
flags.DEFINE_enum('scale', 'paper', ['small', 'main', 'paper'],
                  'The scale whose runs are costed.')
flags.DEFINE_integer('steps', 10, 'Timed training steps (after a warm-up).')

# The real datasets' sizes (their mean training examples per client).
_STACKOVERFLOW_SENTENCES, _STACKOVERFLOW_USERS = 135_818_730, 342_477
_EMNIST_DIGITS, _EMNIST_WRITERS = 341_873, 3_383


def task_shape(settings: dict) -> tuple:
  """(input shape, classes, examples per client) of a run's dataset."""
  dataset = settings.get('dataset', 'emnist')

  def setting(name):  # the run's, else the binary's default
    return settings.get(name, getattr(config_lib.ExperimentConfig(), name))

  if dataset in ('synthetic', 'dirichlet'):
    return (28, 28), 10, setting('synthetic_examples_per_client')
  if dataset == 'synthetic_cifar10':
    return ((32, 32, 3), 10, setting('synthetic_cifar_train_size') /
            setting('cifar_num_clients'))
  if dataset == 'synthetic_text':
    return ((setting('text_sequence_length'),),
            setting('text_vocab_size') + 4,
            setting('synthetic_examples_per_client'))
  if dataset == 'cifar10':
    return (32, 32, 3), 10, 50_000 / settings.get('cifar_num_clients', 100)
  if dataset == 'stackoverflow':
    length = settings.get('text_sequence_length', 20)
    return ((length,), settings.get('text_vocab_size', 10_000) + 4,
            _STACKOVERFLOW_SENTENCES / _STACKOVERFLOW_USERS)
  if dataset == 'emnist':
    return (28, 28), 10, _EMNIST_DIGITS / _EMNIST_WRITERS
  raise ValueError(f'{dataset}: no size known.')


def step_seconds(model_name: str, shape: tuple, classes: int,
                 batch_size: int, steps: int) -> float:
  """Median seconds of one compiled SGD step of `model_name` on a batch."""
  model = models.create_keras_model(model_name, classes, image_shape=shape)
  rng = np.random.default_rng(0)
  if len(shape) == 1:
    x = tf.constant(rng.integers(1, classes, (batch_size, *shape)), tf.int32)
    y = tf.constant(rng.integers(1, classes, (batch_size, *shape)), tf.int32)
  else:
    x = tf.constant(rng.random((batch_size, *models.input_shape(shape))),
                    tf.float32)
    y = tf.constant(rng.integers(0, classes, (batch_size,)), tf.int32)
  optimizer = tf.keras.optimizers.SGD(0.1)
  loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = loss_fn(y, model(x, training=True))
    optimizer.apply_gradients(zip(
        tape.gradient(loss, model.trainable_variables),
        model.trainable_variables))
    return loss

  step().numpy()  # warm-up: trace and compile
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step().numpy()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def study_cost(name: str, steps: int, scale: str = 'paper') -> dict:
  study = studies_lib.STUDIES[name]
  with tempfile.TemporaryDirectory() as tmp:
    runs = runner.plan([study], scale, tmp)
  cell = next(r for r in runs if r.study == name).settings
  shape, classes, per_client = task_shape(cell)
  batch, epochs = cell.get('batch_size', 20), cell.get('num_epochs', 5)
  seconds = step_seconds(cell['model'], shape, classes, batch, steps)
  steps = math.ceil(per_client / batch) * epochs
  if cell.get('local_steps'):  # FedSGD: one step
    steps = min(steps, cell['local_steps'])
  client = steps * seconds
  round_seconds = cell['num_clients_per_round'] * client
  run_hours = cell['num_rounds'] * round_seconds / 3600
  # A converged start's clean runs have their own rounds.
  total_rounds = sum(r.settings['num_rounds'] for r in runs)
  seeds = len({r.seed for r in runs})
  return dict(study=name, scale=scale,
              device=tf.test.gpu_device_name() or 'CPU',
              model=cell['model'], batch_size=batch, local_epochs=epochs,
              examples_per_client=round(per_client, 1),
              clients_per_round=cell['num_clients_per_round'],
              rounds=cell['num_rounds'], runs=len(runs),
              step_seconds=round(seconds, 5),
              round_seconds=round(round_seconds, 2),
              run_hours=round(run_hours, 2),
              study_hours=round(total_rounds * round_seconds / 3600, 1),
              seeds=seeds,
              seed_minutes=round(total_rounds * round_seconds / 60 / seeds,
                                 2))


def main(argv):
  del argv
  names = (studies_lib.default_studies() if flags.FLAGS.default_studies
           else flags.FLAGS.studies)
  per_seed = 0.0
  for name in names:
    cost = study_cost(name, flags.FLAGS.steps, flags.FLAGS.scale)
    per_seed += cost['seed_minutes']
    print(json.dumps(cost), flush=True)
  print(json.dumps(dict(studies=len(names), scale=flags.FLAGS.scale,
                        seed_minutes=round(per_seed, 1))), flush=True)


if __name__ == '__main__':
  app.run(main)
