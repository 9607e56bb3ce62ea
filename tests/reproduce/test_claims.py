"""Claims against hand-made per-seed tables: each statistic against scipy,
the verdict words (holds, does not hold, cannot tell), the controls' gating,
censored durability, and the definition's hash."""

import json
import math
import os

import numpy as np
import pytest
from scipy import stats

from targeted_attack.process import models
from targeted_attack.reproduce import claims as c
from targeted_attack.reproduce import registration
from targeted_attack.reproduce import runner
from targeted_attack.reproduce import studies as studies_lib

SEEDS = (0, 1, 2, 3, 4)


def _row(cell, censored=None, **metrics):
  """A summary row: each metric a list of per-seed values (seeds 0, 1, …)."""
  per_seed = {k: dict(enumerate(v)) for k, v in metrics.items()}
  return dict(cell=cell, seeds=max((len(v) for v in metrics.values()),
                                   default=0),
              per_seed=per_seed,
              censored={k: dict(enumerate(v))
                        for k, v in (censored or {}).items()})


def _evidence(*rows, seeds=SEEDS):
  return c.evidence(list(rows), seeds)


def _scipy_interval(values, confidence=c.CONFIDENCE):
  values = np.asarray(values, float)
  return stats.t.interval(confidence, len(values) - 1, loc=values.mean(),
                          scale=stats.sem(values))


def test_the_interval_is_students_t_on_the_sample_std():
  values = [0.61, 0.72, 0.55, 0.80, 0.66]
  mean, lower, upper = c.mean_interval(values)
  assert mean == pytest.approx(np.mean(values))
  assert (lower, upper) == pytest.approx(_scipy_interval(values))
  assert c.sample_std(values) == pytest.approx(np.std(values, ddof=1))
  # Two seeds: the sample std is √2 the population one (ddof 0).
  assert c.sample_std([0.2, 0.4]) == pytest.approx(
      math.sqrt(2) * np.std([0.2, 0.4]))
  assert math.isnan(c.mean_interval([0.5])[1])


def test_greater_reads_the_paired_differences_interval():
  # Seeds move both cells together: unpaired, the spreads overlap; paired,
  # the difference is about 0.3 with a narrow interval.
  a = [0.9, 0.5, 0.7, 0.3, 0.8]
  b = [0.58, 0.22, 0.41, 0.0, 0.52]
  d = np.subtract(a, b)
  lower, upper = _scipy_interval(d)
  assert lower > 0.2 and np.std(a, ddof=1) + np.std(b, ddof=1) > 0.3
  evidence = _evidence(_row('a', m=a), _row('b', m=b))
  measured, holds = c.greater('m', 'a', 'b', margin=0.2)(evidence)
  assert holds is True
  assert f'[{lower:.2f}, {upper:.2f}]' in measured
  # Above the upper bound: does not hold; between the bounds: cannot tell.
  assert c.greater('m', 'a', 'b', margin=upper + 0.01)(evidence)[1] is False
  assert c.greater('m', 'a', 'b',
                   margin=(lower + upper) / 2)(evidence)[1] is None


def test_greater_cannot_tell_at_the_floor_a_missing_seed_or_one_seed():
  low = _evidence(_row('a', m=[0.05, 0.02, 0.04, 0.03, 0.05]),
                  _row('b', m=[0.0, 0.01, 0.0, 0.0, 0.01]))
  assert c.greater('m', 'a', 'b', 0.01)(low)[1] is True
  measured, holds = c.greater('m', 'a', 'b', 0.01, floor=0.1)(low)
  assert holds is None and 'floor' in measured
  # Without a floor the same cells "do not hold" a margin of 0.1.
  assert c.greater('m', 'a', 'b', 0.1)(low)[1] is False
  missing = _evidence(_row('a', m=[0.9] * 5), _row('b', m=[0.1] * 4))
  measured, holds = c.greater('m', 'a', 'b', 0.1)(missing)
  assert holds is None and 'seed 4 missing' in measured
  one = _evidence(_row('a', m=[0.9]), _row('b', m=[0.1]), seeds=(0,))
  assert c.greater('m', 'a', 'b', 0.1)(one)[1] is None
  absent = _evidence(_row('a', m=[0.9] * 5))
  assert c.greater('m', 'a', 'b', 0.1)(absent) == ('b not measured', None)


