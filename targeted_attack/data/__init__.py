"""Federated datasets and which clients take part.

- `federated`: `FederatedDigits` (the dataset type), the generated writers and
  TFF's federated EMNIST.
- `synthetic_digits`: the generated writer-style digits.
- `emnist_cache`: writes a federated-EMNIST cache in TFF's own format.
- `dirichlet`: a non-IID re-split of the writers' data.
- `root_dataset`: the server's clean root dataset (FLTrust).
- `sampling`: the round's clients, and the attacker models.
"""
