"""``knn-window``: ``knn`` on the flow and on its source host's recent flows to the same service (a window
model, benign-only).

Some attacks are many flows from one host in a short time against one service (password guessing, HTTP
floods, slow-HTTP DoS, web attack tools): one flow at a time they can look like a rare benign flow, while the
host's recent flows together look like no benign host. Kitsune keeps per-host and per-channel statistics for
this; here they come from the window every window model reads (:mod:`iotguard.models.deep.windows`): the
scored flow and the ``k - 1`` most recent earlier flows of the same ``src_ip`` (never a later one), ``k`` = 16.

Two views of a window, each scored by its own :class:`knn <iotguard.models.neighbors.KNNDistanceModel>`:

* **flow**: the scored flow's ``F`` preprocessed features, exactly as ``knn`` scores a flow (a flow odd by
  itself is not averaged into its context);
* **context**: the mean of each feature over the window's flows to the scored flow's service (``dst_port``
  and ``protocol`` equal; the scored flow included, so it exists for a host's first flow), and
  ``window_same_service``, the share of the window's flows that went to that service. The mean's service
  columns equal the flow's, so ``knn`` compares the context only with benign contexts of the same service. A
  host's benign flows to one service are judged by its flows to that service, not by what it sends elsewhere.
  Without a ``dst_port`` feature: the mean over the whole window, no share.

The score is the larger of the two views' scores, each divided by its own benign threshold at
``target_fpr`` ("far on either view is far", as knn's ``both`` scaling does for its two scales).

Padding rows are the all-zero rows a window model's input has before a host's first flows (the artifact maps
its all-NaN raw padding rows to them); a real flow whose preprocessed features are all exactly 0 would count as
padding too. Means and shares deliberately use no inter-arrival times: on a sampled table (the CICIDS2017
benchmark sample keeps 5,000 flows per class out of millions) the time between a host's sampled flows says
how the table was sampled, while the share of a host's flows to one service and their mean sizes do not
depend on the sampling rate in expectation.

**Honest calibration.** A new window shares no flow with the training windows, while a host's neighbouring
training windows share up to ``k - 1`` flows: scored against them, a benign window looks closer to the
reference than any new window will. So when :func:`~iotguard.models.pipeline.train_model` passes the row
numbers of each window's flows (``window_rows``), every benign score the context view learns from (its
leave-one-out calibration, its choice of neighbour count and scale, its divisor, the threshold) skips the
reference windows that share a flow with the scored window (knn's ``keys``). The flow view's key is the
scored flow alone (plain leave-one-out). Fitted without ``window_rows``, both views use plain leave-one-out.

Everything ``knn`` chooses is chosen the same way on benign windows only. Options: ``k`` is the window length
(the pipeline builds windows of that many flows); ``neighbors`` fixes both knns' neighbour count (their
``k``); ``k_grid``, ``scaling``, ``max_reference``, ``target_fpr``, ``synthetic_fraction`` and ``service`` are
passed to both unchanged.

ONNX: one graph, windows ``[N, k, F]`` in, the two views built with Gather/ReduceSum/Equal (float64), both
knn graphs, the larger divided score; numpy + onnxruntime only, no pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.models.base import ModelSpec, TaskName, register
from iotguard.models.classical import Validation, _labels
from iotguard.models.neighbors import SERVICE_COLUMNS, KNNDistanceModel

PASSED = ("k_grid", "scaling", "max_reference", "target_fpr", "synthetic_fraction", "service")
VIEWS = ("flow", "context")
MEAN_PREFIX = "window_mean:"
SHARE_NAME = "window_same_service"


class KNNWindowModel:
    """The larger of ``knn`` on the flow and ``knn`` on its host's recent flows to the same service, each over
    its own benign threshold."""

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
        self.views = {name: KNNDistanceModel(task=task, seed=seed, **inner) for name in VIEWS}
        self.target_fpr = float(params.get("target_fpr", 0.01))
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
        window_rows: tuple[np.ndarray, np.ndarray | None] | None = None,
        **_: Any,
    ) -> KNNWindowModel:
        from iotguard.models.pipeline import fpr_threshold

        X = self._check(X, fitted=False)
        self.validation_scores_ = None  # set again below only for this fit's validation windows
        names = [str(n) for n in feature_names] if feature_names is not None else []
        if names and len(names) != X.shape[2]:
            raise DataError(
                f"{len(names)} feature names for {X.shape[2]} features", expected="one per feature"
            )
        names = names or [str(j) for j in range(X.shape[2])]
        self.n_features_in_ = X.shape[2]
        service = self.views["flow"].service != "none" and SERVICE_COLUMNS[0] in names
        self.service_columns_ = [names.index(c) for c in SERVICE_COLUMNS if c in names] if service else []
        # the context mean's service columns equal the flow's: they keep their names, so knn treats them as
        # the service identity
        context_names = [
            n if j in self.service_columns_ else MEAN_PREFIX + n for j, n in enumerate(names)
        ] + ([SHARE_NAME] if self.service_columns_ else [])
        fit_rows, val_rows = window_rows if window_rows is not None else (None, None)
        if fit_rows is not None and len(fit_rows) != len(X):
            raise DataError(f"{len(fit_rows)} window_rows for {len(X)} windows", expected="one per window")
        val_windows = None if validation is None else self._check(validation[0], fitted=False)
        keys = {"flow": (None, None), "context": (fit_rows, val_rows)}
        if fit_rows is not None:
            keys["flow"] = (fit_rows[:, -1:], None if val_rows is None else val_rows[:, -1:])
        divisors, calibration, checks = [], [], []
        for name, view in self.views.items():
            rows = [self.flow_rows, self.context_rows][VIEWS.index(name)]
            view_validation = None if val_windows is None else (rows(val_windows), validation[1])
            view.fit(
                rows(X),
                y,
                validation=view_validation,
                progress=progress,
                feature_names=names if name == "flow" else context_names,
                keys=keys[name][0],
                validation_keys=keys[name][1],
            )
            honest = getattr(view, "validation_scores_", None)
            if honest is None and view_validation is not None:
                honest = view.scores(view_validation[0][_labels(view_validation[1]) == BENIGN])
            honest = np.zeros(0) if honest is None else honest
            benign = np.concatenate([view.calibration_all_, honest])
            benign = benign[np.isfinite(benign)]
            if not len(benign):  # every benign window overlaps all but fewer than k of the others
                raise DataError(
                    f"knn-window {name} view: no benign window has {view.k_} reference windows that share "
                    f"no flow with it ({len(view.calibration_all_)} benign windows of {self.window} flows)",
                    expected="benign traffic from more hosts, or a longer stretch of it",
                )
            divisor, _ = fpr_threshold(benign.astype(np.float32), self.target_fpr)
            divisors.append(divisor if divisor > 0 else 1.0)
            calibration.append(view.calibration_all_)
            checks.append(honest)
        self.divisors_ = divisors
        # both views' reference rows are the same benign windows (same seed, same rows): scores align
        combined = np.max([c / d for c, d in zip(calibration, divisors, strict=True)], axis=0)
        self.calibration_scores_ = combined[np.isfinite(combined)].astype(np.float32)
        if window_rows is not None and val_rows is not None and len(checks[0]):
            self.validation_scores_ = np.max([c / d for c, d in zip(checks, divisors, strict=True)], axis=0)
        # the artifact divides its rows per call by k: each knn's bound then holds per window
        self.batch_rows = min(view.batch_rows for view in self.views.values()) * self.window
        self.hyperparameters = {
            name: view.hyperparameters | {"divisor": divisor}
            for (name, view), divisor in zip(self.views.items(), divisors, strict=True)
        } | {
            "window": {
                "k": self.window,
                "context": ["mean of each feature over the flows to the same service", "share of them"]
                if self.service_columns_
                else ["mean of each feature over the window"],
                "calibration": "skips overlapping windows" if window_rows is not None else "leave-one-out",
            }
        }
        return self

    def _check(self, X: Any, fitted: bool = True) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        expected = f"windows [N, {self.window}, {getattr(self, 'n_features_in_', 'F')}]"
        if X.ndim != 3 or X.shape[1] != self.window or (fitted and X.shape[2] != self.n_features_in_):
            raise DataError(f"input of shape {X.shape}", expected=expected)
        return X

    @staticmethod
    def flow_rows(X: np.ndarray) -> np.ndarray:
        """Windows [N, k, F] -> the scored flows [N, F]."""
        return np.asarray(X[:, -1], dtype=np.float32)

    def context_rows(self, X: np.ndarray) -> np.ndarray:
        """Windows [N, k, F] -> context rows [N, F (+1)]: the mean over the flows to the scored flow's service,
        the share of the window's flows to it (float64 arithmetic, float32 result, as the graph)."""
        W = np.asarray(X, dtype=np.float64)
        flow, earlier = W[:, -1], W[:, :-1]
        present = (earlier != 0).any(axis=2)  # padding rows are all zero
        count = 1.0 + present.sum(axis=1)
        if not self.service_columns_:
            return (W.sum(axis=1) / count[:, None]).astype(np.float32)
        cols = self.service_columns_
        same = (earlier[:, :, cols] == flow[:, None, cols]).all(axis=2) & present
        n_same = 1.0 + same.sum(axis=1)
        mean = (flow + (earlier * same[:, :, None]).sum(axis=1)) / n_same[:, None]
        return np.concatenate([mean, (n_same / count)[:, None]], axis=1).astype(np.float32)

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        if len(X) == 0:
            return np.zeros(0, np.float32)
        views = [
            self.views["flow"].scores(self.flow_rows(X)),
            self.views["context"].scores(self.context_rows(X)),
        ]
        return np.max([v / d for v, d in zip(views, self.divisors_, strict=True)], axis=0).astype(np.float32)

    def to_onnx(self, n_features: int) -> Any:
        from iotguard.preprocess.onnx_graph import DOUBLE, FLOAT, GraphBuilder

        k, f = self.window, n_features
        g = GraphBuilder("knn_window")
        x_float = g.input("x", FLOAT, [None, k, f])
        x = g.op("Cast", x_float, to=DOUBLE)
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
        if self.service_columns_:
            cols = g.const(np.array(self.service_columns_, np.int64), "service_columns")
            mine = g.op("Unsqueeze", g.op("Gather", flow, cols, axis=1), axis1)  # [N, 1, C]
            theirs = g.op("Gather", earlier, cols, axis=2)  # [N, k-1, C]
            equal = g.op("Cast", g.op("Equal", theirs, mine), to=DOUBLE)
            same = g.op(
                "Mul",
                g.op("ReduceMin", equal, g.const(np.array([2], np.int64), "axis2"), keepdims=0),
                present,
            )  # [N, k-1]
            n_same = g.op("Add", one, g.op("ReduceSum", same, axis1, keepdims=0))  # [N]
            same_sum = g.op(
                "ReduceSum",
                g.op("Mul", earlier, g.op("Unsqueeze", same, g.const(np.array([2], np.int64), "axis2"))),
                axis1,
                keepdims=0,
            )
            mean = g.op("Div", g.op("Add", flow, same_sum), g.op("Unsqueeze", n_same, axis1))
            share = g.op("Unsqueeze", g.op("Div", n_same, count), axis1)
            context = g.op("Concat", mean, share, axis=1)
        else:
            context = g.op("Div", g.op("ReduceSum", x, axis1, keepdims=0), g.op("Unsqueeze", count, axis1))
        inputs = {"flow": g.op("Cast", flow, to=FLOAT), "context": g.op("Cast", context, to=FLOAT)}
        parts = [
            g.op("Div", view.onnx_score(g, inputs[name]), g.const(np.float64(divisor), "divisor"))
            for (name, view), divisor in zip(self.views.items(), self.divisors_, strict=True)
        ]
        g.output("score", g.op("Cast", g.op("Max", *parts), to=FLOAT), FLOAT, [None])
        return g.model()


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
