"""Nearest-neighbour anomaly detector: how far a flow is from the benign flows seen in training.

``knn`` keeps a bounded, seeded sample of benign training rows (the *reference*, at most ``max_reference``
rows, default 20,000) and scores a row by its Euclidean distance to the k-th nearest reference row, after
putting every feature on a common scale learnt from the benign rows (``scaling``):

``standard``  mean 0, standard deviation 1 on the benign rows. (Not the preprocessing's min-max scale, which
              divides by the most extreme training value and squeezes most rows of a heavy-tailed feature
              into a sliver of [0, 1].) Weakness: one feature with almost no benign spread (a second SYN
              flag, one RST) can by itself make a rare benign flow look as odd as an attack, and such flows
              then set the 1 % threshold.
``rank``      the benign mid-rank of the value: ``(#{q < x} + #{q <= x}) / 2m`` against ``m`` = at most 1,000
              benign quantiles ``q`` of the feature, in [0, 1] (values within 1e-6 of the feature's largest
              benign magnitude count as equal). Each feature adds at most 1 to a squared distance, which
              cures the weakness above but cannot express how far beyond the benign maximum a value lies
              (a flood's 500 SYNs count as much as 3).
``both``      (default) the larger of the two distances, each divided by its own threshold at ``target_fpr``
              on the benign validation rows: far on either scale is far.
``auto``      whichever of the three the benign-only criterion below prefers (unreliable when the synthetic
              anomalies are hard for every scale: it then picks on noise).

**Service identity** (``service="auto"``, the default): when the features include ``dst_port`` (and
``protocol``) -- the canonical flow table, CICIDS2017 -- the destination service is treated as an identity,
not a magnitude. Each (port, protocol) pair among the benign reference rows is a known service; a flow is
compared only with reference rows of its own service (exact equality of the preprocessed value, up to a few
float32 steps so that the ONNX graph's preprocessing agrees with numpy's): its score is the distance to the
``min(k, n)``-th nearest of them, ``n`` being the service's reference rows (a service is known as soon as one
benign reference row uses it; whether it is known does not depend on k). A flow to a service no benign
reference row has scores ``U`` + its distance to all reference rows, where ``U`` is the largest
same-service score of any benign calibration row: it ranks above every benign flow to a known service, and
the benign threshold still bounds how many such flows alert. Without a ``dst_port`` feature (NSL-KDD,
UNSW-NB15, a matrix without column names) or with ``service="none"``: every reference row counts.

**Calibration**: every benign reference row is also scored leave-one-out (against the other reference rows,
at most ``max_reference``); :func:`iotguard.models.pipeline.train_model` adds these ``calibration_scores_``
to the benign validation scores when it sets the alert threshold, so the 1 % threshold rests on several
thousand benign scores instead of the validation rows alone.

**Keys** (``fit(..., keys=, validation_keys=)``, optional): integer keys per row ([N, m], -1 for none). When
a benign fit or validation row is scored during fitting (calibration, the choice of k and scale, the
unseen-service offset), reference rows that share a key with it are skipped. Leave-one-out is the case "each
row's key is its own number". A window model uses the row numbers of each window's flows: a new window shares
no flow with the training windows, so a calibration window must not be compared with the windows it overlaps.
With validation keys the honest benign validation scores are kept as ``validation_scores_``, which
``train_model`` then uses instead of scoring those rows again (without skipping).

``k`` (and with ``auto`` the scale) is chosen on benign rows only, never on attacks: for each k of ``k_grid``
(1, 2, 3, 5, 10), the threshold that keeps ``target_fpr`` of the benign validation rows is computed, and the
k that flags the most *synthetic* anomalies wins: benign validation rows with a random
``synthetic_fraction`` (30 %) of their features replaced by the values of random benign fit rows (every
feature stays inside its benign range; only the combination is unusual). Ties go to the smaller k (and to
``standard``, ``rank``, ``both`` in that order). Without 20 benign validation rows: ``standard`` (unless a
scale was given) and k = 1.

The model is plain numbers (scaling parameters and reference rows), exported as one ONNX graph in float64
(rank counts or standardisation, then ``|x|^2 - 2 x.r + |r|^2`` and the k-th smallest), so scoring needs
numpy + onnxruntime only and the artifact holds no pickle. The ranks are one exact binary search tree per
feature (``TreeEnsembleRegressor``); the service of a row is found by comparing its service columns with the
benign values (first match, as numpy). The graph builds a [rows, reference] matrix, so ``batch_rows`` bounds
the rows per onnxruntime call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.models.base import ModelSpec, TaskName, register
from iotguard.models.classical import Validation, _labels, _onnx_squared_distances, benign_rows

K_GRID = (1, 2, 3, 5, 10)
SCALINGS = ("standard", "rank")
MAX_REFERENCE = 20_000
QUANTILES = 1000
TOLERANCE = 1e-6  # relative to the feature's largest benign magnitude (at least 1)
SYNTHETIC_FRACTION = 0.3
BLOCK = 1024  # query rows per numpy distance block
CALL_BYTES = 16 * 2**20  # per-call [rows, reference] distance matrix: small enough to stay in cache
SERVICE_COLUMNS = ("dst_port", "protocol")  # canonical flow-table names of the destination service
SERVICE_ULPS = 6  # float32 steps within which two preprocessed service values are the same service


class KNNDistanceModel:
    """Distance to the k-th nearest benign training flow, on a benign-learnt scale (standardised or benign
    ranks); scale and ``k`` chosen on benign validation rows against synthetic anomalies; reference bounded
    to ``max_reference`` rows."""

    kind = "anomaly"
    OPTIONS = ("k", "k_grid", "scaling", "max_reference", "target_fpr", "synthetic_fraction", "service")

    def __init__(self, task: TaskName = "binary", seed: int = 0, **params: Any) -> None:
        if task != "binary":
            raise ConfigError(
                f"anomaly detectors score attack-vs-benign only; task {task!r} is not supported",
                expected="task binary",
            )
        unknown = set(params) - set(self.OPTIONS)
        if unknown:
            raise ConfigError(f"unknown knn option(s) {sorted(unknown)}", expected=", ".join(self.OPTIONS))
        self.task = task
        self.seed = seed
        self.k = params.get("k")
        self.k_grid = tuple(int(k) for k in params.get("k_grid", K_GRID))
        self.scaling = params.get("scaling")  # None: "both", or "standard" without validation rows
        self.max_reference = int(params.get("max_reference", MAX_REFERENCE))
        self.target_fpr = float(params.get("target_fpr", 0.01))
        self.synthetic_fraction = float(params.get("synthetic_fraction", SYNTHETIC_FRACTION))
        if (self.k is not None and int(self.k) < 1) or not self.k_grid or min(self.k_grid) < 1:
            raise ConfigError(f"knn k={self.k}, k_grid={self.k_grid}", expected="whole numbers >= 1")
        if self.scaling not in (None, *SCALINGS, "both", "auto"):
            raise ConfigError(f"knn scaling {self.scaling!r}", expected="auto, standard, rank or both")
        self.service = params.get("service", "auto")
        if self.service not in ("auto", "none"):
            raise ConfigError(f"knn service {self.service!r}", expected="auto or none")
        if self.max_reference < 1:
            raise ConfigError(f"knn max_reference={self.max_reference}", expected="a whole number >= 1")
        self.hyperparameters: dict[str, Any] = {}

    # -- fitting ------------------------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: Any = None,
        *,
        validation: Validation = None,
        progress: Progress = NO_PROGRESS,
        feature_names: Any = None,
        keys: Any = None,
        validation_keys: Any = None,
        **_: Any,
    ) -> KNNDistanceModel:
        self.validation_scores_ = None  # set again only for this fit's validation rows, with their keys
        n_rows = len(X)
        keep = np.ones(n_rows, bool) if y is None else _labels(y) == BENIGN
        X = benign_rows(X, y, np.float64)
        keys = _keys(keys, n_rows, "keys")[keep] if keys is not None else np.arange(len(X))[:, None]
        rng = np.random.default_rng(self.seed)
        self.n_features_in_ = X.shape[1]
        if feature_names is not None and len(feature_names) != X.shape[1]:
            raise DataError(
                f"{len(feature_names)} feature names for {X.shape[1]} columns", expected="one name per column"
            )
        with progress.task("k-nearest neighbours (benign reference)"):
            std = X.std(axis=0)
            self.mean_ = X.mean(axis=0)
            # a feature constant on benign rows: any change in it is a deviation of one benign "unit"
            self.inv_std_ = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0)
            positions = np.round(np.linspace(0, len(X) - 1, min(QUANTILES, len(X)))).astype(np.intp)
            self.quantiles_ = np.sort(X, axis=0)[positions]
            # a value within a few float32 steps of a quantile counts as equal to it: the ONNX graph's
            # preprocessing may differ from numpy's in the last bit, and flow features tie on exact values
            self.tolerance_ = TOLERANCE * np.maximum(np.abs(self.quantiles_).max(axis=0), 1.0)
            chosen = np.sort(rng.permutation(len(X))[: self.max_reference])
            raw_reference = X[chosen]
            self._fit_services(raw_reference, feature_names)
            self._overlap = Overlap(keys[chosen])
            self._skip_reference = self._overlap.pairs(keys[chosen])
            benign_val, self._skip_validation = None, None
            if validation is not None and len(validation[0]):
                benign = _labels(validation[1]) == BENIGN
                benign_val = np.asarray(validation[0], dtype=np.float64)[benign]
                if validation_keys is not None:
                    val_keys = _keys(validation_keys, len(benign), "validation_keys")[benign]
                    self._skip_validation = self._overlap.pairs(val_keys)
            self.unseen_offset_ = 0.0
            self.scaling_, self.k_, self.selection_, divisors = self._choose(
                X, raw_reference, benign_val, rng
            )
            scalings = list(SCALINGS) if self.scaling_ == "both" else [self.scaling_]
            self.parts_ = [
                (scaling, self._scale(raw_reference, scaling), divisor)
                for scaling, divisor in zip(scalings, divisors, strict=True)
            ]
            self.reference_ = self.parts_[0][1]
            self._calibrate(benign_val)
            del self._overlap, self._skip_reference, self._skip_validation  # fitting only
        self.batch_rows = max(16, CALL_BYTES // (8 * len(self.reference_)))
        self.hyperparameters = {
            "k": self.k_,
            "scaling": self.scaling_,
            "divisors": [part[2] for part in self.parts_],
            "reference_rows": len(self.reference_),
            "benign_rows": len(X),
            "selection": self.selection_,
            "service": None
            if self.service_ is None
            else {
                "columns": self.service_["names"],
                "known_services": int(len(np.unique(self.reference_service_))),
                "unseen_offset": self.unseen_offset_,
            },
            "calibration_rows": len(self.calibration_scores_),
        }
        return self

    def _fit_services(self, raw_reference: np.ndarray, feature_names: Any) -> None:
        """Which columns name the destination service, the benign values of each, and each reference row's
        service id (``service_`` is None when there is no ``dst_port`` column or the option is off)."""
        self.service_: dict[str, Any] | None = None
        names = [str(n) for n in feature_names] if feature_names is not None else []
        if self.service == "none" or SERVICE_COLUMNS[0] not in names:
            self.reference_service_ = np.zeros(len(raw_reference), np.int64)
            return
        columns = [names.index(c) for c in SERVICE_COLUMNS if c in names]
        values = [np.unique(raw_reference[:, c]) for c in columns]
        strides = np.cumprod([1] + [len(v) for v in values[:-1]]).astype(np.int64)
        self.service_ = {
            "names": [names[c] for c in columns],
            "columns": columns,
            "values": values,
            # a few float32 steps: the graph's float32 preprocessing may differ from numpy's in the last bit,
            # while two distinct ports stay many steps apart after log1p and min-max scaling
            "tolerances": [SERVICE_ULPS * 2.0**-23 * np.maximum(np.abs(v), 1.0) for v in values],
            "strides": strides,
        }
        self.reference_service_ = self._service_ids(raw_reference)

    def _service_ids(self, X: np.ndarray) -> np.ndarray | None:
        """The service id of each row (-1: a service no benign reference row has), or None without services."""
        if self.service_ is None:
            return None
        ids = np.zeros(len(X), np.int64)
        known = np.ones(len(X), bool)
        for column, values, tolerance, stride in zip(
            self.service_["columns"],
            self.service_["values"],
            self.service_["tolerances"],
            self.service_["strides"],
            strict=True,
        ):
            for start in range(0, len(X), BLOCK):  # first matching benign value, as the graph's ArgMax
                part = np.asarray(X[start : start + BLOCK, column], dtype=np.float64)
                match = np.abs(part[:, None] - values[None, :]) <= tolerance[None, :]
                ids[start : start + BLOCK] += match.argmax(axis=1) * stride
                known[start : start + BLOCK] &= match.any(axis=1)
        return np.where(known, ids, -1)

    def _calibrate(self, benign_val: np.ndarray | None) -> None:
        """Leave-one-out scores of the benign reference rows (``calibration_scores_``; all of them, aligned
        with the reference rows, in ``calibration_all_``), the offset of flows to unseen services (the largest
        same-service score of a benign calibration row) and, with validation keys, ``validation_scores_``."""
        raw = self._distances_parts(None, skip=self._skip_reference)
        scores = [self._combine(*raw)]
        if benign_val is not None and len(benign_val):
            scores.append(self._combine(*self._distances_parts(benign_val, skip=self._skip_validation)))
        if self.service_ is not None:
            self.unseen_offset_ = _unseen_offset(np.concatenate([s[1] for s in scores]))
        all_, same_ = scores[0]
        self.calibration_all_ = self._final(all_, same_, self.unseen_offset_)
        # a reference of k rows or fewer leaves a row fewer than k others: no score of its own, and an infinite
        # one would carry the threshold to infinity (nothing would ever alert)
        finite = np.isfinite(self.calibration_all_)
        self.calibration_scores_ = self.calibration_all_[finite].astype(np.float32)
        if self._skip_validation is not None and len(scores) > 1:
            self.validation_scores_ = self._final(*scores[1], self.unseen_offset_)

    def _distances_parts(
        self, X: np.ndarray | None, skip: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """k-th distances of raw rows ``X`` (None: the reference rows) per part: to all reference rows, and to
        those of the same service (None without services). ``skip``: (row, reference row) pairs not to
        compare (see :class:`Overlap`)."""
        ids = self.reference_service_ if X is None else self._service_ids(X)
        all_, same = [], []
        for scaling, reference, _ in self.parts_:
            x = reference if X is None else self._scale(X, scaling)
            a, s = _kth_distances(
                x,
                reference,
                self.k_,
                ids if self.service_ is not None else None,
                self.reference_service_ if self.service_ is not None else None,
                skip,
            )
            all_.append(a[:, -1])
            if s is not None:
                same.append(_nearest_available(s, self.k_))
        return all_, same if self.service_ is not None else None

    def _combine(
        self, all_: list[np.ndarray], same: list[np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Parts' distances over their divisors, the larger part: (to all reference rows, same service)."""
        return _larger(all_, same, [part[2] for part in self.parts_])

    def _final(self, all_: np.ndarray, same: np.ndarray, offset: float) -> np.ndarray:
        if self.service_ is None:
            return all_
        return np.where(np.isfinite(same), same, offset + all_)

    def _scale(self, X: np.ndarray, scaling: str) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if scaling == "standard":
            return (X - self.mean_) * self.inv_std_
        above, below = self.quantiles_ + self.tolerance_, self.quantiles_ - self.tolerance_
        counts = np.empty_like(X)
        for j in range(X.shape[1]):  # #{q + tol < x} + #{q - tol <= x}
            counts[:, j] = np.searchsorted(above[:, j], X[:, j], "left")
            counts[:, j] += np.searchsorted(below[:, j], X[:, j], "right")
        return counts * (1.0 / (2.0 * len(self.quantiles_)))

    def _choose(
        self,
        X: np.ndarray,
        raw_reference: np.ndarray,
        benign_val: np.ndarray | None,
        rng: np.random.Generator,
    ) -> tuple[str, int, dict[str, Any], list[float]]:
        """The scaling and k whose benign threshold flags the most synthetic anomalies (benign rows only),
        and the divisors of the parts' distances (``both``: each scale's own benign threshold)."""
        from iotguard.models.pipeline import fpr_threshold

        scalings = [*SCALINGS, "both"] if self.scaling == "auto" else [self.scaling or "both"]
        grid = [int(self.k)] if self.k is not None else sorted(set(self.k_grid))
        grid = sorted({min(k, len(raw_reference)) for k in grid})
        if benign_val is None or len(benign_val) < 20:
            if self.scaling in (None, "auto"):
                return "standard", grid[0], {"rule": "default (fewer than 20 benign validation rows)"}, [1.0]
            if scalings == ["both"]:
                raise DataError(
                    f"{0 if benign_val is None else len(benign_val)} benign validation rows",
                    expected="at least 20 to put the two scales of knn scaling 'both' on one footing",
                )
            return scalings[0], grid[0], {"rule": "default (fewer than 20 benign validation rows)"}, [1.0]
        mask = rng.random(benign_val.shape) < self.synthetic_fraction
        donors = X[rng.integers(0, len(X), benign_val.shape), np.arange(X.shape[1])[None, :]]
        synthetic = np.where(mask, donors, benign_val)
        r_ids = self.reference_service_ if self.service_ is not None else None
        normal, odd = {}, {}  # per scale: sorted distances to all reference rows, and to the same service
        for scaling in SCALINGS if "both" in scalings else scalings:
            reference = self._scale(raw_reference, scaling)
            # a synthetic row is made from a validation row: it skips the same reference rows
            normal[scaling] = _kth_distances(
                self._scale(benign_val, scaling),
                reference,
                max(grid),
                self._service_ids(benign_val),
                r_ids,
                self._skip_validation,
            )
            odd[scaling] = _kth_distances(
                self._scale(synthetic, scaling),
                reference,
                max(grid),
                self._service_ids(synthetic),
                r_ids,
                self._skip_validation,
            )
        flagged: dict[str, dict[str, float]] = {}
        divisors: dict[tuple[str, int], list[float]] = {}
        best = (-1.0, 0, 0, scalings[0], grid[0])
        for s_index, scaling in enumerate(scalings):
            flagged[scaling] = {}
            for k in grid:
                if scaling == "both":  # far on either scale, each measured against its own benign threshold
                    divisors[(scaling, k)] = [_divisor(normal[s], k, self.target_fpr) for s in SCALINGS]
                    ok = _union(normal, k, divisors[(scaling, k)], SCALINGS)
                    bad = _union(odd, k, divisors[(scaling, k)], SCALINGS)
                else:
                    divisors[(scaling, k)] = [1.0]
                    ok = _union(normal, k, [1.0], (scaling,))
                    bad = _union(odd, k, [1.0], (scaling,))
                # flows to unseen services above every benign validation flow to a known service
                offset = _unseen_offset(ok[1])
                ok_score, bad_score = self._final(*ok, offset), self._final(*bad, offset)
                threshold, _ = fpr_threshold(ok_score.astype(np.float32), self.target_fpr)
                share = float(np.mean(bad_score.astype(np.float32) >= np.float32(threshold)))
                flagged[scaling][str(k)] = round(share, 4)
                if (share, -s_index, -k) > best[:3]:
                    best = (share, -s_index, -k, scaling, k)
        return (
            best[3],
            best[4],
            {
                "rule": "most synthetic anomalies flagged at the benign validation threshold",
                "synthetic_fraction": self.synthetic_fraction,
                "target_fpr": self.target_fpr,
                "validation_benign_rows": len(benign_val),
                "flagged": flagged,
            },
            divisors[(best[3], best[4])],
        )

    # -- scoring ------------------------------------------------------------------------------------------
    def attack_score(self, X: np.ndarray) -> np.ndarray:
        return self.scores(X).astype(np.float32)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """:meth:`attack_score` before its float32 cast (the graph's float64 score)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise DataError(f"input of shape {X.shape}", expected=f"[N, {self.n_features_in_}] features")
        if len(X) == 0:
            return np.zeros(0, np.float64)
        return self._final(*self._combine(*self._distances_parts(X)), self.unseen_offset_)

    def to_onnx(self, n_features: int) -> Any:
        from iotguard.preprocess.onnx_graph import FLOAT, GraphBuilder

        g = GraphBuilder("knn_distance")
        score = self.onnx_score(g, g.input("x", FLOAT, [None, n_features]))
        g.output("score", g.op("Cast", score, to=FLOAT), FLOAT, [None])
        return g.model()

    def onnx_score(self, g: Any, x_float: str) -> str:
        """Adds the scoring of float32 rows ``x_float`` [N, F] to graph ``g``; returns the float64 score."""
        from iotguard.preprocess.onnx_graph import DOUBLE

        x = g.op("Cast", x_float, to=DOUBLE)
        same = None
        if self.service_ is not None:
            ids = self._onnx_service_ids(g, x)
            unsqueezed = g.op("Unsqueeze", ids, g.const(np.array([1], np.int64), "axis"))
            same = g.op("Equal", unsqueezed, g.const(self.reference_service_[None, :], "reference_service"))
        scores, same_scores = [], []
        for scaling, reference, divisor in self.parts_:
            d2 = _onnx_squared_distances(g, self._onnx_scale(g, x, x_float, scaling), reference)
            divisor_const = g.const(np.float64(divisor), "divisor")
            scores.append(g.op("Div", g.op("Sqrt", self._onnx_kth(g, d2)), divisor_const))
            if same is not None:
                d2_same = g.op("Where", same, d2, g.const(np.float64(np.inf), "inf"))
                same_scores.append(
                    g.op("Div", g.op("Sqrt", self._onnx_kth(g, d2_same, available=True)), divisor_const)
                )
        score = scores[0] if len(scores) == 1 else g.op("Max", *scores)
        if same is not None:  # a service no benign reference row has: offset + distance to all
            same_score = same_scores[0] if len(same_scores) == 1 else g.op("Max", *same_scores)
            unseen = g.op("Add", g.const(np.float64(self.unseen_offset_), "unseen_offset"), score)
            score = g.op("Where", g.op("IsInf", same_score), unseen, same_score)
        return score

    def _onnx_kth(self, g: Any, d2: str, available: bool = False) -> str:
        """The k-th smallest of each row of ``d2``; ``available``: the largest finite one among the k
        smallest (the ``min(k, n)``-th of a row with ``n`` finite entries, ``inf`` when there is none), as
        :func:`_nearest_available`."""
        if self.k_ == 1:
            return g.op("ReduceMin", d2, g.const(np.array([1], np.int64), "axis"), keepdims=0)
        # the k smallest, ascending; the last of them is the k-th nearest
        k = g.const(np.array([self.k_], np.int64), "k")
        nearest, _ = g.op("TopK", d2, k, axis=1, largest=0, sorted=1, outputs=2)
        if not available:
            return g.op("Gather", nearest, g.const(np.array(self.k_ - 1, np.int64), "kth"), axis=1)
        # squared distances are >= 0: an infinite entry becomes -1, and a maximum below 0 means none is finite
        minus_one = g.const(np.float64(-1.0), "minus_one")
        finite = g.op("Where", g.op("IsInf", nearest), minus_one, nearest)
        largest = g.op("ReduceMax", finite, g.const(np.array([1], np.int64), "axis"), keepdims=0)
        none = g.op("Less", largest, g.const(np.float64(0.0), "zero"))
        return g.op("Where", none, g.const(np.float64(np.inf), "inf"), largest)

    def _onnx_service_ids(self, g: Any, x: str) -> str:
        """Service id per row as :meth:`_service_ids`: per service column, the first benign value within
        tolerance (ArgMax of the matches), -1 when a column matches none."""
        from iotguard.preprocess.onnx_graph import DOUBLE

        assert self.service_ is not None
        ids, known = None, None
        axis = g.const(np.array([1], np.int64), "axis")
        for column, values, tolerance, stride in zip(
            self.service_["columns"],
            self.service_["values"],
            self.service_["tolerances"],
            self.service_["strides"],
            strict=True,
        ):
            value = g.op("Gather", x, g.const(np.array([column], np.int64), "service_column"), axis=1)
            diff = g.op("Abs", g.op("Sub", value, g.const(values[None, :], "service_values")))
            match = g.op(
                "Cast", g.op("LessOrEqual", diff, g.const(tolerance[None, :], "tolerance")), to=DOUBLE
            )
            index = g.op(
                "Mul", g.op("ArgMax", match, axis=1, keepdims=0), g.const(np.int64(stride), "stride")
            )
            found = g.op(
                "Greater", g.op("ReduceMax", match, axis, keepdims=0), g.const(np.float64(0.5), "half")
            )
            ids = index if ids is None else g.op("Add", ids, index)
            known = found if known is None else g.op("And", known, found)
        return g.op("Where", known, ids, g.const(np.int64(-1), "unknown"))

    def _onnx_scale(self, g: Any, x: str, x_float: str, scaling: str) -> str:
        from iotguard.preprocess.onnx_graph import DOUBLE

        if scaling == "standard":
            return g.op("Mul", g.op("Sub", x, g.const(self.mean_, "mean")), g.const(self.inv_std_, "inv_std"))
        # ranks: one search tree per feature counts the quantile bounds the value has passed (exact for
        # float32 inputs, a few comparisons per feature instead of 2m)
        counts = _rank_trees(self.quantiles_, self.tolerance_).sum_node(g, x_float, self.n_features_in_)
        scale = g.const(np.float64(1.0 / (2.0 * len(self.quantiles_))), "half_over_m")
        return g.op("Mul", g.op("Cast", counts, to=DOUBLE), scale)


def _rank_trees(quantiles: np.ndarray, tolerance: np.ndarray) -> Any:
    """A ``TreeEnsembleRegressor`` whose tree ``j`` returns ``#{q + tol < x} + #{q - tol <= x}`` for feature j.

    For a float32 ``x``: ``x > a`` iff not ``x <= floor32(a)`` and ``x >= b`` iff not ``x < ceil32(b)``, so
    each bound becomes one exact float32 test; sorted (equal values: ``<`` before ``<=``), the tests are
    nested, and the count is the number of failed tests: the leaf's place in a binary search tree."""
    from iotguard.models.onnx_export import TreeWriter

    writer = TreeWriter()
    for j in range(quantiles.shape[1]):
        upper = _floor32(quantiles[:, j] + tolerance[j])  # x > q + tol  <=>  not x <= upper
        lower = _ceil32(quantiles[:, j] - tolerance[j])  # x >= q - tol <=>  not x < lower
        tests = sorted([(float(v), 1) for v in upper] + [(float(v), 0) for v in lower])
        keys, weights = np.unique(np.array(tests), axis=0, return_counts=True)
        passed = np.concatenate([[0], np.cumsum(weights)])  # leaf value after i distinct failed tests
        _search_tree(writer, j, keys, passed, 0, len(keys), 0, iter(range(1, 2 * len(keys) + 1)))
    return writer


