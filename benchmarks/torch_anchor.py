r"""An optional PyTorch anchor for `benchmarks.round_time`: one FedAvg round's
client training as a plain PyTorch loop.

  .venv/bin/python -m benchmarks.torch_anchor [--clients_per_round=30 ...]

The same work as a round of (b) in `round_time`: `clients` clients, one after
another, each `examples` random 28×28 examples, `epochs` local epochs of SGD
(rate 0.1) in batches of `batch_size`, on the paper's CNN
(`targeted_attack.process.models`' `cnn`: conv 32·3×3 → conv 64·3×3 → max-pool
2×2 → dropout .25 → dense 128 → dropout .5 → dense 10), each client starting
from the same initial weights, the updates averaged. It measures what a plain
framework loop costs on this machine, with no federated runtime at all.

torch is imported lazily; where it is not installed, `run` returns None and
prints "torch not installed: anchor skipped".
"""

import json
import statistics
import time
from typing import Optional

SKIPPED = 'torch not installed: anchor skipped'


def _cnn(torch, num_classes: int = 10):
  nn = torch.nn
  return nn.Sequential(
      nn.Conv2d(1, 32, 3), nn.ReLU(),
      nn.Conv2d(32, 64, 3), nn.ReLU(),
      nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
      nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
      nn.Linear(128, num_classes))


def run(clients: int = 30, examples: int = 100, epochs: int = 5,
        batch_size: int = 20, rounds: int = 5, seed: int = 0,
        verbose: bool = True) -> Optional[dict]:
  """Median seconds per round (after a warm-up round), or None without torch."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    if verbose:
      print(SKIPPED, flush=True)
    return None
  torch.manual_seed(seed)
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  model = _cnn(torch).to(device)
  initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
  generator = torch.Generator().manual_seed(seed)
  data = [(torch.rand(examples, 1, 28, 28, generator=generator),
           torch.randint(0, 10, (examples,), generator=generator))
          for _ in range(clients)]
  data = [(x.to(device), y.to(device)) for x, y in data]
  loss_fn = torch.nn.CrossEntropyLoss()

  def one_round():
    total = None
    for x, y in data:
      model.load_state_dict(initial)
      model.train()
      optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
      for _ in range(epochs):
        order = torch.randperm(examples, generator=generator).to(device)
        for start in range(0, examples, batch_size):
          batch = order[start:start + batch_size]
          optimizer.zero_grad()
          loss_fn(model(x[batch]), y[batch]).backward()
          optimizer.step()
      weights = [p.detach() for p in model.parameters()]
      total = weights if total is None else [t + w for t, w in
                                             zip(total, weights)]
    if device.type == 'cuda':
      torch.cuda.synchronize()
    return [t / clients for t in total]

  times = []
  for _ in range(rounds + 1):
    t0 = time.perf_counter()
    one_round()
    times.append(time.perf_counter() - t0)
  return dict(torch_round_s=statistics.median(times[1:]),
              torch_device=str(device), torch_version=torch.__version__,
              torch_threads=torch.get_num_threads())


def main(argv=None):
  """Its flags with argparse: the anchor's interpreter needs only torch and
  numpy (not absl, nor anything of this project's stack)."""
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--clients_per_round', type=int, default=30)
  parser.add_argument('--examples_per_client', type=int, default=100)
  parser.add_argument('--num_epochs', type=int, default=5)
  parser.add_argument('--batch_size', type=int, default=20)
  parser.add_argument('--rounds', type=int, default=5,
                      help='Timed rounds (after warm-up).')
  f = parser.parse_args(argv)
  result = run(f.clients_per_round, f.examples_per_client, f.num_epochs,
               f.batch_size, f.rounds)
  if result is not None:
    print(json.dumps(result))


if __name__ == '__main__':
  main()
