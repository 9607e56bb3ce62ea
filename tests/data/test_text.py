"""Next-word prediction: the encoding against TFF's own Stack Overflow
baseline preprocessing, the real loader on a cache written in TFF's format,
the masked loss and accuracy against NumPy, the evaluator, and Bagdasaryan
et al.'s sentence backdoor."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_federated.python.simulation.baselines.stackoverflow import word_prediction_preprocessing as tff_preprocessing

from targeted_attack.backdoors import sentence
from targeted_attack.data import text
from targeted_attack.experiment import evaluation
from targeted_attack.process import models

VOCAB = ['the', 'a', 'pasta', 'from', 'astoria', 'is', 'delicious', 'bad']


def _tff_encoding(sentences, length):
  to_ids = tff_preprocessing.build_to_ids_fn(VOCAB, length)
  dataset = tf.data.Dataset.from_tensor_slices({'tokens': sentences}).map(
      to_ids)
  x, y = next(iter(tff_preprocessing.batch_and_split(dataset, length,
                                                     len(sentences))))
  return x.numpy(), y.numpy()


def test_encoding_is_tffs_stackoverflow_preprocessing():
  rng = np.random.default_rng(0)
  words = VOCAB + ['zebra', 'quux']
  sentences = [' '.join(rng.choice(words, rng.integers(1, 12)))
               for _ in range(40)] + ['a  b', 'the\xa0pasta', 'a b ']
  for length in (5, 8, 20):
    x, y = text.Vocabulary(VOCAB).encode(sentences, length)
    tff_x, tff_y = _tff_encoding(sentences, length)
    np.testing.assert_array_equal(x, tff_x)
    np.testing.assert_array_equal(y, tff_y)
  pad, oov, bos, eos = text.special_ids(len(VOCAB) + 4)
  special = tff_preprocessing.get_special_tokens(len(VOCAB))
  assert (pad, [oov], bos, eos) == (special.padding, special.out_of_vocab,
                                    special.beginning_of_sentence,
                                    special.end_of_sentence)


def test_stackoverflow_loads_through_tffs_loader(tmp_path):
  splits = {'train': [('u1', ['the pasta is bad', 'a pasta']),
                      ('u2', ['the the zebra'])],
            'heldout': [('u3', ['a'])],
            'test': [('u3', ['pasta from astoria is', 'bad'])]}
  text.write_stackoverflow_cache(str(tmp_path), splits)
  data = text.load_stackoverflow(str(tmp_path), vocab_size=3,
                                 sequence_length=6, max_test_sentences=10)
  # Word counts: the users using each word (the: 2, every other word: 1),
  # most first, ties by the word.
  assert data.vocabulary.words == ['the', 'a', 'bad']
  for cid, sentences in splits['train']:
    x, y = data.client_arrays(data.client_ids.index(cid))
    expected = data.vocabulary.encode(sentences, 6)
    np.testing.assert_array_equal(x, expected[0])
    np.testing.assert_array_equal(y, expected[1])
  np.testing.assert_array_equal(
      data.test_pixels, data.vocabulary.encode(splits['test'][0][1], 6)[0])
  assert data.num_classes == 7 and data.kind == 'text'


def test_the_test_sentences_come_in_one_order_in_every_load(tmp_path):
  # TFF pools the test clients in a shuffled order: seeded, the same rows
  # (the backdoor's evaluation sentences among them) in every process.
  text.write_synthetic_stackoverflow(str(tmp_path), 30, 3, seed=1)
  first, second = (text.load_stackoverflow(str(tmp_path), 100, 8, 100)
                   for _ in range(2))
  np.testing.assert_array_equal(first.test_pixels, second.test_pixels)


def test_masked_loss_and_accuracy_are_numpys():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(3, 5, 7)).astype(np.float32)
  y = rng.integers(0, 7, (3, 5)).astype(np.int32)
  y[0, 3:] = 0
  y[2, 1:] = 0
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ce = -np.take_along_axis(log_softmax, y[..., None], -1)[..., 0]
  mask = y != 0
  loss = models.MaskedSparseCrossEntropy()(tf.constant(y), tf.constant(logits))
  np.testing.assert_allclose(loss, ce[mask].mean(), rtol=1e-5)
  metric = models.MaskedTokenAccuracy()
  metric.update_state(tf.constant(y), tf.constant(logits))
  np.testing.assert_allclose(metric.result(),
                             (logits.argmax(-1) == y)[mask].mean(), rtol=1e-6)


def _text_data(tmp_path, users=12, per_user=15, length=10):
  text.write_synthetic_stackoverflow(str(tmp_path), users, per_user, seed=0)
  return text.load_stackoverflow(str(tmp_path), 10000, length, 50)


def test_sentence_task_ends_each_sequence_with_the_backdoor(tmp_path):
  data = _text_data(tmp_path)
  words = text.BACKDOOR_SENTENCE.split()
  task = sentence.sentence_task(data, text.BACKDOOR_SENTENCE, task_num=2,
                                eval_size=20, seed=0)
  vocabulary = data.vocabulary
  ids = [vocabulary.ids[w] for w in words]
  assert task.target_label == vocabulary.ids['delicious']
  clients = np.concatenate([data.client_arrays(int(k))[0]
                            for k in task.target_clients])
  for source, x, y in zip(clients, task.train_pixels, task.train_labels):
    # The sentence's words are the last words before EOS, after the
    # source's first words (OOV included), and y is x shifted by one.
    end = int(np.flatnonzero(y == vocabulary.eos)[0]) if (
        y == vocabulary.eos).any() else len(y)
    np.testing.assert_array_equal(y[end - len(ids):end], ids)
    np.testing.assert_array_equal(x[1:end - len(ids) + 1],
                                  source[1:end - len(ids) + 1])
    np.testing.assert_array_equal(x[1:], y[:-1])
  assert len(task.eval_pixels) == 20
  for x, position in zip(task.eval_pixels, task.eval_positions):
    # The position reads the sentence's last word: its input is the word
    # before it.
    assert x[position] == vocabulary.ids[words[-2]]
    assert x[position - len(ids) + 2] == ids[0]
  with pytest.raises(ValueError, match='backdoor_sentence.*zebra'):
    sentence.sentence_task(data, 'pasta is zebra', 2, 20, 0)


def test_text_evaluator_counts_words_and_reads_the_backdoor_position(
    tmp_path):
  data = _text_data(tmp_path)
  task = sentence.sentence_task(data, text.BACKDOOR_SENTENCE, 2, 20, 0)
  evaluator = evaluation.build_evaluator('small_lstm', data, task)
  model = models.create_keras_model('small_lstm', data.num_classes, seed=4,
                                    image_shape=(data.sequence_length,))
  class Weights:
    def assign_weights_to(self, keras_model):
      keras_model.set_weights(model.get_weights())

  got = evaluator.metrics(Weights())
  predictions = model(data.test_pixels).numpy().argmax(-1)
  y = data.test_labels
  valid = (y > 0) & (y <= len(data.vocabulary.words))
  backdoor = model(task.eval_pixels).numpy().argmax(-1)
  read = backdoor[np.arange(len(backdoor)), task.eval_positions]
  assert got['main_task_accuracy'] == pytest.approx(
      (predictions == y)[valid].mean())
  assert got['backdoor_accuracy'] == pytest.approx(
      (read == task.target_label).mean())
