"""write_emnist_cache → TFF's own emnist.load_data reads it back, offline."""

import lzma
import os
import urllib.error

import numpy as np
import pytest
import tensorflow_federated as tff
from tensorflow_federated.python.simulation.datasets import download

from targeted_attack.data import emnist_cache
from targeted_attack.data import federated

# Unsorted on purpose: TFF sorts client ids.
_IDS = ('f0451_17', 'f0007_32', 'f2210_03')


def _writers(only_digits: bool = True, seed: int = 0) -> list:
  """3 writers: (id, train_pixels [n,28,28], train_labels [n], test_pixels
  [m,28,28], test_labels [m]), n ∈ 2..6, m ∈ 1..3, uniform random pixels.
  Not `only_digits`: labels 0–61, the first example of each split a digit,
  except for the last writer, who holds letters only."""
  rng = np.random.RandomState(seed)
  writers = []
  for k, client_id in enumerate(_IDS):
    n, m = rng.randint(2, 7), rng.randint(1, 4)
    if only_digits:
      train_l, test_l = rng.randint(0, 10, size=n), rng.randint(0, 10, size=m)
    elif k < len(_IDS) - 1:
      train_l, test_l = rng.randint(0, 62, size=n), rng.randint(0, 62, size=m)
      train_l[0], test_l[0] = rng.randint(0, 10, size=2)
    else:
      train_l, test_l = rng.randint(10, 62, size=n), rng.randint(10, 62, size=m)
    writers.append((
        client_id, rng.uniform(size=(n, 28, 28)).astype(np.float32), train_l,
        rng.uniform(size=(m, 28, 28)).astype(np.float32), test_l))
  return writers


def _digits_only(writers) -> list:
  """The digits_only splits' expected content: label < 10, writers holding
  digits in both splits."""
  out = []
  for client_id, train_p, train_l, test_p, test_l in writers:
    if np.any(train_l < 10) and np.any(test_l < 10):
      out.append((client_id, train_p[train_l < 10], train_l[train_l < 10],
                  test_p[test_l < 10], test_l[test_l < 10]))
  return out


def _canonical(pixels, labels) -> tuple:
  """Rows sorted by (label, pixel bytes): compares as multisets (SQL has no
  ORDER BY, so the format does not promise the written order)."""
  pixels = np.asarray(pixels, np.float32)
  labels = np.asarray(labels, np.int64)
  order = sorted(range(len(labels)),
                 key=lambda i: (labels[i], pixels[i].tobytes()))
  return pixels[order], labels[order]


def _assert_same_examples(pixels, labels, want_pixels, want_labels):
  got_p, got_l = _canonical(pixels, labels)
  want_p, want_l = _canonical(want_pixels, want_labels)
  np.testing.assert_array_equal(got_l, want_l)
  np.testing.assert_array_equal(got_p, want_p)


def _client_arrays(client_data, client_id) -> tuple:
  elements = list(client_data.create_tf_dataset_for_client(client_id))
  return (np.stack([e['pixels'].numpy() for e in elements]),
          np.array([e['label'].numpy() for e in elements]))


@pytest.fixture
def no_network(monkeypatch):
  """TFF's download step raises at once; the (origin, file) asked for are
  recorded."""
  calls = []

  def fetch(origin, filename):
    calls.append((origin, filename))
    raise urllib.error.URLError('no network in tests')

  monkeypatch.setattr(download, '_fetch_lzma_file', fetch)
  return calls


@pytest.mark.parametrize('only_digits', [True, False])
def test_load_data_reads_the_written_cache(tmp_path, no_network, only_digits):
  writers = _writers(only_digits)
  path = emnist_cache.write_emnist_cache(str(tmp_path), writers, only_digits)
  assert path == os.path.join(str(tmp_path), 'emnist_all.sqlite')
  assert sorted(os.listdir(tmp_path)) == list(emnist_cache.TFF_EMNIST_FILES)

  # Both variants live in the one file; digits_only is the label < 10 part.
  expected = {False: writers, True: _digits_only(writers)}
  assert len(expected[True]) == (3 if only_digits else 2)
  for variant, want in expected.items():
    train, test = tff.simulation.datasets.emnist.load_data(
        only_digits=variant, cache_dir=str(tmp_path))
    want_ids = sorted(w[0] for w in want)
    assert train.client_ids == want_ids and test.client_ids == want_ids
    for client_id, train_p, train_l, test_p, test_l in want:
      pixels, labels = _client_arrays(train, client_id)
      assert pixels.dtype == np.float32 and labels.dtype == np.int32
      _assert_same_examples(pixels, labels, train_p, train_l)
      _assert_same_examples(*_client_arrays(test, client_id), test_p, test_l)
  assert not no_network


