r"""One short script for a machine with a GPU: what this project gets from it.

  .venv/bin/python -m benchmarks.gpu_check            # the paper's round size
  .venv/bin/python -m benchmarks.gpu_check --quick    # small sizes (a smoke run)

Prints one table (and one JSON line), every figure measured in this process:
  devices        TensorFlow's version, its CUDA/cuDNN build, the GPUs it sees
  dense update   SGD steps of a large Dense layer on the GPU, then the CPU
  paper round    one attacked round (the CNN, one boosted attacker, clip +
                 noise), the median of --rounds after a warm-up, per context:
                 in_process on the GPU(s), in_process on the CPU only, tff_cpp
                 (TFF's C++ worker, CPU only); per local-training loop kind
                 (the iterator loop, the default, and dataset.reduce), on the
                 CPU and on the GPU; the benign clients one by one and
                 batched (client_batching on/off), on the CPU and the GPU
  agreement      the round's model, in_process on the GPU against tff_cpp on
                 the CPU, from the same state and clients: max |Δw|, and
                 whether it is within 1e-5
  determinism    the GPU round twice from the same state: bit-equal or not,
                 then again after tf.config.experimental.enable_op_determinism
  concurrency    the GPU round with 1 client thread, then 16
Without a GPU, its rows say "unmeasured" and the CPU rows still run.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import targeted_attack  # pylint: disable=g-import-not-at-top,unused-import  # Keras 2 before TF loads
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top

from targeted_attack import aggregate_fn  # pylint: disable=g-import-not-at-top
from targeted_attack import attacked_fedavg  # pylint: disable=g-import-not-at-top
from targeted_attack import process as process_lib  # pylint: disable=g-import-not-at-top
from targeted_attack import runtime  # pylint: disable=g-import-not-at-top
from targeted_attack.attacks import base as attack_base  # pylint: disable=g-import-not-at-top
from targeted_attack.backdoors import semantic  # pylint: disable=g-import-not-at-top
from targeted_attack.data import federated  # pylint: disable=g-import-not-at-top
from targeted_attack.data import sampling  # pylint: disable=g-import-not-at-top
from targeted_attack.process import models  # pylint: disable=g-import-not-at-top
from targeted_attack.process import round_data  # pylint: disable=g-import-not-at-top

UNMEASURED = 'unmeasured (no GPU)'


def _parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true',
                      help='5 clients x 20 examples x 1 epoch, small_cnn.')
  parser.add_argument('--rounds', type=int, default=3)
  args = parser.parse_args(argv)
  args.clients, args.examples, args.epochs, args.model = (
      (5, 20, 1, 'small_cnn') if args.quick else (30, 100, 5, 'cnn'))
  return args


def _median_seconds(fn, repeats):
  fn()  # warm-up (tracing, graph import)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def dense_update_seconds(device: str, size: int, steps: int = 20) -> float:
  """`steps` SGD steps of a size×size Dense layer on a batch of 256."""
  with tf.device(device):
    kernel = tf.Variable(tf.random.stateless_normal([size, size], [0, 1]))
    x = tf.random.stateless_normal([256, size], [0, 2])

    @tf.function
    def train():
      for _ in tf.range(steps):
        with tf.GradientTape() as tape:
          loss = tf.reduce_mean(tf.square(tf.matmul(x, kernel)))
        kernel.assign_sub(1e-6 * tape.gradient(loss, kernel))
      return kernel.read_value()[0, 0]

    return _median_seconds(lambda: float(train()), 3)


class PaperRound:
  """One attacked round on fixed clients: the CNN, one boosted attacker,
  per-client clipping then Gaussian noise, as `benchmarks.round_time`."""

  def __init__(self, args):
    pool = federated.load_synthetic(max(args.clients, 10), args.examples,
                                    seed=0)
    task = semantic.select_backdoor_task(pool, 2, seed=0)
    sampled = sampling.sample_clients(pool.num_clients, args.clients, 0, 1)
    self.data = round_data.round_client_data(
        pool, task, sampled, np.arange(args.clients) == 0, args.epochs, 20,
        0, 1)
    self.model_fn = models.build_model_fn(args.model, 10, seed=0)
    self.boost = float(args.clients)

  def process(self, local_loop='iterator', client_batching='off'):
    defense = aggregate_fn.build_clip_per_client(
        3.0, inner=aggregate_fn.build_gaussian_noise(1e-3, seed=0))
    return process_lib.build_federated_averaging_process_attacked(
        self.model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
        model_update_aggregation_factory=defense,
        client_update_tf=attack_base.OnUnion(
            attacked_fedavg.ClientExplicitBoosting(self.boost)),
        local_loop=local_loop, client_batching=client_batching)

  def run(self, kind, repeats, client_devices=None, max_concurrency=None,
          local_loop='iterator', client_batching='off'):
    """(median seconds, the trained weights of one round from the start)."""
    runtime.set_local_execution_context(kind=kind,
                                        client_devices=client_devices,
                                        max_concurrency=max_concurrency)
    process = self.process(local_loop, client_batching)
    state = process.initialize()

    def one_round():
      return process.next(state, self.data).state

    seconds = _median_seconds(one_round, repeats)
    weights = process.get_model_weights(one_round()).trainable
    return seconds, [np.asarray(w) for w in weights]


def _max_difference(a, b) -> float:
  return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def main(argv=None):
  args = _parse(argv)
  gpus = runtime.configure_devices(memory_growth=True)
  build = tf.sysconfig.get_build_info()
  rows = [('devices', f'TF {tf.__version__}, CUDA '
           f'{build.get("cuda_version", "none")}, cuDNN '
           f'{build.get("cudnn_version", "none")}; GPUs: {gpus or "none"}')]
  report = dict(tf=tf.__version__, gpus=gpus, quick=args.quick)
  size = 1024 if args.quick else 8192
  cpu_dense = dense_update_seconds('/CPU:0', size)
  gpu_dense = dense_update_seconds(gpus[0], size) if gpus else None
  rows.append(('dense update', f'{size}x{size}, 20 steps: CPU {cpu_dense:.3f} s'
               + (f', GPU {gpu_dense:.3f} s ({cpu_dense / gpu_dense:.1f}x)'
                  if gpus else f', GPU {UNMEASURED}')))
  report.update(dense_cpu_s=cpu_dense, dense_gpu_s=gpu_dense)

  paper = PaperRound(args)
  cpp_s, cpp_w = paper.run('tff_cpp', args.rounds)
  with tf.device('/CPU:0'):
    cpu_s, _ = paper.run('in_process', args.rounds, client_devices=['/CPU:0'])
  rows.append(('paper round', f'{args.clients} clients x {args.examples} x '
               f'{args.epochs} epochs, {args.model}: tff_cpp {cpp_s:.2f} s, '
               f'in_process CPU {cpu_s:.2f} s'))
  report.update(round_tff_cpp_s=cpp_s, round_in_process_cpu_s=cpu_s)
  with tf.device('/CPU:0'):
    cpu_reduce_s, _ = paper.run('in_process', args.rounds,
                                client_devices=['/CPU:0'], local_loop='reduce')
  loops = f'in_process CPU: iterator {cpu_s:.2f} s, reduce {cpu_reduce_s:.2f} s'
  report.update(round_in_process_cpu_reduce_s=cpu_reduce_s)
  if gpus:
    gpu_reduce_s, _ = paper.run('in_process', args.rounds, client_devices=gpus,
                                local_loop='reduce')
    loops += f'; GPU: reduce {gpu_reduce_s:.2f} s (iterator below)'
    report.update(round_in_process_gpu_reduce_s=gpu_reduce_s)
  rows.append(('  loop kinds', loops + '; clients one by one'))
  with tf.device('/CPU:0'):
    cpu_batched_s, cpu_batched_w = paper.run(
        'in_process', args.rounds, client_devices=['/CPU:0'],
        client_batching='on')
  batched = (f'in_process CPU: {cpu_batched_s:.2f} s (one by one '
             f'{cpu_s:.2f} s); max |dw| vs tff_cpp '
             f'{_max_difference(cpu_batched_w, cpp_w):.2e}')
  report.update(round_in_process_cpu_batched_s=cpu_batched_s)
  if gpus:
    gpu_batched_s, gpu_batched_w = paper.run(
        'in_process', args.rounds, client_devices=gpus, client_batching='on')
    batched += (f'; GPU: {gpu_batched_s:.2f} s, max |dw| vs tff_cpp '
                f'{_max_difference(gpu_batched_w, cpp_w):.2e}')
    report.update(round_in_process_gpu_batched_s=gpu_batched_s)
  rows.append(('  batched', batched))
  if gpus:
    gpu_s, gpu_w = paper.run('in_process', args.rounds, client_devices=gpus)
    _, again_w = paper.run('in_process', 1, client_devices=gpus)
    difference = _max_difference(gpu_w, cpp_w)
    rows.append(('  on the GPU', f'in_process {gpu_s:.2f} s: '
                 f'{cpp_s / gpu_s:.1f}x tff_cpp, {cpu_s / gpu_s:.1f}x CPU'))
    rows.append(('agreement', f'GPU vs tff_cpp: max |dw| {difference:.2e} '
                 f'({"within" if difference <= 1e-5 else "beyond"} 1e-5)'))
    repeat_equal = all(np.array_equal(x, y) for x, y in zip(gpu_w, again_w))
    tf.config.experimental.enable_op_determinism()
    _, det_a = paper.run('in_process', 1, client_devices=gpus)
    _, det_b = paper.run('in_process', 1, client_devices=gpus)
    det_equal = all(np.array_equal(x, y) for x, y in zip(det_a, det_b))
    rows.append(('determinism', f'repeat bit-equal: {repeat_equal}; under op '
                 f'determinism: {det_equal}'))
    one_s, _ = paper.run('in_process', args.rounds, client_devices=gpus,
                         max_concurrency=1)
    many_s, _ = paper.run('in_process', args.rounds, client_devices=gpus,
                          max_concurrency=16)
    rows.append(('concurrency', f'1 thread {one_s:.2f} s, 16 threads '
                 f'{many_s:.2f} s ({one_s / many_s:.1f}x)'))
    report.update(round_in_process_gpu_s=gpu_s, max_abs_dw_vs_cpp=difference,
                  repeat_bit_equal=repeat_equal, determinism_bit_equal=det_equal,
                  concurrency_1_s=one_s, concurrency_16_s=many_s)
  else:
    rows += [('  on the GPU', UNMEASURED), ('agreement', UNMEASURED),
             ('determinism', UNMEASURED), ('concurrency', UNMEASURED)]
  width = max(len(name) for name, _ in rows)
  for name, text in rows:
    print(f'{name:<{width}}  {text}')
  print(json.dumps(report))
  return 0


if __name__ == '__main__':
  sys.exit(main())
