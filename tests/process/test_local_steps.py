"""`local_steps`: a client trains on its first local_steps · batch_size
examples of the epochs' shuffled order (FedSGD: one step of one batch)."""

import numpy as np
import pytest

from targeted_attack.process import round_data


def _batches(dataset):
  return [(b['x'].numpy(), b['y'].numpy()) for b in dataset]


@pytest.mark.parametrize('local_steps', [1, 3])
def test_a_client_keeps_the_first_steps_of_its_shuffled_epochs(local_steps):
  pixels = np.arange(23 * 4, dtype=np.float32).reshape(23, 2, 2)
  labels = np.arange(23) % 10
  seed, batch = 7, 5
  batches = _batches(round_data.client_dataset(pixels, labels, 2, batch, seed,
                                               local_steps))
  # The order, independently: two NumPy permutations from the seed.
  rng = np.random.default_rng(seed)
  order = np.concatenate([rng.permutation(23), rng.permutation(23)])
  kept = order[:local_steps * batch]
  assert [len(x) for x, _ in batches] == [batch] * local_steps
  np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]),
                                pixels[kept][..., None])
  np.testing.assert_array_equal(np.concatenate([y for _, y in batches]),
                                labels[kept][:, None])
  # 0: every batch of both epochs (46 examples: 10 batches, the last of 1).
  every = _batches(round_data.client_dataset(pixels, labels, 2, batch, seed))
  assert sum(len(x) for x, _ in every) == 46