def test_a_nan_value_is_a_missing_seed():
  evidence = _evidence(_row('a', m=[0.9, math.nan, 0.9, 0.9, 0.9]),
                       _row('b', m=[0.1] * 5))
  measured, holds = c.greater('m', 'a', 'b', 0.1)(evidence)
  assert holds is None and 'seed 1 missing' in measured


def test_bounds_read_the_cells_interval():
  values = [0.30, 0.35, 0.28, 0.33, 0.31]
  lower, upper = _scipy_interval(values)
  evidence = _evidence(_row('a', m=values))
  assert c.at_most('m', 'a', upper + 1e-6)(evidence)[1] is True
  assert c.at_most('m', 'a', (lower + upper) / 2)(evidence)[1] is None
  assert c.at_most('m', 'a', lower - 1e-6)(evidence)[1] is False
  assert c.at_least('m', 'a', lower - 1e-6)(evidence)[1] is True
  assert c.at_least('m', 'a', (lower + upper) / 2)(evidence)[1] is None
  assert c.at_least('m', 'a', upper + 1e-6)(evidence)[1] is False


def test_close_is_two_one_sided_tests_and_no_worse_one():
  a = [0.90, 0.91, 0.93, 0.92, 0.90]
  b = [0.91, 0.92, 0.92, 0.93, 0.91]
  lower, upper = _scipy_interval(np.subtract(a, b))
  evidence = _evidence(_row('a', m=a), _row('b', m=b))
  bound = max(-lower, upper)
  assert c.close('m', 'a', 'b', bound + 1e-6)(evidence)[1] is True
  assert c.close('m', 'a', 'b', bound - 1e-6)(evidence)[1] is None
  # Wholly outside: a is 0.2 above b in every seed.
  far = _evidence(_row('a', m=list(np.add(b, 0.2))), _row('b', m=b))
  assert c.close('m', 'a', 'b', 0.05)(far)[1] is False
  # … which non-inferiority accepts (a higher a is no worse).
  assert c.no_worse('m', 'a', 'b', 0.05)(far)[1] is True
  assert c.no_worse('m', 'a', 'b', -lower + 1e-6)(evidence)[1] is True
  assert c.no_worse('m', 'a', 'b', -upper - 1e-6)(evidence)[1] is False
  assert c.no_worse('m', 'a', 'b', -(lower + upper) / 2)(evidence)[1] is None


def test_durability_is_compared_as_censored_data():
  check = c.at_least_times('d', 'a', 'b', factor=2.0)
  a, b = [12, 14, 11, 13, 13], [5, 6, 4, 5, 6]
  lower, upper = _scipy_interval(np.subtract(a, np.multiply(2.0, b)))
  assert lower > 0
  assert check(_evidence(_row('a', d=a), _row('b', d=b)))[1] is True
  # a censored (lasted to the end: at least its value) keeps the lower bound
  # valid; b censored does not.
  assert check(_evidence(_row('a', d=a, censored=dict(d=[1, 0, 0, 0, 0])),
                         _row('b', d=b)))[1] is True
  assert check(_evidence(_row('a', d=a), _row(
      'b', d=b, censored=dict(d=[0, 0, 1, 0, 0]))))[1] is None
  # Twice short in every seed: does not hold, unless a is censored.
  short = [3, 4, 2, 3, 3]
  assert check(_evidence(_row('a', d=short), _row('b', d=b)))[1] is False
  assert check(_evidence(_row('a', d=short,
                              censored=dict(d=[0, 0, 0, 0, 1])),
                         _row('b', d=b)))[1] is None
  # Neither lasts: nothing doubled.
  zero = [0] * 5
  assert check(_evidence(_row('a', d=zero), _row('b', d=zero)))[1] is False


def test_drops_compares_two_metrics_of_a_cell_seed_by_seed():
  peak, final = [0.95, 0.99, 0.9, 0.97, 0.93], [0.5, 0.6, 0.4, 0.55, 0.45]
  lower, _ = _scipy_interval(np.subtract(peak, final))
  evidence = _evidence(_row('a', peak=peak, final=final))
  assert c.drops('a', 'peak', 'final', lower - 0.01)(evidence)[1] is True
  assert c.drops('a', 'peak', 'final', 0.7)(evidence)[1] is False


