"""A paper's claim, checked by code against a study's per-seed results.

A `Claim` is the paper's sentence, a `Check` of the study's `Evidence` (each
cell's summary row with its per-seed values, and the seeds planned for every
cell), and its `Control`s: checks that must hold before the claim can be
judged (the attack works without the defense, the clean base rate, the main
task not collapsed). A failed or undecided control makes the verdict "cannot
tell", naming the control.

A check returns what was measured and whether it holds: True, False, or None
("cannot tell": a seed missing, too few seeds, an interval that straddles the
threshold, both cells at a floor).

Statistics. The cells of one seed share their data and sampling, so two
cells are compared on the paired differences d_s = a_s − b_s over the seeds.
Every decision reads the two-sided `CONFIDENCE` (90%) Student-t interval
    mean ± t_{(1+CONFIDENCE)/2, n−1} · s / √n,   s the sample std (ddof 1),
so that each bound is a one-sided test at 5%:
- `greater(a, b, margin)`: holds when the lower bound of d exceeds `margin`,
  does not when the upper bound is at most `margin`;
- `at_least(cell, bound)` / `at_most`: the cell's own interval against the
  bound;
- `no_worse(a, b, tolerance)`: non-inferiority, a ≥ b − tolerance: holds when
  the lower bound of d exceeds −tolerance, does not when the upper bound is
  below it;
- `close(a, b, tolerance)`: equivalence by two one-sided tests (TOST): holds
  when the interval lies inside (−tolerance, tolerance), does not when it
  lies wholly outside;
- `at_least_times(a, b, factor)`: on d_s = a_s − factor · b_s, as `greater`
  with margin 0;
- `drops(cell, before, after, margin)`: two metrics of one cell, as
  `greater` on before_s − after_s;
- `decreasing(cells, margin)` and `all_of(...)`: every part holds.
A censored metric (the backdoor's durability, when it lasts to the run's
end: the true value is at least the one measured) makes only the bounds that
censoring cannot move valid: a lower bound of a − k·b when no seed of b is
censored, an upper bound when no seed of a is; a verdict that would need the
other bound is "cannot tell".
"""

import dataclasses
import hashlib
import json
import math
from typing import Callable, Dict, Optional, Sequence, Tuple

Verdict = Tuple[str, Optional[bool]]   # (measured, holds)

# Each decision reads this two-sided interval: each bound a one-sided test at
# 1 − (1 + CONFIDENCE) / 2 = 5%.
CONFIDENCE = 0.90
# A backdoor accuracy at or below this in both cells of a comparison is the
# floor (the clean base rate's neighbourhood): no difference can be judged.
BACKDOOR_FLOOR = 0.1


@dataclasses.dataclass(frozen=True)
class Evidence:
  """`rows`: cell label → summary row (`report.summarize`): per metric its
  per-seed values `row['per_seed'][metric] = {seed: value}` and, for a
  censored metric, `row['censored'][metric] = {seed: bool}`. `seeds`: the
  seeds planned for every cell (a planned seed missing from a cell the check
  reads makes it "cannot tell"); empty: those present."""
  rows: dict
  seeds: tuple = ()


def evidence(rows, seeds: Sequence[int] = ()) -> Evidence:
  """`rows` a list or dict of summary rows."""
  if not isinstance(rows, dict):
    rows = {row['cell']: row for row in rows}
  return Evidence(rows, tuple(seeds))


@dataclasses.dataclass(frozen=True)
class Check:
  """A named check: `spec` (its builder and arguments, for the definition's
  hash) and `fn(evidence) -> (measured, holds)`."""
  spec: str
  fn: Callable[[Evidence], Verdict] = dataclasses.field(compare=False,
                                                        repr=False)

  def __call__(self, evidence_: Evidence) -> Verdict:
    return self.fn(evidence_)


@dataclasses.dataclass(frozen=True)
class Control:
  """A check that must hold for a claim to be judged; `name` says what it
  controls for (e.g. 'positive: the attack implants without the defense')."""
  name: str
  check: Check


