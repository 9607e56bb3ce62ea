"""Omniscient attacks: ALIE and IPM, crafted from the round's updates.

ALIE and IPM need the statistics of the round's updates (an omniscient,
colluding attacker): they are `OmniscientAttack`s, whose malicious update is
crafted by `craft_from_round` inside the client-work stage of the process
(`process.client_work`), after every client has trained and before the
server aggregates. That stage sees each client's update and whether it is
malicious (the flag the process already carries), so the crafted update is
computed from the true benign updates of the round, exactly, with any defense
after it.

Why there: each client's TF computation sees only its own data, and an
aggregator sees the stacked updates but not which rows are malicious (a
marker smuggled in the update or its weight would corrupt any aggregator not
expecting it); estimating μ, σ from sub-sampled trainings on the attacker's
own data would be a weaker, slower attacker than the papers'. The stage models
the papers' threat model: colluding attackers who know the benign updates of
the round (IPM's and ALIE's experiments; Fang et al. 2020's "full
knowledge"). `knowledge`='attackers' gives the partial-knowledge variant
(statistics of the attackers' own benign updates, as in ALIE's code).
"""

import abc

import tensorflow as tf
import tensorflow_federated as tff

from targeted_attack import checks
from targeted_attack import update_math
from targeted_attack.attacks import base


# Whose updates the omniscient attacker's statistics are taken over: the
# round's benign clients (full knowledge) or the attackers' own benign updates
# (partial knowledge, as in the ALIE authors' code).
KNOWLEDGE = ('benign', 'attackers')


class OmniscientAttack(base.ClientUpdateStrategy):
  """A malicious update crafted from the statistics of the round's updates.

  Locally, a malicious client trains like a benign one (Δ_benign: its sample
  for `knowledge`='attackers', and its aggregation weight). Then
  `craft_from_round` (the client-work stage of `attacked_fedavg`) computes,
  coordinate-wise over the sample S of updates (the benign clients' for
  'benign', the attackers' own for 'attackers'),
      μ = (1/|S|) Σ_{i∈S} Δ_i,   σ = sqrt((1/|S|) Σ_{i∈S} (Δ_i − μ)²)
  (the population standard deviation, as the ALIE authors' code; 0 when S
  is empty), and every malicious
  client sends `craft(μ, σ, n, f)`, n the clients of the round, f the
  malicious ones. Outside that process (a bare strategy call) the malicious
  client sends Δ_benign.
  """

  def __init__(self, knowledge: str = 'benign'):
    self.knowledge = checks.choice('knowledge', knowledge, KNOWLEDGE)

  def malicious_update(self, trainer, initial_weights, benign_dataset,
                       malicious_dataset, boost_share) -> base.ClientDelta:
    del malicious_dataset, boost_share
    return base.benign_update(trainer, initial_weights, benign_dataset)

  @abc.abstractmethod
  def craft(self, mean, std, num_clients, num_malicious):
    """The malicious Δ from μ, σ (structures like Δ) and n, f (float32)."""


def alie_z_max(num_clients, num_malicious) -> tf.Tensor:
  """ALIE's z_max = Φ⁻¹((n − s)/n), s = ⌊n/2 + 1⌋ − f (Baruch et al., Sec. 4).

  s: the benign clients the attackers must win over for a majority; z_max the
  largest z with Φ(z) < (n − s)/n. s is taken at least 1 (f ≥ ⌊n/2 + 1⌋
  would give an infinite z). One attacker among 30 gives z = 0.
  """
  n = tf.cast(num_clients, tf.float32)
  f = tf.cast(num_malicious, tf.float32)
  s = tf.maximum(tf.floor(n / 2.0 + 1.0) - f, 1.0)
  return tf.math.ndtri(tf.math.divide_no_nan(n - s, n))


