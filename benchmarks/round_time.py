r"""Round-time benchmark: this project's attacked process vs TFF FedAvg vs plain TF.

  .venv/bin/python -m benchmarks.round_time                      # the paper's size
  .venv/bin/python -m benchmarks.round_time --memory_check       # RSS after 20 vs 200 rounds
  .venv/bin/python -m benchmarks.round_time --population_check   # 1,000 vs 100,000 clients
  .venv/bin/python -m benchmarks.round_time --dp_sgd_check       # client DP-SGD vs plain
  .venv/bin/python -m benchmarks.round_time --contexts=tff_cpp,in_process  # context vs context
  .venv/bin/python -m benchmarks.round_time --loops_check   # reduce vs iterator vs batched clients

Times, in one process, after a warm-up round, the median seconds per round of
  (a) the attacked process, one attacker (explicit boosting), clip + noise defense;
  (b) tff.learning.algorithms.build_weighted_fed_avg on the same clients;
  (c) the same SGD steps in plain TensorFlow (one compiled training function);
  (d) one evaluation (main-task test set plus backdoor set);
and prints one JSON line with the medians, the ratios a/b, a/c, d/a, peak RSS,
the device, and the number of client SGD steps per round. It also prints the
FLOP rate of rounds (a) and (b), training FLOPs taken as 3 × the forward FLOPs
that TensorFlow's profiler counts per example, times the examples trained in
the round, against the rate of a large `tf.matmul` on the same device.

With --dp_sgd_check: a round of client DP-SGD (`dp_sgd.DPSGD`, fast
per-example clipping) against a plain round of the same process and clients.

With --loops_check: (a) with local training written as `dataset.reduce`
(the loop before 0.7), as the iterator loop (`dataset_loops`), and with the
benign clients batched (`process.batched_training`, in-process only), under
each context, the variants alternating round by round; whether the two
per-client loops' models are bit-equal; the largest difference between the
batched and the per-client model one round from the same state; the ratios
of each median to the in-process `reduce` round and to the C++ `reduce`
round.

With --contexts=tff_cpp,in_process: (a) and (b) under each execution context
(`runtime.EXECUTION_CONTEXTS`) in this one process, on the same clients, the
medians per context, and the ratio in_process / tff_cpp of each median
(below 1: the in-process context is faster); (c) once, for reference.
--max_concurrency sets the in-process context's client threads. With
--torch_anchor, also the same clients' training as a plain PyTorch loop
(`benchmarks.torch_anchor`; skipped where torch is not installed).
"""

import json
import os
import resource
import statistics
import time

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import targeted_attack  # pylint: disable=g-import-not-at-top,unused-import  # Keras 2 before TF loads
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top

from targeted_attack import aggregate_fn  # pylint: disable=g-import-not-at-top
from targeted_attack import attacked_fedavg  # pylint: disable=g-import-not-at-top
from targeted_attack import process as process_lib  # pylint: disable=g-import-not-at-top
from targeted_attack.experiment import evaluation  # pylint: disable=g-import-not-at-top
from targeted_attack.process import models  # pylint: disable=g-import-not-at-top
from targeted_attack import runtime  # pylint: disable=g-import-not-at-top
from targeted_attack.attacks import base as attack_base
from targeted_attack.defenses import dp_sgd
from targeted_attack.data import federated
from targeted_attack.process import round_data
from targeted_attack.data import sampling
from targeted_attack.backdoors import semantic

flags.DEFINE_integer('clients_per_round', 30, 'Clients per round.')
flags.DEFINE_integer('examples_per_client', 100, 'Examples per client.')
flags.DEFINE_integer('num_epochs', 5, 'Local epochs.')
flags.DEFINE_integer('batch_size', 20, 'Batch size.')
flags.DEFINE_integer('local_steps', 0,
                     'Local steps per client (0: every batch; 1: FedSGD).')
flags.DEFINE_string('model', 'cnn', 'cnn | small_cnn | linear.')
flags.DEFINE_integer('rounds', 5, 'Timed rounds per variant (after warm-up).')
flags.DEFINE_integer('pool_writers', 60,
                     'Distinct generated writers; client k uses writer k mod this.')
