"""Gaussian emissions: densities per covariance type, additive statistics, GaussianMixture."""

from .gaussian import (
    COVARIANCE_TYPES,
    covariances_from_precisions_cholesky,
    estimate_gaussian_parameters,
    log_gaussian_density,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
    precisions_from_precisions_cholesky,
)
from .stats import GaussianStats

__all__ = [
    "COVARIANCE_TYPES",
    "GaussianStats",
    "covariances_from_precisions_cholesky",
    "estimate_gaussian_parameters",
    "log_gaussian_density",
    "precisions_cholesky_from_covariances",
    "precisions_cholesky_from_precisions",
    "precisions_from_precisions_cholesky",
]

from .gmm import ConvergenceWarning, GaussianMixture, MixtureStats  # noqa: E402

__all__ += ["ConvergenceWarning", "GaussianMixture", "MixtureStats"]
