"""Next-character prediction: TFF's federated Shakespeare (LEAF's 715
speaking roles) and its generated stand-in, as character sequences.

A snippet becomes TFF's Shakespeare baseline examples
(`tff.simulation.baselines.shakespeare`'s preprocessing): its bytes mapped
through TFF's 86-character vocabulary (`char_vocab`), 1 … V in its order, any
other byte OOV = V + 1, BOS = V + 2 first, EOS = V + 3 last, PAD (0) to a
multiple of T + 1, then cut into rows of T + 1: x = row[:-1], y = row[1:]
(T = `sequence_length`, TFF's 80). Main-task accuracy counts every target
but PAD, as TFF's baseline (`MaskedCategoricalAccuracy(masked_tokens=[pad])`).

**Shakespeare** (`load_shakespeare`): `tff.simulation.datasets.shakespeare.
load_data(cache_dir)` reads `<cache_dir>/shakespeare.sqlite` (the
decompressed shakespeare.sqlite.lzma): each client's train snippets, and the
test snippets of every client pooled.

**The stand-in** (`write_synthetic_shakespeare`): the generated users of the
next-word stand-in (`text.generate_users`), each sentence a snippet, written
as TFF's shakespeare.sqlite and read by the same loader; so Bagdasaryan et
al.'s sentence backdoor ("pasta from astoria is delicious") has a context
that honest users complete otherwise, here one character at a time.
"""

import os
from typing import Optional, Sequence

import numpy as np

from targeted_attack.data import emnist_cache
from targeted_attack.data import federated
from targeted_attack.data import text

SHAKESPEARE_FILE = 'shakespeare.sqlite'
SPLITS = ('train', 'test')


def char_vocab() -> list:
  """TFF's Shakespeare character vocabulary (86 characters)."""
  from tensorflow_federated.python.simulation.baselines.shakespeare import char_prediction_preprocessing  # pylint: disable=g-import-not-at-top
  return list(char_prediction_preprocessing.CHAR_VOCAB)


class CharVocabulary(text.Vocabulary):
  """Character ↔ id: PAD 0, the characters 1 … V, OOV V + 1, BOS V + 2,
  EOS V + 3; a sentence's tokens are its characters."""

  # Main-task accuracy skips PAD targets only (TFF's Shakespeare baseline).
  accuracy_excludes = ('pad',)

  def tokens(self, sentence: str) -> list:
    return list(sentence)

  def _byte_ids(self, snippet: str) -> list:
    # TFF splits the snippet's bytes (tf.strings.bytes_split): a non-ASCII
    # character is several bytes, each OOV.
    return [self.ids.get(chr(b), self.oov) if b < 128 else self.oov
            for b in snippet.encode('utf-8')]

  def encode(self, snippets: Sequence[str], sequence_length: int) -> tuple:
    """(x, y) int32 [rows, T]: each snippet as BOS, its characters, EOS,
    PAD-padded to a multiple of T + 1 and cut into rows of T + 1, split into
    input and next character."""
    width = sequence_length + 1
    rows = []
    for snippet in snippets:
      ids = [self.bos] + self._byte_ids(snippet) + [self.eos]
      ids += [text.PAD] * (-len(ids) % width)
      rows.append(np.asarray(ids, np.int32).reshape(-1, width))
    ids = (np.concatenate(rows) if rows else
           np.zeros((0, width), np.int32))
    return ids[:, :-1], ids[:, 1:]


def _snippets(dataset) -> list:
  out = []
  for batch in dataset.batch(4096):
    out.extend(s.decode('utf-8', errors='replace')
               for s in batch['snippets'].numpy())
  return out


def load_shakespeare(cache_dir: Optional[str], sequence_length: int,
                     max_test_sequences: int,
                     name: str = 'shakespeare') -> text.FederatedText:
  """TFF's federated Shakespeare: each train client's snippets encoded
  (`CharVocabulary.encode`); the first `max_test_sequences` rows of the
  pooled test snippets, the test clients in a fixed order (TFF's shuffle
  seeded 0), so that every process evaluates the same rows."""
  import tensorflow_federated as tff  # pylint: disable=g-import-not-at-top
  train, test = emnist_cache.load_tff_dataset(
      lambda d: tff.simulation.datasets.shakespeare.load_data(cache_dir=d),
      cache_dir, SHAKESPEARE_FILE, 'Shakespeare', 'shakespeare_cache_dir',
      'synthetic_shakespeare')
  vocabulary = CharVocabulary(char_vocab())
  test_x, test_y = vocabulary.encode(
      _snippets(test.create_tf_dataset_from_all_clients(
          seed=0)), sequence_length)

  def load(cid):
    return vocabulary.encode(_snippets(train.create_tf_dataset_for_client(
        cid)), sequence_length)

  return text.FederatedText(train.client_ids, load,
                            test_x[:max_test_sequences],
                            test_y[:max_test_sequences], name, vocabulary,
                            sequence_length)


def _example(snippet: str) -> bytes:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.train.Example(features=tf.train.Features(feature={
      'snippets': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[snippet.encode('utf-8')]))})).SerializeToString()


def write_shakespeare_cache(cache_dir: str, splits: dict,
                            overwrite: bool = False) -> str:
  """Writes <cache_dir>/shakespeare.sqlite in TFF's format (splits 'train'
  and 'test', examples with `snippets`) from `splits` {split: [(client_id,
  [snippet, …]), …]}."""
  rows, metadata = [], []
  for split in SPLITS:
    for client_id, snippets in splits.get(split, []):
      if not snippets:
        raise ValueError(f'client {client_id!r} of {split} has no snippet.')
      rows.extend((split, client_id, _example(s)) for s in snippets)
      metadata.append((client_id, split, len(snippets)))
  return emnist_cache.write_client_sqlite(
      os.path.join(cache_dir, SHAKESPEARE_FILE), rows, metadata, overwrite)


def write_synthetic_shakespeare(cache_dir: str, num_users: int,
                                snippets_per_user: int, seed: int) -> str:
  """The stand-in: `text.generate_users`' users, a sentence a snippet; as
  LEAF's split, each user's first four fifths of its snippets (at least
  one) train, the rest (at least one) test."""
  users = text.generate_users(num_users, max(snippets_per_user, 2), seed)
  ids = [f'USER_{k:05d}' for k in range(num_users)]
  cut = lambda s: max(1, min(len(s) - 1, (4 * len(s)) // 5))
  splits = {'train': [(i, s[:cut(s)]) for i, s in zip(ids, users)],
            'test': [(i, s[cut(s):]) for i, s in zip(ids, users)]}
  return write_shakespeare_cache(cache_dir, splits)


def load_synthetic_shakespeare(num_users: int, snippets_per_user: int,
                               seed: int, sequence_length: int,
                               max_test_sequences: int
                               ) -> text.FederatedText:
  """The stand-in, written to a temporary directory and read by
  `load_shakespeare` (every client read before the directory goes)."""
  return federated.read_back(
      lambda tmp: write_synthetic_shakespeare(tmp, num_users,
                                              snippets_per_user, seed),
      lambda tmp: load_shakespeare(tmp, sequence_length, max_test_sequences,
                                   name='synthetic_shakespeare'))