@dataclasses.dataclass(frozen=True)
class Claim:
  """`text`: the claim in words; `check`; `controls`."""
  text: str
  check: Check
  controls: tuple = ()

  def spec(self) -> dict:
    return dict(text=self.text, check=self.check.spec,
                controls=[(c.name, c.check.spec) for c in self.controls])


@dataclasses.dataclass(frozen=True)
class Judgement:
  """A claim's verdict: `holds` (None: cannot tell), what was `measured`,
  each control's (name, holds, measured), and why it cannot tell when a
  control did not hold."""
  measured: str
  holds: Optional[bool]
  controls: tuple = ()
  reason: str = ''


def judge(claim: Claim, evidence_: Evidence) -> Judgement:
  """The claim's check, gated by its controls: any control that does not
  hold (False or None) makes the verdict None, naming it."""
  measured, holds = claim.check(evidence_)
  controls = tuple((c.name,) + tuple(reversed(c.check(evidence_)))
                   for c in claim.controls)
  failed = [name for name, ok, _ in controls if ok is not True]
  if failed:
    return Judgement(measured, None, controls,
                     'control not met: ' + '; '.join(failed))
  return Judgement(measured, holds, controls)


# --- Statistics -------------------------------------------------------------


def t_quantile(probability: float, degrees_of_freedom: int) -> float:
  """Student's t quantile (scipy.stats.t.ppf)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return float(stats.t.ppf(probability, degrees_of_freedom))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE
                 ) -> Tuple[float, float, float]:
  """(mean, lower, upper): the two-sided Student-t interval of the mean,
  mean ± t_{(1+confidence)/2, n−1} · s/√n with s the sample standard
  deviation (ddof 1); the bounds NaN for fewer than 2 values."""
  n = len(values)
  if n == 0:
    return math.nan, math.nan, math.nan
  mean = math.fsum(values) / n
  if n < 2:
    return mean, math.nan, math.nan
  s = sample_std(values)
  half = t_quantile((1 + confidence) / 2, n - 1) * s / math.sqrt(n)
  return mean, mean - half, mean + half


def sample_std(values: Sequence[float]) -> float:
  """The sample standard deviation (ddof 1); NaN for fewer than 2 values."""
  n = len(values)
  if n < 2:
    return math.nan
  mean = math.fsum(values) / n
  return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


# --- Reading the evidence ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Series:
  """A cell's per-seed values of a metric: {seed: value}, and the seeds whose
  value is a lower bound (censored)."""
  values: Dict[int, float]
  censored: frozenset


def _series(evidence_: Evidence, cell: str, metric: str):
  """The cell's series, or a reason it cannot be read (str)."""
  row = evidence_.rows.get(cell)
  if row is None or not row.get('seeds'):
    return f'{cell} not measured'
  per_seed = row.get('per_seed', {}).get(metric)
  if per_seed is None:
    return f'{cell}: no {metric}'
  values = {int(s): float(v) for s, v in per_seed.items()
            if v is not None and not math.isnan(float(v))}
  missing = [s for s in evidence_.seeds if s not in values]
  if missing:
    return f'{cell}: seed {", ".join(map(str, missing))} missing'
  if not values:
    return f'{cell}: no {metric}'
  censored = frozenset(int(s) for s, c in
                       row.get('censored', {}).get(metric, {}).items() if c)
  return _Series(values, censored & set(values))


def _read(evidence_: Evidence, metric: str, *cells):
  """The cells' series, or a 'cannot tell' verdict naming what is missing."""
  series = [_series(evidence_, cell, metric) for cell in cells]
  problems = [s for s in series if isinstance(s, str)]
  if problems:
    return ('; '.join(problems), None)
  return series


def _format_interval(mean, lower, upper) -> str:
  if math.isnan(lower):
    return f'{mean:.2f}'
  return f'{mean:.2f} [{lower:.2f}, {upper:.2f}]'


def _cell_text(cell: str, series: _Series) -> str:
  values = list(series.values.values())
  censored = '≥ ' if series.censored else ''
  return f'{cell} {censored}{_format_interval(*mean_interval(values))}'


@dataclasses.dataclass(frozen=True)
class _Difference:
  """The paired differences d_s = a_s − factor · b_s and their interval;
  `lower_valid` / `upper_valid`: whether censoring leaves each bound valid."""
  mean: float
  lower: float
  upper: float
  seeds: int
  lower_valid: bool
  upper_valid: bool


