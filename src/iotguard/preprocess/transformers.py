"""The numeric and categorical steps of preprocessing, each a scikit-learn transformer.

Every step is fitted on training rows only, keeps its fitted parameters as plain numbers and strings
(``to_params`` / ``from_params``: they go into the artifact manifest) and writes itself as ONNX nodes
(``onnx``), computing in float32 in the same order as ``transform`` so that the graph and the in-memory
pipeline agree.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from iotguard.preprocess.columns import as_strings

ScalerKind = Literal["minmax", "standard", "robust", "none"]


def _f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _floats(values: np.ndarray) -> list[float]:
    """float32 values as JSON numbers that read back to the same float32."""
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


class NonFiniteFiller(TransformerMixin, BaseEstimator):
    """Replace +inf by the column's largest finite training value, -inf by its smallest, NaN by its median.

    CICFlowMeter writes ``Infinity`` into rate columns when a flow lasts 0 microseconds: the largest rate seen
    in training is the closest honest stand-in. A column with no finite training value is filled with 0.
    """

    def fit(self, X: np.ndarray, y: Any = None) -> NonFiniteFiller:
        X = _f32(X)
        n = X.shape[1]
        self.posinf_ = np.zeros(n, np.float32)
        self.neginf_ = np.zeros(n, np.float32)
        self.nan_ = np.zeros(n, np.float32)
        for j in range(n):
            finite = X[:, j][np.isfinite(X[:, j])]
            if finite.size:
                self.posinf_[j] = finite.max()
                self.neginf_[j] = finite.min()
                self.nan_[j] = np.median(finite.astype(np.float64))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _f32(X)
        X = np.where(np.isposinf(X), self.posinf_, X)
        X = np.where(np.isneginf(X), self.neginf_, X)
        return np.where(np.isnan(X), self.nan_, X).astype(np.float32, copy=False)

    def select(self, mask: np.ndarray) -> NonFiniteFiller:
        out = NonFiniteFiller()
        out.posinf_, out.neginf_, out.nan_ = self.posinf_[mask], self.neginf_[mask], self.nan_[mask]
        return out

    def to_params(self) -> dict[str, Any]:
        return {"posinf": _floats(self.posinf_), "neginf": _floats(self.neginf_), "nan": _floats(self.nan_)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> NonFiniteFiller:
        out = cls()
        out.posinf_, out.neginf_, out.nan_ = (_f32(params[k]) for k in ("posinf", "neginf", "nan"))
        return out

    def onnx(self, g: Any, x: str) -> str:
        x = g.op("Where", g.op("IsInf", x, detect_negative=0), g.const(self.posinf_, "posinf"), x)
        x = g.op("Where", g.op("IsInf", x, detect_positive=0), g.const(self.neginf_, "neginf"), x)
        return g.op("Where", g.op("IsNaN", x), g.const(self.nan_, "nanfill"), x)


class SignedLog1p(TransformerMixin, BaseEstimator):
    """``sign(x) * log(1 + |x|)`` on heavy-tailed columns (byte and packet counts, durations, rates).

    ``columns``: ``"auto"`` picks the columns whose largest absolute training value is at least
    ``auto_min`` (counts spanning orders of magnitude; rates and flags in [0, 1] stay linear), ``True`` all,
    ``False`` none, or a boolean mask.
    """

    def __init__(self, columns: Any = "auto", auto_min: float = 100.0) -> None:
        self.columns = columns
        self.auto_min = auto_min

    def fit(self, X: np.ndarray, y: Any = None) -> SignedLog1p:
        X = _f32(X)
        if isinstance(self.columns, str) and self.columns == "auto":
            peak = np.abs(X).max(axis=0) if len(X) else np.zeros(X.shape[1])
            self.mask_ = peak >= self.auto_min
        elif self.columns is True or self.columns is False:
            self.mask_ = np.full(X.shape[1], bool(self.columns))
        else:
            self.mask_ = np.asarray(self.columns, dtype=bool)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = _f32(X)
        if not self.mask_.any():
            return X
        logged = np.sign(X) * np.log(np.float32(1.0) + np.abs(X))
        return np.where(self.mask_, logged, X).astype(np.float32, copy=False)

    def select(self, mask: np.ndarray) -> SignedLog1p:
        out = SignedLog1p(self.columns, self.auto_min)
        out.mask_ = self.mask_[mask]
        return out

    def to_params(self) -> dict[str, Any]:
        return {"mask": [bool(v) for v in self.mask_]}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SignedLog1p:
        out = cls()
        out.mask_ = np.asarray(params["mask"], dtype=bool)
        return out

    def onnx(self, g: Any, x: str) -> str:
        if not self.mask_.any():
            return x
        one = g.const(np.float32(1.0), "one")
        logged = g.op("Mul", g.op("Sign", x), g.op("Log", g.op("Add", one, g.op("Abs", x))))
        return g.op("Where", g.const(self.mask_, "logmask"), logged, x)


class Scaler(TransformerMixin, BaseEstimator):
    """``(x - offset) * factor`` per column: Min-Max to [0, 1] on training data (the paper's), standard
    (mean 0, variance 1) or robust (median 0, interquartile range 1; a column whose IQR is 0 uses its range)."""

    def __init__(self, kind: ScalerKind = "minmax") -> None:
        self.kind = kind

    def fit(self, X: np.ndarray, y: Any = None) -> Scaler:
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[1]
        offset, spread = np.zeros(n), np.ones(n)
        if len(X) and self.kind != "none":
            lo, hi = X.min(axis=0), X.max(axis=0)
            if self.kind == "minmax":
                offset, spread = lo, hi - lo
            elif self.kind == "standard":
                offset, spread = X.mean(axis=0), X.std(axis=0)
            elif self.kind == "robust":
                q1, med, q3 = np.percentile(X, [25, 50, 75], axis=0)
                offset, spread = med, np.where(q3 - q1 > 0, q3 - q1, hi - lo)
            else:
                raise ValueError(f"unknown scaler {self.kind!r}")
        spread = np.where(spread > 0, spread, 1.0)
        self.offset_ = offset.astype(np.float32)
        self.factor_ = (1.0 / spread).astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((_f32(X) - self.offset_) * self.factor_).astype(np.float32, copy=False)

    def select(self, mask: np.ndarray) -> Scaler:
        out = Scaler(self.kind)
        out.offset_, out.factor_ = self.offset_[mask], self.factor_[mask]
        return out

    def to_params(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": _floats(self.offset_), "factor": _floats(self.factor_)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Scaler:
        out = cls(params["kind"])
        out.offset_, out.factor_ = _f32(params["offset"]), _f32(params["factor"])
        return out

    def onnx(self, g: Any, x: str) -> str:
        if self.kind == "none":
            return x
        return g.op("Mul", g.op("Sub", x, g.const(self.offset_, "offset")), g.const(self.factor_, "factor"))


class OneHotVocabulary(TransformerMixin, BaseEstimator):
    """One-hot encoding with the vocabulary seen in training; an unknown value encodes as all zeros.

    Keeps at most ``max_categories`` values per column (the most frequent; rarer ones encode like unknown
    ones), so a column full of unique strings cannot blow up the model. Missing values are the category ``""``.
    """

    def __init__(self, max_categories: int = 100) -> None:
        self.max_categories = max_categories

    def fit(self, X: np.ndarray, y: Any = None) -> OneHotVocabulary:
        X = np.asarray(X, dtype=object)
        self.vocabularies_: list[list[str]] = []
        for j in range(X.shape[1]):
            counts = pd.Series(as_strings(X[:, j])).value_counts(sort=False)
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.max_categories]
            self.vocabularies_.append(sorted(str(k) for k, _ in ranked))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=object)
        blocks = []
        for j, vocab in enumerate(self.vocabularies_):
            codes = pd.Index(vocab).get_indexer(as_strings(X[:, j]))
            block = np.zeros((len(X), len(vocab)), dtype=np.float32)
            known = codes >= 0
            block[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((len(X), 0), np.float32)

    def feature_names(self, columns: list[str]) -> list[str]:
        return [f"{c}={v}" for c, vocab in zip(columns, self.vocabularies_, strict=True) for v in vocab]

    def to_params(self) -> dict[str, Any]:
        return {"max_categories": self.max_categories, "vocabularies": self.vocabularies_}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> OneHotVocabulary:
        out = cls(params["max_categories"])
        out.vocabularies_ = [list(v) for v in params["vocabularies"]]
        return out

    def onnx(self, g: Any, cat: str) -> list[str]:
        from iotguard.preprocess.onnx_graph import FLOAT

        blocks = []
        for j, vocab in enumerate(self.vocabularies_):
            column = g.op("Gather", cat, g.const(np.array([j], np.int64), "col"), axis=1)
            vocab_const = g.const(np.array(vocab, dtype=object), "vocab")
            blocks.append(g.op("Cast", g.op("Equal", column, vocab_const), to=FLOAT))
        return blocks