flags.DEFINE_bool('memory_check', False,
                  'Run 200 rounds of (a); compare peak RSS at 20 and 200.')
flags.DEFINE_bool('population_check', False,
                  'Time (a) at populations 1,000 and 100,000.')
flags.DEFINE_bool('dp_sgd_check', False,
                  'Time a client DP-SGD round against a plain round.')
flags.DEFINE_bool('dp_sgd_jacobian', False,
                  'With --dp_sgd_check, also time DP-SGD by the per-example '
                  'Jacobian (the reference path; slow).')
flags.DEFINE_bool('loops_check', False,
                  'Time (a) with local training as `dataset.reduce` against '
                  'the iterator loop, under each context of --contexts '
                  '(default: both), alternating.')
flags.DEFINE_list('contexts', [],
                  'Execution contexts to compare, of '
                  f'{runtime.EXECUTION_CONTEXTS}: times (a) and (b) under '
                  'each; empty: the default context, all variants.')
flags.DEFINE_integer('max_concurrency', None,
                     'Client threads of the in-process context (default: '
                     'the number of CPUs).')
flags.DEFINE_string('torch_python', None,
                    'With --torch_anchor: a Python interpreter with torch '
                    '(e.g. a separate venv) to run the anchor in.')
flags.DEFINE_bool('torch_anchor', False,
                  'Also time the same training as a plain PyTorch loop.')
FLAGS = flags.FLAGS


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mib() -> float:
  import psutil  # pylint: disable=g-import-not-at-top
  return psutil.Process().memory_info().rss / 2**20


class _TiledPopulation(federated.FederatedDigits):
  """`population` clients; client k holds writer k mod pool, tiled to n examples.

  Arrays are built on demand and not cached, so memory stays flat with the
  number of distinct clients seen.
  """

  def __init__(self, pool: federated.FederatedDigits, population: int):
    super().__init__(range(population), None, pool.test_pixels,
                     pool.test_labels, 'benchmark')
    self._pool = pool

  def client_arrays(self, index: int) -> tuple:
    pixels, labels = self._pool.client_arrays(int(index) % FLAGS.pool_writers)
    n = FLAGS.examples_per_client
    reps = -(-n // len(labels))
    return np.tile(pixels, (reps, 1, 1))[:n], np.tile(labels, reps)[:n]


class Clients:
  """A population of `population` clients over a pool of generated writers."""

  def __init__(self, population: int):
    pool = federated.load_synthetic(FLAGS.pool_writers,
                                   FLAGS.examples_per_client, seed=0)
    self.data = _TiledPopulation(pool, population)
    self.population = population
    self.task = semantic.select_backdoor_task(pool, 5, seed=0)

  def round_data(self, round_num: int, num_attackers: int) -> list:
    """The round's client data, assembled as the experiment assembles it."""
    sampled = sampling.sample_clients(self.population,
                                      FLAGS.clients_per_round, 0, round_num)
    is_malicious = np.arange(len(sampled)) < num_attackers
    return round_data.round_client_data(self.data, self.task, sampled,
                                      is_malicious, FLAGS.num_epochs,
                                      FLAGS.batch_size, 0, round_num,
                                      local_steps=FLAGS.local_steps)

  def benign_datasets(self, round_num: int) -> list:
    return [c['benign'] for c in self.round_data(round_num, 0)]


def matmul_gflops(sizes=(1024, 2048), repeats=5) -> float:
  """The best median rate of an n×n float32 `tf.matmul` over `sizes`."""
  best = 0.0
  for n in sizes:
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))  # pylint: disable=cell-var-from-loop
    product().numpy()
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      product().numpy()
      times.append(time.perf_counter() - t0)
    best = max(best, 2 * n**3 / statistics.median(times) / 1e9)
  return best


def training_flops_per_example(model_name: str) -> float:
  """3 × the forward FLOPs of one example (TensorFlow's profiler count)."""
  model = models.create_keras_model(model_name)
  forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(
      tf.TensorSpec([1, 28, 28, 1], tf.float32))
  options = tf.compat.v1.profiler.ProfileOptionBuilder(
      tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  ).with_empty_output().build()
  profile = tf.compat.v1.profiler.profile(
      graph=forward.graph, run_meta=tf.compat.v1.RunMetadata(), cmd='op',
      options=options)
  return 3.0 * profile.total_float_ops


