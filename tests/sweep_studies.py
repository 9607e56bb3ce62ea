"""Studies used only by the sweep tests."""

from targeted_attack import reproduce

VALID_AND_INVALID = reproduce.Study(
    'custom', 'a valid and an invalid cell', 'nothing',
    dict(attack='unconstrained', task_num=2),
    (reproduce.Cell('valid', {}),
     reproduce.Cell('invalid', dict(num_byzantine=-2))))
