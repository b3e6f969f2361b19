"""Training one model end to end: preprocessing, a validation split, the model, and its alert threshold.

:func:`train_model` is the library entry point the CLI, the evaluation harness, the demo and the detector
call. It works on any table of features: benchmark records (NSL-KDD, UNSW-NB15) or canonical flow tables
(:data:`iotguard.core.schema.FLOW_FEATURES`).

Protocol inside the training data (nothing here ever sees a test set)::

    training rows --stratified split--> fit rows (1 - validation_fraction) | validation rows
    preprocessing and model: fitted on the fit rows
    hyper-parameters (where a model chooses them) and early stopping: on the validation rows
    threshold: on the validation rows' benign scores, so that at most target_fpr of them alert; a model
               may add benign scores of its own (``calibration_scores_``: benign fit rows, each scored
               out-of-sample, e.g. leave-one-out), pooled with them. With ``fpr_confidence`` (e.g. 0.95)
               fewer of them may alert: as many as keep the chance that the threshold's true FPR on new
               benign flows exceeds target_fpr at most 1 - fpr_confidence (binomial bound, :func:`allowed_alerts`)

``model.fit`` also receives ``feature_names`` (the preprocessed column names), so that a model can treat a
column by what it means (``knn`` compares flows of the same ``dst_port``/``protocol`` service only), and a
window model ``window_rows``: the row numbers of each fit and validation window's flows (-1 for padding), so
that it can tell windows that share flows apart. A model that scores its benign validation rows itself
(``validation_scores_``: ``knn-window`` skips the reference windows that overlap them) has those used for the
threshold instead of a second, plain scoring.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.models.base import Model, ModelSpec, TaskName, get
from iotguard.models.prediction import Prediction, make_prediction
from iotguard.preprocess.columns import as_strings
from iotguard.preprocess.table import TablePreprocessor

log = logging.getLogger(__name__)

ATTACK = "Attack"
"""The attack class of binary models (the benign class is :data:`iotguard.core.schema.BENIGN`)."""

DEFAULT_TARGET_FPR = 0.01


@dataclass
class TrainedPipeline:
    """Preprocessing + model + threshold, in memory. ``save_artifact`` writes it; ``to_onnx`` fuses it."""

    spec: ModelSpec
    task: TaskName
    preprocessor: TablePreprocessor
    model: Model
    threshold: float
    threshold_info: dict[str, Any]
    training: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    window: int | None = None
    """Window models (``spec.input == "window"``): flows per window, k. They score a flow table that has
    ``src_ip`` and a time column (see :mod:`iotguard.models.deep.windows`)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def features(self) -> list[str]:
        return list(self.preprocessor.features_)

    @property
    def categorical(self) -> list[str]:
        return list(self.preprocessor.categorical_)

    @property
    def classes(self) -> list[str] | None:
        classes = getattr(self.model, "classes_", None)
        return [str(c) for c in classes] if classes is not None else None

    @property
    def benign_index(self) -> int | None:
        classes = self.classes
        return classes.index(BENIGN) if classes is not None else None

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.transform(frame)

    def predict_matrix(self, X: np.ndarray) -> Prediction:
        """Score rows that are already preprocessed."""
        proba = self.model.predict_proba(X) if self.kind == "classifier" else None  # type: ignore[attr-defined]
        score = self.model.attack_score(X)
        return make_prediction(
            score, self.threshold, proba, self.classes, self.benign_index, self.task == "multiclass"
        )

    def predict(self, frame: pd.DataFrame) -> Prediction:
        X = self.transform(frame)
        if self.window:
            from iotguard.models.deep.windows import build_windows, window_keys

            X = build_windows(X, *window_keys(frame), self.window)
        return self.predict_matrix(X)

    def to_onnx(self) -> Any:
        """One ONNX graph: raw features (``x`` numeric, ``cat`` strings) -> preprocessing -> model ->
        ``score`` (and ``proba`` for classifiers)."""
        from iotguard.preprocess.onnx_graph import chain

        outputs = {"score": "score"}
        if self.kind == "classifier":
            outputs["proba"] = "proba"
        model_graph = self.model.to_onnx(self.preprocessor.n_features_out_)
        if self.window:
            from iotguard.models.deep.window_graph import window_graph

            pre = self.preprocessor
            return window_graph(
                pre.to_onnx(),
                model_graph,
                k=self.window,
                n_numeric=len(pre.numeric_),
                n_categorical=len(pre.categorical_),
                n_features=pre.n_features_out_,
                outputs=list(outputs),
            )
        return chain(self.preprocessor.to_onnx(), model_graph, [("features", "x")], outputs, prefix="model_")