def examples_trained(client_data: list) -> int:
  """Examples of one round's training passes: D_trn for every client, and
  D_trn ∪ D_mal once more for each malicious one (explicit boosting)."""
  total = 0
  for client in client_data:
    benign = int(attack_base.count_examples(client['benign']))
    malicious = int(attack_base.count_examples(client['malicious']))
    total += benign + (benign + malicious if malicious else 0)
  return total


def _attacked_process(model_fn, local_loop='iterator', client_batching='auto'):
  defense = aggregate_fn.build_zero_non_finite(
      aggregate_fn.build_clip_per_client(
          3.0, inner=aggregate_fn.build_gaussian_noise(1e-3, seed=0)))
  return process_lib.build_federated_averaging_process_attacked(
      model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      model_update_aggregation_factory=defense,
      client_update_tf=attack_base.OnUnion(
          attacked_fedavg.ClientExplicitBoosting(
              float(FLAGS.clients_per_round))),
      local_loop=local_loop, client_batching=client_batching)


def _time_attacked(process, clients, rounds, start_round=0, num_attackers=1):
  state = process.initialize()
  times = []
  for r in range(start_round, start_round + rounds + 1):
    t0 = time.perf_counter()
    state = process.next(state, clients.round_data(r, num_attackers)).state
    times.append(time.perf_counter() - t0)
  return times[1:], state


def _time_tff_fedavg(model_fn, clients, rounds):
  process = tff.learning.algorithms.build_weighted_fed_avg(
      model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0))
  state = process.initialize()
  times = []
  for r in range(rounds + 1):
    t0 = time.perf_counter()
    state = process.next(state, clients.benign_datasets(r)).state
    times.append(time.perf_counter() - t0)
  return times[1:]


def _time_plain_tf(clients, rounds):
  """The same SGD steps: one compiled function training one client's dataset."""
  model = models.create_keras_model(FLAGS.model)
  loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  initial = [tf.identity(v) for v in model.trainable_variables]

  @tf.function
  def train_client(dataset):
    for v, w in zip(model.trainable_variables, initial):
      v.assign(w)

    def step(count, batch):
      with tf.GradientTape() as tape:
        loss = loss_fn(batch['y'], model(batch['x'], training=True))
      grads = tape.gradient(loss, model.trainable_variables)
      for v, g in zip(model.trainable_variables, grads):
        v.assign_sub(0.1 * g)
      return count + 1

    return dataset.reduce(tf.constant(0), step)

  times, steps = [], 0
  for r in range(rounds + 1):
    t0 = time.perf_counter()
    steps = sum(int(train_client(ds)) for ds in clients.benign_datasets(r))
    times.append(time.perf_counter() - t0)
  return times[1:], steps


def _time_eval(process, state, clients, rounds):
  evaluator = evaluation.Evaluator(FLAGS.model, clients.data.test_pixels,
                                   clients.data.test_labels, clients.task)
  weights = process.get_model_weights(state)
  times = []
  for _ in range(rounds + 1):
    t0 = time.perf_counter()
    evaluator.metrics(weights)
    times.append(time.perf_counter() - t0)
  return times[1:], len(clients.data.test_labels) + len(clients.task.eval_pixels)