def _paired(a: _Series, b: _Series, factor: float = 1.0):
  seeds = sorted(set(a.values) & set(b.values))
  differences = [a.values[s] - factor * b.values[s] for s in seeds]
  mean, lower, upper = mean_interval(differences)
  return _Difference(mean, lower, upper, len(seeds),
                     lower_valid=not (b.censored & set(seeds)),
                     upper_valid=not (a.censored & set(seeds)))


def _too_few(count: int) -> bool:
  return count < 2


def _decide(lower: float, upper: float, holds_if_lower_above: float,
            fails_if_upper_at_most: float, lower_valid: bool = True,
            upper_valid: bool = True, strict_fail: bool = False
           ) -> Optional[bool]:
  """True when the (valid) lower bound exceeds the first threshold; False
  when the (valid) upper bound is at most (below, `strict_fail`) the second;
  else None."""
  if lower_valid and lower > holds_if_lower_above:
    return True
  if upper_valid and (upper < fails_if_upper_at_most if strict_fail
                      else upper <= fails_if_upper_at_most):
    return False
  return None


# --- The checks -------------------------------------------------------------


def _spec(name: str, *args, **kwargs) -> str:
  parts = [repr(a) for a in args] + [f'{k}={v!r}' for k, v in
                                     sorted(kwargs.items()) if v is not None]
  return f'{name}({", ".join(parts)})'


def _at_floor(a: _Series, b: _Series, floor: Optional[float]) -> bool:
  """Both cells' upper bounds (their means for one seed) at most `floor`."""
  if floor is None:
    return False
  def top(series):
    mean, _, upper = mean_interval(list(series.values.values()))
    return mean if math.isnan(upper) else upper
  return top(a) <= floor and top(b) <= floor


def _paired_check(spec: str, metric: str, a: str, b: str, decide,
                  factor: float = 1.0, floor: Optional[float] = None
                 ) -> Check:
  """The check of `a` against `b` on the paired differences
  d_s = a_s − factor · b_s: `decide(d)` gives the verdict, after "cannot
  tell" for both cells at `floor` or fewer than 2 seeds."""

  def check(evidence_):
    read = _read(evidence_, metric, a, b)
    if isinstance(read, tuple):
      return read
    sa, sb = read
    d = _paired(sa, sb, factor)
    what = 'difference' if factor == 1.0 else f'{a} − {factor:g}·{b}'
    measured = (f'{_cell_text(a, sa)} vs {_cell_text(b, sb)}; {what} '
                f'{_format_interval(d.mean, d.lower, d.upper)}')
    if _at_floor(sa, sb, floor):
      return measured + f' (both at the floor {floor})', None
    if _too_few(d.seeds):
      return measured, None
    return measured, decide(d)

  return Check(spec, check)


def greater(metric: str, a: str, b: str, margin: float,
            floor: Optional[float] = None) -> Check:
  """`a`'s metric exceeds `b`'s by more than `margin`: the paired
  differences' interval above `margin` (holds), or at most it (does not);
  "cannot tell" when both cells sit at or below `floor`."""
  return _paired_check(
      _spec('greater', metric, a, b, margin=margin, floor=floor), metric, a,
      b, lambda d: _decide(d.lower, d.upper, margin, margin, d.lower_valid,
                           d.upper_valid), floor=floor)


def decreasing(metric: str, cells: Sequence[str], margin: float,
               floor: Optional[float] = None) -> Check:
  """Each cell's metric exceeds the next one's (`greater`, pairwise).

  Holds only when every pair holds: an intersection–union test, whose level
  is each pair's 5% with no correction. Does not hold when any pair does
  not: with k pairs that verdict's family-wise error is up to k · 5%
  (uncorrected; `docs/RESULTS.md` says so beside the trend claims)."""
  pairs = [greater(metric, x, y, margin, floor)
           for x, y in zip(cells, cells[1:])]

  def check(evidence_):
    verdicts = [p(evidence_) for p in pairs]
    read = _read(evidence_, metric, *cells)
    if isinstance(read, tuple):
      return read
    measured = ' > '.join(_cell_text(c, s) for c, s in zip(cells, read))
    return measured, _combine([h for _, h in verdicts])

  return Check(_spec('decreasing', metric, tuple(cells), margin=margin,
                     floor=floor), check)


