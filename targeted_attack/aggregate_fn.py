"""Defenses as `tff.aggregators` factories, composable through `inner`.

The public face of `targeted_attack.defenses` (original research code's
name). Every builder returns a `tff.aggregators` factory usable as
`model_update_aggregation_factory` of
`process.build_federated_averaging_process_attacked` (or of the original
API's, `attacked_fedavg`), or as the `model_aggregator` of any
`tff.learning` algorithm. Wrappers take an `inner`
factory that receives their output (default: the weighted mean) and take their
weightedness from it. Compose, e.g. "clip, then noise, then average":

    build_clip_per_client(5.0, inner=build_gaussian_noise(0.025))

Each reports its measurements under its own name (`clip/fraction`,
`krum/selected_clients`, …) and the inner factory's under `inner`; each
builder's module lists them.

Families: `defenses.clipping` (means, non-finite zeroing, clipping, noise,
weak DP), `defenses.robust` (Krum, Multi-Krum, Bulyan, median, trimmed
mean, geometric median), `defenses.filtering` (robust learning rate, FLAME,
FLTrust), `defenses.foolsgold` (FoolsGold, keyed by client identity: build
the process with `client_weighting=ClientWeighting.CLIENT_ID`);
`defenses.plumbing` for writing a new one.
"""

# pylint: disable=unused-import
from targeted_attack import checks
from targeted_attack.defenses.clipping import build_aggregate_and_clip
from targeted_attack.defenses.clipping import build_clip_per_client
from targeted_attack.defenses.clipping import build_default_aggregation
from targeted_attack.defenses.clipping import build_gaussian_noise
from targeted_attack.defenses.clipping import build_stateless_mean
from targeted_attack.defenses.clipping import build_zero_non_finite
from targeted_attack.defenses.filtering import build_flame
from targeted_attack.defenses.foolsgold import build_foolsgold
from targeted_attack.defenses.filtering import build_fltrust
from targeted_attack.defenses.filtering import build_robust_learning_rate
from targeted_attack.defenses.plumbing import build_client_transform
from targeted_attack.defenses.plumbing import build_server_transform
from targeted_attack.defenses.plumbing import build_stacked_aggregator
from targeted_attack.defenses.robust import build_bulyan
from targeted_attack.defenses.robust import build_coordinate_median
from targeted_attack.defenses.robust import build_geometric_median
from targeted_attack.defenses.robust import build_krum
from targeted_attack.defenses.robust import build_multi_krum
from targeted_attack.defenses.robust import build_trimmed_mean
from targeted_attack.defenses.robust import krum_scores
from targeted_attack.update_math import clip_by_global_norm
# pylint: enable=unused-import
from targeted_attack.defenses import clipping


def build_dp_aggregate(l2_norm_clip=None, mul_factor=None, num_clients=None,
                       seed=None, *, l2_norm=None):
  """Weak DP: `defenses.clipping.build_dp_aggregate`, also called as the
  original research code called it.

  (Σ_k clip(Δ_k, C) + z) / N, z ~ N(0, σ²) per coordinate of the sum.
  `build_dp_aggregate(C, mul_factor, N)`: σ = mul_factor · C (a noise
  multiplier). The original's keyword for C, `l2_norm`, is accepted, and with
  it the original's meaning: `build_dp_aggregate(l2_norm=C, mul_factor=σ,
  num_clients=N)` adds noise of stddev σ = `mul_factor` itself (its
  `GaussianAverageQuery(l2_norm, mul_factor, num_clients)`), i.e. the
  multiplier mul_factor / C. `num_clients` may be a float with an integer
  value, as the original's tests passed it (1.0).
  """
  if l2_norm is not None:
    if l2_norm_clip is not None:
      raise TypeError('build_dp_aggregate() got both `l2_norm_clip` and the '
                      "original's name for it, `l2_norm`; pass one.")
    l2_norm_clip = checks.positive('l2_norm', l2_norm)
    if mul_factor is not None:
      mul_factor = checks.number('mul_factor', mul_factor, 0.0) / l2_norm_clip
  if l2_norm_clip is None or mul_factor is None or num_clients is None:
    raise TypeError('build_dp_aggregate() needs l2_norm_clip (or l2_norm), '
                    'mul_factor and num_clients.')
  if isinstance(num_clients, float) and num_clients.is_integer():
    num_clients = int(num_clients)
  return clipping.build_dp_aggregate(l2_norm_clip, mul_factor, num_clients,
                                     seed=seed)
