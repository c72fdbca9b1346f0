"""Speaker adaptation: fMLLR / CMLLR feature transforms, speaker-adaptive training, MAP.

* :mod:`.fmllr`    additive per-speaker statistics, Gales' row-by-row estimate, apply (arrays only)
* :mod:`.speaker`  the same for phone models: statistics through transcript or hypothesis graphs,
  per-speaker transforms (utt2spk), speaker-adaptive training, MAP means
* :mod:`.vtln`     per-speaker VTLN warp factors by maximum likelihood under a GMM, VTLN training

Unsupervised two-pass decoding is :func:`gmmhmm.decoding.decode_adapted`.
"""

from .fmllr import FmllrStats, accumulate_fmllr_stats, apply_fmllr, estimate_fmllr, fmllr_auxf, identity_transform
from .speaker import (AdaptationStats, SatResult, adaptation_stats, apply_speaker_transforms,
                      estimate_speaker_transforms, log_det, map_adapt, speaker_fmllr_stats, train_sat,
                      transcript_graph)
from .vtln import (VtlnResult, check_vtln_grid, estimate_vtln_warps, features_on_disk, memoised_features_at, train_vtln, vtln_warp_grid,
                   warped_features)

__all__ = ["AdaptationStats", "FmllrStats", "SatResult", "accumulate_fmllr_stats", "adaptation_stats",
           "apply_fmllr", "apply_speaker_transforms", "estimate_fmllr", "estimate_speaker_transforms",
           "fmllr_auxf", "identity_transform", "log_det", "map_adapt", "speaker_fmllr_stats", "train_sat",
           "transcript_graph", "VtlnResult", "check_vtln_grid", "estimate_vtln_warps", "features_on_disk", "memoised_features_at", "train_vtln", "vtln_warp_grid",
           "warped_features"]
