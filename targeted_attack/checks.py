"""Argument checks shared by the library: each error names the argument."""

import math

import numpy as np


def number(name, value, minimum=None, strict=False, maximum=None,
           strict_max=False) -> float:
  """A finite float in the given range (bounds inclusive unless strict)."""
  try:
    value = float(value)
  except (TypeError, ValueError):
    raise ValueError(f'`{name}` must be a number, got {value!r}.')
  ok = math.isfinite(value)
  if ok and minimum is not None:
    ok = value > minimum if strict else value >= minimum
  if ok and maximum is not None:
    ok = value < maximum if strict_max else value <= maximum
  if not ok:
    low = '(-inf, ' if minimum is None else ('(' if strict else '[') + (
        f'{minimum}, ')
    high = 'inf)' if maximum is None else f'{maximum}' + (
        ')' if strict_max else ']')
    raise ValueError(f'`{name}` must be a finite number in {low}{high}, got '
                     f'{value!r}.')
  return value


def positive(name, value) -> float:
  return number(name, value, 0.0, strict=True)


def fraction(name, value) -> float:
  return number(name, value, 0.0, maximum=1.0)


def integer(name, value, minimum: int = 1, maximum=None) -> int:
  """An integer in [minimum, maximum] (no maximum when None)."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
      value < minimum) or (maximum is not None and value > maximum):
    allowed = f'>= {minimum}' if maximum is None else (
        f'in [{minimum}, {maximum}]')
    raise ValueError(f'`{name}` must be an integer {allowed}, got {value!r}.')
  return int(value)


def choice(name, value, allowed):
  """`value` if it is one of `allowed`."""
  if value not in allowed:
    raise ValueError(f'`{name}` must be one of {", ".join(map(str, allowed))}, '
                     f'got {value!r}.')
  return value
