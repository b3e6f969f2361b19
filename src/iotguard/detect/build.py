"""Building detectors: a known-attack classifier and a benign anomaly model, with thresholds and calibration
chosen on held-out data only.

Protocol (inside the training data; nothing here sees a test set)::

    labelled flows --stratified split--> model rows (1 - calibration_fraction) | calibration rows
    classifier and anomaly model: trained on the model rows (the anomaly model on their benign rows)
    thresholds: on the calibration rows' benign scores, for the target false-positive rate
    confidence: isotonic P(attack | score) on the calibration rows (classifier); benign CDF (anomaly)

:func:`fit_baseline` does the same on an operator's own benign traffic: a site anomaly model, and the
classifier's threshold moved so that at most ``target_fpr`` of the site's held-out benign flows alert.
Training needs the ``train`` extra (scikit-learn, lightgbm); scoring needs only onnxruntime.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotguard.core.errors import DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN, EXTRA_FEATURES, FLOW_FEATURES
from iotguard.detect.detector import (
    LOGIT_CEILING,
    Calibration,
    Component,
    Detector,
    benign_quantiles,
    classifier_logit,
    logit,
)

log = logging.getLogger(__name__)

DEFAULT_TARGET_FPR = 1e-3
DEFAULT_CLASSIFIER = "lgbm"
DEFAULT_ANOMALY = "kmeans"
"""K-Means distance to the nearest benign cluster centre. On the lab's validation scenarios it flagged unseen
attack families (slow HTTP DoS, exfiltration) at the same benign false-positive rate where Isolation Forest
flagged nothing at all (docs/detection.md)."""
DEFAULT_CLUSTERS = 128
"""Benign cluster centres of the K-Means anomaly model, for a training set of tens of thousands of benign flows
(fewer rows get fewer centres: :func:`default_anomaly_params`)."""
DEFAULT_MIN_ATTACK_PROBABILITY = 0.1
"""The classifier never alerts on a flow it finds less than 10% likely to be an attack, whatever threshold the
target FPR gives: held-out flows of the training networks are easier than a new network's, and on them the FPR
threshold fell to P(attack) of a few thousandths. Chosen on the lab validation scenarios (docs/detection.md):
with the evidence gate, floors from 0.05 to 0.2 gave no false incident and the most episodes; 0.1 is the middle
of that range."""


def default_anomaly_params(model: str, rows: int) -> dict[str, Any]:
    """Default options of the anomaly model for ``rows`` benign training rows: K-Means gets one centre per 50
    rows, between 4 and :data:`DEFAULT_CLUSTERS` (few centres on few rows, so each centre stands for many
    flows rather than memorising single ones)."""
    if model == "kmeans":
        return {"clusters": int(min(DEFAULT_CLUSTERS, max(4, rows // 50)))}
    return {}


def feature_columns(flows: pd.DataFrame, features: Sequence[str] | None = None) -> list[str]:
    """The canonical flow features present in ``flows`` (or the ones asked for, which must all be there)."""
    if features is not None:
        missing = [f for f in features if f not in flows.columns]
        if missing:
            raise DataError(f"missing feature columns {missing[:5]}", expected="a canonical flow table")
        return list(features)
    cols = [f for f in (*FLOW_FEATURES, *EXTRA_FEATURES) if f in flows.columns]
    if not cols:
        raise DataError("no canonical flow feature columns", expected="a flow table (iotguard flows ...)")
    return cols


def _split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: per class, ``fraction`` of rows (at least one when a class has two or more) to the
    second part."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction))
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
        second.append(idx[:k])
        first.append(idx[k:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def _train_artifact(
    name: str,
    frame: pd.DataFrame,
    y: Any,
    task: str,
    workdir: Path,
    role: str,
    seed: int,
    progress: Progress,
    params: dict[str, Any] | None = None,
) -> tuple[Any, Path]:
    from iotguard.models.artifact import load_artifact, save_artifact
    from iotguard.models.pipeline import train_model

    pipeline = train_model(
        name, frame, y, task=task, seed=seed, progress=progress, dataset="iotguard-detector", params=params
    )
    path = save_artifact(pipeline, workdir / role, overwrite=True)
    return load_artifact(path), path


def _balance(
    X: pd.DataFrame,
    labels: np.ndarray,
    max_per_class: int | None,
    seed: int,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Row indexes to keep: duplicates (features + label) once; attack families capped at max_per_class.

    With ``strata`` (a finer label per row, such as the lab's episode labels), a capped family keeps an equal
    share of each stratum (a stratum with fewer rows than its share keeps all of them and leaves the rest to
    the others): a family of many kinds keeps its rare kinds in view (one UDP flood is one flow, while a SYN
    flood of the same length is thousands)."""
    frame = X.copy()
    frame["__label"] = labels
    keep = np.flatnonzero(~frame.duplicated().to_numpy())
    if max_per_class is None:
        return keep
    rng = np.random.default_rng(seed)
    parts = []
    for cls in np.unique(labels[keep]):
        idx = keep[labels[keep] == cls]
        if cls != BENIGN and len(idx) > max_per_class:
            if strata is None:
                idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
            else:
                idx = _equal_shares(idx, np.asarray(strata)[idx], max_per_class, rng)
        parts.append(idx)
    return np.sort(np.concatenate(parts))