def test_decreasing_and_all_of_combine_their_parts():
  evidence = _evidence(_row('a', m=[0.9, 0.88, 0.91, 0.9, 0.89]),
                       _row('b', m=[0.6, 0.62, 0.58, 0.6, 0.61]),
                       _row('c', m=[0.2, 0.21, 0.19, 0.2, 0.22]))
  assert c.decreasing('m', ('a', 'b', 'c'), 0.05)(evidence)[1] is True
  assert c.decreasing('m', ('a', 'c', 'b'), 0.05)(evidence)[1] is False
  yes, no = c.at_least('m', 'a', 0.5), c.at_most('m', 'a', 0.5)
  gap = c.at_least('m', 'missing', 0.5)
  assert c.all_of(yes, yes)(evidence)[1] is True
  assert c.all_of(yes, no, gap)(evidence)[1] is False
  assert c.all_of(yes, gap)(evidence)[1] is None


def test_a_control_not_met_makes_the_verdict_cannot_tell():
  attacked = _row('attacked', backdoor_max=[0.3, 0.2, 0.25, 0.3, 0.2],
                  m=[0.9] * 5)
  defended = _row('defended', m=[0.1, 0.12, 0.09, 0.11, 0.1])
  claim = c.Claim('x', c.greater('m', 'attacked', 'defended', 0.3),
                  (c.attack_works('attacked', 0.5),))
  evidence = _evidence(attacked, defended)
  assert claim.check(evidence)[1] is True
  judgement = c.judge(claim, evidence)
  assert judgement.holds is None
  assert 'positive: backdoor_max of attacked ≥ 0.5' in judgement.reason
  assert judgement.controls[0][1] is False
  working = dict(attacked, per_seed=dict(
      attacked['per_seed'], backdoor_max=dict(enumerate([0.9] * 5))))
  assert c.judge(claim, _evidence(working, defended)).holds is True
  # A control that cannot tell gates the verdict too.
  undecided = c.Claim('x', claim.check, (c.attack_works('absent'),))
  assert c.judge(undecided, evidence).holds is None


def test_claims_table_has_the_controls_seeds_and_exploratory_columns():
  claim = c.Claim('x beats y', c.greater('m', 'x', 'y', 0.1),
                  (c.clean_rate('y'),))
  evidence = _evidence(_row('x', m=[0.9] * 5),
                       _row('y', m=[0.0] * 5, backdoor_final=[0.0] * 5))
  judgement = c.judge(claim, evidence)
  text = c.claims_table([('s', claim, judgement, '5 each',
                           'η·m/n = 1.0 (the paper: 0.1)', '')])
  header, _, row = text.strip().split('\n')
  assert header.split(' | ')[2:] == ['controls', 'seeds per cell',
                                     'measured (mean [90% interval])',
                                     'the paper\'s ratios not kept',
                                     'verdict', 'exploratory |']
  # The ratios beside the verdict.
  assert row.split(' | ')[-3:] == ['η·m/n = 1.0 (the paper: 0.1)', 'holds',
                                   'no |']
  assert row.startswith('| s | x beats y | clean base rate')
  assert row.endswith('| 5 each | x 0.90 [0.90, 0.90] vs y 0.00 [0.00, '
                      '0.00]; difference 0.90 [0.90, 0.90] | η·m/n = 1.0 (the '
                      'paper: 0.1) | holds | no |')
  assert c.tally([judgement]) == {'holds': 1, 'does not hold': 0,
                                  'cannot tell': 0}


def _varied_table(study):
  metrics = ('backdoor_final', 'backdoor_cumulative_mean', 'backdoor_max',
             'main_task_final', 'main_task_at_backdoor_max',
             'durability_rounds')
  rng = np.random.default_rng(0)
  return _evidence(*[_row(cell.label, **{m: list(rng.uniform(0, 1, 5))
                                         for m in metrics})
                     for cell in study.cells])


