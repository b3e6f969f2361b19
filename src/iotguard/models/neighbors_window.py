"""``knn-window``: ``knn`` with the source host's recent flows as context (a window model, benign-only).

Some attacks are many flows from one host in a short time against one service (password guessing, HTTP
floods, slow-HTTP DoS, web attack tools): one flow at a time they can look like a rare benign flow, while the
host's recent flows together look like no benign host. Kitsune keeps per-host statistics for this; here the
statistics come from the window every window model reads (:mod:`iotguard.models.deep.windows`): the scored
flow and the ``k - 1`` most recent earlier flows of the same ``src_ip`` (never a later one), ``k`` = 16.

Each window becomes one row of ``2F + 1`` numbers (``F`` preprocessed flow features), and :class:`knn
<iotguard.models.neighbors.KNNDistanceModel>` scores those rows exactly as it scores flows:

* the scored flow's own ``F`` features (so the flow's service -- ``dst_port``/``protocol`` -- stays the
  service ``knn`` compares by: a flow is compared only with benign windows whose scored flow used the same
  service, and a flow to a service no benign flow used scores above all of them);
* ``window_mean:<feature>``: the mean of each feature over the window's flows (the scored flow included, so it
  is defined for a host's first flow; padding rows do not count);
* ``window_same_service``: the share of the window's flows that went to the scored flow's service
  (``dst_port`` and ``protocol`` equal; the scored flow included). Omitted without a ``dst_port`` feature.

Padding rows are the all-zero rows a window model's input has before a host's first flows (the artifact maps
its all-NaN raw padding rows to them); a real flow whose preprocessed features are all exactly 0 would count as
padding too. Means and shares deliberately use no inter-arrival times: on a sampled table (the CICIDS2017
benchmark sample keeps 5,000 flows per class out of millions) the time between a host's sampled flows says
how the table was sampled, while the share of a host's flows to one service and their mean sizes do not
depend on the sampling rate in expectation.

Everything ``knn`` chooses (scale, neighbour count ``k`` by the synthetic-anomaly criterion, divisors, the
unseen-service offset, the leave-one-out ``calibration_scores_``) is chosen the same way on benign windows
only. Options: ``k`` is the window length (the pipeline builds windows of that many flows); ``neighbors``
fixes knn's neighbour count (its ``k``); ``k_grid``, ``scaling``, ``max_reference``, ``target_fpr``,
``synthetic_fraction`` and ``service`` are passed to knn unchanged.

ONNX: one graph, windows ``[N, k, F]`` in, the context row built with Gather/ReduceSum/Equal (float64), then
knn's graph; numpy + onnxruntime only, no pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.models.base import ModelSpec, TaskName, register
from iotguard.models.classical import Validation
from iotguard.models.neighbors import SERVICE_COLUMNS, KNNDistanceModel

PASSED = ("k_grid", "scaling", "max_reference", "target_fpr", "synthetic_fraction", "service")
MEAN_PREFIX = "window_mean:"
SHARE_NAME = "window_same_service"


class KNNWindowModel:
    """``knn`` on [scored flow, mean of the host's window, share of the window to the flow's service]."""

    kind = "anomaly"
    OPTIONS = ("k", "neighbors", *PASSED)

    def __init__(self, task: TaskName = "binary", seed: int = 0, **params: Any) -> None:
        unknown = set(params) - set(self.OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown knn-window option(s) {sorted(unknown)}", expected=", ".join(self.OPTIONS)
            )
        from iotguard.models.deep.windows import DEFAULT_K

        self.window = int(params.get("k", DEFAULT_K))
        if self.window < 2:
            raise ConfigError(
                f"knn-window k={self.window}", expected="a window of >= 2 flows (the flow and earlier ones)"
            )
        inner = {name: params[name] for name in PASSED if name in params}
        if params.get("neighbors") is not None:
            inner["k"] = params["neighbors"]
        self.knn = KNNDistanceModel(task=task, seed=seed, **inner)
        self.task = task
        self.seed = seed
        self.hyperparameters: dict[str, Any] = {}

    def fit(
        self,
        X: np.ndarray,
        y: Any = None,
        *,
        validation: Validation = None,
        progress: Progress = NO_PROGRESS,
        feature_names: Any = None,
        **_: Any,
    ) -> KNNWindowModel:
        X = self._check(X, fitted=False)
        names = [str(n) for n in feature_names] if feature_names is not None else []
        if names and len(names) != X.shape[2]:
            raise DataError(
                f"{len(names)} feature names for {X.shape[2]} features", expected="one per feature"
            )
        self.n_features_in_ = X.shape[2]
        self.service_columns_ = (
            [names.index(c) for c in SERVICE_COLUMNS if c in names]
            if self.knn.service != "none" and SERVICE_COLUMNS[0] in names
            else []
        )
        context_names = [MEAN_PREFIX + (names[j] if names else str(j)) for j in range(X.shape[2])]
        context_names += [SHARE_NAME] if self.service_columns_ else []
        if validation is not None:
            validation = (self.context(self._check(validation[0], fitted=False)), validation[1])
        self.knn.fit(
            self.context(X),
            y,
            validation=validation,
            progress=progress,
            feature_names=(names or [str(j) for j in range(X.shape[2])]) + context_names,
        )
        self.calibration_scores_ = self.knn.calibration_scores_
        # the artifact divides its rows per call by k: knn's bound then holds per window
        self.batch_rows = self.knn.batch_rows * self.window
        self.hyperparameters = self.knn.hyperparameters | {
            "window": {
                "k": self.window,
                "context": ["mean of each feature"]
                + (["share to the same service"] if self.service_columns_ else []),
            }
        }
        return self

    def _check(self, X: Any, fitted: bool = True) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        expected = f"windows [N, {self.window}, {getattr(self, 'n_features_in_', 'F')}]"
        if X.ndim != 3 or X.shape[1] != self.window or (fitted and X.shape[2] != self.n_features_in_):
            raise DataError(f"input of shape {X.shape}", expected=expected)
        return X

    def context(self, X: np.ndarray) -> np.ndarray:
        """Windows [N, k, F] -> rows [N, 2F (+1)]: the scored flow, the window's mean, the same-service share
        (float64 arithmetic, float32 result, as the graph)."""
        W = np.asarray(X, dtype=np.float64)
        flow, earlier = W[:, -1], W[:, :-1]
        present = (earlier != 0).any(axis=2)  # padding rows are all zero
        count = 1.0 + present.sum(axis=1)
        parts = [flow, W.sum(axis=1) / count[:, None]]
        if self.service_columns_:
            cols = self.service_columns_
            same = (earlier[:, :, cols] == flow[:, None, cols]).all(axis=2) & present
            parts.append(((1.0 + same.sum(axis=1)) / count)[:, None])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        if len(X) == 0:
            return np.zeros(0, np.float32)
        return self.knn.attack_score(self.context(X))

    def to_onnx(self, n_features: int) -> Any:
        from iotguard.preprocess.onnx_graph import DOUBLE, FLOAT, GraphBuilder, chain

        k, f = self.window, n_features
        g = GraphBuilder("knn_window_context")
        x = g.op("Cast", g.input("x", FLOAT, [None, k, f]), to=DOUBLE)
        axis1 = g.const(np.array([1], np.int64), "axis1")
        flow = g.op("Gather", x, g.const(np.array(k - 1, np.int64), "last"), axis=1)  # [N, F]
        earlier = g.op(
            "Slice",
            x,
            g.const(np.array([0], np.int64), "start"),
            g.const(np.array([k - 1], np.int64), "end"),
            axis1,
        )  # [N, k-1, F]
        nonzero = g.op(
            "Cast", g.op("Not", g.op("Equal", earlier, g.const(np.float64(0.0), "zero"))), to=DOUBLE
        )
        present = g.op(
            "ReduceMax", nonzero, g.const(np.array([2], np.int64), "axis2"), keepdims=0
        )  # [N, k-1]
        one = g.const(np.float64(1.0), "one")
        count = g.op("Add", one, g.op("ReduceSum", present, axis1, keepdims=0))  # [N]
        count_col = g.op("Unsqueeze", count, axis1)
        parts = [flow, g.op("Div", g.op("ReduceSum", x, axis1, keepdims=0), count_col)]
        if self.service_columns_:
            cols = g.const(np.array(self.service_columns_, np.int64), "service_columns")
            mine = g.op("Unsqueeze", g.op("Gather", flow, cols, axis=1), axis1)  # [N, 1, C]
            theirs = g.op("Gather", earlier, cols, axis=2)  # [N, k-1, C]
            equal = g.op("Cast", g.op("Equal", theirs, mine), to=DOUBLE)
            same = g.op(
                "Mul",
                g.op("ReduceMin", equal, g.const(np.array([2], np.int64), "axis2"), keepdims=0),
                present,
            )
            share = g.op("Div", g.op("Add", one, g.op("ReduceSum", same, axis1, keepdims=0)), count)
            parts.append(g.op("Unsqueeze", share, axis1))
        rows = g.op("Cast", g.op("Concat", *parts, axis=1), to=FLOAT)
        width = 2 * f + (1 if self.service_columns_ else 0)
        g.output("rows", rows, FLOAT, [None, width])
        return chain(g.model(), self.knn.to_onnx(width), [("rows", "x")], {"score": "score"}, prefix="knn_")


SPEC = register(
    ModelSpec(
        name="knn-window",
        title="k-NN distance (16 flows per host)",
        kind="anomaly",
        family="classical",
        build=lambda task="binary", seed=0, **params: KNNWindowModel(task=task, seed=seed, **params),
        input="window",
        description=KNNWindowModel.__doc__ or "",
    )
)
