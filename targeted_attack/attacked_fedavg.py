"""The original research code's API: the attacked FedAvg process, its client
data and its client update strategies.

A thin face over `targeted_attack.process` (the `tff.learning` process and
its stages) and `targeted_attack.attacks` (how a malicious update is formed).
`build_federated_averaging_process_attacked(model_fn, ...)` returns a
`tff.learning.templates.LearningProcess`; `next(state, client_data)` takes
`build_client_data(benign_datasets, malicious_datasets)`.
"""

# pylint: disable=unused-import
from targeted_attack.attacks.base import ClientDelta
from targeted_attack.attacks.base import ClientUpdateStrategy
from targeted_attack.attacks.base import NoAttack
from targeted_attack.attacks.boosting import ClientExplicitBoosting
from targeted_attack.attacks.boosting import ModelReplacement
from targeted_attack.attacks.pgd import ClientProjectBoost
from targeted_attack.defenses.dp_sgd import DPSGD
from targeted_attack.process.client_data import build_client_data
from targeted_attack.process.client_data import client_context
from targeted_attack.process.client_data import empty_like
from targeted_attack.process.client_work import build_attacked_client_work
from targeted_attack.process.learning_process import ClientWeighting
from targeted_attack.process.learning_process import as_tff_optimizer
from targeted_attack.process.learning_process import build_federated_averaging_process_attacked
