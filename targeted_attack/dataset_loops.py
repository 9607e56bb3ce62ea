"""Loops over a `tf.data.Dataset` inside a TF computation.

`fold_batches` is every pass of local training: by default a `tf.while_loop`
over the dataset's iterator rather than `dataset.reduce`, whose per-call
cost dominated a small round (and whose ops `tf.device` does not reach; TFF's
`learning/loop_builder.py` names the iterator loop as its GPU path).
"""

import tensorflow as tf

LOOP_KINDS = ('iterator', 'reduce')


def fold_batches(dataset: tf.data.Dataset, initial_state, step,
                 loop: str = 'iterator'):
  """s_{b+1} = step(s_b, batch_b) over the batches of `dataset`, from
  s_0 = `initial_state`; returns the last state.

  `loop`: 'iterator', a `tf.while_loop` that reads the dataset's iterator one
  element per iteration; 'reduce', `dataset.reduce` (the loop before 0.7;
  the same arithmetic, kept to compare). The state's structure, dtypes and
  shapes stay fixed. In graph mode outside a `tf.function` (the body of a
  `tff.tensorflow.computation`), where a dataset makes no iterator,
  `dataset.reduce` whatever `loop` says.
  """
  if loop not in LOOP_KINDS:
    raise ValueError(f'`loop` must be one of {LOOP_KINDS}, got {loop!r}.')
  if loop == 'reduce' or not (tf.executing_eagerly() or tf.inside_function()):
    return dataset.reduce(initial_state, step)
  iterator = iter(dataset)

  def has_value(element, state):
    del state
    return element.has_value()

  def next_state(element, state):
    state = step(state, element.get_value())
    return iterator.get_next_as_optional(), state

  _, final_state = tf.while_loop(
      has_value, next_state, (iterator.get_next_as_optional(), initial_state))
  return final_state