def _search_tree(
    writer: Any, tree: int, keys: np.ndarray, passed: np.ndarray, lo: int, hi: int, node: int, ids: Any
) -> None:
    """Nodes of a balanced binary search tree over the tests ``keys[lo:hi]`` (value, inclusive)."""
    if lo == hi:
        writer.leaf(tree, node, float(passed[lo]), target=tree)
        return
    mid = (lo + hi) // 2
    left, right = next(ids), next(ids)
    value, inclusive = keys[mid]
    writer.test(tree, node, tree, float(value), "BRANCH_LEQ" if inclusive else "BRANCH_LT", left, right)
    _search_tree(writer, tree, keys, passed, lo, mid, left, ids)
    _search_tree(writer, tree, keys, passed, mid + 1, hi, right, ids)


def _floor32(values: np.ndarray) -> np.ndarray:
    f = values.astype(np.float32)
    return np.where(f.astype(np.float64) > values, np.nextafter(f, np.float32(-np.inf)), f)


def _ceil32(values: np.ndarray) -> np.ndarray:
    f = values.astype(np.float32)
    return np.where(f.astype(np.float64) < values, np.nextafter(f, np.float32(np.inf)), f)


def _divisor(distances: tuple[np.ndarray, np.ndarray | None], k: int, target_fpr: float) -> float:
    """One scale's benign threshold at ``target_fpr``, over the benign rows of known services (all rows
    without services, or when none has a known service)."""
    from iotguard.models.pipeline import fpr_threshold

    all_, same = distances
    kth = all_[:, k - 1] if same is None else _nearest_available(same, k)
    if same is not None:
        kth = kth[np.isfinite(kth)]
        if not len(kth):
            kth = all_[:, k - 1]
    return fpr_threshold(kth.astype(np.float32), target_fpr)[0]