@pytest.mark.parametrize('study', [s for s in studies_lib.STUDIES.values()
                                   if s.claims], ids=lambda s: s.name)
def test_every_claim_and_control_names_only_cells_of_its_study(study):
  evidence = _varied_table(study)
  for claim in study.claims:
    for check in (claim.check,) + tuple(k.check for k in claim.controls):
      measured, _ = check(evidence)
      assert 'not measured' not in measured, (claim.text, measured)
      assert ': no ' not in measured, (claim.text, measured)


def test_every_default_study_has_a_control_on_every_claim():
  for study in studies_lib.STUDIES.values():
    for claim in study.claims:
      assert claim.controls, (study.name, claim.text)


def test_every_claim_reads_the_main_task_among_its_controls():
  # A verdict without the main task is "cannot tell": a backdoor measured on
  # a collapsed model, or kept out by one, says nothing.
  for study in studies_lib.STUDIES.values():
    for claim in study.claims:
      assert any(control.name.startswith(('main task:', 'clean main task:'))
                 or 'main_task' in control.check.spec
                 for control in claim.controls), (study.name, claim.text)


def test_noise_beyond_the_clip_is_gated_on_the_clip_alone():
  # "Weak DP lowers the backdoor beyond its clip alone" compares clip_3 with
  # weak DP: its positive control is that the attack gets through clip_3
  # (else noise has nothing to lower), and clip_3's main task is kept; the
  # undefended cell does not gate it.
  claim = [k for k in studies_lib.STUDIES['defenses'].claims
           if 'beyond its clip alone' in k.text][0]
  names = [control.name for control in claim.controls]
  assert any(n.startswith('positive:') and ' of clip_3 ' in n for n in names)
  assert any(n.startswith('main task:') and ' of clip_3 ' in n for n in names)
  assert not any(' of no_defense ' in n for n in names), names
  def cell(name, backdoor, main):
    return _row(name, backdoor_final=backdoor, backdoor_cumulative_mean=backdoor,
                backdoor_max=[b + 0.3 for b in backdoor], main_task_final=main)

  five = lambda value: [value] * 5
  evidence = _evidence(
      cell('no_attack', five(0.02), five(0.98)),
      cell('clip_3', [0.59, 0.61, 0.58, 0.60, 0.59], five(0.95)),
      cell('weak_dp_C3_mul0.003', [0.58, 0.60, 0.58, 0.61, 0.57], five(0.94)),
      # The main task collapsed undefended: it gates nothing here.
      cell('no_defense', five(0.9), [0.2, 0.9, 0.3, 0.95, 0.25]))
  judgement = c.judge(claim, evidence)
  assert judgement.reason == '', judgement
  assert judgement.holds is False, judgement   # a difference ≈ 0.004, not 0.1


def _study():
  return studies_lib.Study(
      'toy', 'toy', 'it says', dict(attack='unconstrained'),
      (studies_lib.Cell('a', dict(norm_bound=2.0)),
       studies_lib.Cell('b', dict(defense='none'))),
      claims=(c.Claim('a > b', c.greater('m', 'a', 'b', 0.1)),
              c.Claim('a high', c.at_least('m', 'a', 0.5))))


def test_the_hash_changes_with_the_claim_or_a_cell_not_with_the_seed(
    tmp_path):
  study = _study()
  runs = runner.plan([study], 'smoke', str(tmp_path), seeds=2)
  settings = registration.cell_settings(runs)
  first = registration.claim_hash(study.claims[0], settings)
  assert first == registration.claim_hash(
      study.claims[0], registration.cell_settings(runs[1:]))
  changed_margin = c.Claim('a > b', c.greater('m', 'a', 'b', 0.2))
  assert registration.claim_hash(changed_margin, settings) != first
  with_control = c.Claim('a > b', c.greater('m', 'a', 'b', 0.1),
                         (c.attack_works('a'),))
  assert registration.claim_hash(with_control, settings) != first
  other = studies_lib.Study(
      'toy', 'toy', 'it says', dict(attack='unconstrained'),
      (studies_lib.Cell('a', dict(norm_bound=3.0)), study.cells[1]),
      claims=study.claims)
  other_runs = runner.plan([other], 'smoke', str(tmp_path), seeds=2)
  assert registration.claim_hash(
      study.claims[0], registration.cell_settings(other_runs)) != first


