"""The sign-flipping attack against NumPy SGD."""

import numpy as np
import tensorflow_federated as tff

from targeted_attack import process as process_lib
from targeted_attack.attacks import sign_flip
from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import registry
import builders
import reference as ref


def test_attacker_sends_minus_its_benign_update():
  # One malicious client, server η = 1: w_1 − w_0 is the Δ it sends.
  process = process_lib.build_federated_averaging_process_attacked(
      builders.model_fn,
      client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
      server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
      client_update_tf=sign_flip.SignFlip())
  data = process_lib.build_client_data([builders.make_dataset(2, 6)],
                                           [builders.make_dataset(9, 4)])
  state = process.next(process.initialize(), data).state
  sent = ref.delta([np.asarray(w, np.float64) for w in
                    process.get_model_weights(state).trainable],
                   ref.initial_weights())
  x, y = ref.make_examples(2, 6)
  benign = ref.delta(ref.sgd_pass(ref.initial_weights(), x, y, 0.1),
                     ref.initial_weights())
  for got, expected in zip(sent, benign):
    np.testing.assert_allclose(got, -expected, rtol=1e-5, atol=1e-7)


def test_registry_builds_it_by_name():
  config = config_lib.ExperimentConfig(attack='sign_flip')
  registry.validate(config)
  assert isinstance(registry.ATTACKS.chosen(config).build(config),
                    sign_flip.SignFlip)
