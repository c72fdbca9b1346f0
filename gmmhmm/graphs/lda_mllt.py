"""LDA + MLLT training of phone models (Kaldi's tri2b, HTK's HLDA-free equivalent).

Starting from trained phone models (monophones, or any :class:`PhoneModelSet`
with its ``n_pdfs``) on their own features:

1. **LDA**: the models' state posteriors on the training utterances label the
   frames of the spliced static features (13 MFCC spliced +-4 frames = 117
   dimensions) with pdfs; :func:`~gmmhmm.features.transforms.estimate_lda`
   projects them to ``lda_dim`` dimensions (Kaldi ``acc-lda`` / ``est-lda``).
2. **Single-pass retraining** into the LDA space (HTK HERest ``-r``): one
   E-step with the old models on the old features, statistics gathered on
   the new ones. Chosen over Kaldi's fresh training from alignments because
   one pass carries over every state's mixture (no mix-up schedule to
   repeat) and its posteriors are soft, and the same two-model pass serves
   the MLLT updates below.
3. **Embedded re-estimation with MLLT** (semi-tied covariance, Gales 1999):
   at the ``mllt_iters`` iterations, MLLT statistics are gathered with the
   current models, the square transform ``A`` is estimated
   (:func:`~gmmhmm.features.transforms.estimate_mllt`) and composed into the
   stored transform, and the two-model pass moves the models into the
   rotated space (means ``A mu`` for Gaussians without data, every other
   mean and variance re-estimated); the other iterations are ordinary
   Baum-Welch passes.

The result is a :class:`PhoneModelSet` whose ``feature_transform_`` maps the
front end's static features to its own, and whose ``feature_config`` extracts
those static features: decoding and alignment apply it with no new option.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_array, check_positive_int
from ..errors import InvalidInputError, InvalidParameterError
from ..features.transforms import (FeatureTransform, MlltAccumulator, accumulate_lda_stats, estimate_lda,
                                   estimate_mllt)
from ..mixture.stats import GaussianStats
from .context import MonophoneContext
from .models import PhoneModelSet
from .training import EmbeddedTrainer

logger = logging.getLogger(__name__)

__all__ = ["LdaMlltOptions", "static_features", "train_lda_mllt"]


@dataclass(frozen=True)
class LdaMlltOptions:
    """Settings of :func:`train_lda_mllt` (defaults after Kaldi's ``train_lda_mllt.sh``).

    Parameters
    ----------
    lda_dim : int
        Dimension after LDA (Kaldi: 40).
    splice : int
        Frames spliced on each side before LDA (Kaldi ``splice-feats`` default 4; recipes often use 3).
    n_iter : int
        Embedded re-estimation passes in the LDA space after the single-pass retraining.
    mllt_iters : tuple of int
        Iterations (0-based, < n_iter) that begin with an MLLT update.
    mllt_sweeps : int
        Row-by-row sweeps of each MLLT estimate.
    silence_weight : float
        Weight of the silence pdfs' frames in the LDA and MLLT statistics
        (Kaldi's ``weight-silence-post 0.0``).
    """

    lda_dim: int = 40
    splice: int = 4
    n_iter: int = 6
    mllt_iters: tuple[int, ...] = field(default=(0, 1, 3))
    mllt_sweeps: int = 10
    silence_weight: float = 0.0

    def validate(self) -> "LdaMlltOptions":
        check_positive_int(self.lda_dim, "lda_dim")
        check_positive_int(self.splice, "splice", minimum=0)
        check_positive_int(self.n_iter, "n_iter", minimum=0)
        check_positive_int(self.mllt_sweeps, "mllt_sweeps")
        if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.n_iter
               for i in self.mllt_iters):
            raise InvalidParameterError(f"mllt_iters must be iterations in [0, {self.n_iter}), got {self.mllt_iters!r}")
        if not 0.0 <= self.silence_weight <= 1.0:
            raise InvalidParameterError(f"silence_weight must be in [0, 1], got {self.silence_weight!r}")
        return self


def static_features(X: np.ndarray, feature_config) -> np.ndarray:
    """The static columns (the first ``n_ceps``) of features extracted with ``feature_config``.

    Deltas are appended after the statics and CMVN works column by column,
    so these equal the features of ``feature_config.replace(delta_order=0)``.
    """
    return np.ascontiguousarray(X[:, :feature_config.n_ceps])


def _pdf_weights(model: PhoneModelSet, silence_weight: float) -> np.ndarray:
    """(n_pdfs,) weight of each pdf's frames: ``silence_weight`` for the silence phone's pdfs, else 1."""
    weights = np.ones(model.n_pdfs)
    silence = model.phones[-1]
    context = getattr(model, "context", None) or MonophoneContext(model.phones, model.n_states, silence)
    weights[list(context.pdfs(silence, silence, silence))] = silence_weight
    return weights


def _global_moments(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate(features)
    return X.mean(axis=0), np.maximum(X.var(axis=0), 1e-10)


def _move_model(trainer: EmbeddedTrainer, features: Sequence[np.ndarray], transcripts: Sequence[Sequence[str]],
                new_features: Sequence[np.ndarray], means: np.ndarray, covars: np.ndarray,
                feature_config: dict | None) -> float:
    """Two-model pass: posteriors of ``trainer.model`` on ``features``, statistics and re-estimated
    models on ``new_features``. ``means`` / ``covars`` (in the new space) are kept by Gaussians without
    data. Returns the average log-likelihood per frame of the pass."""
    old = trainer.model
    stats = trainer.accumulate(features, transcripts, stats_features=new_features)
    _, var = _global_moments(new_features)
    new = copy.copy(old)  # same phones, states, mixtures (and context dependency, if any)
    new.feature_config = feature_config
    new.weights_, new.means_, new.covars_ = old.weights_.copy(), means, np.maximum(covars, 1e-10)
    new.self_loop_, new.var_floor_ = old.self_loop_.copy(), trainer.var_floor_frac * var
    trainer.model = new
    trainer.update(stats)
    return stats.log_likelihood / stats.n_frames


def train_lda_mllt(trainer: EmbeddedTrainer, features: Sequence[np.ndarray], source_features: Sequence[np.ndarray],
                   transcripts: Sequence[Sequence[str]], options: LdaMlltOptions | None = None,
                   feature_config: dict | None = None) -> list[float]:
    """LDA + MLLT models from the trained models of ``trainer`` (see the module docstring).

    Parameters
    ----------
    trainer : EmbeddedTrainer
        Its ``model`` is trained on ``features``; it is replaced by the new models.
    features : arrays (T_u, D) the current models' features, one per utterance
    source_features : arrays (T_u, D_s) the features to splice and project
        (static MFCCs, e.g. :func:`static_features`), same frames
    transcripts : word sequences, one per utterance
    options : LdaMlltOptions
    feature_config : dict, optional
        :class:`~gmmhmm.features.FeatureConfig` settings that extract
        ``source_features``, stored in the new models (default: the old
        models' settings with ``delta_order=0``).

    Returns
    -------
    list of float
        Average log-likelihood per frame of every E-step in the LDA space
        (the single-pass retraining's is the old models' on ``features``);
        MLLT passes include ``log|det|`` of the MLLT so far, so the values compare.
    """
    opt = (options or LdaMlltOptions()).validate()
    if len(source_features) != len(features) or len(transcripts) != len(features):
        raise InvalidInputError(f"{len(features)} feature arrays, {len(source_features)} source feature arrays "
                                f"and {len(transcripts)} transcripts")
    source = [check_array(S, name=f"source_features[{i}]") for i, S in enumerate(source_features)]
    for i, (X, S) in enumerate(zip(features, source)):
        if len(X) != len(S):
            raise InvalidInputError(f"utterance {i}: {len(X)} frames of features but {len(S)} of source features")
    if feature_config is None:
        feature_config = {**trainer.model.get_feature_config().to_dict(), "delta_order": 0}
    spliced_dim = source[0].shape[1] * (2 * opt.splice + 1)
    if opt.lda_dim > spliced_dim:
        raise InvalidParameterError(f"lda_dim {opt.lda_dim} exceeds the {spliced_dim} spliced dimensions")
    transform = FeatureTransform(np.eye(spliced_dim), opt.splice, opt.splice, source[0].shape[1])
    spliced = [transform.apply(S) for S in source]

    # 1. LDA statistics: frames labelled by the models' pdf posteriors
    weights = _pdf_weights(trainer.model, opt.silence_weight)
    lda = GaussianStats.zeros(trainer.model.n_pdfs, spliced_dim, "tied")
    for batch in trainer.posteriors(features, transcripts):
        lda += accumulate_lda_stats(np.concatenate([spliced[i] for i in batch.idx]), batch.occupancy() * weights)
    transform = FeatureTransform(estimate_lda(lda, opt.lda_dim), opt.splice, opt.splice, source[0].shape[1])
    del spliced
    feats = [transform.apply(S) for S in source]

    # 2. single-pass retraining into the LDA space
    mean, var = _global_moments(feats)
    K = trainer.model.n_pdfs * trainer.model.n_mix
    history = [_move_model(trainer, features, transcripts, feats, np.tile(mean, (K, 1)), np.tile(var, (K, 1)),
                           feature_config)]
    logger.info("LDA %d -> %d: single-pass retraining, old models' log-lik/frame %.4f",
                spliced_dim, opt.lda_dim, history[-1])

    # 3. re-estimation in the LDA space, MLLT at the chosen iterations
    log_det = 0.0
    for it in range(opt.n_iter):
        model = trainer.model
        if it in opt.mllt_iters:
            mllt = MlltAccumulator(model.means_, model.covars_)
            weights = _pdf_weights(model, opt.silence_weight)
            for batch in trainer.posteriors(feats, transcripts):
                for a, b, components, post in batch.component_posteriors(weights):
                    mllt.add(batch.X[a:b], post, components)
            A = estimate_mllt(mllt.stats(), opt.mllt_sweeps)
            transform = transform.then(A)
            new_feats = [X @ A.T for X in feats]
            # Gaussians without data keep A mu and the diagonal of A Sigma A^T
            ll = _move_model(trainer, feats, transcripts, new_feats, model.means_ @ A.T, model.covars_ @ (A**2).T,
                             feature_config)
            history.append(float(ll + log_det))
            log_det += np.linalg.slogdet(A)[1]
            feats = new_feats
        else:
            stats = trainer.accumulate(feats, transcripts)
            trainer.update(stats)
            history.append(float(stats.log_likelihood / stats.n_frames + log_det))
        logger.info("LDA+MLLT iteration %d/%d%s: avg log-lik/frame %.4f", it + 1, opt.n_iter,
                    " (MLLT)" if it in opt.mllt_iters else "", history[-1])
    trainer.model.feature_transform_ = transform
    return history
