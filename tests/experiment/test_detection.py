"""Detection metrics of filtering rules in runs, exact where the kept set is
known from the rule's definition.

One attacker per round (fixed frequency 1: the round's first client), an
unconstrained update boosted ×10 pointing far from the benign ones, so a
distance-based rule excludes it; n clients per round, f = 1:
- Krum keeps one benign client: TPR 1, FPR (n − 2)/(n − 1);
- Multi-Krum keeps m benign clients: FPR (n − 1 − m)/(n − 1);
- Bulyan keeps θ = n − 2f Krum picks, all benign: FPR (n − 1 − θ)/(n − 1).
For FLAME, FLTrust and FoolsGold the kept set is data-dependent: their TPR
and FPR must agree with the count the rule itself reports.
"""

import pytest

from targeted_attack.experiment import run as run_lib
from builders import tiny_config as tiny

_RUN = dict(attack='unconstrained', boost_factor=10.0, attack_freq=1,
            num_rounds=2, synthetic_num_clients=20)


@pytest.mark.parametrize('defense, n, settings, kept_benign', [
    ('krum', 5, dict(num_byzantine=1), 1),
    ('multi_krum', 5, dict(num_byzantine=1, multi_krum_selected=2), 2),
    ('bulyan', 7, dict(num_byzantine=1), 5),
])
def test_distance_rules_report_their_kept_set_exactly(tmp_path, defense, n,
                                                      settings, kept_benign):
  rows = run_lib.run(tiny(tmp_path, defense=defense, num_clients_per_round=n,
                          **_RUN, **settings), progress=False)
  for row in rows:
    assert row['num_attackers'] == 1
    assert row['detection_tpr'] == 1.0
    assert row['detection_fpr'] == pytest.approx((n - 1 - kept_benign) /
                                                 (n - 1))
    assert row['attackers_kept_share'] == 0.0


@pytest.mark.parametrize('defense, count', [
    ('flame', 'aggregator/inner/flame/kept_clients'),
    ('fltrust', 'aggregator/inner/fltrust/kept_clients'),
    ('foolsgold', 'aggregator/inner/foolsgold/kept_clients'),
])
def test_data_dependent_rules_agree_with_their_own_count(tmp_path, defense,
                                                         count):
  n = 5
  rows = run_lib.run(tiny(tmp_path, defense=defense, num_clients_per_round=n,
                          fltrust_root_size=10, **_RUN), progress=False)
  for row in rows:
    attacker_kept = 1.0 - row['detection_tpr']
    benign_kept = (1.0 - row['detection_fpr']) * (n - 1)
    assert float(row[count]) == pytest.approx(attacker_kept + benign_kept)
    kept = attacker_kept + benign_kept
    assert row['attackers_kept_share'] == pytest.approx(
        attacker_kept / kept if kept else '')
  if defense == 'flame':
    # A ×10 boosted update is far from the honest local models.
    assert all(row['detection_tpr'] == 1.0 for row in rows)
