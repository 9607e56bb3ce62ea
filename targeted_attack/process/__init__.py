"""The attacked `tff.learning` process, stage by stage.

- `learning_process`: broadcast → client work → aggregator → finalizer,
  composed with `tff.learning.templates.compose_learning_process`.
- `client_work`: the client-work stage (each client's strategy, its weight,
  the client statistics).
- `local_training`: `LocalTrainer`, the TF logic of local training.
- `client_data`: the per-client input of the process.
- `round_data`: a round's client data, from the dataset and the backdoor.
- `models`: the paper's CNN and smaller models.
"""

# The project's process, its client data and settings.
# pylint: disable=g-import-not-at-top,unused-import
from targeted_attack.process.client_data import build_client_data
from targeted_attack.process.client_data import client_context
from targeted_attack.process.client_data import empty_like
from targeted_attack.process.client_work import ClientWeighting
from targeted_attack.process.learning_process import as_tff_optimizer
from targeted_attack.process.learning_process import build_federated_averaging_process_attacked
from targeted_attack.process.learning_process import build_sgdm
