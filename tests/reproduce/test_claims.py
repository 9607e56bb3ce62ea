"""Claims against hand-made summary tables: holds, does not hold, missing."""

import math

import pytest

from targeted_attack.reproduce import claims as c
from targeted_attack.reproduce import studies as studies_lib


def _row(cell, seeds=2, **metrics):
  row = dict(cell=cell, seeds=seeds)
  for key, (mean, std) in metrics.items():
    row[key], row[key + '_std'] = mean, std
  return row


def _table(*rows):
  return {r['cell']: r for r in rows}


def test_greater_needs_the_margin_and_the_spread():
  check = c.greater('m', 'a', 'b', margin=0.2)
  assert check(_table(_row('a', m=(0.9, 0.0)), _row('b', m=(0.5, 0.0))))[1]
  # Past the margin but within the seeds' spread (0.3 + 0.2 > 0.4).
  assert not check(_table(_row('a', m=(0.9, 0.3)),
                          _row('b', m=(0.5, 0.2))))[1]
  assert not check(_table(_row('a', m=(0.6, 0.0)),
                          _row('b', m=(0.5, 0.0))))[1]
  measured, holds = check(_table(_row('a', m=(0.9, 0.0))))
  assert holds is None and 'b' in measured
  # A cell with no finished seed, or a NaN mean, cannot tell either.
  assert check(_table(_row('a', m=(0.9, 0.0)),
                      _row('b', seeds=0, m=(0.1, 0.0))))[1] is None
  assert check(_table(_row('a', m=(math.nan, math.nan)),
                      _row('b', m=(0.1, 0.0))))[1] is None


def test_decreasing_holds_only_when_every_step_falls():
  check = c.decreasing('m', ('a', 'b', 'c'), margin=0.05)
  falling = _table(_row('a', m=(0.9, 0.01)), _row('b', m=(0.6, 0.01)),
                   _row('c', m=(0.2, 0.01)))
  assert check(falling) == ('a > b > c: 0.90 > 0.60 > 0.20', True)
  rising_at_end = dict(falling, c=_row('c', m=(0.62, 0.01)))
  assert check(rising_at_end)[1] is False


def test_bounds_and_closeness_account_for_the_spread():
  table = _table(_row('a', m=(0.30, 0.05)), _row('b', m=(0.95, 0.0)),
                 _row('d', m=(0.93, 0.0)))
  assert c.at_most('m', 'a', 0.35)(table)[1]
  assert not c.at_most('m', 'a', 0.34)(table)[1]
  assert c.at_least('m', 'a', 0.25)(table)[1]
  assert not c.at_least('m', 'a', 0.26)(table)[1]
  assert c.close('m', 'd', 'b', 0.03)(table)[1]
  assert not c.close('m', 'd', 'b', 0.01)(table)[1]


def test_at_least_times_needs_the_factor_past_the_spread():
  check = c.at_least_times('d', 'a', 'b', factor=2.0)
  assert check(_table(_row('a', d=(6.0, 0.0)), _row('b', d=(2.0, 0.0))))[1]
  assert check(_table(_row('a', d=(4.0, 0.0)), _row('b', d=(2.0, 0.0))))[1]
  assert not check(_table(_row('a', d=(3.9, 0.0)),
                          _row('b', d=(2.0, 0.0))))[1]
  # 6 − 1 < 2 · (2 + 1): twice the mean, not past the spread.
  assert not check(_table(_row('a', d=(6.0, 1.0)),
                          _row('b', d=(2.0, 1.0))))[1]
  # Neither lasts: 0 ≥ 2 · 0, but nothing doubled.
  assert not check(_table(_row('a', d=(0.0, 0.0)),
                          _row('b', d=(0.0, 0.0))))[1]
  assert check(_table(_row('a', d=(6.0, 0.0))))[1] is None


def test_all_of_fails_on_any_failure_and_cannot_tell_on_a_gap():
  table = _table(_row('a', m=(0.9, 0.0)))
  yes, no = c.at_least('m', 'a', 0.5), c.at_most('m', 'a', 0.5)
  gap = c.at_least('m', 'missing', 0.5)
  assert c.all_of(yes, yes)(table)[1] is True
  assert c.all_of(yes, no, gap)(table)[1] is False
  assert c.all_of(yes, gap)(table)[1] is None


def test_claims_table_has_one_row_per_claim_with_its_verdict():
  claim = c.Claim('x beats y', c.greater('m', 'x', 'y', 0.1))
  text = c.claims_table([('s', claim, ('x 1.00 ± 0.00 vs y 0.00 ± 0.00',
                                       True)),
                         ('s', claim, ('not measured: y', None))])
  lines = text.strip().split('\n')
  assert lines[2] == ('| s | x beats y | x 1.00 ± 0.00 vs y 0.00 ± 0.00 | '
                      'holds |')
  assert lines[3].endswith('| cannot tell |')


@pytest.mark.parametrize('study', [s for s in studies_lib.STUDIES.values()
                                   if s.claims], ids=lambda s: s.name)
def test_every_claim_names_only_cells_of_its_study(study):
  # On a table of every cell with equal values each claim gives a verdict
  # (True or False), never "not measured": its cells are the study's.
  metrics = ('backdoor_final', 'backdoor_cumulative_mean', 'backdoor_max',
             'main_task_final', 'durability_rounds')
  table = _table(*[_row(cell.label, **{m: (0.5, 0.0) for m in metrics})
                   for cell in study.cells])
  for claim in study.claims:
    measured, holds = claim.check(table)
    assert holds is not None, (claim.text, measured)


def test_a_bigger_run_is_its_study_plus_its_own_settings():
  first = c.Claim('a > b', c.greater('m', 'a', 'b', 0.1))
  second = c.Claim('a high', c.at_least('m', 'a', 0.5))
  extra = c.Claim('new > b', c.greater('m', 'new', 'b', 0.1))
  parent = studies_lib.Study(
      'p', 'the paper', 'it says', dict(x=1, y=2),
      (studies_lib.Cell('a', dict(z=1)), studies_lib.Cell('b', dict(z=2))),
      claims=(first, second), paper_scale_settings=dict(x=10))
  new_cell = studies_lib.Cell('new', dict(z=3))
  bigger = studies_lib.bigger_run(
      parent, 'p_long', 'longer', dict(y=3, w=4), ('b', new_cell),
      claims=(extra,), claims_kept=(1,), paper_scale_settings=dict(w=40))
  assert bigger.settings == dict(x=1, y=3, w=4)
  assert bigger.cells == (parent.cells[1], new_cell)
  assert bigger.claims == (second, extra)
  assert bigger.paper_scale_settings == dict(x=10, w=40)
  assert (bigger.default, bigger.bigger_run_of) == (False, 'p')
  assert bigger.title == 'the paper; bigger run: longer'
  with pytest.raises(KeyError):
    studies_lib.bigger_run(parent, 'q', 'q', {}, ('no_such_cell',))
  # None of the library's bigger runs is in the default sweep.
  names = {s.name for s in studies_lib.STUDIES.values() if s.bigger_run_of}
  assert names and not names & set(studies_lib.default_studies())