def test_the_hash_ignores_the_output_root_and_reads_the_pretraining(
    tmp_path):
  study = _study()
  claim = study.claims[0]
  here = registration.cell_settings(
      runner.plan([study], 'smoke', str(tmp_path / 'x'), seeds=1))
  there = registration.cell_settings(
      runner.plan([study], 'smoke', str(tmp_path / 'y'), seeds=1))
  assert registration.claim_hash(claim, here) == registration.claim_hash(
      claim, there)
  converged = studies_lib.Study(study.name, study.title, study.paper_says,
                                study.settings, study.cells,
                                claims=study.claims, converged_start=True)
  runs = runner.plan([converged], 'smoke', str(tmp_path / 'x'), seeds=1)
  cells = [r for r in runs if r.study != runner.PRETRAINING]
  started = registration.cell_settings(cells)
  assert registration.claim_hash(claim, started) != registration.claim_hash(
      claim, here)
  # Another root: the same pretraining digest, the same hash.
  elsewhere = [r for r in runner.plan([converged], 'smoke',
                                      str(tmp_path / 'y'), seeds=1)
               if r.study != runner.PRETRAINING]
  assert registration.claim_hash(claim, started) == registration.claim_hash(
      claim, registration.cell_settings(elsewhere))
  # More pretraining rounds: another digest, another hash.
  longer = runner.pretraining_run(dict(cells[0].settings), 99, 0,
                                  str(tmp_path), 'smoke')
  assert longer.cell != cells[0].pretrained


def test_the_hash_reads_a_revised_models_revision_and_nothing_else(
    tmp_path, monkeypatch):
  study = _study()
  claim = study.claims[0]
  runs = runner.plan([study], 'smoke', str(tmp_path), seeds=1)
  # A model with no revision: the hash of the settings as they were before
  # revisions existed (the digits studies' stored runs keep theirs).
  per_run = ('random_seed', 'root_output_dir', 'experiment_name', 'resume',
             'emnist_cache_dir')
  plain = {}
  for run in runs:
    plain.setdefault(run.cell, {k: v for k, v in run.settings.items()
                                if k not in per_run})
  assert registration.claim_hash(claim, registration.cell_settings(runs)) == (
      c.digest(dict(claim=claim.spec(), cells=plain)))
  # ... and its pretraining keeps its directory (the digest of its settings).
  converged = studies_lib.Study(study.name, study.title, study.paper_says,
                                study.settings, study.cells,
                                claims=study.claims, converged_start=True)
  pretraining = [r for r in runner.plan([converged], 'smoke', str(tmp_path),
                                        seeds=1)
                 if r.study == runner.PRETRAINING][0]
  assert pretraining.cell == c.digest({
      k: v for k, v in pretraining.settings.items() if k not in per_run})
  # The same study on `cifar_cnn`, before and after its revision 2: runs of
  # the 'valid' architecture read as another definition, and its cached
  # pretraining is not reused.
  on_cifar = studies_lib.Study(
      study.name, study.title, study.paper_says,
      dict(study.settings, model='cifar_cnn', dataset='synthetic_cifar10'),
      study.cells, claims=study.claims, converged_start=True)

  def hash_and_pretraining():
    planned = runner.plan([on_cifar], 'smoke', str(tmp_path), seeds=1)
    cells = [r for r in planned if r.study != runner.PRETRAINING]
    return (registration.claim_hash(claim, registration.cell_settings(cells)),
            {r.cell for r in planned if r.study == runner.PRETRAINING})

  revised = hash_and_pretraining()
  monkeypatch.delitem(models.MODEL_REVISIONS, 'cifar_cnn')
  unrevised = hash_and_pretraining()
  assert revised[0] != unrevised[0]
  assert revised[1].isdisjoint(unrevised[1]), (revised[1], unrevised[1])