def _compare_contexts(model_fn, report):
  """(a) and (b) under each of FLAGS.contexts; (c) once; the ratios."""
  unknown = set(FLAGS.contexts) - set(runtime.EXECUTION_CONTEXTS)
  if unknown:
    raise app.UsageError(f'--contexts: unknown {sorted(unknown)}; choose of '
                         f'{runtime.EXECUTION_CONTEXTS}.')
  clients = Clients(3383)
  medians = {}
  for kind in FLAGS.contexts:
    runtime.set_local_execution_context(kind=kind,
                                        max_concurrency=FLAGS.max_concurrency)
    t0 = time.perf_counter()
    a_times, _ = _time_attacked(_attacked_process(model_fn), clients,
                                FLAGS.rounds)
    b_times = _time_tff_fedavg(model_fn, clients, FLAGS.rounds)
    medians[kind] = dict(attacked_round_s=statistics.median(a_times),
                         tff_fedavg_round_s=statistics.median(b_times),
                         attacked_round_times=a_times,
                         tff_fedavg_round_times=b_times,
                         wall_s_with_warmup=time.perf_counter() - t0)
  c_times, steps = _time_plain_tf(clients, FLAGS.rounds)
  report.update(contexts=medians, plain_tf_round_s=statistics.median(c_times),
                plain_tf_steps_per_round=steps,
                max_concurrency=FLAGS.max_concurrency or os.cpu_count())
  if 'in_process' in medians and 'tff_cpp' in medians:
    ip, cpp = medians['in_process'], medians['tff_cpp']
    report.update(
        ratio_in_process_over_tff_cpp_attacked=(
            ip['attacked_round_s'] / cpp['attacked_round_s']),
        ratio_in_process_over_tff_cpp_fedavg=(
            ip['tff_fedavg_round_s'] / cpp['tff_fedavg_round_s']))


# (local loop, clients batched) of each variant of --loops_check.
_LOOP_VARIANTS = {'reduce': ('reduce', 'off'), 'iterator': ('iterator', 'off'),
                  'batched': ('iterator', 'on')}


def _compare_loops(model_fn, report):
  """(a) per variant (`_LOOP_VARIANTS`) under each context, alternating; the
  ratios against the in-process `reduce` round (the loop before 0.7) and the
  C++ one; whether the per-client loops' models are bit-equal, and the
  largest difference between the batched and the per-client model after one
  round from the same state (relative to that round's largest update)."""
  kinds = FLAGS.contexts or list(runtime.EXECUTION_CONTEXTS)
  clients = Clients(3383)
  times = {}
  for kind in kinds:
    runtime.set_local_execution_context(kind=kind,
                                        max_concurrency=FLAGS.max_concurrency)
    # Under TFF's C++ context clients always run one by one.
    variants = {name: v for name, v in _LOOP_VARIANTS.items()
                if kind == 'in_process' or v[1] == 'off'}
    processes = {name: _attacked_process(model_fn, loop, batch)
                 for name, (loop, batch) in variants.items()}
    states = {name: p.initialize() for name, p in processes.items()}
    start = states['iterator']
    for name, process in processes.items():  # warm-up round, traced
      states[name] = process.next(states[name], clients.round_data(0, 1)).state
    for r in range(1, FLAGS.rounds + 1):
      for name, process in processes.items():
        t0 = time.perf_counter()
        states[name] = process.next(states[name],
                                    clients.round_data(r, 1)).state
        times.setdefault(f'{kind}/{name}', []).append(
            time.perf_counter() - t0)
    weights = {name: [np.asarray(w) for w in
                      processes[name].get_model_weights(states[name]).trainable]
               for name in ('reduce', 'iterator')}
    report[f'{kind}/loops_bit_equal'] = all(
        np.array_equal(a, b) for a, b in zip(*weights.values()))
    if 'batched' in processes:
      one_round = {
          name: [np.asarray(w) for w in processes[name].get_model_weights(
              processes[name].next(start, clients.round_data(0, 1)).state
          ).trainable] for name in ('iterator', 'batched')}
      initial = [np.asarray(w) for w in
                 processes['iterator'].get_model_weights(start).trainable]
      difference = max(float(np.abs(a - b).max()) for a, b in
                       zip(one_round['iterator'], one_round['batched']))
      update = max(float(np.abs(a - w).max()) for a, w in
                   zip(one_round['iterator'], initial))
      report[f'{kind}/batched_vs_per_client_one_round'] = dict(
          max_abs_difference=difference, max_abs_update=update,
          relative=difference / update)
  medians = {k: statistics.median(v) for k, v in times.items()}
  report.update(round_s=medians, round_times=times)
  base = medians.get('in_process/reduce')
  ratios = {}
  for name, seconds in medians.items():
    if base:
      ratios[f'{name} / in_process/reduce'] = seconds / base
    if 'tff_cpp/reduce' in medians:
      ratios[f'{name} / tff_cpp/reduce'] = seconds / medians['tff_cpp/reduce']
  report['ratios'] = ratios