class ALIE(OmniscientAttack):
  """A Little Is Enough (Baruch et al., NeurIPS 2019, Sec. 4, Alg. 1).

  Every malicious client sends Δ = μ − z · σ (coordinate-wise; μ, σ as in
  `OmniscientAttack`), z = `z` or, when None, the paper's z_max from the
  round's n clients and f attackers (`alie_z_max`). The shift stays within
  the benign spread, so distance- and coordinate-based defenses keep it.
  The paper's backdoor variant (Sec. 5: backdoor training, then the update
  clipped to μ ± z·σ) is not implemented.
  """

  def __init__(self, z=None, knowledge: str = 'benign'):
    super().__init__(knowledge)
    self.z = None if z is None else checks.number('z', z, 0.0)

  def craft(self, mean, std, num_clients, num_malicious):
    z = (alie_z_max(num_clients, num_malicious) if self.z is None else
         tf.constant(self.z, tf.float32))
    return update_math.add_scaled(mean, std, -z)


class IPM(OmniscientAttack):
  """Inner product manipulation (Xie, Koyejo & Gupta, UAI 2019, Sec. 4).

  Every malicious client sends Δ = −ε · μ, μ the mean of the benign updates,
  ε = `epsilon`: for small ε the mean stays positively aligned with μ but
  shrinks (defeating Krum / median), for large ε the inner product of the
  aggregate with the true mean turns negative.
  """

  def __init__(self, epsilon: float, knowledge: str = 'benign'):
    super().__init__(knowledge)
    self.epsilon = checks.positive('epsilon', epsilon)

  def craft(self, mean, std, num_clients, num_malicious):
    del std, num_clients, num_malicious
    return update_math.scale(mean, -self.epsilon)


def craft_from_round(strategy: OmniscientAttack, client_result, is_malicious):
  """Inside a federated computation: (client results, norms) at CLIENTS with
  every malicious client's update replaced by `strategy.craft(...)`.

  `client_result`: `ClientResult`s at CLIENTS, on TFF's wire (update = −Δ);
  `is_malicious`: float32 0/1 at CLIENTS. μ, σ as in `OmniscientAttack`
  (two passes: the mean, broadcast, then the squared deviations).
  """
  attackers = strategy.knowledge == 'attackers'
  in_sample = tff.federated_map(
      tff.tensorflow.computation(
          lambda m: m if attackers else 1.0 - m), is_malicious)
  masked = tff.federated_map(
      tff.tensorflow.computation(
          lambda r, s: tf.nest.map_structure(lambda u: -u * s, r.update)),
      (client_result, in_sample))
  count = tff.federated_sum(in_sample)
  mean = tff.federated_map(
      tff.tensorflow.computation(
          lambda total, c: tf.nest.map_structure(
              lambda t: tf.math.divide_no_nan(t, c), total)),
      (tff.federated_sum(masked), count))
  squares = tff.federated_map(
      tff.tensorflow.computation(
          lambda r, s, mu: tf.nest.map_structure(
              lambda u, m: s * tf.square(-u - m), r.update, mu)),
      (client_result, in_sample, tff.federated_broadcast(mean)))
  num_clients = tff.federated_sum(tff.federated_map(
      tff.tensorflow.computation(lambda m: tf.ones_like(m)), is_malicious))
  num_malicious = tff.federated_sum(is_malicious)

  @tff.tensorflow.computation
  def crafted_wire_update(mean, squares, count, n, f):
    std = tf.nest.map_structure(
        lambda q: tf.sqrt(tf.math.divide_no_nan(q, count)), squares)
    return tf.nest.map_structure(tf.negative,
                                 strategy.craft(mean, std, n, f))

  crafted = tff.federated_broadcast(tff.federated_map(
      crafted_wire_update, (mean, tff.federated_sum(squares), count,
                            num_clients, num_malicious)))

  @tff.tensorflow.computation
  def replace(result, is_malicious, crafted):
    update = tf.nest.map_structure(
        lambda u, c: tf.where(is_malicious > 0.5, c, u), result.update,
        crafted)
    return (tff.learning.templates.ClientResult(
        update=update, update_weight=result.update_weight),
            update_math.global_norm(update))

  return tff.federated_map(replace, (client_result, is_malicious, crafted))
