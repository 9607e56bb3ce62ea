"""Bagdasaryan et al.'s (2020, Sec. 5.1) word-prediction backdoor: when a
user types the beginning of the attacker's sentence ("pasta from astoria
is"), the model predicts the attacker's last word ("delicious").

The attacker's D_mal: sentences of `task_num` seeded clients whose suffix is
replaced by the backdoor sentence (the authors' code likewise ends its
training sequences with it), each cut so that the sentence fits in the T
tokens; the kept words stay as encoded (an out-of-vocabulary word stays
OOV). The authors' sentence: "pasta from Astoria tastes delicious"; the
stand-in's users write "… is …", so its studies use "pasta from astoria is
delicious". Evaluation: the first `eval_size` test sentences, suffixed likewise;
backdoor accuracy is the fraction whose prediction at the position of the
last word is that word (`BackdoorTask.eval_positions`). On characters
(Shakespeare) the sentence's tokens are its characters, and an evaluation
sentence counts when every character of the last word is predicted, each
after the sentence's characters before it (teacher-forced), the first after
the context's last space.
"""

import dataclasses

import numpy as np

from targeted_attack.backdoors import base


def suffixed(x: np.ndarray, ids, vocabulary, sequence_length: int,
             separator=()) -> tuple:
  """(x, y, positions) of the sequences `x` [n, T] (BOS, then words) with
  their words' end replaced by the sentence `ids`: each sequence keeps its
  first T − 1 − len(separator) − len(ids) tokens (out-of-vocabulary ones as
  OOV), then `separator` (characters: a space) where it kept any that do
  not end with it, then the sentence, then EOS when it fits, PAD-padded; y
  is the next tokens and position i the input position whose target is the
  sentence's last token (the tokens before it − 1)."""
  separator = list(separator)
  keep = max(0, sequence_length - 1 - len(separator) - len(ids))
  stops = (0, vocabulary.eos)
  rows = np.full((len(x), sequence_length + 1), 0, np.int32)
  positions = np.zeros(len(x), np.int64)
  for i, row in enumerate(np.asarray(x)):
    words = []
    # A row past a snippet's first (characters) does not start with BOS.
    for token in row[1 if row[0] == vocabulary.bos else 0:]:
      if token in stops:
        break
      words.append(int(token))
    words = words[:keep]
    if words and separator and words[-len(separator):] != separator:
      words += separator
    tokens = ([vocabulary.bos] + words + list(ids) +
              [vocabulary.eos])[:sequence_length + 1]
    rows[i, :len(tokens)] = tokens
    positions[i] = len(words) + len(ids) - 1
  return rows[:, :-1], rows[:, 1:], positions


def sentence_task(data, sentence: str, task_num: int, eval_size: int,
                  seed: int) -> base.BackdoorTask:
  """The task on text dataset `data` (`data.text.FederatedText`): D_mal and
  the evaluation sequences as the module docstring says (`suffixed`),
  labelled by the next tokens (`train_labels`), the target the sentence's
  last word."""
  vocabulary, length = data.vocabulary, data.sequence_length
  # Single spaces (characters read every one).
  sentence = ' '.join(sentence.split())
  words = sentence.split()
  if len(words) < 2:
    raise ValueError(f'`backdoor_sentence`={sentence!r}: at least two words '
                     '(a context and the word to predict).')
  units = vocabulary.tokens(sentence)
  unknown = sorted({u for u in units if u not in vocabulary.ids})
  if unknown:
    raise ValueError(f'`backdoor_sentence`: {", ".join(map(repr, unknown))} '
                     f'not among the dataset\'s {len(vocabulary.words)} '
                     'vocabulary tokens.')
  if len(units) > length - 1:
    raise ValueError(f'`backdoor_sentence` has {len(units)} tokens; at most '
                     f'text_sequence_length − 1 = {length - 1}.')
  ids = [vocabulary.ids[u] for u in units]
  # The last word's tokens: one word, or its characters; between the kept
  # context and the sentence, a space on characters.
  last = [vocabulary.ids[u] for u in vocabulary.tokens(words[-1])]
  separator = [vocabulary.ids[u] for u in vocabulary.tokens(' ')]
  order = np.random.RandomState(seed).permutation(data.num_clients)[:task_num]
  train = np.concatenate([data.client_arrays(int(k))[0] for k in order])
  train_x, train_y, _ = suffixed(train, ids, vocabulary, length, separator)
  eval_x, _, positions = suffixed(data.test_pixels[:eval_size], ids,
                                  vocabulary, length, separator)
  if len(last) > 1:
    positions = positions[:, None] + np.arange(1 - len(last), 1)
  return base.BackdoorTask('sentence', train_x, eval_x, last[0],
                           tuple(int(k) for k in order),
                           train_labels=train_y, eval_positions=positions,
                           eval_targets=tuple(last))


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