def _union(
    distances: dict[str, tuple[np.ndarray, np.ndarray | None]],
    k: int,
    divisors: list[float],
    scalings: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """The larger of the scales' k-th distances, each divided by its own divisor (see :func:`_larger`)."""
    all_ = [distances[s][0][:, k - 1] for s in scalings]
    same = (
        None
        if distances[scalings[0]][1] is None
        else [_nearest_available(distances[s][1], k) for s in scalings]  # type: ignore[arg-type]
    )
    return _larger(all_, same, divisors)


def _larger(
    all_: list[np.ndarray], same: list[np.ndarray] | None, divisors: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The larger of the parts' distances, each over its own divisor: (to all reference rows, to the same
    service; the first again without services)."""
    a = np.max([d / div for d, div in zip(all_, divisors, strict=True)], axis=0)
    if same is None:
        return a, a
    return a, np.max([d / div for d, div in zip(same, divisors, strict=True)], axis=0)


def _unseen_offset(same: np.ndarray) -> float:
    """Where the scores of flows to unseen services start: the largest same-service score of benign rows."""
    finite = same[np.isfinite(same)]
    return float(finite.max()) if len(finite) else 0.0


class Overlap:
    """Which reference rows share a key with a row (:class:`KNNDistanceModel`'s ``keys``)."""

    def __init__(self, reference_keys: np.ndarray) -> None:
        rows, columns = np.nonzero(reference_keys >= 0)
        keys = reference_keys[rows, columns]
        order = np.argsort(keys, kind="stable")
        self.keys, self.rows = keys[order], rows[order]

    def pairs(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, reference row) pairs sharing a key, rows ascending; ``keys`` [N, m], -1 for none."""
        rows, columns = np.nonzero(keys >= 0)
        wanted = keys[rows, columns]
        low = np.searchsorted(self.keys, wanted, "left")
        counts = np.searchsorted(self.keys, wanted, "right") - low
        total = int(counts.sum())
        ends = np.cumsum(counts)
        positions = np.repeat(low - (ends - counts), counts) + np.arange(total)
        # windows that share several flows meet once per shared flow: one pair each is enough
        width = int(self.rows.max(initial=0)) + 1
        pairs = np.unique(np.repeat(rows, counts) * width + self.rows[positions])  # sorted: rows ascending
        return pairs // width, pairs % width


def _keys(keys: Any, rows: int, name: str) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.ndim == 1:
        keys = keys[:, None]
    if keys.ndim != 2 or len(keys) != rows or keys.dtype.kind not in "iu":
        raise DataError(f"knn {name} of shape {keys.shape} ({keys.dtype})", expected=f"[{rows}, m] integers")
    return keys.astype(np.int64)


def _kth_distances(
    x: np.ndarray,
    reference: np.ndarray,
    k: int,
    ids: np.ndarray | None = None,
    reference_ids: np.ndarray | None = None,
    skip: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted distances of scaled rows ``x`` to their ``k`` nearest ``reference`` rows, [N, k] (float64),
    with the formula and precision of the ONNX graph; and (with service ids) to their ``k`` nearest
    reference rows of the same service (``inf`` where there are fewer). ``skip``: (row of ``x``, reference
    row) pairs, rows ascending, that do not count as neighbours (leave-one-out, overlapping windows)."""
    out = np.empty((len(x), k))
    same = None if ids is None else np.empty((len(x), k))
    rr = (reference * reference).sum(axis=1)[None, :]
    for start in range(0, len(x), BLOCK):
        part = x[start : start + BLOCK]
        d2 = np.maximum((part * part).sum(axis=1, keepdims=True) - 2.0 * (part @ reference.T) + rr, 0.0)
        if skip is not None:
            low, high = np.searchsorted(skip[0], [start, start + len(part)])
            d2[skip[0][low:high] - start, skip[1][low:high]] = np.inf
        out[start : start + BLOCK] = _k_smallest(d2, k)
        if same is not None and ids is not None and reference_ids is not None:
            mine = ids[start : start + BLOCK, None] == reference_ids[None, :]
            same[start : start + BLOCK] = _k_smallest(np.where(mine, d2, np.inf), k)
    return out, same


def _nearest_available(same: np.ndarray, k: int) -> np.ndarray:
    """Per row of sorted same-service distances [N, >= k]: the ``min(k, n)``-th nearest, ``n`` being the
    number of finite (same-service) entries; ``inf`` when the row has none (a service no benign reference
    row has). A service with fewer than k benign reference rows is thus judged against all of them."""
    first = same[:, :k]
    finite = np.isfinite(first)
    largest = np.where(finite, first, -np.inf).max(axis=1)
    return np.where(finite.any(axis=1), largest, np.inf)


def _k_smallest(d2: np.ndarray, k: int) -> np.ndarray:
    if k > d2.shape[1]:  # fewer reference rows than k (leave-one-out on a tiny reference)
        d2 = np.hstack([d2, np.full((len(d2), k - d2.shape[1]), np.inf)])
    nearest = np.partition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else d2
    return np.sqrt(np.sort(nearest, axis=1))


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
