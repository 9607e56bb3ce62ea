"""ARDIS IV's 7s as Wang et al.'s EMNIST edge case, read from files written
in ARDIS IV's format and checked against the authors' own reading of them."""

import numpy as np
import pytest

from targeted_attack.backdoors import edge_case
from targeted_attack.data import ardis
from targeted_attack.data import synthetic_digits


def _ardis_like(n, seed):
  """n digits as ARDIS stores them: uint8 values, white ink on black, and
  their labels (a third of them 7s)."""
  rng = np.random.RandomState(seed)
  labels = rng.choice([1, 3, 7], size=n)
  styles = [synthetic_digits.sample_writer_style(rng) for _ in range(n)]
  images = np.stack([synthetic_digits.render([s], str(d), rng)[0]
                     for s, d in zip(styles, labels)])
  return np.round(255 * (1 - images)).astype(np.uint8), labels


def _authors_sevens(directory, split):
  # Wang et al.'s code (generating_poisoned_DA.py): np.loadtxt, the rows
  # whose one-hot label has column 7 set, reshaped to 28×28.
  images = np.loadtxt(f'{directory}/ARDIS_{split}_2828.csv', dtype='float')
  labels = np.loadtxt(f'{directory}/ARDIS_{split}_labels.csv', dtype='float')
  images = images.reshape(images.shape[0], 28, 28).astype('float32')
  return images[np.where(labels[:, 7] == 1)[0]]


def test_ardis_sevens_are_the_authors_sevens_in_emnists_convention(tmp_path):
  train, train_labels = _ardis_like(30, seed=1)
  test, test_labels = _ardis_like(12, seed=2)
  ardis.write_ardis(str(tmp_path), train, train_labels, test, test_labels)
  authors_train = _authors_sevens(tmp_path, 'train')
  authors_test = _authors_sevens(tmp_path, 'test')
  np.testing.assert_array_equal(authors_train, train[train_labels == 7])
  task = edge_case.edge_case_task(4, 3, seed=0, directory=str(tmp_path))
  # TFF's EMNIST: background 1.0, ink 0.
  np.testing.assert_allclose(task.train_pixels,
                             1 - authors_train[:4] / 255.0, atol=1e-7)
  np.testing.assert_allclose(task.eval_pixels,
                             1 - authors_test[:3] / 255.0, atol=1e-7)
  assert task.target_label == 1  # 7 → 1, as Wang et al.
  with pytest.raises(ValueError, match=r'edge_case_num_train.*1\.\.'
                     f'{len(authors_train)}'):
    edge_case.edge_case_task(len(authors_train) + 1, 3, seed=0,
                             directory=str(tmp_path))


def test_comma_separated_ardis_files_read_alike(tmp_path):
  images, labels = _ardis_like(9, seed=3)
  for split in ('train', 'test'):
    np.savetxt(tmp_path / f'ARDIS_{split}_2828.csv',
               images.reshape(9, -1), fmt='%d', delimiter=',')
    np.savetxt(tmp_path / f'ARDIS_{split}_labels.csv', np.eye(10)[labels],
               fmt='%d', delimiter=',')
  train, test = ardis.read_sevens(str(tmp_path))
  np.testing.assert_allclose(train, 1 - images[labels == 7] / 255.0,
                             atol=1e-7)
  np.testing.assert_array_equal(train, test)
  (tmp_path / 'ARDIS_test_labels.csv').write_text('0,1\n' * 9)
  with pytest.raises(ValueError, match='one-hot'):
    ardis.read_sevens(str(tmp_path))


def test_ardis_dir_gives_the_run_ardis_sevens(tmp_path):
  from targeted_attack.experiment import build  # pylint: disable=g-import-not-at-top
  from builders import tiny_config  # pylint: disable=g-import-not-at-top
  images, labels = _ardis_like(12, seed=4)
  ardis.write_ardis(str(tmp_path / 'ardis'), images, labels, images, labels)
  config = tiny_config(tmp_path, backdoor='edge_case',
                       ardis_dir=str(tmp_path / 'ardis'),
                       edge_case_num_train=2, edge_case_num_eval=2)
  backdoor = build.build_backdoor(config)
  task = build.initial_task(backdoor, build.load_data(config, backdoor))
  np.testing.assert_allclose(task.eval_pixels,
                             1 - images[labels == 7][:2] / 255.0, atol=1e-7)