def _bound(metric: str, cell: str, bound: float, upper: bool) -> Check:

  def check(evidence_):
    read = _read(evidence_, metric, cell)
    if isinstance(read, tuple):
      return read
    (series,) = read
    values = list(series.values.values())
    mean, lower, top = mean_interval(values)
    measured = _cell_text(cell, series)
    if _too_few(len(values)):
      return measured, None
    # A censored value is a lower bound: the interval's upper bound is not.
    upper_valid = not series.censored
    if upper:
      if upper_valid and top <= bound:
        return measured, True
      return measured, False if lower > bound else None
    if lower >= bound:
      return measured, True
    return measured, False if upper_valid and top < bound else None

  return Check(_spec('at_most' if upper else 'at_least', metric, cell,
                     bound=bound), check)


def at_most(metric: str, cell: str, bound: float) -> Check:
  """`cell`'s metric at most `bound`: its interval's upper bound at most
  `bound` (holds), its lower bound above it (does not)."""
  return _bound(metric, cell, bound, upper=True)


def at_least(metric: str, cell: str, bound: float) -> Check:
  """`cell`'s metric at least `bound`: its interval's lower bound at least
  `bound` (holds), its upper bound below it (does not)."""
  return _bound(metric, cell, bound, upper=False)


def no_worse(metric: str, a: str, b: str, tolerance: float) -> Check:
  """Non-inferiority: `a`'s metric at least `b`'s less `tolerance`; the
  paired differences' lower bound above −tolerance (holds), their upper bound
  below it (does not)."""
  return _paired_check(
      _spec('no_worse', metric, a, b, tolerance=tolerance), metric, a, b,
      lambda d: _decide(d.lower, d.upper, -tolerance, -tolerance,
                        d.lower_valid, d.upper_valid, strict_fail=True))


def _equivalent(d: '_Difference', tolerance: float) -> Optional[bool]:
  """TOST: the interval inside (−tolerance, tolerance) True, wholly outside
  it False, else None."""
  if (d.lower_valid and d.upper_valid and -tolerance < d.lower and
      d.upper < tolerance):
    return True
  if ((d.lower_valid and d.lower >= tolerance) or
      (d.upper_valid and d.upper <= -tolerance)):
    return False
  return None


def close(metric: str, a: str, b: str, tolerance: float) -> Check:
  """Equivalence (two one-sided tests): the paired differences' interval
  inside (−tolerance, tolerance) (holds), wholly outside it (does not)."""
  return _paired_check(_spec('close', metric, a, b, tolerance=tolerance),
                       metric, a, b, lambda d: _equivalent(d, tolerance))


def at_least_times(metric: str, a: str, b: str, factor: float) -> Check:
  """`a`'s metric at least `factor` times `b`'s: the paired a_s − factor·b_s
  above 0 (holds), at most 0 (does not); censoring as the module says."""
  return _paired_check(
      _spec('at_least_times', metric, a, b, factor=factor), metric, a, b,
      lambda d: _decide(d.lower, d.upper, 0.0, 0.0, d.lower_valid,
                        d.upper_valid), factor=factor)


def drops(cell: str, before: str, after: str, margin: float) -> Check:
  """Within `cell`, metric `before` exceeds metric `after` by more than
  `margin` (e.g. the backdoor's peak and its final accuracy): `greater` on
  the per-seed differences before_s − after_s."""

  def check(evidence_):
    read_before = _read(evidence_, before, cell)
    read_after = _read(evidence_, after, cell)
    for read in (read_before, read_after):
      if isinstance(read, tuple):
        return read
    d = _paired(read_before[0], read_after[0])
    measured = (f'{cell}: {before} − {after} '
                f'{_format_interval(d.mean, d.lower, d.upper)}')
    if _too_few(d.seeds):
      return measured, None
    return measured, _decide(d.lower, d.upper, margin, margin, d.lower_valid,
                             d.upper_valid)

  return Check(_spec('drops', cell, before, after, margin=margin), check)


