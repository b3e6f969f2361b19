"""Nearest-neighbour anomaly detector: how far a flow is from the benign flows seen in training.

``knn`` keeps a bounded, seeded sample of benign training rows (the *reference*, at most ``max_reference``
rows, default 20,000) and scores a row by its Euclidean distance to the k-th nearest reference row, after
standardising every feature on the benign rows (mean 0, standard deviation 1): a distance method needs
comparable feature scales, and min-max scaling divides by the most extreme training value, which squeezes
the bulk of a heavy-tailed flow feature into a sliver of [0, 1].

``k`` is chosen on benign rows only, never on attacks: from ``k_grid`` (1, 2, 3, 5, 10) the one whose
threshold at ``target_fpr`` on the benign validation rows flags the most *synthetic* anomalies, benign
validation rows with a random ``synthetic_fraction`` (30 %) of their features replaced by values of other
benign rows (each feature keeps its benign range; only the joint pattern breaks). Ties go to the smaller k.
``k`` may also be fixed (``params={"k": 1}``). Without validation rows the default is k = 1.

The model is plain numbers (the reference rows and the scaling), exported as one ONNX graph in float64
(``|x|^2 - 2 x.r + |r|^2``, then the k-th smallest), so scoring needs numpy + onnxruntime only and the
artifact holds no pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.models.base import ModelSpec, TaskName, register
from iotguard.models.classical import Validation, _labels, _onnx_squared_distances

K_GRID = (1, 2, 3, 5, 10)
MAX_REFERENCE = 20_000
SYNTHETIC_FRACTION = 0.3
BLOCK = 2048  # query rows per distance block: a [2048, 20000] float64 matrix is 330 MB at most


class KNNDistanceModel:
    """Distance to the k-th nearest benign training flow (standardised features); ``k`` chosen on benign
    validation rows against synthetic anomalies; reference bounded to ``max_reference`` rows."""

    kind = "anomaly"

    def __init__(self, task: TaskName = "binary", seed: int = 0, **params: Any) -> None:
        if task != "binary":
            raise ConfigError(
                f"anomaly detectors score attack-vs-benign only; task {task!r} is not supported",
                expected="task binary",
            )
        unknown = set(params) - {"k", "k_grid", "max_reference", "target_fpr", "synthetic_fraction"}
        if unknown:
            raise ConfigError(
                f"unknown knn option(s) {sorted(unknown)}",
                expected="k, k_grid, max_reference, target_fpr, synthetic_fraction",
            )
        self.task = task
        self.seed = seed
        self.k = params.get("k")
        self.k_grid = tuple(int(k) for k in params.get("k_grid", K_GRID))
        self.max_reference = int(params.get("max_reference", MAX_REFERENCE))
        self.target_fpr = float(params.get("target_fpr", 0.01))
        self.synthetic_fraction = float(params.get("synthetic_fraction", SYNTHETIC_FRACTION))
        if (self.k is not None and int(self.k) < 1) or not self.k_grid or min(self.k_grid) < 1:
            raise ConfigError(f"knn k={self.k}, k_grid={self.k_grid}", expected="whole numbers >= 1")
        if self.max_reference < 1:
            raise ConfigError(f"knn max_reference={self.max_reference}", expected="a whole number >= 1")
        self.hyperparameters: dict[str, Any] = {}

    def fit(
        self,
        X: np.ndarray,
        y: Any = None,
        *,
        validation: Validation = None,
        progress: Progress = NO_PROGRESS,
        **_: Any,
    ) -> KNNDistanceModel:
        X = np.asarray(X, dtype=np.float64)
        if y is not None:
            X = X[_labels(y) == BENIGN]
        if len(X) < 2:
            raise DataError(
                f"{len(X)} benign training row(s)", expected="benign rows to learn normal traffic from"
            )
        rng = np.random.default_rng(self.seed)
        with progress.task("k-nearest neighbours (benign reference)"):
            self.mean_ = X.mean(axis=0)
            std = X.std(axis=0)
            # a feature constant on benign rows: any change in it is a deviation of one benign "unit"
            self.inv_std_ = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0)
            keep = np.sort(rng.permutation(len(X))[: self.max_reference])
            self.reference_ = self._scale(X[keep])
            self.n_features_in_ = X.shape[1]
            benign_val = None
            if validation is not None and len(validation[0]):
                benign_val = np.asarray(validation[0], dtype=np.float64)[_labels(validation[1]) == BENIGN]
            self.k_, self.selection_ = self._choose_k(X, benign_val, rng)
        self.hyperparameters = {
            "k": self.k_,
            "reference_rows": len(self.reference_),
            "benign_rows": len(X),
            "scaling": "standardised on benign training rows",
            "k_selection": self.selection_,
        }
        return self

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean_) * self.inv_std_

    def _choose_k(
        self, X: np.ndarray, benign_val: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[int, dict[str, Any]]:
        """The k whose benign threshold flags the most synthetic anomalies (benign-only criterion)."""
        from iotguard.models.pipeline import fpr_threshold

        grid = sorted({min(k, len(self.reference_)) for k in self.k_grid})
        if self.k is not None:
            return min(int(self.k), len(self.reference_)), {"rule": "fixed"}
        if benign_val is None or len(benign_val) < 20:
            return grid[0], {"rule": "default (too few benign validation rows to choose)"}
        mask = rng.random(benign_val.shape) < self.synthetic_fraction
        donors = X[rng.integers(0, len(X), benign_val.shape), np.arange(X.shape[1])[None, :]]
        synthetic = np.where(mask, donors, benign_val)
        normal = self._kth_distances(benign_val, max(grid))
        odd = self._kth_distances(synthetic, max(grid))
        caught = {}
        for k in grid:
            threshold, _ = fpr_threshold(normal[:, k - 1].astype(np.float32), self.target_fpr)
            caught[k] = float(np.mean(odd[:, k - 1].astype(np.float32) >= np.float32(threshold)))
        best = max(grid, key=lambda k: (caught[k], -k))
        return best, {
            "rule": "most synthetic anomalies flagged at the benign validation threshold",
            "synthetic_fraction": self.synthetic_fraction,
            "target_fpr": self.target_fpr,
            "validation_benign_rows": len(benign_val),
            "flagged": {str(k): round(v, 4) for k, v in caught.items()},
        }

    def _kth_distances(self, X: np.ndarray, k: int) -> np.ndarray:
        """Sorted distances to the ``k`` nearest reference rows, shape [N, k] (float64)."""
        x = self._scale(X)
        out = np.empty((len(x), k))
        rr = (self.reference_ * self.reference_).sum(axis=1)[None, :]
        for start in range(0, len(x), BLOCK):
            part = x[start : start + BLOCK]
            d2 = (part * part).sum(axis=1, keepdims=True) - 2.0 * (part @ self.reference_.T) + rr
            d2 = np.maximum(d2, 0.0)
            nearest = np.partition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else d2
            out[start : start + BLOCK] = np.sqrt(np.sort(nearest, axis=1))
        return out

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise DataError(f"input of shape {X.shape}", expected=f"[N, {self.n_features_in_}] features")
        if len(X) == 0:
            return np.zeros(0, np.float32)
        return self._kth_distances(X, self.k_)[:, -1].astype(np.float32)

    def to_onnx(self, n_features: int) -> Any:
        from iotguard.preprocess.onnx_graph import DOUBLE, FLOAT, GraphBuilder

        g = GraphBuilder("knn_distance")
        x = g.op("Cast", g.input("x", FLOAT, [None, n_features]), to=DOUBLE)
        x = g.op("Mul", g.op("Sub", x, g.const(self.mean_, "mean")), g.const(self.inv_std_, "inv_std"))
        d2 = _onnx_squared_distances(g, x, self.reference_)
        if self.k_ == 1:
            kth = g.op("ReduceMin", d2, g.const(np.array([1], np.int64), "axis"), keepdims=0)
        else:  # the k smallest, ascending; the last of them is the k-th nearest
            k = g.const(np.array([self.k_], np.int64), "k")
            nearest, _ = g.op("TopK", d2, k, axis=1, largest=0, sorted=1, outputs=2)
            kth = g.op("Gather", nearest, g.const(np.array(self.k_ - 1, np.int64), "kth"), axis=1)
        g.output("score", g.op("Cast", g.op("Sqrt", kth), to=FLOAT), FLOAT, [None])
        return g.model()


SPEC = register(
    ModelSpec(
        name="knn",
        title="k-NN distance",
        kind="anomaly",
        family="classical",
        build=lambda task="binary", seed=0, **params: KNNDistanceModel(task=task, seed=seed, **params),
        description=KNNDistanceModel.__doc__ or "",
    )
)
