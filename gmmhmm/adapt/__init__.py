"""Speaker adaptation: fMLLR / CMLLR feature transforms, speaker-adaptive training, MAP.

* :mod:`.fmllr`   additive per-speaker statistics, Gales' row-by-row estimate, apply
"""

from .fmllr import FmllrStats, accumulate_fmllr_stats, apply_fmllr, estimate_fmllr, fmllr_auxf, identity_transform

__all__ = ["FmllrStats", "accumulate_fmllr_stats", "apply_fmllr", "estimate_fmllr", "fmllr_auxf",
           "identity_transform"]