def _combine(holds: Sequence[Optional[bool]]) -> Optional[bool]:
  return False if False in holds else (None if None in holds else True)


def all_of(*checks: Check) -> Check:
  """Every check holds; False when one does not; else None."""

  def check(evidence_):
    verdicts = [c(evidence_) for c in checks]
    return ('; '.join(m for m, _ in verdicts),
            _combine([h for _, h in verdicts]))

  return Check('all_of(' + ', '.join(c.spec for c in checks) + ')', check)


# --- Controls ---------------------------------------------------------------


def attack_works(cell: str, bound: float = 0.5,
                 metric: str = 'backdoor_max') -> Control:
  """Positive control: the attack reaches `bound` in `cell` (the attack
  without the defense, or the cell whose decay a claim reads)."""
  return Control(f'positive: {metric} of {cell} ≥ {bound:g}',
                 at_least(metric, cell, bound))


def clean_rate(cell: str, bound: float = 0.2,
               metric: str = 'backdoor_final') -> Control:
  """The no-attack cell's backdoor rate (the clean base rate) measured and
  at most `bound`."""
  return Control(f'clean base rate: {metric} of {cell} ≤ {bound:g}',
                 at_most(metric, cell, bound))


def main_task_kept(cell: str, bound: float = 0.5,
                   metric: str = 'main_task_final') -> Control:
  """The main task not collapsed in `cell` at the round a claim reads
  (`main_task_at_backdoor_max` for a claim on the peak)."""
  return Control(f'main task: {metric} of {cell} ≥ {bound:g}',
                 at_least(metric, cell, bound))


def no_attack_trains(cell: str, bound: float = 0.7) -> Control:
  """The attack-free run trains: its final main task at least `bound` (an
  untargeted attack's damage is read against it)."""
  return Control(f'clean main task: main_task_final of {cell} ≥ {bound:g}',
                 at_least('main_task_final', cell, bound))


# --- The definition's hash --------------------------------------------------


def digest(value) -> str:
  """A short SHA-256 of `value`'s canonical JSON."""
  text = json.dumps(value, sort_keys=True, default=repr, ensure_ascii=True)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- The table --------------------------------------------------------------


def verdict_text(holds: Optional[bool]) -> str:
  return {True: 'holds', False: 'does not hold', None: 'cannot tell'}[holds]


def _controls_text(judgement: Judgement) -> str:
  if not judgement.controls:
    return '–'
  words = {True: 'ok', False: 'failed', None: 'cannot tell'}
  return '; '.join(f'{name}: {words[ok]} ({measured})'
                   for name, ok, measured in judgement.controls)


CLAIMS_TABLE_COLUMNS = (
    'study', 'the paper\'s claim', 'controls', 'seeds per cell',
    'measured (mean [90% interval])', 'the paper\'s ratios not kept',
    'verdict', 'exploratory')


def table_header(columns: Sequence[str]) -> list:
  """A Markdown table's header and separator lines."""
  return ['| ' + ' | '.join(columns) + ' |', '|---' * len(columns) + '|']


def claims_table(rows: Sequence[tuple]) -> str:
  """Markdown: study | claim | controls | seeds per cell | measured | the
  paper's ratios not kept | verdict | exploratory, one row per (study,
  claim, judgement, seeds per cell text, ratios text, exploratory text)."""
  lines = table_header(CLAIMS_TABLE_COLUMNS)
  for study, claim, judgement, seeds, ratios, exploratory in rows:
    verdict = verdict_text(judgement.holds)
    if judgement.reason:
      verdict += f' ({judgement.reason})'
    lines.append(f'| {study} | {claim.text} | {_controls_text(judgement)} | '
                 f'{seeds} | {judgement.measured} | {ratios or "–"} | '
                 f'{verdict} | {exploratory or "no"} |')
  return '\n'.join(lines) + '\n'


def tally(judgements: Sequence[Judgement]) -> Dict[str, int]:
  """How many hold, do not hold and cannot tell."""
  counts = {'holds': 0, 'does not hold': 0, 'cannot tell': 0}
  for j in judgements:
    counts[verdict_text(j.holds)] += 1
  return counts
