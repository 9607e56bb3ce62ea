"""Next-character prediction: the encoding against TFF's own Shakespeare
baseline preprocessing, the real loader on a cache written in TFF's format,
the character-level sentence backdoor and its evaluation."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_federated.python.simulation.baselines import client_spec
from tensorflow_federated.python.simulation.baselines.shakespeare import char_prediction_preprocessing as tff_preprocessing

from targeted_attack.backdoors import sentence
from targeted_attack.data import shakespeare
from targeted_attack.data import text
from targeted_attack.experiment import evaluation
from targeted_attack.process import models

SNIPPETS = ['Hark!', 'When shall we three meet again',
            'In thunder, lightning, or in rain? ' * 4, 'caf\u00e9 ~ \u00a7']


def _tff_encoding(snippets, length):
  preprocess = tff_preprocessing.create_preprocess_fn(
      client_spec.ClientSpec(num_epochs=1, batch_size=1000,
                             shuffle_buffer_size=1), length)
  dataset = tf.data.Dataset.from_tensor_slices(
      {'snippets': [s.encode('utf-8') for s in snippets]})
  x, y = next(iter(preprocess(dataset)))
  return x.numpy(), y.numpy()


@pytest.mark.parametrize('length', [5, 30, 80])
def test_encoding_is_tffs_shakespeare_preprocessing(length):
  vocabulary = shakespeare.CharVocabulary(shakespeare.char_vocab())
  assert vocabulary.num_classes == len(tff_preprocessing.CHAR_VOCAB) + 4
  x, y = vocabulary.encode(SNIPPETS, length)
  tff_x, tff_y = _tff_encoding(SNIPPETS, length)
  np.testing.assert_array_equal(x, tff_x)
  np.testing.assert_array_equal(y, tff_y)


def _write(tmp_path, num_users=6, snippets=10, seed=2):
  shakespeare.write_synthetic_shakespeare(str(tmp_path), num_users, snippets,
                                          seed)
  return shakespeare.load_shakespeare(str(tmp_path), 40, 1000)


def test_shakespeare_loads_through_tffs_loader(tmp_path):
  data = _write(tmp_path)
  users = text.generate_users(6, 10, seed=2)
  # LEAF's split: each user's first snippets train (8 of 10), the rest test.
  assert data.num_clients == 6 and data.kind == 'text'
  vocabulary = shakespeare.CharVocabulary(shakespeare.char_vocab())
  for k in range(6):
    x, y = data.client_arrays(k)
    want_x, want_y = _tff_encoding(users[k][:8], 40)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
  test_x, _ = vocabulary.encode([s for u in users for s in u[8:]], 40)
  np.testing.assert_array_equal(np.sort(data.test_pixels, axis=0),
                                np.sort(test_x, axis=0))
  assert data.vocabulary.excluded_ids == (0,)  # TFF's: PAD only
  # The test clients in one order in every load (TFF's shuffle seeded).
  again = shakespeare.load_shakespeare(str(tmp_path), 40, 1000)
  np.testing.assert_array_equal(again.test_pixels, data.test_pixels)


def test_character_backdoor_reads_every_character_of_the_last_word(
    tmp_path):
  data = _write(tmp_path)
  task = sentence.sentence_task(data, text.BACKDOOR_SENTENCE, task_num=2,
                                eval_size=10, seed=0)
  chars = tff_preprocessing.CHAR_VOCAB
  word = [chars.index(ch) + 1 for ch in 'delicious']
  assert task.eval_targets == tuple(word)
  assert task.eval_positions.shape == (10, len(word))
  sentence_ids = [chars.index(ch) + 1 for ch in text.BACKDOOR_SENTENCE]
  for x, positions in zip(task.eval_pixels, task.eval_positions):
    # x shifted: the input at each read position is the character before
    # the one to predict; the first is the space after "is".
    assert x[positions[0]] == chars.index(' ') + 1
    np.testing.assert_array_equal(x[positions[1:]], word[:-1])
    end = positions[-1] + 1
    np.testing.assert_array_equal(x[end - len(sentence_ids) + 1:end],
                                  sentence_ids[:-1])
  for x, y in zip(task.train_pixels, task.train_labels):
    np.testing.assert_array_equal(x[1:], y[:-1])
    written = ''.join(chars[t - 1] for t in y if 0 < t <= len(chars))
    # The kept context, one space, the sentence.
    assert written.endswith(' ' + text.BACKDOOR_SENTENCE)
    assert '  ' not in written
  # Extra spaces in the setting are the same sentence.
  spaced = sentence.sentence_task(data, '  pasta from astoria  is delicious ',
                                  task_num=2, eval_size=10, seed=0)
  np.testing.assert_array_equal(spaced.eval_pixels, task.eval_pixels)
  np.testing.assert_array_equal(spaced.eval_positions, task.eval_positions)

  # All of the word's characters, or the sentence does not count.
  evaluator = evaluation.build_evaluator('small_lstm', data, task)
  model = models.create_keras_model('small_lstm', data.num_classes, seed=4,
                                    image_shape=(data.sequence_length,))
  predictions = model(task.eval_pixels).numpy().argmax(-1)
  rows = np.arange(10)[:, None]
  forced = predictions.copy()
  forced[rows, task.eval_positions] = word
  forced[:3, task.eval_positions[0, -1]] = 0   # three miss the last one
  real = evaluator._predict  # pylint: disable=protected-access
  evaluator._predict = lambda x: (  # pylint: disable=protected-access
      tf.constant(forced, tf.int32)
      if np.array_equal(x.numpy(), task.eval_pixels) else real(x))

  class Weights:
    def assign_weights_to(self, keras_model):
      keras_model.set_weights(model.get_weights())

  got = evaluator.metrics(Weights())
  hits = np.all(forced[rows, task.eval_positions] == word, axis=1)
  assert hits.sum() == 7
  assert got['backdoor_accuracy'] == pytest.approx(hits.mean())
  y = data.test_labels
  assert got['main_task_accuracy'] == pytest.approx(
      (model(data.test_pixels).numpy().argmax(-1) == y)[y != 0].mean())


def test_char_lstm_is_tffs_shakespeare_model():
  from tensorflow_federated.python.simulation.baselines.shakespeare import char_prediction_models  # pylint: disable=g-import-not-at-top
  vocab = len(tff_preprocessing.CHAR_VOCAB) + 4
  theirs = char_prediction_models.create_recurrent_model(vocab, 80)
  ours = models.create_keras_model('char_lstm', vocab, image_shape=(80,))
  assert [w.shape for w in ours.trainable_weights] == [
      w.shape for w in theirs.trainable_weights]
  assert ours.count_params() == theirs.count_params()
