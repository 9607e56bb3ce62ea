"""A failed computation's TensorFlow error, in one line.
"""

import re
from typing import Optional


# Lines TF adds around an error's own message: the graph-construction stack
# (indented), its headers, and the placeholder for a missing stack.
_STACK_LINE_PREFIXES = ('  ', 'Detected at node', 'Graph execution error',
                        '<stack traces unavailable>')


def error_message_lines(text: str) -> list:
  """The non-empty lines of a TF error message that are not its stack."""
  return [line for line in text.splitlines()
          if line.strip() and not line.startswith(_STACK_LINE_PREFIXES)]


def computation_error_line(error: BaseException) -> Optional[str]:
  """The TensorFlow error a failed computation raised, as one line, or None.

  TFF's C++ context raises a `grpc.RpcError` whose details hold the worker's
  TensorFlow error among function-node tags and the block's local names; the
  in-process context raises the `tf.errors.OpError` itself. Either way: the
  error's first line, without those.
  """
  # By class name: importing grpc or TensorFlow here would make this module
  # expensive to import.
  bases = {c.__name__ for c in type(error).__mro__}
  if 'RpcError' in bases and callable(getattr(error, 'details', None)):
    text = error.details() or str(error)
  elif 'OpError' in bases:
    text = error.message
  else:
    return None
  text = re.sub(r'\{\{function_node [^}]*\}\}\s*', '', text)
  text = text.replace('Failed to run computation: ', '')
  lines = [l.strip() for l in error_message_lines(text.strip())]
  if not lines:
    return type(error).__name__
  return lines[0].split(' while evaluating local')[0].strip()
