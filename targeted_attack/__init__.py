"""targeted-attack: backdoor attacks and defenses for federated learning on TFF.

Importing the package selects Keras 2 for TensorFlow >= 2.16
(TF_USE_LEGACY_KERAS=1, unless set; see `targeted_attack.legacy_keras`) and
registers an exit hook that stops TFF's C++ `worker_binary` (see
`targeted_attack.runtime`).
"""

from targeted_attack import legacy_keras as _legacy_keras

_legacy_keras.select_legacy_keras()

from targeted_attack import runtime as _runtime  # pylint: disable=g-import-not-at-top

_runtime.register_reaper()

__version__ = '0.1.0'
