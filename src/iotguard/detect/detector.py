"""The detector: model artifacts in, one verdict per flow out (score, calibrated confidence, family).

A detector has up to two components, each a model artifact (``iotguard.models.artifact``):

* a **classifier** of known attacks (trained on labelled traffic: iotguard's lab, a benchmark, your own), which
  names the family;
* an **anomaly model** fitted on benign traffic only, ideally the site's own (``--baseline``), which catches
  what the classifier was never shown and reports the family ``Anomaly``.

A flow alerts when either component's score reaches that component's threshold. Thresholds are chosen for
a target false-positive rate on *held-out benign* flows (never on test data) and can be moved per deployment
(:meth:`Detector.set_target_fpr`, :meth:`Detector.set_thresholds`) because each component keeps the
quantiles of its benign validation scores.

Confidence is calibrated on held-out data: for the classifier, an isotonic map from score to the observed
fraction of attacks (P(attack | score)); for the anomaly model, which never sees attacks, the fraction of
benign validation flows scoring lower (how unusual the flow is for this site).

A detector is saved as a directory: ``detector.json`` (thresholds, calibration, benign baseline, and the
sha256 of each component's manifest) plus one artifact directory per component. Loading verifies every
hash and unpickles nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from iotguard.core.errors import ArtifactError, ConfigError, FeatureMismatchError

log = logging.getLogger(__name__)

FORMAT = "iotguard-detector"
FORMAT_VERSION = 1
DETECTOR_FILE = "detector.json"
ANOMALY = "Anomaly"
"""The family of alerts raised by the anomaly model alone."""

Role = Literal["classifier", "anomaly"]

# Probabilities at which benign validation quantiles are kept: dense in the upper tail, where thresholds live.
_Q_PROBS = np.unique(
    np.concatenate([np.linspace(0.0, 0.99, 100), 1.0 - np.logspace(-2, -6, 161), [1.0]])
).astype(np.float64)


@dataclass
class Calibration:
    """A monotone piecewise-linear map from score to confidence (``np.interp``)."""

    kind: Literal["isotonic", "benign_cdf", "logistic"]
    x: np.ndarray
    y: np.ndarray

    def __call__(self, score: np.ndarray) -> np.ndarray:
        score = np.asarray(score, dtype=np.float64)
        if self.kind == "logistic":  # log-odds back to a probability (uncalibrated)
            return 1.0 / (1.0 + np.exp(-np.clip(score, -50, 50)))
        out = np.interp(score, self.x, self.y)
        return np.where(np.isnan(score), np.nan, out)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": _floats(self.x), "y": _floats(self.y)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            data["kind"], np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
        )

    @classmethod
    def isotonic(cls, scores: np.ndarray, is_attack: np.ndarray) -> Calibration:
        """P(attack | score) by isotonic regression (pool-adjacent-violators), as knots for ``np.interp``."""
        order = np.argsort(scores, kind="stable")
        s = np.asarray(scores, dtype=np.float64)[order]
        y = np.asarray(is_attack, dtype=np.float64)[order]
        # merge equal scores first, then pool adjacent violators
        uniq, start = np.unique(s, return_index=True)
        sums = np.add.reduceat(y, start)
        counts = np.diff(np.append(start, len(s))).astype(np.float64)
        values, weights, xs_lo, xs_hi = [], [], [], []
        for u, total, n in zip(uniq, sums, counts, strict=True):
            values.append(total / n)
            weights.append(n)
            xs_lo.append(u)
            xs_hi.append(u)
            while len(values) > 1 and values[-2] >= values[-1]:
                v2, w2, hi2 = values.pop(), weights.pop(), xs_hi.pop()
                xs_lo.pop()
                values[-1] = (values[-1] * weights[-1] + v2 * w2) / (weights[-1] + w2)
                weights[-1] += w2
                xs_hi[-1] = hi2
        knots_x, knots_y = [], []
        for lo, hi, v in zip(xs_lo, xs_hi, values, strict=True):
            knots_x += [lo, hi] if hi > lo else [lo]
            knots_y += [v, v] if hi > lo else [v]
        return cls("isotonic", np.asarray(knots_x), np.asarray(knots_y))

    @classmethod
    def benign_cdf(cls, quantiles: np.ndarray, probs: np.ndarray = _Q_PROBS) -> Calibration:
        q = np.maximum.accumulate(np.asarray(quantiles, dtype=np.float64))
        return cls("benign_cdf", q, np.asarray(probs, dtype=np.float64))


@dataclass
class Component:
    """One model artifact with its threshold, calibration and benign validation quantiles."""

    role: Role
    artifact: Any
    """An ``iotguard.models.artifact.Artifact``."""
    threshold: float
    calibration: Calibration
    benign_quantiles: np.ndarray | None = None
    """Scores of held-out benign flows at the probabilities :data:`_Q_PROBS` (for re-targeting the FPR)."""
    target_fpr: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    floor: float | None = None
    """The lowest threshold a target FPR may give (for the classifier: log-odds of attack, so ``logit(0.1)``
    means it never alerts below P(attack) = 0.1). Explicit thresholds (:meth:`Detector.set_thresholds`) are not
    bound by it."""

    @property
    def name(self) -> str:
        return str(self.artifact.name)

    @property
    def features(self) -> list[str]:
        return list(self.artifact.features)

    def threshold_for(self, target_fpr: float) -> float:
        """The lowest score at which at most ``target_fpr`` of the benign validation flows alert."""
        if self.benign_quantiles is None:
            raise ConfigError(
                f"the {self.role} {self.name!r} has no benign validation scores to set a threshold from",
                expected="a detector built by iotguard, or an explicit threshold",
            )
        if not 0.0 <= target_fpr < 1.0:
            raise ConfigError(f"target FPR {target_fpr}", expected="a fraction in [0, 1)")
        q = np.interp(1.0 - target_fpr, _Q_PROBS, np.maximum.accumulate(self.benign_quantiles))
        t = float(np.nextafter(np.float32(q), np.float32(np.inf)))
        if self.floor is not None:
            t = max(t, self.floor)
        if self.role == "classifier":
            t = min(t, LOGIT_CEILING)  # alert on the most certain flows rather than never
        return t


@dataclass
class Verdicts:
    """One verdict per flow (arrays of equal length)."""

    score: np.ndarray
    """The deciding component's score: the classifier's attack probability (1 - P(benign)) where it alerts or
    no anomaly model exists, else the anomaly score."""
    confidence: np.ndarray
    """Calibrated confidence of the verdict in [0, 1] (see the module docs)."""
    family: np.ndarray
    """Predicted family: a known attack family, ``Anomaly``, or ``Benign``."""
    is_alert: np.ndarray
    component: np.ndarray
    """0 no alert, 1 the classifier alerted, 2 only the anomaly model alerted."""
    classifier_score: np.ndarray | None = None
    """The classifier's log-odds of attack (what its threshold applies to)."""
    anomaly_score: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)

    def to_frame(self) -> pd.DataFrame:
        data: dict[str, Any] = {
            "score": self.score,
            "confidence": self.confidence,
            "family": self.family,
            "is_alert": self.is_alert,
        }
        if self.classifier_score is not None:
            data["classifier_score"] = self.classifier_score
        if self.anomaly_score is not None:
            data["anomaly_score"] = self.anomaly_score
        return pd.DataFrame(data)


