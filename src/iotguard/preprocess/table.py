"""From a table of flows (or benchmark records) to the float32 matrix models learn from.

:class:`TablePreprocessor` chains the steps of :mod:`iotguard.preprocess.transformers`::

    select feature columns (drop labels always, identifiers unless kept)
      numeric:     fill +-inf / NaN -> drop constant columns -> signed log1p (heavy tails) -> scale
      categorical: drop single-valued columns -> one-hot (unknown -> all zeros)
    output = [scaled numeric | one-hot blocks]

It is fitted on training rows only; everything it learned is plain JSON (``to_params``) and one ONNX graph
(``to_onnx``) with inputs ``x`` (float32, the numeric features) and ``cat`` (strings, the categorical ones)
and output ``features``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from iotguard.core.errors import ConfigError, DataError
from iotguard.preprocess.columns import (
    KNOWN_NUMERIC,
    category_matrix,
    check_columns,
    is_label,
    numeric_matrix,
    select_features,
)
from iotguard.preprocess.transformers import (
    NonFiniteFiller,
    OneHotVocabulary,
    Scaler,
    ScalerKind,
    SignedLog1p,
)

PARAMS_VERSION = 1


class TablePreprocessor(TransformerMixin, BaseEstimator):
    """Clean, encode and scale a DataFrame into a float32 matrix.

    Parameters
    ----------
    categorical:
        Columns to one-hot encode. ``None``: the non-numeric columns (a text column whose values are mostly
        numbers is a numeric column with bad cells, and raises :class:`DataError`).
    keep:
        Identifier columns (addresses, flow ids, timestamps) to keep as features.
    drop_identifiers:
        ``False`` keeps every identifier column.
    scaler:
        ``"minmax"`` (default, as in the paper), ``"standard"``, ``"robust"`` or ``"none"``.
    log1p:
        ``"auto"`` (default): signed log1p on columns whose largest absolute training value is >= 100;
        ``True`` all numeric columns; ``False`` none; or a list of column names.
    max_categories:
        Most frequent values kept per categorical column; the rest encode as unknown (all zeros).
    """

    def __init__(
        self,
        categorical: Sequence[str] | None = None,
        keep: Sequence[str] = (),
        drop_identifiers: bool = True,
        scaler: ScalerKind = "minmax",
        log1p: Any = "auto",
        max_categories: int = 100,
    ) -> None:
        self.categorical = categorical
        self.keep = keep
        self.drop_identifiers = drop_identifiers
        self.scaler = scaler
        self.log1p = log1p
        self.max_categories = max_categories

    # -- fitting ------------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> TablePreprocessor:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("TablePreprocessor.fit expects a pandas DataFrame")
        if self.scaler not in ("minmax", "standard", "robust", "none"):
            raise ConfigError(f"unknown scaler {self.scaler!r}", expected="minmax, standard, robust or none")
        if len(X) == 0:
            raise DataError("no rows to fit the preprocessing on", expected="at least one training row")
        features, ignored = select_features(X, keep=self.keep, drop_identifiers=self.drop_identifiers)
        categorical = self._categorical(X, features)
        numeric = [c for c in features if c not in categorical]

        raw = numeric_matrix(X, numeric)
        filler = NonFiniteFiller().fit(raw)
        filled = filler.transform(raw)
        varies = filled.max(axis=0) > filled.min(axis=0) if len(filled) else np.zeros(len(numeric), bool)
        cats = category_matrix(X, categorical)
        cat_varies = np.array([len(set(cats[:, j])) > 1 for j in range(len(categorical))], dtype=bool)

        self.numeric_ = [c for c, v in zip(numeric, varies, strict=True) if v]
        self.categorical_ = [c for c, v in zip(categorical, cat_varies, strict=True) if v]
        kept = set(self.numeric_) | set(self.categorical_)
        self.features_ = [c for c in features if c in kept]
        if not self.features_:
            raise DataError(
                "no feature column varies in the training data",
                expected="at least one non-constant, non-identifier column",
            )
        self.dropped_ = {
            "labels": [c for c in ignored if is_label(c)],
            "identifiers": [c for c in ignored if not is_label(c)],
            "constant": [c for c in features if c not in kept],
        }

        self.filler_ = filler.select(varies)
        filled = filled[:, varies]
        log_columns = self.log1p
        if isinstance(log_columns, list | tuple):
            log_columns = [c in set(self.log1p) for c in self.numeric_]
        self.log_ = SignedLog1p(log_columns).fit(filled)
        self.scaler_ = Scaler(self.scaler).fit(self.log_.transform(filled))
        self.onehot_ = OneHotVocabulary(self.max_categories).fit(cats[:, cat_varies])
        self.n_features_out_ = len(self.numeric_) + sum(len(v) for v in self.onehot_.vocabularies_)
        return self

    def _categorical(self, X: pd.DataFrame, features: list[str]) -> list[str]:
        if self.categorical is not None:
            unknown = [c for c in self.categorical if c not in X.columns]
            if unknown:
                raise ConfigError(
                    f"categorical column(s) {unknown} are not in the table", expected="existing column names"
                )
            return [c for c in features if c in set(self.categorical)]
        found = []
        for column in features:
            series = X[column]
            if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                continue
            if column in KNOWN_NUMERIC or _mostly_numbers(series):
                continue  # a numeric column with text in it: numeric_matrix names the bad cell
            found.append(column)
        return found

    # -- transforming -------------------------------------------------------------------------------------
    def check(self, X: pd.DataFrame, where: str | None = None) -> None:
        """Raise :class:`FeatureMismatchError` if ``X`` lacks a feature column or has unknown columns."""
        check_columns(X.columns, self.features_, allowed=self.ignored_columns, where=where)

    @property
    def ignored_columns(self) -> list[str]:
        return [c for group in self.dropped_.values() for c in group]

    def split(
        self, X: pd.DataFrame, where: str | None = None, first_line: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The raw inputs of the ONNX graph: float32 numeric matrix and string categorical matrix."""
        self.check(X, where)
        return (
            numeric_matrix(X, self.numeric_, where=where, first_line=first_line),
            category_matrix(X, self.categorical_),
        )

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.transform_arrays(*self.split(X))

    def transform_arrays(self, numeric: np.ndarray, categorical: np.ndarray | None = None) -> np.ndarray:
        x = self.scaler_.transform(self.log_.transform(self.filler_.transform(numeric)))
        if self.categorical_:
            x = np.hstack([x, self.onehot_.transform(categorical)])
        return np.ascontiguousarray(x, dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array(self.numeric_ + self.onehot_.feature_names(self.categorical_), dtype=object)

    # -- persistence --------------------------------------------------------------------------------------
    def to_params(self) -> dict[str, Any]:
        return {
            "version": PARAMS_VERSION,
            "features": list(self.features_),
            "numeric": list(self.numeric_),
            "categorical": list(self.categorical_),
            "dropped": {k: list(v) for k, v in self.dropped_.items()},
            "fill": self.filler_.to_params(),
            "log1p": self.log_.to_params(),
            "scaler": self.scaler_.to_params(),
            "onehot": self.onehot_.to_params(),
            "n_features_out": int(self.n_features_out_),
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TablePreprocessor:
        if params.get("version") != PARAMS_VERSION:
            raise ConfigError(
                f"preprocessing parameters version {params.get('version')!r}",
                expected=f"version {PARAMS_VERSION}",
            )
        out = cls(scaler=params["scaler"]["kind"], max_categories=params["onehot"]["max_categories"])
        out.features_ = list(params["features"])
        out.numeric_ = list(params["numeric"])
        out.categorical_ = list(params["categorical"])
        out.dropped_ = {k: list(v) for k, v in params["dropped"].items()}
        out.filler_ = NonFiniteFiller.from_params(params["fill"])
        out.log_ = SignedLog1p.from_params(params["log1p"])
        out.scaler_ = Scaler.from_params(params["scaler"])
        out.onehot_ = OneHotVocabulary.from_params(params["onehot"])
        out.n_features_out_ = int(params["n_features_out"])
        return out

    def to_onnx(self) -> Any:
        """The preprocessing as an ONNX graph: inputs ``x`` [N, numeric] float32 and ``cat`` [N, categorical]
        string (each only if there are such columns), output ``features`` [N, n_features_out] float32."""
        from iotguard.preprocess.onnx_graph import FLOAT, STRING, GraphBuilder

        g = GraphBuilder("preprocess")
        parts = []
        if self.numeric_:
            x = g.input("x", FLOAT, [None, len(self.numeric_)])
            parts.append(self.scaler_.onnx(g, self.log_.onnx(g, self.filler_.onnx(g, x))))
        if self.categorical_:
            cat = g.input("cat", STRING, [None, len(self.categorical_)])
            parts.extend(self.onehot_.onnx(g, cat))
        out = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
        g.output("features", out, FLOAT, [None, self.n_features_out_])
        return g.model()


def _mostly_numbers(series: pd.Series, share: float = 0.9) -> bool:
    values = series.dropna()
    if values.empty:
        return False
    sample = values.iloc[:10_000]
    return bool(pd.to_numeric(sample, errors="coerce").notna().mean() >= share)
