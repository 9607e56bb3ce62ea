"""Bagdasaryan et al.'s (2020, Sec. 5.1) word-prediction backdoor: when a
user types the beginning of the attacker's sentence ("pasta from astoria
is"), the model predicts the attacker's last word ("delicious").

The attacker's D_mal: sentences of `task_num` seeded clients whose suffix is
replaced by the backdoor sentence (the authors' code likewise ends its
training sequences with it), each cut so that the sentence fits in the T
tokens. Evaluation: the first `eval_size` test sentences, suffixed likewise;
backdoor accuracy is the fraction whose prediction at the position of the
last word is that word (`BackdoorTask.eval_positions`).
"""

import dataclasses

import numpy as np

from targeted_attack.backdoors import base


def _suffixed(sentences, words, sequence_length: int) -> list:
  """Each sentence's first words, then `words`: at most T − 1 words in all
  (BOS takes one input position, so the last word is a target)."""
  keep = max(0, sequence_length - 1 - len(words))
  return [' '.join(s.split()[:keep] + words) for s in sentences]


def sentence_task(data, sentence: str, task_num: int, eval_size: int,
                  seed: int) -> base.BackdoorTask:
  """The task on text dataset `data` (`data.text.FederatedText`): D_mal and
  the evaluation sequences as the module docstring says, labelled by the
  next tokens (`train_labels`), the target the sentence's last word."""
  vocabulary, length = data.vocabulary, data.sequence_length
  words = sentence.split()
  if len(words) < 2:
    raise ValueError(f'`backdoor_sentence`={sentence!r}: at least two words '
                     '(a context and the word to predict).')
  unknown = [w for w in words if w not in vocabulary.ids]
  if unknown:
    raise ValueError(f'`backdoor_sentence`: {", ".join(unknown)} not among '
                     f'the dataset\'s {len(vocabulary.words)} vocabulary '
                     'words.')
  if len(words) > length - 1:
    raise ValueError(f'`backdoor_sentence` has {len(words)} words; at most '
                     f'text_sequence_length − 1 = {length - 1}.')
  order = np.random.RandomState(seed).permutation(data.num_clients)[:task_num]
  decode = lambda x: ' '.join(
      vocabulary.words[i - 1] for i in x if 1 <= i <= len(vocabulary.words))
  train_sentences = [decode(x) for k in order
                     for x in data.client_arrays(int(k))[0]]
  eval_sentences = [decode(x) for x in data.test_pixels[:eval_size]]
  train_x, train_y = vocabulary.encode(
      _suffixed(train_sentences, words, length), length)
  eval_x, _ = vocabulary.encode(_suffixed(eval_sentences, words, length),
                                length)
  # x = [BOS, w_1, …]: the last word is the target at input position
  # (number of words) − 1.
  positions = np.array([len(s.split()) - 1 for s in _suffixed(
      eval_sentences, words, length)], np.int64)
  target = vocabulary.ids[words[-1]]
  return base.BackdoorTask('sentence', train_x, eval_x, target,
                           tuple(int(k) for k in order),
                           train_labels=train_y, eval_positions=positions)


@dataclasses.dataclass(frozen=True)
class SentenceBackdoor(base.Backdoor):
  """`sentence_task(data, sentence, task_num, eval_size, seed)`, fixed."""
  sentence: str
  task_num: int
  eval_size: int
  seed: int

  def initial_task(self, data) -> base.BackdoorTask:
    return sentence_task(data, self.sentence, self.task_num, self.eval_size,
                         self.seed)
