"""ARDIS (Kusetogullari et al. 2019), the edge case of Wang et al. (2020) on
EMNIST: 7s written in Swedish church records of 1895–1970, most with a
crossbar, which EMNIST's writers rarely draw.

The files are ARDIS dataset IV as the authors' `get_ardis_data.sh` unpacks
it (https://github.com/ardisdataset/ARDIS, `ARDIS_DATASET_IV.rar`), in one
directory: `ARDIS_train_2828.csv` and `ARDIS_test_2828.csv` (one image a
line, 784 pixel values 0–255 row-major, white ink on black as MNIST,
separated by whitespace) and `ARDIS_train_labels.csv` /
`ARDIS_test_labels.csv` (one line per image, the digit one-hot over 10
columns). Wang et al.'s code reads them with `np.loadtxt` and keeps the 7s
(column 7 of the labels); so does `read_sevens`.

The images are returned in TFF's EMNIST convention (background 1.0, ink 0):
x = 1 − v / 255.
"""

import os

import numpy as np

IMAGE_SIZE = 28
TRAIN_IMAGES = 'ARDIS_train_2828.csv'
TRAIN_LABELS = 'ARDIS_train_labels.csv'
TEST_IMAGES = 'ARDIS_test_2828.csv'
TEST_LABELS = 'ARDIS_test_labels.csv'
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SEVEN = 7


def _load(path: str) -> np.ndarray:
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'no {os.path.basename(path)} in {os.path.dirname(path)}: ARDIS '
        f'dataset IV\'s files ({", ".join(FILES)}, from '
        'https://github.com/ardisdataset/ARDIS, ARDIS_DATASET_IV.rar) go '
        'there.')
  with open(path) as f:
    first = f.readline()
  return np.loadtxt(path, dtype=np.float64,
                    delimiter=',' if ',' in first else None, ndmin=2)


def _digits(directory: str, images_file: str, labels_file: str,
            digit: int) -> np.ndarray:
  images = _load(os.path.join(directory, images_file))
  labels = _load(os.path.join(directory, labels_file))
  if images.shape[1] != IMAGE_SIZE * IMAGE_SIZE:
    raise ValueError(f'{images_file}: expected {IMAGE_SIZE * IMAGE_SIZE} '
                     f'pixel values a line, got {images.shape[1]}.')
  if labels.shape != (len(images), 10):
    raise ValueError(f'{labels_file}: expected one-hot labels [{len(images)}, '
                     f'10], got {list(labels.shape)}.')
  chosen = images[labels[:, digit] == 1]
  return (1.0 - chosen.reshape(-1, IMAGE_SIZE, IMAGE_SIZE) / 255.0).astype(
      np.float32)


def read_sevens(directory: str) -> tuple:
  """(train, test): ARDIS IV's 7s, float32 [n, 28, 28], background 1.0."""
  directory = os.path.expanduser(directory)
  return (_digits(directory, TRAIN_IMAGES, TRAIN_LABELS, SEVEN),
          _digits(directory, TEST_IMAGES, TEST_LABELS, SEVEN))


def write_ardis(directory: str, train_images, train_labels, test_images,
                test_labels) -> None:
  """Writes `FILES` in ARDIS IV's format: images uint8-valued [n, 28, 28]
  (white ink on black), labels ints (written one-hot)."""
  os.makedirs(directory, exist_ok=True)
  for (images_file, labels_file), images, labels in zip(
      ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)),
      (train_images, test_images), (train_labels, test_labels)):
    images = np.asarray(images, np.float64).reshape(len(images), -1)
    np.savetxt(os.path.join(directory, images_file), images)
    np.savetxt(os.path.join(directory, labels_file),
               np.eye(10)[np.asarray(labels, np.int64)])