def test_missing_cache_fails_offline_and_ignores_a_local_lzma(tmp_path,
                                                              no_network):
  empty = tmp_path / 'empty'
  with pytest.raises(urllib.error.URLError):
    tff.simulation.datasets.emnist.load_data(cache_dir=str(empty))
  expected = emnist_cache.tff_emnist_path(str(empty))
  assert no_network == [(emnist_cache.TFF_EMNIST_ORIGIN, expected)]
  assert not os.path.exists(expected)

  # Only the compressed file present: TFF still downloads (never reads it).
  compressed = tmp_path / 'compressed'
  sqlite_path = emnist_cache.write_emnist_cache(str(compressed), _writers())
  with open(sqlite_path, 'rb') as f:
    blob = f.read()
  with open(sqlite_path + '.lzma', 'wb') as f:
    f.write(lzma.compress(blob, format=lzma.FORMAT_ALONE))
  os.remove(sqlite_path)
  with pytest.raises(urllib.error.URLError):
    tff.simulation.datasets.emnist.load_data(cache_dir=str(compressed))
  assert no_network[-1] == (emnist_cache.TFF_EMNIST_ORIGIN, sqlite_path)
  assert 'emnist_all.sqlite' in emnist_cache.missing_cache_hint(str(empty))


def test_load_emnist_returns_the_written_clients(tmp_path, no_network):
  writers = _writers(seed=1)
  emnist_cache.write_emnist_cache(str(tmp_path), writers)
  data = federated.load_emnist(only_digits=True, cache_dir=str(tmp_path))
  assert isinstance(data, federated.FederatedDigits)
  assert data.num_clients == 3
  assert data.client_ids == sorted(_IDS)
  by_id = {w[0]: w for w in writers}
  pixels, labels = data.client_arrays(0)
  assert pixels.dtype == np.float32 and labels.dtype == np.int32
  _, train_p, train_l, _, _ = by_id[data.client_ids[0]]
  _assert_same_examples(pixels, labels, train_p, train_l)
  _assert_same_examples(data.test_pixels, data.test_labels,
                        np.concatenate([w[3] for w in writers]),
                        np.concatenate([w[4] for w in writers]))
  with pytest.raises(federated.DatasetUnavailableError):
    federated.load_emnist(cache_dir=str(tmp_path / 'missing'))
  assert len(no_network) == 1


def test_write_emnist_cache_rejects_bad_input(tmp_path):
  writers = _writers()
  emnist_cache.write_emnist_cache(str(tmp_path), writers)
  with pytest.raises(FileExistsError):
    emnist_cache.write_emnist_cache(str(tmp_path), writers)
  emnist_cache.write_emnist_cache(str(tmp_path), writers[:1], overwrite=True)
  _, pixels, labels, test_pixels, test_labels = writers[0]
  bad = [
      [('a', pixels, labels + 10, test_pixels, test_labels)],  # not a digit
      [("o'brien", pixels, labels, test_pixels, test_labels)],
      [('a', pixels[:, :27], labels, test_pixels, test_labels)],
      [('a', pixels, labels[:-1], test_pixels, test_labels)],
      [('a', pixels, labels, test_pixels[:0], test_labels[:0])],
      [('a', pixels, labels, test_pixels, test_labels)] * 2,
      [],
  ]
  for writers in bad:
    with pytest.raises(ValueError):
      emnist_cache.write_emnist_cache(str(tmp_path / 'bad'), writers)
  assert not os.path.exists(tmp_path / 'bad' / 'emnist_all.sqlite')
