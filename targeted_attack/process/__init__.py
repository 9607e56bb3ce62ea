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