class Detector:
    """Scores flow tables. Build with :func:`iotguard.detect.build.build_detector`, load with :meth:`load` (a
    detector directory) or :meth:`from_artifact` (one bare model artifact)."""

    def __init__(
        self,
        classifier: Component | None = None,
        anomaly: Component | None = None,
        *,
        baseline: dict[str, float] | None = None,
        scale: dict[str, float] | None = None,
        prototypes: np.ndarray | pd.DataFrame | None = None,
        name: str = "iotguard",
        info: dict[str, Any] | None = None,
    ) -> None:
        if classifier is None and anomaly is None:
            raise ConfigError("a detector needs a classifier, an anomaly model or both")
        self.classifier = classifier
        self.anomaly = anomaly
        self.name = name
        self.info = dict(info or {})
        features: list[str] = []
        for comp in self.components:
            features += [f for f in comp.features if f not in features]
        self.features = features
        self._position = {f: i for i, f in enumerate(features)}
        self._cols = {
            c.role: np.array([self._position[f] for f in c.features], dtype=np.intp) for c in self.components
        }
        self.baseline = np.array([float((baseline or {}).get(f, np.nan)) for f in features], dtype=np.float32)
        """Per-feature benign medians: what explanations occlude a feature with."""
        self.scale = np.array([float((scale or {}).get(f, np.nan)) for f in features], dtype=np.float32)
        """Per-feature benign spread (interquartile range): ranks which features to occlude first."""
        if isinstance(prototypes, pd.DataFrame):
            prototypes = prototypes.reindex(columns=features).to_numpy(dtype=np.float32, na_value=np.nan)
        self.prototypes = (
            None
            if prototypes is None
            else np.asarray(prototypes, dtype=np.float32).reshape(-1, len(features))
        )
        """Real benign flows (rows in :attr:`features` order): the references explanations occlude towards."""

    @property
    def components(self) -> list[Component]:
        return [c for c in (self.classifier, self.anomaly) if c is not None]

    @property
    def model_name(self) -> str:
        return "+".join(c.name for c in self.components)

    # -- thresholds -------------------------------------------------------------------------------------
    def set_target_fpr(self, target_fpr: float) -> None:
        """Move every component's threshold to ``target_fpr`` on its benign validation flows."""
        for comp in self.components:
            comp.threshold = comp.threshold_for(target_fpr)
            comp.target_fpr = target_fpr

    def set_thresholds(self, *, classifier: float | None = None, anomaly: float | None = None) -> None:
        """Explicit thresholds: ``classifier`` on the attack probability (0..1), ``anomaly`` on the anomaly
        model's own score."""
        if classifier is not None:
            if self.classifier is None:
                raise ConfigError("this detector has no classifier to set a threshold on")
            if not 0.0 < classifier <= 1.0:
                raise ConfigError(
                    f"classifier threshold {classifier}", expected="an attack probability in (0, 1]"
                )
            self.classifier.threshold, self.classifier.target_fpr = logit(classifier), None
        if anomaly is not None:
            if self.anomaly is None:
                raise ConfigError("this detector has no anomaly model to set a threshold on")
            self.anomaly.threshold, self.anomaly.target_fpr = float(anomaly), None

    # -- scoring ----------------------------------------------------------------------------------------
    def matrix(self, flows: pd.DataFrame, *, where: str | None = None) -> np.ndarray:
        """The detector's features of ``flows`` as float32 [N, F] (inf and NaN pass; the models clean them)."""
        missing = [f for f in self.features if f not in flows.columns]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:6]) + (
                f" and {len(missing) - 6} more" if len(missing) > 6 else ""
            )
            raise FeatureMismatchError(
                f"{len(missing)} missing column(s) {shown}",
                where=where,
                expected="the columns the models were trained on",
            )
        out = np.empty((len(flows), len(self.features)), dtype=np.float32)
        for j, f in enumerate(self.features):
            col = flows[f]
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                col = pd.to_numeric(col, errors="coerce")
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def _component_scores(self, comp: Component, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """The component's decision score: the anomaly score, or the classifier's log-odds of attack."""
        pred = comp.artifact.predict_array(x[:, self._cols[comp.role]])
        if comp.role == "classifier":
            return classifier_logit(pred, comp.artifact), pred
        return np.asarray(pred.score, dtype=np.float64), pred

    def score_array(self, x: np.ndarray) -> Verdicts:
        """Verdicts for rows already in :attr:`features` order."""
        n = len(x)
        score = np.zeros(n)
        confidence = np.zeros(n)
        family = np.full(n, "Benign", dtype=object)
        component = np.zeros(n, dtype=np.int8)
        c_score = a_score = None
        benign_conf = np.ones(n)
        if n == 0:
            return Verdicts(score, confidence, family, np.zeros(0, bool), component)
        if self.classifier is not None:
            c = self.classifier
            c_score, pred = self._component_scores(c, x)
            c_alert = c_score >= c.threshold
            fam = _attack_family(pred, c.artifact)
            score, confidence = np.asarray(pred.score, dtype=np.float64), c.calibration(c_score)
            benign_conf = 1.0 - confidence
            family = np.where(c_alert, fam, "Benign").astype(object)
            component[c_alert] = 1
        if self.anomaly is not None:
            a = self.anomaly
            a_score, _ = self._component_scores(a, x)
            a_alert = (a_score >= a.threshold) & (component == 0)
            a_conf = a.calibration(a_score)
            if self.classifier is None:
                score, confidence = a_score.copy(), a_conf
                family = np.where(a_alert, ANOMALY, "Benign").astype(object)
            else:
                score = np.where(a_alert, a_score, score)
                confidence = np.where(a_alert, a_conf, confidence)
                family = np.where(a_alert, ANOMALY, family).astype(object)
                # a benign verdict is as confident as the less sure of the two models
                quiet = component == 0
                confidence = np.where(quiet & ~a_alert, np.minimum(benign_conf, 1.0 - a_conf), confidence)
            component[a_alert] = 2
        if self.classifier is None:
            confidence = np.where(component == 0, 1.0 - confidence, confidence)
        elif self.anomaly is None:
            confidence = np.where(component == 0, benign_conf, confidence)
        return Verdicts(
            score=score,
            confidence=confidence,
            family=family,
            is_alert=component > 0,
            component=component,
            classifier_score=c_score,
            anomaly_score=a_score,
        )

    def score(self, flows: pd.DataFrame, *, where: str | None = None) -> Verdicts:
        """One verdict per row of a flow table (contract 1). Early (partial) records score like any other."""
        return self.score_array(self.matrix(flows, where=where))

    # -- explanations -----------------------------------------------------------------------------------
    def explain(
        self,
        x: np.ndarray,
        verdicts: Verdicts,
        rows: np.ndarray,
        *,
        top: int = 5,
        candidates: int = 16,
        fallback: np.ndarray | None = None,
    ) -> list[list[tuple[str, float]]]:
        """The features that drove each alert in ``rows`` (indexes into ``x``).

        Occlusion against the benign baseline: the drop in the deciding component's decision score when one
        feature alone is set to its benign median. Positive weights pushed the flow towards the alert. Only
        the ``candidates`` features farthest from the baseline (in units of the benign interquartile range)
        are occluded, and identical rows (common in floods) are explained once, so the cost is one batched
        inference of ``unique_rows x candidates`` rows per component. Where the score is saturated and no
        single feature moves it, the candidates are occluded cumulatively (most deviant first) and each is
        credited with the drop it adds along that path (twice the inference for those rows).
        """
        rows = np.asarray(rows, dtype=np.intp)
        out: list[list[tuple[str, float]]] = [[] for _ in rows]
        if len(rows) == 0:
            return out
        baseline = self.baseline
        if np.isnan(baseline).any():
            fb = fallback if fallback is not None else np.nanmedian(x, axis=0) if len(x) else baseline
            baseline = np.where(np.isnan(baseline), fb, baseline).astype(np.float32)
        for role, comp_id in (("classifier", 1), ("anomaly", 2)):
            comp = self.classifier if role == "classifier" else self.anomaly
            mine = np.flatnonzero(verdicts.component[rows] == comp_id)
            if comp is None or len(mine) == 0:
                continue
            cols = self._cols[role]
            uniq, inverse = _unique_rows(x[rows[mine]][:, cols])
            m, f = uniq.shape
            spread = self.scale[cols]
            spread = np.where(
                np.isfinite(spread) & (spread > 0), spread, np.maximum(np.abs(baseline[cols]), 1.0)
            )
            ref = self._references(uniq, cols, baseline[cols], spread, comp)
            c = min(candidates, f)
            with np.errstate(all="ignore"):
                deviation = np.abs(uniq - ref) / spread
            deviation = np.where(np.isfinite(deviation), deviation, np.where(np.isnan(uniq), 0.0, np.inf))
            cand = np.argsort(-deviation, axis=1, kind="stable")[:, :c]
            rows_m = np.arange(m)[:, None]
            moved = deviation[rows_m, cand] > 0
            probe = np.repeat(uniq[:, None, :], c, axis=1)
            probe[rows_m, np.arange(c)[None, :], cand] = ref[rows_m, cand]
            original = _decision(comp, uniq)
            occluded = _decision(comp, probe.reshape(m * c, f)).reshape(m, c)
            weights = np.where(moved, original[:, None] - occluded, 0.0)
            stuck = np.flatnonzero(weights.max(axis=1) < _MIN_WEIGHT)
            if len(stuck):
                # A saturated score (the surest attacks) moves for no single feature: occlude the candidates
                # cumulatively, most deviant first, and credit each with the drop it adds along that path.
                path = np.repeat(uniq[stuck][:, None, :], c, axis=1)
                for j in range(c):
                    path[np.arange(len(stuck)), j:, cand[stuck, j]] = ref[stuck, cand[stuck, j]][:, None]
                scores = _decision(comp, path.reshape(len(stuck) * c, f)).reshape(len(stuck), c)
                previous = np.concatenate([original[stuck][:, None], scores[:, :-1]], axis=1)
                weights[stuck] = np.where(moved[stuck], previous - scores, 0.0)
            names = comp.features
            k = min(top, c)
            order = np.argsort(-weights, axis=1)[:, :k]
            explained = [
                [
                    (names[cand[u, j]], _weight(weights[u, j]))
                    for j in order[u]
                    if weights[u, j] >= _MIN_WEIGHT
                ]
                for u in range(m)
            ]
            for u in [u for u in range(m) if not explained[u]]:
                # Not even the most deviant candidates together move the score: walk all the way to the benign
                # reference (which scores below the threshold), so the drop is spread over the features it takes.
                explained[u] = self._full_path(comp, uniq[u], ref[u], deviation[u], original[u], names, top)
            for pos, u in zip(mine, inverse, strict=True):
                out[pos] = explained[u]
        return out

    def _full_path(
        self,
        comp: Component,
        row: np.ndarray,
        ref: np.ndarray,
        deviation: np.ndarray,
        original: float,
        names: list[str],
        top: int,
    ) -> list[tuple[str, float]]:
        """Occlude every feature that differs from the reference, most deviant first, cumulatively; each gets
        the drop it adds. Ends at the reference itself, so the drops add up to the whole score difference."""
        order = [j for j in np.argsort(-deviation, kind="stable") if deviation[j] > 0]
        if not order:
            return []
        path = np.repeat(row[None, :], len(order), axis=0)
        for step, j in enumerate(order):
            path[step:, j] = ref[j]
        scores = _decision(comp, path)
        drops = np.concatenate([[original], scores[:-1]]) - scores
        best = np.argsort(-drops, kind="stable")[:top]
        kept = [(names[order[i]], _weight(drops[i])) for i in best if drops[i] >= _MIN_WEIGHT]
        if not kept and drops.max() > 0:  # a score just over the threshold: tiny drops are all there is
            kept = [(names[order[i]], float(f"{drops[i]:.6g}")) for i in best if drops[i] > 0]
        return kept

    def _below_threshold(self, comp: Component, protos: np.ndarray) -> np.ndarray:
        """Which prototypes the component itself scores below its threshold (cached per threshold)."""
        cache: dict[str, tuple[Any, np.ndarray]] = self.__dict__.setdefault("_quiet_protos", {})
        key = (comp.threshold, protos.shape, id(comp.artifact))
        if comp.role not in cache or cache[comp.role][0] != key:
            cache[comp.role] = (key, _decision(comp, protos.astype(np.float32)) < comp.threshold)
        return cache[comp.role][1]

    def _references(
        self,
        uniq: np.ndarray,
        cols: np.ndarray,
        median: np.ndarray,
        spread: np.ndarray,
        comp: Component | None = None,
    ) -> np.ndarray:
        """The benign reference of each row: the nearest benign prototype (a real benign flow, so occluding
        towards it yields a plausible flow) among those the component scores below its threshold, else the
        per-feature benign median."""
        if self.prototypes is None or len(self.prototypes) == 0:
            return np.broadcast_to(median, uniq.shape).copy()
        protos = self.prototypes[:, cols]
        protos = np.where(np.isfinite(protos), protos, median)
        if comp is not None:
            quiet = self._below_threshold(comp, protos)
            if quiet.any():
                protos = protos[quiet]
        a = (np.where(np.isfinite(uniq), uniq, median) / spread).astype(np.float32)
        scaled = (protos / spread).astype(np.float32)
        # one prototype at a time: a (rows x prototypes x features) temporary is hundreds of MB on a flood
        distance = np.empty((len(a), len(scaled)), dtype=np.float32)
        for k, proto in enumerate(scaled):
            distance[:, k] = np.abs(a - proto).sum(axis=1)
        return protos[np.argmin(distance, axis=1)].astype(np.float32)

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, sources: dict[Role, str | os.PathLike[str]]) -> Path:
        """Write the detector directory. ``sources``: where each component's artifact directory (or zip) is
        now (it is copied in, a zip unpacked). Written to a temporary name and renamed, so a crash leaves nothing half-written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            doc: dict[str, Any] = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "name": self.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "features": self.features,
                "baseline": dict(zip(self.features, _floats(self.baseline), strict=True)),
                "baseline_scale": dict(zip(self.features, _floats(self.scale), strict=True)),
                "prototypes": None if self.prototypes is None else [_floats(r) for r in self.prototypes],
                "info": self.info,
                "components": {},
            }
            for comp in self.components:
                _copy_artifact(Path(sources[comp.role]), tmp / comp.role)
                doc["components"][comp.role] = {
                    "path": comp.role,
                    "manifest_sha256": hashlib.sha256(
                        (tmp / comp.role / "manifest.json").read_bytes()
                    ).hexdigest(),
                    "threshold": comp.threshold,
                    "threshold_floor": comp.floor,
                    "target_fpr": comp.target_fpr,
                    "calibration": comp.calibration.to_json(),
                    "benign_quantiles": None
                    if comp.benign_quantiles is None
                    else _floats(comp.benign_quantiles),
                    "info": comp.info,
                }
            (tmp / DETECTOR_FILE).write_text(
                json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8"
            )
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Detector:
        """Load a detector directory, or a bare model artifact (directory or zip)."""
        path = Path(path)
        if not (path / DETECTOR_FILE).is_file():
            if (path / "manifest.json").is_file() or path.suffix == ".zip":
                return cls.from_artifact(path)
            raise ArtifactError(
                "no detector.json or manifest.json here",
                where=str(path),
                expected="a detector or model artifact",
            )
        from iotguard.models.artifact import load_artifact

        try:
            doc = json.loads((path / DETECTOR_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"detector.json is unreadable ({exc})", where=str(path)) from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ArtifactError("not an iotguard detector", where=str(path / DETECTOR_FILE))
        if doc.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(
                f"unknown detector format version {doc.get('format_version')!r}",
                where=str(path / DETECTOR_FILE),
                expected=f"version {FORMAT_VERSION}",
            )
        comps: dict[str, Component] = {}
        try:
            for role, spec in doc["components"].items():
                if role not in ("classifier", "anomaly"):
                    raise ArtifactError(f"unknown component {role!r}", where=str(path / DETECTOR_FILE))
                sub = path / spec["path"]
                if sub.resolve().parent != path.resolve():
                    raise ArtifactError(
                        f"component path {spec['path']!r} leaves the detector", where=str(path)
                    )
                manifest = sub / "manifest.json"
                if (
                    not manifest.is_file()
                    or hashlib.sha256(manifest.read_bytes()).hexdigest() != spec["manifest_sha256"]
                ):
                    raise ArtifactError(
                        f"the {role} artifact does not match detector.json (sha256 of its manifest)",
                        where=str(sub),
                    )
                art = load_artifact(sub)
                comps[role] = Component(
                    role=role,
                    artifact=art,
                    threshold=float(spec["threshold"]),
                    calibration=Calibration.from_json(spec["calibration"]),
                    benign_quantiles=None
                    if spec.get("benign_quantiles") is None
                    else np.asarray(spec["benign_quantiles"], dtype=np.float64),
                    target_fpr=spec.get("target_fpr"),
                    info=spec.get("info", {}),
                    floor=None if spec.get("threshold_floor") is None else float(spec["threshold_floor"]),
                )
            baseline = {k: (math.nan if v is None else float(v)) for k, v in doc.get("baseline", {}).items()}
            scale = {
                k: (math.nan if v is None else float(v)) for k, v in doc.get("baseline_scale", {}).items()
            }
            protos = doc.get("prototypes")
            prototypes = (
                None
                if not protos
                else np.array([[np.nan if v is None else v for v in r] for r in protos], np.float32)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"detector.json is incomplete ({exc!r})", where=str(path / DETECTOR_FILE)
            ) from exc
        return cls(
            comps.get("classifier"), comps.get("anomaly"), baseline=baseline, scale=scale, prototypes=prototypes,
            name=doc.get("name", path.name),
            info=doc.get("info", {}),
        )  # fmt: skip

    @classmethod
    def from_artifact(cls, path: str | os.PathLike[str]) -> Detector:
        """A detector from one bare model artifact, with the artifact's own threshold.

        Confidence: a classifier's score is already P(attack) (uncalibrated); an anomaly model's score is
        mapped to 0.5 at the threshold, rising towards 1 (``s / (s + t)`` on shifted scores): a rank, not a
        probability. Build a detector (``iotguard detect --baseline``) for calibrated values.
        """
        from iotguard.models.artifact import load_artifact

        art = load_artifact(path)
        if art.kind == "classifier":
            comp = Component(
                "classifier",
                art,
                logit(float(art.threshold)),
                Calibration("logistic", np.zeros(0), np.zeros(0)),
            )
            return cls(comp, None, name=art.name)
        t = float(art.threshold)
        span = max(abs(t), 1e-6)
        xs = t + span * np.array([-1e6, -1.0, 0.0, 1.0, 3.0, 1e6])
        ys = np.array([0.0, 0.25, 0.5, 0.75, 0.9, 1.0])
        comp = Component("anomaly", art, t, Calibration("benign_cdf", xs, ys))
        return cls(None, comp, name=art.name)


_MIN_WEIGHT = 5e-7
"""Smaller score drops are float32 noise of the models' outputs, not an explanation."""