def main(argv):
  del argv
  runtime.install_signal_handlers()
  if FLAGS.torch_anchor and FLAGS.local_steps:
    raise app.UsageError('--torch_anchor trains full epochs; it does not '
                         'take --local_steps (set it to 0).')
  if FLAGS.loops_check or FLAGS.contexts:
    model_fn = models.build_model_fn(FLAGS.model)
    report = dict(
        device=', '.join(d.name for d in tf.config.list_physical_devices(
            'GPU')) or f'CPU ({os.cpu_count()} cores)', model=FLAGS.model,
        clients_per_round=FLAGS.clients_per_round,
        examples_per_client=FLAGS.examples_per_client,
        num_epochs=FLAGS.num_epochs, batch_size=FLAGS.batch_size,
        local_steps=FLAGS.local_steps, rounds=FLAGS.rounds)
    if FLAGS.loops_check:
      _compare_loops(model_fn, report)
    else:
      _compare_contexts(model_fn, report)
      _torch_anchor(report)
    report['peak_rss_mib'] = _peak_rss_mib()
    print(json.dumps(report))
    return
  runtime.set_local_execution_context()
  model_fn = models.build_model_fn(FLAGS.model)
  device = ', '.join(d.name for d in tf.config.list_physical_devices('GPU')) or (
      f'CPU ({os.cpu_count()} cores)')
  steps_per_client = FLAGS.num_epochs * -(-FLAGS.examples_per_client //
                                          FLAGS.batch_size)
  if FLAGS.local_steps:
    steps_per_client = min(steps_per_client, FLAGS.local_steps)
  report = dict(
      device=device, model=FLAGS.model,
      clients_per_round=FLAGS.clients_per_round,
      examples_per_client=FLAGS.examples_per_client,
      num_epochs=FLAGS.num_epochs, batch_size=FLAGS.batch_size,
      local_steps=FLAGS.local_steps,
      benign_client_steps_per_round=steps_per_client * FLAGS.clients_per_round)

  if FLAGS.memory_check:
    clients = Clients(1000)
    process = _attacked_process(model_fn)
    state = process.initialize()
    rss = {}
    for r in range(1, 201):
      state = process.next(state, clients.round_data(r, num_attackers=1)).state
      if r in (20, 200):
        rss[r] = dict(peak_mib=_peak_rss_mib(), current_mib=_current_rss_mib())
    report.update(memory_check=rss,
                  peak_rss_ratio_200_vs_20=rss[200]['peak_mib'] /
                  rss[20]['peak_mib'])
  elif FLAGS.dp_sgd_check:
    clients = Clients(3383)
    variants = [('plain', None),
                ('dp_sgd', dp_sgd.DPSGD(1.0, 1.0))]
    if FLAGS.dp_sgd_jacobian:
      variants.append(('dp_sgd_jacobian',
                       dp_sgd.DPSGD(1.0, 1.0, fast_clipping=False)))
    seconds = {}
    for name, dp_sgd in variants:
      process = process_lib.build_federated_averaging_process_attacked(
          model_fn,
          client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
          server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
          client_dp_sgd=dp_sgd)
      times, _ = _time_attacked(process, clients, FLAGS.rounds,
                                num_attackers=0)
      seconds[name] = statistics.median(times)
    report.update(round_seconds=seconds, dp_sgd_l2_norm_clip=1.0,
                  dp_sgd_noise_multiplier=1.0,
                  ratio_dp_sgd_over_plain=seconds['dp_sgd'] / seconds['plain'])
    if FLAGS.dp_sgd_jacobian:
      report['ratio_dp_sgd_jacobian_over_plain'] = (
          seconds['dp_sgd_jacobian'] / seconds['plain'])
  elif FLAGS.population_check:
    result = {}
    for population in (1000, 100000):
      clients = Clients(population)
      times, _ = _time_attacked(_attacked_process(model_fn), clients,
                                FLAGS.rounds)
      result[population] = statistics.median(times)
    report.update(population_round_seconds=result,
                  ratio_100k_vs_1k=result[100000] / result[1000])
  else:
    clients = Clients(3383)
    process = _attacked_process(model_fn)
    a_times, state = _time_attacked(process, clients, FLAGS.rounds)
    b_times = _time_tff_fedavg(model_fn, clients, FLAGS.rounds)
    c_times, steps = _time_plain_tf(clients, FLAGS.rounds)
    d_times, eval_examples = _time_eval(process, state, clients, FLAGS.rounds)
    a, b, c, d = (statistics.median(t)
                  for t in (a_times, b_times, c_times, d_times))
    per_example = training_flops_per_example(FLAGS.model)
    flops_a = per_example * examples_trained(clients.round_data(1, 1))
    flops_b = per_example * examples_trained(clients.round_data(1, 0))
    matmul = matmul_gflops()
    report.update(
        training_flops_per_example=per_example,
        round_tflop_a=flops_a / 1e12, round_tflop_b=flops_b / 1e12,
        flop_rate_a_gflops=flops_a / a / 1e9,
        flop_rate_b_gflops=flops_b / b / 1e9,
        matmul_gflops=matmul,
        flop_rate_a_over_matmul=flops_a / a / 1e9 / matmul,
        flop_rate_b_over_matmul=flops_b / b / 1e9 / matmul)
    report.update(
        plain_tf_steps_per_round=steps, eval_examples=eval_examples,
        attacked_round_s=a, tff_fedavg_round_s=b, plain_tf_round_s=c,
        eval_s=d, ratio_a_over_b=a / b, ratio_a_over_c=a / c,
        ratio_d_over_a=d / a, note='(a) adds one attacker: its extra '
        'malicious training (D_trn ∪ D_mal) is part of its cost.')
  _torch_anchor(report)
  report['peak_rss_mib'] = _peak_rss_mib()
  print(json.dumps(report))


