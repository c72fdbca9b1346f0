"""Monophone model set: 3-state left-to-right phone HMMs with diagonal GMM emissions.

The emissions are a :class:`gmmhmm.hmm.emissions.GMMEmission`, the one
emission layout of the package (``GMMHMM`` uses it too): all states'
Gaussians stacked into ``n_pdfs * n_mix`` components, so one GEMM scores
every state of every phone for a block of frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._validation import check_array, check_fitted_array, check_is_fitted, check_positive_int
from ..errors import InvalidParameterError
from ..hmm.base import frame_batches
from ..hmm.emissions import GMMEmission
from ..mixture.estimate import GaussianParams
from ..mixture.mixup import mix_up
from ..modelfile import register_model_class
from .context import ContextDependency, MonophoneContext
from .lexicon import Lexicon

if TYPE_CHECKING:
    from ..features import FeatureConfig


@register_model_class
class PhoneModelSet:
    """Parameters of a set of phone HMMs (HTK's HMM set, Kaldi's AM).

    Parameters
    ----------
    phones : list of str
        Phone names, the silence phone last.
    n_states : int
        Emitting states per phone.
    n_mix : int
        Gaussians per state.
    lexicon_text : str
        The lexicon the models were trained with (``word phone ...`` lines),
        kept so a model file is all a decoder needs.
    feature_config : dict or None
        :class:`gmmhmm.features.FeatureConfig` settings of the training features.
    context : ContextDependency or its ``to_dict()``, optional
        Which pdf each state of a phone in context uses (default:
        :class:`~gmmhmm.graphs.context.MonophoneContext`, pdf
        ``p * n_states + j``); a :class:`~gmmhmm.graphs.tree.TreeContext`
        makes the set tied-state triphones. Stored in model files as JSON.

    Attributes
    ----------
    weights_ : ndarray (n_pdfs, n_mix)
    means_, covars_ : ndarray (n_pdfs * n_mix, n_features)
    self_loop_ : ndarray (n_pdfs,)
        Self-loop probability of each state; it leaves with ``1 - self_loop_``.
    var_floor_ : ndarray (n_features,)
    feature_transform_ : gmmhmm.features.transforms.FeatureTransform or None
        Map from the front end's features to the model's (LDA + MLLT), applied
        by :meth:`transform_features` in decoding and alignment; None: the
        front-end features are the model's.
    """

    _saved_attributes = ("weights_", "means_", "covars_", "self_loop_", "var_floor_", "feature_transform_")
    feature_transform_ = None

    def __init__(self, phones: list[str], n_states: int = 3, n_mix: int = 1,
                 lexicon_text: str = "", feature_config: dict | None = None,
                 context: ContextDependency | dict | None = None) -> None:
        self.phones = list(phones)
        self.n_states = n_states
        self.n_mix = n_mix
        self.lexicon_text = lexicon_text
        self.feature_config = feature_config
        if isinstance(context, dict):
            context = ContextDependency.from_dict(context)
        elif context is None and self.phones:
            context = MonophoneContext(self.phones, n_states, self.phones[-1])
        self.context = context

    def get_params(self, deep: bool = True) -> dict:
        params = {"phones": list(self.phones), "n_states": self.n_states, "n_mix": self.n_mix,
                  "lexicon_text": self.lexicon_text, "feature_config": self.feature_config}
        if not isinstance(self.context, MonophoneContext):  # monophone files stay as they were
            params["context"] = self.context.to_dict()
        return params

    def _check_loaded(self) -> None:
        """Called by :func:`gmmhmm.modelfile.load`: a tampered file fails at load, not at first use."""
        if (not self.phones or not all(isinstance(p, str) and p for p in self.phones)
                or len(set(self.phones)) != len(self.phones)):
            raise InvalidParameterError(f"phones must be distinct non-empty names, got {self.phones!r:.80}")
        if self.feature_config is not None:  # what decoding extracts features with
            try:
                self.get_feature_config()
            except InvalidParameterError as exc:
                raise InvalidParameterError(f"feature_config: {exc}") from exc
        check_positive_int(self.n_states, "n_states")
        check_positive_int(self.n_mix, "n_mix")
        c = self.context
        if not isinstance(c, ContextDependency) or (c.phones, c.n_states, c.silence) != (
                self.phones, self.n_states, self.phones[-1]):
            raise InvalidParameterError("the context dependency does not match the model's phones, "
                                        "states and silence phone")
        self.lexicon  # noqa: B018 - parses lexicon_text (TranscriptError if malformed)
        if not hasattr(self, "means_"):
            return
        n, m = self.n_pdfs, self.n_mix
        d = np.shape(self.means_)[-1] if np.ndim(self.means_) == 2 else -1
        check_fitted_array(self.weights_, "weights_", (n, m), probabilities=True)
        check_fitted_array(self.means_, "means_", (n * m, d))
        check_fitted_array(self.covars_, "covars_", (n * m, d), positive=True)
        loops = check_fitted_array(self.self_loop_, "self_loop_", (n,), non_negative=True)
        if np.any(loops >= 1):
            raise InvalidParameterError("self_loop_ must be probabilities below 1 (a state must be left)")
        check_fitted_array(self.var_floor_, "var_floor_", (d,), non_negative=True)
        if self.feature_transform_ is not None:
            from ..features.transforms import FeatureTransform

            if (not isinstance(self.feature_transform_, FeatureTransform)
                    or self.feature_transform_.n_output_features != d):
                raise InvalidParameterError(f"feature_transform_ must be a FeatureTransform giving {d} features, "
                                            f"got {self.feature_transform_!r}")

    @property
    def n_pdfs(self) -> int:
        return self.context.n_pdfs

    @property
    def n_features(self) -> int:
        check_is_fitted(self, "means_")
        return self.means_.shape[1]

    @property
    def lexicon(self) -> Lexicon:
        return Lexicon.from_text(self.lexicon_text, "model lexicon", silence=self.phones[-1])

    def get_feature_config(self) -> FeatureConfig:
        """The :class:`~gmmhmm.features.FeatureConfig` of the training features (default if none is stored)."""
        from ..features import FeatureConfig  # lazily: the front end loads audio libraries

        return FeatureConfig.from_dict(self.feature_config) if self.feature_config else FeatureConfig()

    def transform_features(self, X: np.ndarray) -> np.ndarray:
        """The model's features (T, n_features) from front-end features: the stored
        ``feature_transform_`` applied, if any (the decoding and alignment front door calls this)."""
        return X if self.feature_transform_ is None else self.feature_transform_.apply(X)

    def init_flat(self, mean: np.ndarray, var: np.ndarray, var_floor: np.ndarray, self_loop: float = 0.6) -> None:
        """HCompV flat start: every state one Gaussian at the global mean and variance."""
        check_positive_int(self.n_states, "n_states")
        self.n_mix = 1
        self.weights_ = np.ones((self.n_pdfs, 1))
        self.means_ = np.tile(mean, (self.n_pdfs, 1))
        self.covars_ = np.tile(np.maximum(var, var_floor), (self.n_pdfs, 1))
        self.self_loop_ = np.full(self.n_pdfs, self_loop)
        self.var_floor_ = np.asarray(var_floor, dtype=np.float64)

    def transition_log_probs(self) -> tuple[np.ndarray, np.ndarray]:
        """(log self-loop, log leave) per pdf."""
        return np.log(self.self_loop_), np.log1p(-self.self_loop_)

    def emission(self) -> GMMEmission:
        """The emissions under the current parameters (build once per pass over the data):
        ``log_likelihood(X) -> ((T, n_pdfs), cache)`` and ``accumulate(X, occupancies, cache)``."""
        check_is_fitted(self, "means_")
        shape = (self.n_pdfs, self.n_mix, self.n_features)
        return GMMEmission(self.weights_, self.means_.reshape(shape), self.covars_.reshape(shape), "diag")

    def state_log_likelihood(self, X: np.ndarray) -> np.ndarray:
        """Per-state emission log-likelihoods (T, n_pdfs)."""
        check_is_fitted(self, "means_")
        X = check_array(X, n_features=self.n_features)
        return self.emission().log_likelihood(X, need_cache=False)[0]

    def state_log_likelihood_many(self, features: list[np.ndarray], max_rows: int = 8192) -> list[np.ndarray]:
        """:meth:`state_log_likelihood` of many utterances, scored in batches of rows.

        One big matrix product per batch is much faster than one small one per utterance.
        """
        check_is_fitted(self, "means_")
        feats = [check_array(X, name=f"features[{i}]", n_features=self.n_features) for i, X in enumerate(features)]
        emission = self.emission()
        out: list[np.ndarray] = []
        for start, stop in frame_batches([len(X) for X in feats], max_rows):
            Xb = np.concatenate(feats[start:stop])
            ll = emission.log_likelihood(Xb, need_cache=False)[0]
            out += np.split(ll, np.cumsum([len(X) for X in feats[start:stop - 1]]))
        return out

    def gaussian_params(self) -> GaussianParams:
        """The stacked diagonal Gaussians as the estimator and mix-up take them."""
        check_is_fitted(self, "means_")
        return GaussianParams("diag", self.means_, self.covars_, self.weights_)

    def set_gaussian_params(self, params: GaussianParams) -> None:
        self.n_mix = params.weights.shape[1]
        self.weights_, self.means_, self.covars_ = params.weights, params.means, params.covars

    def split_mixtures(self, n_mix: int, perturb: float = 0.2) -> None:
        """HHEd MU (:func:`gmmhmm.mixture.mixup.mix_up`): grow each state's mixture to ``n_mix``.

        A split component's weight is halved and its two copies move
        ``perturb`` standard deviations either way along every dimension.
        """
        self.set_gaussian_params(mix_up(self.gaussian_params(), n_mix, perturb))