def train_model(
    name: str,
    X_frame: pd.DataFrame,
    y: Any,
    *,
    task: TaskName = "binary",
    categorical: Sequence[str] | None = None,
    seed: int = 0,
    progress: Progress = NO_PROGRESS,
    target_fpr: float = DEFAULT_TARGET_FPR,
    threshold: float | None = None,
    validation_fraction: float = 0.2,
    preprocess: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    dataset: str | None = None,
    keys: pd.DataFrame | None = None,
    fpr_confidence: float | None = None,
) -> TrainedPipeline:
    """Train registry model ``name`` on a feature table.

    ``y``: for ``task="binary"`` 0/1 (or booleans, or category strings where ``"Benign"`` is benign); for
    ``"multiclass"`` the category of each row (``"Benign"`` for benign rows). ``categorical``: columns to
    one-hot encode (``None``: the non-numeric ones). ``threshold``: a fixed alert threshold instead of the
    ``target_fpr`` rule. ``preprocess``: options of :class:`TablePreprocessor`; ``params``: model options.
    ``keys``: for window models, the rows' ``src_ip`` and time columns when ``X_frame`` lacks them (a
    dataset's ``frame``); each row is scored with the host's earlier flows, whichever side of the
    validation split they fell on, as the sensor would see them. ``fpr_confidence``: set the threshold so
    that, with this probability, its FPR on new benign flows is at most ``target_fpr`` (None: the plain
    empirical rule, whose true FPR is above ``target_fpr`` about half the time; see :func:`allowed_alerts`).
    """
    spec = get(name)
    window = None
    if spec.input == "window":
        from iotguard.models.deep.windows import DEFAULT_K, window_keys

        source = keys if keys is not None else X_frame
        if len(source) != len(X_frame):
            raise DataError(f"{len(source)} key rows for {len(X_frame)} rows", expected="one per row")
        hosts, times = window_keys(source, where=f"model {name!r}")
        window = int((params or {}).get("k", DEFAULT_K))
    if task not in ("binary", "multiclass"):
        raise ConfigError(f"unknown task {task!r}", expected="binary or multiclass")
    if not 0.0 <= target_fpr < 1.0:
        raise ConfigError(f"target FPR {target_fpr}", expected="a fraction in [0, 1)")
    _check_confidence(fpr_confidence)
    if not isinstance(X_frame, pd.DataFrame):
        raise TypeError("train_model expects a pandas DataFrame of features")
    labels = encode_labels(y, task)
    if len(labels) != len(X_frame):
        raise DataError(f"{len(labels)} labels for {len(X_frame)} rows", expected="one label per row")
    if len(X_frame) == 0:
        raise DataError("no training rows", expected="a non-empty training table")

    started, cpu_started = time.perf_counter(), time.process_time()
    fit_idx, val_idx = stratified_split(labels, validation_fraction, seed)
    frame = X_frame.reset_index(drop=True)
    with progress.task("preprocessing"):
        pre = TablePreprocessor(categorical=categorical, **(preprocess or {})).fit(frame.iloc[fit_idx])
        window_rows = {}
        if window:
            from iotguard.models.deep.windows import gather_windows, window_index

            index = window_index(hosts, times, window)
            windows = gather_windows(pre.transform(frame), index)
            X_fit, X_val = windows[fit_idx], windows[val_idx]
            # which flows each window holds: a model can tell windows that share flows (knn-window's
            # calibration skips them, as a new window shares none with the training windows)
            window_rows = {"window_rows": (index[fit_idx], index[val_idx])}
        else:
            X_fit = pre.transform(frame.iloc[fit_idx])
            X_val = pre.transform(frame.iloc[val_idx])
    y_fit, y_val = labels[fit_idx], labels[val_idx]

    model = spec.build(task=task, seed=seed, **(params or {}))
    if not isinstance(model, Model):
        raise TypeError(f"model {name!r} does not follow the Model protocol")
    validation = (X_val, y_val) if len(val_idx) else None
    benign_val = X_val[y_val == BENIGN]
    attack_val = X_val[y_val != BENIGN]
    with _blas_single_thread():
        model.fit(
            X_fit,
            y_fit,
            validation=validation,
            progress=progress,
            feature_names=list(pre.get_feature_names_out()),
            **window_rows,
        )
        benign_scores = attack_scores = None
        calibration = getattr(model, "calibration_scores_", None)
        calibration = None if calibration is None else np.asarray(calibration, dtype=np.float32)
        # a model whose validation windows share flows with its reference scores them itself, honestly
        honest = getattr(model, "validation_scores_", None)
        provenance: dict[str, Any] = {}
        if threshold is None and (len(benign_val) or (calibration is not None and len(calibration))):
            if honest is not None and len(honest) == len(benign_val):
                # a window with fewer than k non-overlapping neighbours has no score (inf): it would carry the
                # threshold to infinity
                honest = np.asarray(honest, dtype=np.float32)
                benign_scores = honest[np.isfinite(honest)]
                provenance = {
                    "validation_scores": "the model's own (windows sharing a flow with the reference skipped)",
                    "validation_scored_rows": len(benign_scores),
                }
            else:
                benign_scores = model.attack_score(benign_val) if len(benign_val) else np.zeros(0, np.float32)
            if calibration is not None:  # more benign scores: a steadier threshold
                benign_scores = np.concatenate([np.asarray(benign_scores, dtype=np.float32), calibration])
            attack_scores = model.attack_score(attack_val) if len(attack_val) else None

    if threshold is not None:
        info: dict[str, Any] = {"rule": "fixed", "value": float(threshold)}
    elif benign_scores is not None:
        info = choose_threshold(benign_scores, attack_scores, target_fpr, fpr_confidence)
        if calibration is not None:
            info["calibration_rows"] = len(calibration)
            info["validation_benign_rows"] = len(benign_val)
        info |= provenance
        threshold = info["value"]
        if not info.get("target_met", True):
            log.warning(
                "%s: no threshold flags any validation attack at %.2g%% FPR; using %.4g (FPR %.2g%%)",
                name,
                100 * target_fpr,
                threshold,
                100 * info["validation_fpr"],
            )
    elif spec.kind == "classifier":
        threshold = 0.5
        info = {"rule": "majority", "note": "no benign validation rows"}
    else:
        raise DataError(
            "no benign rows left for validation", expected="benign training rows to set the threshold"
        )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    names, counts = np.unique(labels, return_counts=True)
    training = {
        "dataset": dataset,
        "rows": len(labels),
        "fit_rows": len(fit_idx),
        "validation_rows": len(val_idx),
        "class_counts": {str(k): int(v) for k, v in zip(names, counts, strict=True)},
        "fingerprint": fingerprint(frame, pre.features_, labels),
        "seed": seed,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "hyperparameters": dict(getattr(model, "hyperparameters", {}) or {}),
        "params": dict(params or {}),
        "preprocess_options": dict(preprocess or {}),
    }
    log.info("trained %s (%s) on %d rows in %.1f s", name, task, len(labels), seconds)
    return TrainedPipeline(
        spec, task, pre, model, float(threshold), info | {"value": float(threshold)}, training, window=window
    )


