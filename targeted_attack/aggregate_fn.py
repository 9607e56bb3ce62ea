"""Defenses as `tff.aggregators` factories, composable through `inner`.

The public face of `targeted_attack.defenses` (original research code's
name). Every builder returns a `tff.aggregators` factory usable as
`model_update_aggregation_factory` of
`attacked_fedavg.build_federated_averaging_process_attacked` or as the
`model_aggregator` of any `tff.learning` algorithm. Wrappers take an `inner`
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
from targeted_attack.defenses.clipping import build_aggregate_and_clip
from targeted_attack.defenses.clipping import build_clip_per_client
from targeted_attack.defenses.clipping import build_default_aggregation
from targeted_attack.defenses.clipping import build_dp_aggregate
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
