"""``get_params`` / ``set_params`` and estimator tags without scikit-learn.

Parameters are the ``__init__`` arguments, read back from attributes of the
same name, exactly as scikit-learn's ``BaseEstimator`` does, so
``type(model)(**model.get_params())`` rebuilds an unfitted copy.

``__sklearn_tags__`` is what scikit-learn's meta-estimators (``Pipeline``,
``GridSearchCV``, ``cross_val_score``) ask an estimator for; it is only ever
called by scikit-learn itself, so importing scikit-learn there keeps it out of
gmmhmm's run-time dependencies.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any, Iterator

from .errors import InvalidParameterError


class ParamsMixin:
    """Constructor-argument introspection and scikit-learn tags for estimators.

    Subclasses set ``_sklearn_estimator_type`` (scikit-learn's
    ``estimator_type`` tag: ``"density_estimator"``, ``"classifier"``).
    """

    _sklearn_estimator_type: str | None = None

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        is_classifier = self._sklearn_estimator_type == "classifier"
        return Tags(
            estimator_type=self._sklearn_estimator_type,
            target_tags=TargetTags(required=is_classifier),
            classifier_tags=ClassifierTags() if is_classifier else None,
        )

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the constructor arguments of this estimator."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any):
        """Set constructor arguments; returns ``self``."""
        valid = set(self._get_param_names())
        for name, value in params.items():
            if name not in valid:
                raise InvalidParameterError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters are {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    @contextmanager
    def _unchanged_on_failure(self) -> Iterator[None]:
        """Put the attributes back if the block raises: a failed ``fit`` leaves the model as it
        was (fitted or not), never half-initialised. Fitting replaces arrays rather than
        writing into them, so a shallow copy of the attributes suffices."""
        before = dict(vars(self))
        try:
            yield
        except Exception:  # not KeyboardInterrupt: an interrupted fit keeps its progress
            vars(self).clear()
            vars(self).update(before)
            raise

    def __repr__(self) -> str:
        defaults = {
            n: p.default for n, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = value is default or bool(value == default)
            except Exception:  # arrays compare element-wise
                same = False
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"