def _torch_anchor(report):
  """With --torch_anchor: the PyTorch loop's median round, where torch is:
  in this process, or (--torch_python) in that interpreter's process, run
  right after the TF variants (torch never shares the TF process there)."""
  if not FLAGS.torch_anchor:
    return
  from benchmarks import torch_anchor  # pylint: disable=g-import-not-at-top
  args = (FLAGS.clients_per_round, FLAGS.examples_per_client,
          FLAGS.num_epochs, FLAGS.batch_size, FLAGS.rounds)
  if FLAGS.torch_python:
    import subprocess  # pylint: disable=g-import-not-at-top
    names = ('clients_per_round', 'examples_per_client', 'num_epochs',
             'batch_size', 'rounds')
    child = subprocess.run(
        [FLAGS.torch_python, '-m', 'benchmarks.torch_anchor'] +
        [f'--{n}={v}' for n, v in zip(names, args)],
        capture_output=True, text=True, check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = [l for l in child.stdout.splitlines() if l.startswith('{')]
    result = json.loads(lines[-1]) if lines else None
    if result is None and torch_anchor.SKIPPED not in child.stdout:
      # Not a missing torch: say what failed.
      last = (child.stderr.strip().splitlines() or ['no output'])[-1]
      report['torch_anchor'] = (f'{FLAGS.torch_python} -m '
                                f'benchmarks.torch_anchor failed (exit '
                                f'{child.returncode}): {last}')
      return
  else:
    result = torch_anchor.run(*args)
  report['torch_anchor'] = result if result is not None else (
      torch_anchor.SKIPPED)
  if result is not None:  # each TF round's median over the torch loop's
    ratios = {f'{kind}/{name}': seconds / result['torch_round_s']
              for kind, medians in report.get('contexts', {}).items()
              for name, seconds in medians.items()
              if name.endswith('_round_s')}
    if 'plain_tf_round_s' in report:
      ratios['plain_tf'] = report['plain_tf_round_s'] / result['torch_round_s']
    report['ratio_to_torch'] = ratios


if __name__ == '__main__':
  app.run(main)