def _weight(w: float) -> float:
    return float(np.round(w, 6))


def _decision(comp: Component, x: np.ndarray) -> np.ndarray:
    pred = comp.artifact.predict_array(x)
    if comp.role == "classifier":
        return classifier_logit(pred, comp.artifact)
    return np.asarray(pred.score, dtype=np.float64)


_P_FLOOR = 1e-12
LOGIT_CEILING = float(np.log1p(-_P_FLOOR) - np.log(_P_FLOOR))
"""The largest classifier decision score (P(benign) at its floor): ties there cannot be separated."""


def logit(p_attack: float | np.ndarray) -> Any:
    """log(p / (1 - p)), with p clipped to [1e-12, 1 - 1e-12]."""
    p = np.clip(np.asarray(p_attack, dtype=np.float64), _P_FLOOR, 1.0 - _P_FLOOR)
    out = np.log(p) - np.log1p(-p)
    return float(out) if out.ndim == 0 else out


def classifier_logit(pred: Any, artifact: Any) -> np.ndarray:
    """A classifier's log-odds of attack, from P(benign) where the artifact gives class probabilities.

    ``1 - P(benign)`` in float32 rounds to 1.0 for every P(benign) below 6e-8, which leaves no room for a
    threshold; log-odds computed from P(benign) itself keep that resolution."""
    proba = getattr(pred, "proba", None)
    benign = getattr(artifact, "benign_index", None)
    if proba is not None and benign is not None:
        pb = np.clip(np.asarray(proba[:, benign], dtype=np.float64), _P_FLOOR, 1.0 - _P_FLOOR)
        return np.log1p(-pb) - np.log(pb)
    return logit(np.asarray(pred.score, dtype=np.float64))


