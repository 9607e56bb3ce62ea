"""A paper's claim, checked by code against a study's summary table.

A `Claim` is the paper's sentence and a function of the summary table
(`report.summarize`: one row per cell, each metric's mean and `_std` over
seeds) that returns what was measured and whether the claim holds: True,
False, or None when the table cannot tell (a cell missing, or not finished).
A difference holds only when it exceeds both its margin and the spread over
seeds (the two cells' standard deviations added), so one lucky seed does not
make a claim hold.

The builders below cover the claims of this library's studies:
`greater(metric, a, b, margin)`, `decreasing(metric, cells, margin)`,
`at_most(metric, cell, bound)`, `at_least(metric, cell, bound)`,
`close(metric, a, b, tolerance)`, `at_least_times(metric, a, b, factor)`,
and `all_of(...)`.
"""

import dataclasses
import math
from typing import Callable, Optional, Sequence, Tuple

Verdict = Tuple[str, Optional[bool]]   # (measured, holds)


@dataclasses.dataclass(frozen=True)
class Claim:
  """`text`: the claim in words; `check(table) -> (measured, holds)`, the
  table a dict cell label → summary row."""
  text: str
  check: Callable[[dict], Verdict]


def _value(table: dict, cell: str, metric: str):
  """(mean, std) of `metric` in `cell`, or None when it is not measured."""
  row = table.get(cell)
  if row is None or not row.get('seeds'):
    return None
  mean, std = row.get(metric), row.get(metric + '_std', 0.0)
  if mean is None or (isinstance(mean, float) and math.isnan(mean)):
    return None
  return float(mean), 0.0 if std is None or math.isnan(std) else float(std)


def _show(cell, value) -> str:
  return f'{cell} {value[0]:.2f} ± {value[1]:.2f}'


def _missing(*cells) -> Verdict:
  return f'not measured: {", ".join(cells)}', None


def greater(metric: str, a: str, b: str, margin: float) -> Callable:
  """`a`'s metric exceeds `b`'s by more than `margin` and their spread."""

  def check(table):
    va, vb = _value(table, a, metric), _value(table, b, metric)
    if va is None or vb is None:
      return _missing(*[c for c, v in ((a, va), (b, vb)) if v is None])
    difference = va[0] - vb[0]
    holds = difference > margin and difference > va[1] + vb[1]
    return f'{_show(a, va)} vs {_show(b, vb)}', holds

  return check


def decreasing(metric: str, cells: Sequence[str], margin: float) -> Callable:
  """Each cell's metric exceeds the next one's (`greater`, pairwise)."""

  def check(table):
    pairs = [greater(metric, a, b, margin)(table)
             for a, b in zip(cells, cells[1:])]
    values = [_value(table, c, metric) for c in cells]
    if any(v is None for v in values):
      return _missing(*[c for c, v in zip(cells, values) if v is None])
    measured = ' > '.join(f'{v[0]:.2f}' for v in values)
    return f'{" > ".join(cells)}: {measured}', all(h for _, h in pairs)

  return check


def _bound(metric: str, cell: str, bound: float, upper: bool) -> Callable:
  """`cell`'s metric beyond `bound` by its spread: mean + std <= bound
  (`upper`) or mean − std >= bound."""

  def check(table):
    value = _value(table, cell, metric)
    if value is None:
      return _missing(cell)
    if upper:
      return _show(cell, value), value[0] + value[1] <= bound
    return _show(cell, value), value[0] - value[1] >= bound

  return check


def at_most(metric: str, cell: str, bound: float) -> Callable:
  """`cell`'s metric, plus its spread, is at most `bound`."""
  return _bound(metric, cell, bound, upper=True)


def at_least(metric: str, cell: str, bound: float) -> Callable:
  """`cell`'s metric, less its spread, is at least `bound`."""
  return _bound(metric, cell, bound, upper=False)


def close(metric: str, a: str, b: str, tolerance: float) -> Callable:
  """`a`'s metric is within `tolerance` of `b`'s (or above it)."""

  def check(table):
    va, vb = _value(table, a, metric), _value(table, b, metric)
    if va is None or vb is None:
      return _missing(*[c for c, v in ((a, va), (b, vb)) if v is None])
    return f'{_show(a, va)} vs {_show(b, vb)}', va[0] >= vb[0] - tolerance

  return check


def at_least_times(metric: str, a: str, b: str, factor: float) -> Callable:
  """`a`'s metric is at least `factor` times `b`'s, past their spread:
  mean_a − std_a ≥ factor · (mean_b + std_b), and mean_a > 0."""

  def check(table):
    va, vb = _value(table, a, metric), _value(table, b, metric)
    if va is None or vb is None:
      return _missing(*[c for c, v in ((a, va), (b, vb)) if v is None])
    holds = va[0] > 0 and va[0] - va[1] >= factor * (vb[0] + vb[1])
    return f'{_show(a, va)} vs {_show(b, vb)}', holds

  return check


def all_of(*checks: Callable) -> Callable:
  """Every check holds; None when one cannot tell and none fails."""

  def check(table):
    verdicts = [c(table) for c in checks]
    holds = [h for _, h in verdicts]
    result = False if False in holds else (None if None in holds else True)
    return '; '.join(m for m, _ in verdicts), result

  return check


def verdict_text(holds: Optional[bool]) -> str:
  return {True: 'holds', False: 'does not hold', None: 'cannot tell'}[holds]


def claims_table(rows: Sequence[tuple]) -> str:
  """Markdown: study | the paper's claim | measured | verdict, one row per
  (study name, Claim, (measured, holds))."""
  lines = ['| study | the paper\'s claim | measured | verdict |',
           '|---|---|---|---|']
  for study, claim, (measured, holds) in rows:
    lines.append(f'| {study} | {claim.text} | {measured} | '
                 f'{verdict_text(holds)} |')
  return '\n'.join(lines) + '\n'
