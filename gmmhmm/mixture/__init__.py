"""Gaussian emissions: densities per covariance type, additive statistics, the one
estimator (:mod:`.estimate`), mixture splitting (:mod:`.mixup`), GaussianMixture."""

from .gaussian import (
    COVARIANCE_TYPES,
    covariances_from_precisions_cholesky,
    log_gaussian_density,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
    precisions_from_precisions_cholesky,
)
from .estimate import GaussianParams, GaussianUpdateOptions, UpdateReport, update_gaussians
from .mixup import mix_up
from .stats import GaussianStats

__all__ = [
    "COVARIANCE_TYPES",
    "GaussianParams",
    "GaussianStats",
    "GaussianUpdateOptions",
    "UpdateReport",
    "mix_up",
    "update_gaussians",
    "covariances_from_precisions_cholesky",
    "log_gaussian_density",
    "precisions_cholesky_from_covariances",
    "precisions_cholesky_from_precisions",
    "precisions_from_precisions_cholesky",
]

from .gmm import ConvergenceWarning, GaussianMixture, MixtureStats  # noqa: E402

__all__ += ["ConvergenceWarning", "GaussianMixture", "MixtureStats"]