def test_a_claim_changed_after_its_runs_is_exploratory(tmp_path):
  study = _study()
  runs = runner.plan([study], 'smoke', str(tmp_path), seeds=1)
  assert registration.exploratory_reason(
      study, study.claims[0], runs, runs) == (
          'runs without a recorded definition')
  registration.record(study, runs, runs)
  with open(os.path.join(runs[0].output_dir, 'definition.json')) as f:
    recorded = json.load(f)
  assert recorded['claims']['a > b'] == registration.claim_hash(
      study.claims[0], registration.cell_settings(runs))
  assert registration.exploratory_reason(study, study.claims[0], runs,
                                         runs) == ''
  # The claim's margin changed after the runs: exploratory; the other
  # claim, unchanged, stays fixed before its runs.
  edited = studies_lib.Study(
      study.name, study.title, study.paper_says, study.settings, study.cells,
      claims=(c.Claim('a > b', c.greater('m', 'a', 'b', 0.3)),
              study.claims[1]))
  assert 'defined after' in registration.exploratory_reason(
      edited, edited.claims[0], runs, runs)
  assert registration.exploratory_reason(edited, edited.claims[1], runs,
                                         runs) == ''
  # A run resumed under the new definition keeps its first record.
  for run in runs:
    open(os.path.join(run.output_dir, 'metrics.csv'), 'w').close()
  registration.record(edited, runs, runs)
  assert 'defined after' in registration.exploratory_reason(
      edited, edited.claims[0], runs, runs)
  # More seeds read than were planned when the runs were made.
  more = runner.plan([study], 'smoke', str(tmp_path), seeds=2)
  assert 'seeds' in registration.exploratory_reason(study, study.claims[1],
                                                    more, runs)
  # A run that started before any record: exploratory, though the claim
  # was not changed since.
  late = runner.plan([study], 'smoke', str(tmp_path / 'late'), seeds=1)
  for run in late:
    os.makedirs(run.output_dir)
    open(os.path.join(run.output_dir, 'metrics.csv'), 'w').close()
  registration.record(study, late, late)
  assert 'started before' in registration.exploratory_reason(
      study, study.claims[1], late, late)
  # A bigger run is exploratory whatever its records.
  bigger = studies_lib.bigger_run(study, 'toy_long', 'longer',
                                  dict(num_rounds=9), ('a', 'b'),
                                  claims_kept=(0,))
  assert registration.exploratory_reason(bigger, bigger.claims[0], runs,
                                         runs) == 'bigger run of toy'


def test_a_bigger_run_is_its_study_plus_its_own_settings():
  first = c.Claim('a > b', c.greater('m', 'a', 'b', 0.1))
  second = c.Claim('a high', c.at_least('m', 'a', 0.5))
  extra = c.Claim('new > b', c.greater('m', 'new', 'b', 0.1))
  parent = studies_lib.Study(
      'p', 'the paper', 'it says', dict(x=1, y=2),
      (studies_lib.Cell('a', dict(z=1)), studies_lib.Cell('b', dict(z=2))),
      claims=(first, second), paper_scale_settings=dict(x=10),
      scale_settings=dict(small=dict(q=1)), ratios_not_kept=('r',))
  new_cell = studies_lib.Cell('new', dict(z=3))
  bigger = studies_lib.bigger_run(
      parent, 'p_long', 'longer', dict(y=3, w=4), ('b', new_cell),
      claims=(extra,), claims_kept=(1,), paper_scale_settings=dict(w=40))
  assert bigger.settings == dict(x=1, y=3, w=4)
  assert bigger.cells == (parent.cells[1], new_cell)
  assert bigger.claims == (second, extra)
  assert bigger.paper_scale_settings == dict(x=10, w=40)
  assert bigger.scale_settings == dict(small=dict(q=1))
  # A string is its own short form.
  assert bigger.ratios_not_kept == (studies_lib.Ratio('r', 'r'),)
  assert (bigger.default, bigger.bigger_run_of) == (False, 'p')
  assert bigger.title == 'the paper; bigger run: longer'
  with pytest.raises(KeyError):
    studies_lib.bigger_run(parent, 'q', 'q', {}, ('no_such_cell',))
  # None of the library's bigger runs is in the default sweep.
  names = {s.name for s in studies_lib.STUDIES.values() if s.bigger_run_of}
  assert names and not names & set(studies_lib.default_studies())
