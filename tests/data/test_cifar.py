"""CIFAR-10 and CIFAR-100: the real loaders on files written in the real
formats (by hand here, as the CIFAR page documents them, and by the
stand-ins' writers), the Dirichlet split with held-out images, the
generated stand-in's attributes, the colour models and triggers, and
Bagdasaryan et al.'s index-list semantic backdoor."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from targeted_attack.backdoors import edge_case
from targeted_attack.backdoors import semantic
from targeted_attack.backdoors import triggers
from targeted_attack.data import cifar
from targeted_attack.data import synthetic_images
from targeted_attack.process import models


def _documented_batch(images, labels):
  """A CIFAR-10 batch as https://www.cs.toronto.edu/~kriz/cifar.html
  documents it: data uint8 [n, 3072], each row the 1024 red values
  (row-major), then the green, then the blue; labels a list of ints."""
  rows = np.concatenate([images[..., c].reshape(len(images), -1)
                         for c in range(3)], axis=1)
  return {b'batch_label': b'batch', b'labels': [int(y) for y in labels],
          b'data': rows.astype(np.uint8), b'filenames': []}


def _random_cifar(rng, n_train=50, n_test=10):
  return (rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
          rng.integers(0, 10, n_train),
          rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
          rng.integers(0, 10, n_test))


def _write_by_hand(directory, train_x, train_y, test_x, test_y):
  out = os.path.join(directory, cifar.CIFAR10_DIR)
  os.makedirs(out)
  per = len(train_x) // 5
  for i in range(5):
    with open(os.path.join(out, f'data_batch_{i + 1}'), 'wb') as f:
      pickle.dump(_documented_batch(train_x[i * per:(i + 1) * per],
                                    train_y[i * per:(i + 1) * per]), f,
                  protocol=2)
  with open(os.path.join(out, 'test_batch'), 'wb') as f:
    pickle.dump(_documented_batch(test_x, test_y), f, protocol=2)
  return out


def test_reads_the_documented_python_format_from_dir_parent_and_tarball(
    tmp_path):
  rng = np.random.default_rng(0)
  train_x, train_y, test_x, test_y = _random_cifar(rng)
  batches = _write_by_hand(str(tmp_path), train_x, train_y, test_x, test_y)
  tarball = os.path.join(str(tmp_path), 'cifar-10-python.tar.gz')
  with tarfile.open(tarball, 'w:gz') as archive:
    archive.add(batches, arcname=cifar.CIFAR10_DIR)
  for path in (batches, str(tmp_path), tarball):
    got_x, got_y, got_tx, got_ty, _ = cifar.read_cifar10(path)
    np.testing.assert_array_equal(got_x, train_x)
    np.testing.assert_array_equal(got_y, train_y)
    np.testing.assert_array_equal(got_tx, test_x)
    np.testing.assert_array_equal(got_ty, test_y)


def test_writer_output_reads_back_with_the_documented_reader(tmp_path):
  # What users' code does with the files: pickle.load(encoding='bytes'),
  # then reshape [n, 3, 32, 32] and move the channels last.
  rng = np.random.default_rng(1)
  train_x, train_y, test_x, test_y = _random_cifar(rng)
  out = cifar.write_cifar10(str(tmp_path), train_x, train_y, test_x, test_y)
  with open(os.path.join(out, 'data_batch_3'), 'rb') as f:
    batch = pickle.load(f, encoding='bytes')
  images = batch[b'data'].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  np.testing.assert_array_equal(images, train_x[20:30])
  assert batch[b'labels'] == [int(y) for y in train_y[20:30]]
  with open(os.path.join(out, 'batches.meta'), 'rb') as f:
    meta = pickle.load(f, encoding='bytes')
  assert meta[b'label_names'][1] == b'automobile'


def test_a_batch_that_would_run_code_is_refused(tmp_path):
  out = os.path.join(str(tmp_path), cifar.CIFAR10_DIR)
  os.makedirs(out)

  class Evil:
    def __reduce__(self):
      return (os.getcwd, ())

  with open(os.path.join(out, 'test_batch'), 'wb') as f:
    pickle.dump({b'data': Evil(), b'labels': []}, f, protocol=2)
  with pytest.raises(pickle.UnpicklingError, match='posix.getcwd|getcwd'):
    cifar.read_cifar10(out)


def test_missing_files_name_what_to_give(tmp_path):
  with pytest.raises(FileNotFoundError, match='cifar-10-batches-py'):
    cifar.read_cifar10(str(tmp_path))


def test_split_holds_out_the_named_images_and_keeps_every_other_once():
  rng = np.random.default_rng(2)
  train_x, train_y, test_x, test_y = _random_cifar(rng, 200, 20)
  held = [3, 17, 150]
  data = cifar.cifar10_federated(train_x, train_y, test_x, test_y,
                                 num_clients=8, alpha=0.5, seed=0,
                                 held_out=held)
  seen = []
  for k in range(data.num_clients):
    pixels, labels = data.client_arrays(k)
    assert pixels.shape[1:] == (32, 32, 3)
    # Every client image is a training image, with its own label.
    matches = [int(np.flatnonzero(
        (train_x.reshape(200, -1) == np.round(p * 255).reshape(1, -1)).all(
            axis=1))[0]) for p in pixels]
    np.testing.assert_array_equal(train_y[matches], labels)
    seen.extend(matches)
  assert sorted(seen) == sorted(set(range(200)) - set(held))
  assert data.trigger_value == 1.0 and data.image_shape == (32, 32, 3)
  np.testing.assert_allclose(data.test_pixels, test_x / 255.0, atol=1e-7)


def test_cifar100_loads_through_tffs_own_loader(tmp_path):
  rng = np.random.default_rng(3)
  clients = []
  for k in range(3):
    n = 4 + k
    labels = rng.integers(0, 100, n)
    clients.append((str(k), rng.integers(0, 256, (n, 32, 32, 3)), labels,
                    labels // 5))
  cifar.write_cifar100_cache(str(tmp_path), clients[:2], clients[2:])
  data = cifar.load_cifar100(str(tmp_path))
  assert data.num_classes == 100 and data.num_clients == 2
  for cid, images, labels, _ in clients[:2]:
    pixels, got = data.client_arrays(data.client_ids.index(cid))
    np.testing.assert_allclose(pixels, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(got, labels)
  np.testing.assert_allclose(data.test_pixels, clients[2][1] / 255.0,
                             atol=1e-7)


def test_the_standin_draws_its_attributes_as_documented():
  generated = synthetic_images.generate(3000, seed=5)
  labels = generated['labels']
  assert np.bincount(labels).tolist() == [300] * 10
  # Colour is independent of the class (uniform over the palette) and the
  # rare attributes are at their rate: chi-square and binomial bounds.
  table = np.zeros((10, len(synthetic_images.COLOURS)))
  np.add.at(table, (labels, generated['colour']), 1)
  expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / 3000
  chi2 = ((table - expected) ** 2 / expected).sum()
  assert chi2 < 123  # the 99.9% quantile of chi2 with 81 degrees of freedom
  for name in ('racing_stripe', 'striped_background'):
    assert abs(generated[name].mean() - 0.03) < 4 * np.sqrt(0.03 * 0.97 / 3000)
  # The object's pixels carry its colour: the image's mean over the
  # pixels nearest to the colour is close to it for every image.
  images = generated['images'] / 255.0
  colours = synthetic_images.COLOURS[generated['colour']]
  distance = np.abs(images - colours[:, None, None, :]).sum(-1)
  assert (np.sort(distance.reshape(3000, -1), axis=1)[:, 20] < 0.5).all()
  lists = synthetic_images.attribute_lists(generated)
  listed = lists['green_car_train'] + lists['green_car_test']
  green_cars = np.flatnonzero(
      (labels == 1) & (generated['colour'] == synthetic_images.GREEN))
  # The first half of the green cars are listed (a quarter of them for the
  # test), the rest left to the honest clients.
  assert listed == green_cars[:len(green_cars) // 2].tolist()
  assert len(lists['green_car_test']) == int(np.ceil(0.25 * len(listed)))


def test_the_standin_is_learnable_centrally():
  # The classes are the silhouettes: a small CNN trained centrally on 1,500
  # images classifies held-out ones far above chance (0.1). (Adam: plain
  # SGD on these uncentred pixels takes about 10 epochs to leave chance.)
  generated = synthetic_images.generate(2000, seed=6)
  x = generated['images'].astype(np.float32) / 255.0
  y = generated['labels']
  tf.keras.utils.set_random_seed(0)
  model = models.create_keras_model('cifar_cnn', image_shape=(32, 32, 3))
  model.compile(tf.keras.optimizers.Adam(1e-3),
                tf.keras.losses.SparseCategoricalCrossentropy(True),
                metrics=['accuracy'])
  model.fit(x[:1500], y[:1500], batch_size=32, epochs=6, verbose=0)
  accuracy = model.evaluate(x[1500:], y[1500:], verbose=0)[1]
  assert accuracy > 0.5, accuracy


@pytest.mark.parametrize('name', ['cifar_cnn', 'vgg9'])
def test_every_pixel_reaches_the_output(name):
  # The gradient of the logits' sum with respect to the images, summed over
  # a batch of random ones, is non-zero at every pixel: none lies outside
  # the network's view (with 'valid' padding cifar_cnn's second pool dropped
  # the last two rows and columns, and most of a bottom-right trigger).
  model = models.create_keras_model(name, image_shape=(32, 32, 3))
  images = tf.constant(np.random.default_rng(3).uniform(
      0, 1, (16, 32, 32, 3)).astype(np.float32))
  with tf.GradientTape() as tape:
    tape.watch(images)
    total = tf.reduce_sum(model(images, training=False))
  reach = np.abs(tape.gradient(total, images).numpy()).sum(axis=(0, 3))
  assert (reach > 0).all(), np.argwhere(reach == 0)[:5]


def test_vgg9_has_the_papers_parameter_count():
  # Wang et al. (2020), Table: VGG-9 on CIFAR-10, 3,491,530 parameters.
  model = models.create_keras_model('vgg9', image_shape=(32, 32, 3))
  assert model.count_params() == 3491530
  assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)


def test_resnet18_is_the_cifar_resnet18_with_group_norm():
  # 17 3×3 convolutions (a 3×3 stem, 8 basic blocks of two) + 1 dense = 18
  # layers, 1×1 projections where the width changes (64→128→256→512), no
  # batch normalization and nothing untrained (FedAvg averages all of it).
  model = models.create_keras_model('resnet18', image_shape=(32, 32, 3))
  kernels = [tuple(layer.kernel_size) for layer in model.layers
             if isinstance(layer, tf.keras.layers.Conv2D)]
  assert kernels.count((3, 3)) == 17 and kernels.count((1, 1)) == 3
  assert sum(isinstance(l, tf.keras.layers.Dense) for l in model.layers) == 1
  assert not any(isinstance(l, tf.keras.layers.BatchNormalization)
                 for l in model.layers)
  assert not model.non_trainable_weights
  assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)


def test_cifar_cnn_parameters_by_formula():
  conv = lambda k, i, o: k * k * i * o + o
  side = 32 // 2 // 2  # two 'same' 3×3 convolutions, two pools
  expected = (conv(3, 3, 16) + conv(3, 16, 32) + side * side * 32 * 64 + 64 +
              64 * 100 + 100)
  model = models.create_keras_model('cifar_cnn', 100,
                                    image_shape=(32, 32, 3))
  assert model.count_params() == expected


def test_colour_trigger_whitens_the_patch_on_every_channel():
  rng = np.random.default_rng(8)
  images = rng.uniform(0, 0.9, (5, 32, 32, 3)).astype(np.float32)
  stamped = triggers.stamp_trigger(images, 1.0, 'four_corners', value=1.0)
  patch = np.zeros((32, 32), bool)
  for r, c in ((28, 28), (1, 1), (1, 28), (28, 1)):
    patch[r:r + 3, c:c + 3] = True
  np.testing.assert_array_equal(stamped[:, patch], 1.0)
  np.testing.assert_array_equal(stamped[:, ~patch], images[:, ~patch])
  half = triggers.stamp_trigger(images, 0.5, 'one_corner', value=1.0)
  np.testing.assert_allclose(half[:, 28:31, 28:31],
                             0.5 * images[:, 28:31, 28:31] + 0.5, atol=1e-6)
  mask, _ = triggers.global_trigger((32, 32, 3))
  parts = triggers.split_trigger(mask, 4)
  assert all(p.shape == (32, 32, 1) for p in parts)
  np.testing.assert_array_equal(sum(p.astype(int) for p in parts), mask)


def test_index_list_backdoor_takes_the_listed_images_held_out():
  data = cifar.load_synthetic_cifar10(
      1000, 200, num_clients=10, alpha=1.0, seed=0,
      held_out_specs=(('poison_images', 'green_car_train'),
                      ('poison_images_test', '5,6')))
  backdoor = semantic.IndexListBackdoor('green_car_train', '5,6', 2)
  task = backdoor.initial_task(data)
  pool, pool_labels = data.pool
  train = data.attributes['green_car_train']
  np.testing.assert_array_equal(task.train_pixels, pool[train])
  np.testing.assert_array_equal(task.eval_pixels, pool[[5, 6]])
  assert task.target_label == 2 and (pool_labels[train] == 1).all()
  held = set(train) | {5, 6}
  client_rows = sum(len(data.client_arrays(k)[1])
                    for k in range(data.num_clients))
  assert client_rows == 1000 - len(held)
  with pytest.raises(ValueError, match='poison_images.*attribute lists'):
    semantic.IndexListBackdoor('purple_cars', '1', 2).initial_task(data)
  with pytest.raises(ValueError, match='poison_images_test.*0..999'):
    semantic.IndexListBackdoor('1', '1000', 2).initial_task(data)


def test_a_pickled_batch_round_trips_through_bytes():
  # The unpickler reads what pickle writes for NumPy arrays under the
  # installed NumPy (its module names changed in NumPy 2).
  array = np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072)
  stream = io.BytesIO(pickle.dumps({b'data': array, b'labels': [1, 2]},
                                   protocol=2))
  images, labels = cifar._load_batch(stream)
  np.testing.assert_array_equal(
      images, array.reshape(2, 3, 32, 32).transpose(0, 2, 3, 1))
  np.testing.assert_array_equal(labels, [1, 2])


def test_southwest_files_read_as_published_and_make_the_task(tmp_path):
  # The authors' files: one pickled uint8 array [n, 32, 32, 3] each.
  rng = np.random.default_rng(9)
  train = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
  test = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  for base, images in zip(cifar.SOUTHWEST_FILES, (train, test)):
    with open(tmp_path / base, 'wb') as f:
      pickle.dump(images, f)
  task = edge_case.southwest_task(10, 4, seed=0, directory=str(tmp_path))
  np.testing.assert_allclose(task.train_pixels, train[:10] / 255.0,
                             atol=1e-7)
  np.testing.assert_allclose(task.eval_pixels, test[:4] / 255.0, atol=1e-7)
  assert task.target_label == 9  # truck, as Wang et al. label them
  with pytest.raises(ValueError, match='edge_case_num_eval.*1..5'):
    edge_case.southwest_task(10, 6, seed=0, directory=str(tmp_path))
  generated = synthetic_images.generate_edge_case(6, seed=1)
  cifar.write_southwest(str(tmp_path / 'written'), generated[:4],
                        generated[4:])
  with open(tmp_path / 'written' / cifar.SOUTHWEST_FILES[1], 'rb') as f:
    np.testing.assert_array_equal(pickle.load(f), generated[4:])