def _equal_shares(idx: np.ndarray, strata: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` of ``idx``, an equal share from each stratum, the smallest strata first (water-filling); with
    fewer rows to give than strata, one row each to the rarest."""
    groups = sorted((idx[strata == s] for s in np.unique(strata)), key=len)
    chosen, left = [], total
    for i, group in enumerate(groups):
        k = min(len(group), max(left // (len(groups) - i), min(left, 1)))
        chosen.append(group if k == len(group) else rng.choice(group, size=k, replace=False))
        left -= k
    return np.sort(np.concatenate(chosen))


def _prototypes(benign: pd.DataFrame, seed: int, n: int = 64) -> pd.DataFrame:
    """Up to ``n`` distinct benign flows (seeded sample): the references explanations occlude towards."""
    rows = benign.drop_duplicates()
    if len(rows) > n:
        rows = rows.sample(n=n, random_state=seed)
    return rows.reset_index(drop=True)


def _unsaturated_quantiles(benign_scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Benign classifier quantiles without the flows at the score ceiling (P(benign) below 1e-12): no
    threshold can separate those from the surest attacks (they are mostly mislabelled or duplicated attack
    flows), so the FPR target applies to the rest; their share is recorded as ``saturated_benign_fraction``."""
    saturated = benign_scores >= LOGIT_CEILING - 1e-9
    rest = benign_scores[~saturated]
    share = float(saturated.mean()) if len(benign_scores) else 0.0
    return benign_quantiles(rest if len(rest) else benign_scores), share


def _medians(frame: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Per-feature median and interquartile range of (benign) flows: the explanation baseline."""
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.where(np.isfinite(values), values, np.nan)
    cols = list(frame.columns)
    if not len(values):
        nan = dict.fromkeys(cols, float("nan"))
        return nan, dict(nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        q = np.nanquantile(values, [0.25, 0.5, 0.75], axis=0)
    return dict(zip(cols, q[1].tolist(), strict=True)), dict(zip(cols, (q[2] - q[0]).tolist(), strict=True))


def build_detector(
    flows: pd.DataFrame,
    categories: Sequence[str] | np.ndarray | pd.Series,
    workdir: str | Path,
    *,
    classifier: str | None = DEFAULT_CLASSIFIER,
    anomaly: str | None = DEFAULT_ANOMALY,
    features: Sequence[str] | None = None,
    target_fpr: float = DEFAULT_TARGET_FPR,
    calibration_fraction: float = 0.25,
    max_per_class: int | None = 5000,
    seed: int = 0,
    name: str = "iotguard",
    progress: Progress = NO_PROGRESS,
    classifier_params: dict[str, Any] | None = None,
    anomaly_params: dict[str, Any] | None = None,
    min_attack_probability: float | None = DEFAULT_MIN_ATTACK_PROBABILITY,
    strata: Sequence[str] | np.ndarray | pd.Series | None = None,
) -> tuple[Detector, dict[str, Path]]:
    """Train the components on labelled flows (``categories``: ``Benign`` or an attack family per row).

    ``min_attack_probability``: the classifier never alerts below this probability of attack, whatever the
    target FPR gives (kept with the detector as the threshold's floor; None: no floor); ``*_params``: model
    options (default for the anomaly model: :func:`default_anomaly_params`).

    Exact duplicate rows (same features and label: floods repeat one flow thousands of times) are kept once,
    and each attack family is sampled down to ``max_per_class`` rows, so that a flood does not drown the
    benign class; benign rows are never dropped; ``strata`` (finer labels, e.g. the lab's episode labels
    ``flows["label"]``) makes that sample take an equal share of each. Artifacts are written under ``workdir``; returns the
    detector and where each component's artifact is (pass that to :meth:`Detector.save`)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cols = feature_columns(flows, features)
    labels = np.asarray(pd.Series(categories).astype(str))
    if len(labels) != len(flows):
        raise DataError(f"{len(labels)} labels for {len(flows)} flows", expected="one label per flow")
    X = flows[cols].reset_index(drop=True)
    if strata is not None and len(strata) != len(flows):
        raise DataError(f"{len(strata)} strata for {len(flows)} flows", expected="one stratum per flow")
    keep = _balance(
        X, labels, max_per_class, seed, None if strata is None else np.asarray(pd.Series(strata).astype(str))
    )
    dropped = len(labels) - len(keep)
    X, labels = X.iloc[keep].reset_index(drop=True), labels[keep]
    model_idx, cal_idx = _split(labels, calibration_fraction, seed)
    benign = labels == BENIGN
    if not benign[cal_idx].any() or not benign[model_idx].any():
        raise DataError(
            "too few benign flows to train and calibrate", expected="benign flows in the training data"
        )
    sources: dict[str, Path] = {}
    comp_c = comp_a = None
    info: dict[str, Any] = {
        "rows": int(len(labels)),
        "rows_dropped_by_balancing": int(dropped),
        "model_rows": int(len(model_idx)),
        "calibration_rows": int(len(cal_idx)),
        "class_counts": {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True), strict=True)},
        "target_fpr": target_fpr,
        "seed": seed,
        "features": cols,
    }
    x_cal = X.iloc[cal_idx]
    y_cal = labels[cal_idx]
    if classifier is not None:
        n_classes = len(np.unique(labels[model_idx]))
        task = "multiclass" if n_classes > 2 else "binary"
        art, path = _train_artifact(
            classifier, X.iloc[model_idx], labels[model_idx], task, workdir, "classifier", seed, progress,
            classifier_params,
        )  # fmt: skip
        sources["classifier"] = path
        s = classifier_logit(art.predict(x_cal), art)
        q, saturated = _unsaturated_quantiles(s[y_cal == BENIGN])
        comp_c = Component(
            "classifier", art, 0.0, Calibration.isotonic(s, y_cal != BENIGN), benign_quantiles=q,
            info={"model": classifier, "task": task, "saturated_benign_fraction": saturated},
            floor=None if min_attack_probability is None else logit(min_attack_probability),
        )  # fmt: skip
        comp_c.threshold = comp_c.threshold_for(target_fpr)
        comp_c.target_fpr = target_fpr
    if anomaly is not None:
        bx = X.iloc[model_idx][benign[model_idx]]
        params = anomaly_params if anomaly_params is not None else default_anomaly_params(anomaly, len(bx))
        art, path = _train_artifact(
            anomaly, bx, np.full(len(bx), BENIGN), "binary", workdir, "anomaly", seed, progress, params
        )
        sources["anomaly"] = path
        s = np.asarray(art.predict(x_cal[y_cal == BENIGN]).score, dtype=np.float64)
        q = benign_quantiles(s)
        comp_a = Component(
            "anomaly",
            art,
            0.0,
            Calibration.benign_cdf(q),
            benign_quantiles=q,
            info={"model": anomaly, "fitted_on": "training benign", "params": params},
        )
        comp_a.threshold = comp_a.threshold_for(target_fpr)
        comp_a.target_fpr = target_fpr
    medians, spread = _medians(X[benign])
    protos = _prototypes(X[benign], seed)
    det = Detector(comp_c, comp_a, baseline=medians, scale=spread, prototypes=protos, name=name, info=info)
    return det, sources


def fit_baseline(
    detector: Detector,
    benign_flows: pd.DataFrame,
    workdir: str | Path,
    *,
    anomaly: str = DEFAULT_ANOMALY,
    target_fpr: float = DEFAULT_TARGET_FPR,
    calibration_fraction: float = 0.3,
    seed: int = 0,
    progress: Progress = NO_PROGRESS,
) -> tuple[Detector, dict[str, Path]]:
    """Fit the site's anomaly model on its own benign flows and move the classifier's threshold so that at
    most ``target_fpr`` of the site's held-out benign flows alert. Returns a new detector (same classifier
    artifact) and the artifact paths of both components."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cols = detector.features
    missing = [c for c in cols if c not in benign_flows.columns]
    if missing:
        raise DataError(
            f"baseline flows lack {missing[:5]}", expected="a flow table of the site's benign traffic"
        )
    if len(benign_flows) < 20:
        raise DataError(
            f"only {len(benign_flows)} benign flows in the baseline",
            expected="at least 20 flows of normal traffic",
        )
    # The split below is random by position: put the flows in a canonical order first, so that the detector
    # does not depend on the order in which a flow meter happened to emit them.
    order = [
        c for c in ("ts_first", "src_ip", "src_port", "dst_ip", "dst_port", "protocol") if c in benign_flows
    ]
    if order:
        benign_flows = benign_flows.sort_values(order, kind="stable")
    X = benign_flows[cols].reset_index(drop=True)
    fit_idx, cal_idx = _split(np.zeros(len(X), dtype=int), calibration_fraction, seed)
    params = default_anomaly_params(anomaly, len(fit_idx))
    art, path = _train_artifact(
        anomaly, X.iloc[fit_idx], np.full(len(fit_idx), BENIGN), "binary", workdir, "anomaly", seed, progress,
        params,
    )  # fmt: skip
    sources: dict[str, Path] = {"anomaly": path}
    s = np.asarray(art.predict(X.iloc[cal_idx]).score, dtype=np.float64)
    q = benign_quantiles(s)
    comp_a = Component(
        "anomaly", art, 0.0, Calibration.benign_cdf(q), benign_quantiles=q,
        info={"model": anomaly, "fitted_on": "site baseline", "baseline_flows": int(len(X)), "params": params},
    )  # fmt: skip
    comp_a.threshold = comp_a.threshold_for(target_fpr)
    comp_a.target_fpr = target_fpr
    comp_c, over = None, 0
    if detector.classifier is not None:
        old = detector.classifier
        sc = classifier_logit(old.artifact.predict(X.iloc[cal_idx]), old.artifact)
        qc, saturated = _unsaturated_quantiles(sc)
        comp_c = Component(
            "classifier", old.artifact, 0.0, old.calibration, benign_quantiles=qc,
            info=old.info | {"threshold_from": "site baseline", "saturated_benign_fraction": saturated},
            floor=old.floor,
        )  # fmt: skip
        # never below the training threshold: the site baseline may only make the classifier stricter
        comp_c.threshold = max(old.threshold, comp_c.threshold_for(target_fpr))
        comp_c.target_fpr = target_fpr
        sources["classifier"] = Path(old.artifact.path)
        over = int((sc >= old.threshold).sum())  # held-out baseline flows the trained classifier alerts on
    cautions = baseline_warnings(len(cal_idx), target_fpr, None if comp_c is None else comp_c.threshold, over)
    for line in cautions:
        log.warning("site baseline: %s", line)
    medians, spread = _medians(X)
    info = detector.info | {"baseline_flows": int(len(X)), "baseline_warnings": cautions}
    det = Detector(
        comp_c, comp_a, baseline=medians, scale=spread, prototypes=_prototypes(X, seed), name=f"{detector.name}+site",
        info=info,
    )  # fmt: skip
    return det, sources


QUIET_CLASSIFIER = math.log(0.999 / 0.001)
"""A classifier threshold above P(attack) 0.999 (log-odds): the classifier then names almost nothing."""


def baseline_warnings(
    calibration_flows: int, target_fpr: float, classifier_threshold: float | None, flagged: int
) -> list[str]:
    """What an operator must know about a fitted site baseline: too few held-out flows to resolve the target
    FPR (the thresholds then sit at the highest-scoring benign flows), and a classifier threshold moved so
    high that the known-attack families (PortScan, DDoS, ...) will hardly be named any more."""
    lines = []
    needed = math.ceil(1.0 / target_fpr) if target_fpr > 0 else None
    if needed is not None and calibration_flows < needed:
        lines.append(
            f"the thresholds rest on {calibration_flows} held-out baseline flows; a target FPR of {target_fpr:g} "
            f"needs about {needed} to be resolved, so they sit at the highest-scoring normal flows: give it more "
            "normal traffic (or a larger --target-fpr)"
        )
    if classifier_threshold is not None and classifier_threshold >= QUIET_CLASSIFIER:
        p = 1.0 / (1.0 + math.exp(-classifier_threshold))
        lines.append(
            f"the known-attack classifier now alerts only at P(attack) >= {p:.6f}: {flagged} of the baseline's "
            "held-out flows looked like known attacks to it (attacks in the baseline, or traffic it mistakes for "
            "them), so families it names (PortScan, DDoS, BruteForce, ...) will mostly come as Anomaly or not "
            "at all; check the baseline for attacks, and policies that match on those families"
        )
    return lines


class Workdir:
    """A temporary directory for artifacts that lives as long as the detector that uses it."""

    def __init__(self, prefix: str = "iotguard-detector-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.close()