def _blas_single_thread() -> Any:
    """One BLAS thread while training: the matrices are small, and a busy-waiting multi-threaded BLAS on a
    shared 2-core machine made logistic regression 40 times slower. Models that parallelise on their own
    (random forest via joblib, LightGBM via its num_threads) are not affected."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def encode_labels(y: Any, task: TaskName) -> np.ndarray:
    """Labels as the strings models see: ``Benign``/``Attack`` (binary) or the category names (multiclass)."""
    values = np.asarray(y.to_numpy(dtype=object) if isinstance(y, pd.Series) else y, dtype=object)
    if values.ndim != 1:
        raise DataError("labels must be one-dimensional", expected="one label per row")
    if pd.isna(values).any():
        raise DataError("missing labels", expected="a label on every row")
    if task == "multiclass":
        return as_strings(values).astype(str)
    if all(isinstance(v, (bool, np.bool_, int, np.integer, float, np.floating)) for v in values[:1000]):
        numeric = values.astype(np.float64)
        if not np.isin(numeric, (0.0, 1.0)).all():
            raise DataError("binary labels must be 0 or 1", expected="is_attack values 0/1")
        return np.where(numeric > 0, ATTACK, BENIGN).astype(str)
    strings = as_strings(values)
    return np.where(strings == BENIGN, BENIGN, ATTACK).astype(str)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(fit, validation)``: ``fraction`` of every class (rounded down) goes to validation."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction {fraction}", expected="a fraction in [0, 1)")
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(np.floor(len(rows) * fraction))
        val.append(rows[:n_val])
        fit.append(rows[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def choose_threshold(
    benign_scores: np.ndarray,
    attack_scores: np.ndarray | None,
    target_fpr: float,
    fpr_confidence: float | None = None,
) -> dict[str, Any]:
    """The alert threshold from validation scores, and how it was found.

    Normally :func:`fpr_threshold` on the benign scores (with ``fpr_confidence``: its binomial bound). When that threshold would flag none of the validation
    attacks (benign rows that look exactly like attacks, as in IoT-23, make the budget unreachable), it moves
    down to just below the highest attack score: the lowest false-positive rate at which the model still
    detects anything. ``target_met`` is then false, so the manifest says the budget was not kept.
    """
    threshold, achieved = fpr_threshold(benign_scores, target_fpr, fpr_confidence)
    info: dict[str, Any] = {
        "rule": "target_fpr",
        "target_fpr": target_fpr,
        "validation_benign_rows": len(benign_scores),
    }
    if fpr_confidence is not None:
        allowed = allowed_alerts(len(benign_scores), target_fpr, fpr_confidence)
        info["fpr_confidence"] = fpr_confidence
        info["allowed_benign_alerts"] = allowed
        # the confidence actually reached: with few scores even 0 alerts cannot reach the one asked for
        info["achieved_confidence"] = 1.0 - _binomial_cdf(allowed, len(benign_scores), target_fpr)
    attacks = None if attack_scores is None else np.asarray(attack_scores, dtype=np.float32)
    if attacks is not None and len(attacks) and not (attacks >= np.float32(threshold)).any():
        top = attacks.max()
        everything = np.concatenate([np.asarray(benign_scores, dtype=np.float32), attacks])
        lower = everything[everything < top]
        threshold = float(np.float32((float(top) + float(lower.max())) / 2.0)) if len(lower) else float(top)
        benign = np.asarray(benign_scores, dtype=np.float32)
        achieved = float(np.mean(benign >= np.float32(threshold)))
        info["target_met"] = False
        # the bound no longer describes this threshold
        info.pop("allowed_benign_alerts", None)
        info.pop("achieved_confidence", None)
    if attacks is not None and len(attacks):
        info["validation_recall"] = float(np.mean(attacks >= np.float32(threshold)))
        info["validation_attack_rows"] = len(attacks)
    info["validation_fpr"] = achieved
    info["value"] = float(threshold)
    return info


def fpr_threshold(
    benign_scores: np.ndarray, target_fpr: float, confidence: float | None = None
) -> tuple[float, float]:
    """The threshold at which at most ``target_fpr`` of these benign scores are ``>=`` it (with
    ``confidence``: at most :func:`allowed_alerts` of them).

    It sits halfway between the highest benign score allowed below it and the next higher score, so that
    scores that come in steps (a forest's vote shares) do not flip on float rounding. Returns
    ``(threshold, achieved_fpr)``; scores are float32, as the ONNX graph produces them.
    """
    scores = np.sort(np.asarray(benign_scores, dtype=np.float32))[::-1]
    allowed = allowed_alerts(len(scores), target_fpr, confidence)
    if allowed >= len(scores):
        return float(scores[-1]), 1.0
    below = scores[allowed]
    higher = scores[:allowed][scores[:allowed] > below]
    if len(higher):
        threshold = np.float32((float(below) + float(higher.min())) / 2.0)
    else:
        threshold = np.float32(float(below) + max(abs(float(below)) * 1e-4, 1e-6))
    if threshold <= below:
        threshold = np.nextafter(below, np.float32(np.inf), dtype=np.float32)
    achieved = float(np.mean(scores >= threshold))
    return float(threshold), achieved


def allowed_alerts(n: int, target_fpr: float, confidence: float | None = None) -> int:
    """How many of ``n`` benign calibration scores may lie at or above the threshold.

    Without ``confidence``: ``floor(target_fpr * n)``, the empirical rule. Its threshold sits just above the
    (a+1)-th highest score, whose true exceedance probability is Beta(a+1, n-a) distributed (for scores drawn
    independently from the distribution of new benign scores): its mean (a+1)/(n+1) is a little above
    ``target_fpr`` and it exceeds ``target_fpr`` about half the time. With ``confidence`` = 1 - delta: the
    largest ``a`` with P(Binomial(n, target_fpr) <= a) <= delta, because the true FPR exceeds
    ``target_fpr`` exactly when at most ``a`` of the n scores reach the benign (1 - target_fpr) quantile
    (Vovk 2012, training-conditional conformal prediction). When even ``a = 0`` cannot reach the confidence
    (n < log(delta) / log(1 - target_fpr), about 300 for 1 % and 0.95): 0, the highest score.
    """
    if confidence is None:
        return int(np.floor(target_fpr * n))
    _check_confidence(confidence)
    cdf = _binomial_cdfs(int(np.floor(target_fpr * n)), n, target_fpr)  # P(X <= a), a = 0 .. floor
    within = np.flatnonzero(cdf <= 1.0 - confidence)
    return int(within[-1]) if len(within) else 0


def _binomial_cdfs(a: int, n: int, p: float) -> np.ndarray:
    """P(Binomial(n, p) <= i) for i = 0 .. a, from the log pmf (exact enough for n in the millions)."""
    if p <= 0.0:
        return np.ones(a + 1)
    i = np.arange(a + 1, dtype=np.float64)
    # log P(X = i) = log C(n, i) + i log p + (n - i) log(1 - p)
    log_pmf = (
        np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in range(a + 1)])
        + i * math.log(p)
        + (n - i) * math.log1p(-p)
    )
    top = log_pmf.max()
    return np.minimum(np.cumsum(np.exp(log_pmf - top)) * math.exp(top), 1.0)


def _binomial_cdf(a: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= a)."""
    if a < 0:
        return 0.0
    if a >= n:
        return 1.0
    return float(_binomial_cdfs(a, n, p)[-1])


def _check_confidence(confidence: float | None) -> None:
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise ConfigError(f"FPR confidence {confidence}", expected="a probability in (0, 1), e.g. 0.95")


def fingerprint(frame: pd.DataFrame, features: Sequence[str], labels: np.ndarray) -> str:
    """sha256 over the training features (column names, values) and labels, independent of preprocessing."""
    digest = hashlib.sha256()
    for column in features:
        digest.update(column.encode("utf-8") + b"\x00")
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            digest.update(np.ascontiguousarray(series.to_numpy(np.float64, na_value=np.nan)).tobytes())
        else:
            digest.update("\x1f".join(as_strings(series.to_numpy(dtype=object))).encode("utf-8"))
    digest.update("\x1f".join(map(str, labels)).encode("utf-8"))
    return "sha256:" + digest.hexdigest()
