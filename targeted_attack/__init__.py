"""targeted-attack: backdoor attacks and defenses for federated learning on TFF.

Importing the package registers an exit hook that stops TFF's C++
`worker_binary` (see `targeted_attack.runtime`).
"""

from targeted_attack import runtime as _runtime

_runtime.register_reaper()

__version__ = '0.1.0'