def _attack_family(pred: Any, artifact: Any) -> np.ndarray:
    """The most probable attack family per row (never ``Benign``); ``Attack`` for binary classifiers."""
    n = len(pred.score)
    classes = getattr(pred, "classes", None) or getattr(artifact, "classes", None)
    proba = getattr(pred, "proba", None)
    benign = getattr(artifact, "benign_index", None)
    if proba is None or classes is None or benign is None or len(classes) <= 2:
        attack = [c for c in (classes or []) if c != "Benign"]
        return np.full(n, attack[0] if len(attack) == 1 else "Attack", dtype=object)
    p = np.array(proba, dtype=np.float64, copy=True)
    p[:, benign] = -1.0
    return np.asarray(classes, dtype=object)[p.argmax(axis=1)]


def _unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(a, axis=0, return_inverse=True)``, fast: each row is hashed to 64 bits (multiply and
    xor-shift over its words, so high and low bits both mix) and the hashes are sorted. Sorting the rows
    themselves as records held the interpreter lock for seconds on a flood's 65,000 rows, stalling every
    other thread of the sensor."""
    a = np.ascontiguousarray(a)
    words = a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64).astype(np.uint64, copy=False)
    h = np.full(len(a), 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h ^= words[:, j]
            h *= prime
            h ^= h >> np.uint64(31)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    return a[first], inverse.reshape(-1)


def benign_quantiles(scores: np.ndarray) -> np.ndarray:
    """Benign validation scores at :data:`_Q_PROBS` (what a component keeps for re-targeting its FPR)."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise ConfigError("no benign validation scores", expected="benign flows to set thresholds on")
    return np.quantile(scores, _Q_PROBS, method="higher")


def _float(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


def _floats(a: np.ndarray) -> list[float | None]:
    return [_float(float(v)) for v in np.asarray(a).tolist()]


def _copy_artifact(src: Path, dest: Path) -> None:
    """Copy a component's model artifact into a detector directory: a directory as it is, a zip (which
    ``model.path`` and ``--model`` accept as the base of a site baseline) unpacked. Only the artifact's own
    files are taken from a zip, by name, never a path from inside it."""
    if src.is_dir():
        shutil.copytree(src, dest)
        return
    import zipfile

    from iotguard.models.artifact import MANIFEST, ONNX_FILE

    dest.mkdir()
    try:
        with zipfile.ZipFile(src) as zf:
            for name in (MANIFEST, ONNX_FILE):
                (dest / name).write_bytes(zf.read(name))
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ArtifactError(f"cannot copy the model artifact ({exc})", where=str(src)) from exc
