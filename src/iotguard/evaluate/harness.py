"""Scoring trained models on test sets, through the artifact the sensor would load.

:func:`evaluate_model` scores one model on one test table. :func:`run_experiments` trains every requested
model on every experiment of a protocol (:mod:`iotguard.evaluate.protocols`) and returns one result per
(dataset, test split, task, model), the rows of ``results.json``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotguard.core.errors import ConfigError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.evaluate.latency import artifact_rows, batch_throughput, native_latency, single_row_latency
from iotguard.evaluate.metrics import binary_metrics, multiclass_metrics, per_category
from iotguard.evaluate.protocols import Experiment
from iotguard.models.artifact import Artifact, load_artifact, save_artifact
from iotguard.models.base import get
from iotguard.models.pipeline import DEFAULT_TARGET_FPR, TrainedPipeline, train_model

log = logging.getLogger(__name__)


def evaluate_model(
    model: TrainedPipeline | Artifact,
    X: pd.DataFrame,
    *,
    is_attack: Any,
    category: Any = None,
    latency_calls: int = 1000,
    throughput: bool = True,
    native: bool = False,
    progress: Progress = NO_PROGRESS,
) -> dict[str, Any]:
    """Metrics of ``model`` on test table ``X`` with truth ``is_attack`` (0/1) and ``category`` (families).

    A :class:`TrainedPipeline` is first written as an artifact and loaded back, so that predictions,
    latency and throughput all come from the path the sensor uses (``predict_array``, one onnxruntime
    thread). For multiclass models ``accuracy``/``precision``/``recall``/``f1`` are over families (macro
    averages) and the attack-vs-benign numbers are under ``binary``; ``fpr`` and ``roc_auc`` are always
    attack-vs-benign. ``native``: also time the model's own in-memory predict on one preprocessed row.
    """
    with tempfile.TemporaryDirectory(prefix="iotguard-eval-") as tmp:
        if isinstance(model, TrainedPipeline):
            path = save_artifact(model, Path(tmp) / "model")
            artifact = load_artifact(path)
        else:
            artifact = model
        model_bytes = _artifact_bytes(artifact.path)
        with progress.task(f"scoring {len(X):,} rows"):
            prediction = artifact.predict(X)
        truth = np.asarray(is_attack).astype(bool)
        binary = binary_metrics(truth, prediction.is_attack, prediction.score)
        result: dict[str, Any] = {}
        if artifact.task == "multiclass" and category is not None:
            multi = multiclass_metrics(np.asarray(category).astype(str), prediction.family)
            result |= {k: multi[k] for k in ("accuracy", "precision", "recall", "f1")}
            result |= {
                "f1_macro": multi["f1"],
                "fpr": binary["fpr"],
                "roc_auc": binary["roc_auc"],
                "per_class": multi["per_class"],
                "confusion_matrix": multi["confusion_matrix"],
                "binary": {
                    k: binary[k] for k in ("accuracy", "precision", "recall", "f1", "confusion_matrix")
                },
            }
        else:
            result |= binary
        if category is not None:
            result["per_category"] = per_category(np.asarray(category).astype(str), prediction.is_attack)
        result |= {
            "threshold": artifact.threshold,
            "test_rows": len(X),
            "test_attack_rows": int(truth.sum()),
            "model_bytes": model_bytes,
        }
        rows = artifact_rows(artifact, X.iloc[: max(latency_calls, 1000)])
        if latency_calls:
            with progress.task(f"latency ({latency_calls} one-row calls)"):
                result |= single_row_latency(artifact, rows, calls=latency_calls)
        if throughput:
            with progress.task("batch throughput"):
                result["throughput_per_s"] = batch_throughput(
                    artifact, artifact_rows(artifact, X.iloc[:50_000])
                )
        if native and isinstance(model, TrainedPipeline) and latency_calls:
            result |= _native(model, X, latency_calls)
    return result


def _artifact_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


@dataclass
class Outcome:
    results: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def run_experiments(
    experiments: Sequence[Experiment],
    models: Sequence[str],
    *,
    task: str = "binary",
    seed: int = 0,
    target_fpr: float = DEFAULT_TARGET_FPR,
    fpr_confidence: float | None = None,
    latency_calls: int = 1000,
    native: bool = False,
    progress: Progress = NO_PROGRESS,
    keep_models: Path | None = None,
) -> Outcome:
    """Train each model on each experiment's training set and score it on the experiment's test sets
    (``target_fpr`` and ``fpr_confidence``: every model's threshold rule, see :func:`train_model`)."""
    specs = [get(name) for name in models]
    if task not in ("binary", "multiclass"):
        raise ConfigError(f"unknown task {task!r}", expected="binary or multiclass")
    outcome = Outcome()
    total = sum(len(specs) for _ in experiments)
    with progress.task("evaluating", total=total) as overall:
        for exp in experiments:
            exp_task = "binary" if exp.binary_only else task
            for spec in specs:
                overall.update(description=f"{exp.dataset} {exp.train_split}: {spec.name}")
                if spec.kind == "anomaly" and exp_task == "multiclass":
                    outcome.skipped.append(
                        {
                            "dataset": exp.dataset,
                            "model": spec.name,
                            "task": exp_task,
                            "reason": "anomaly detectors are binary only",
                        }
                    )
                    overall.advance()
                    continue
                window = spec.input == "window"
                if window and (exp.train.host is None or exp.train.time is None):
                    outcome.skipped.append(
                        {
                            "dataset": exp.dataset,
                            "model": spec.name,
                            "task": exp_task,
                            "reason": "window models need each flow's src_ip and time",
                        }
                    )
                    overall.advance()
                    continue
                labels = exp.train.category if exp_task == "multiclass" else exp.train.y
                pipeline = train_model(
                    spec.name,
                    exp.train.X,
                    labels,
                    task=exp_task,  # type: ignore[arg-type]
                    categorical=exp.train.categorical,
                    seed=seed,
                    progress=progress,
                    target_fpr=target_fpr,
                    fpr_confidence=fpr_confidence,
                    dataset=f"{exp.dataset}:{exp.train_split}",
                    keys=exp.train.frame if window else None,
                )
                with tempfile.TemporaryDirectory(prefix="iotguard-eval-") as tmp:
                    path = save_artifact(pipeline, Path(tmp) / "model")
                    artifact = load_artifact(path)
                    speed: dict[str, Any] | None = None
                    for split_name, test in exp.tests:
                        started = time.perf_counter()
                        metrics = evaluate_model(
                            artifact,
                            window_table(test) if window else test.X,
                            is_attack=test.y,
                            category=test.category,
                            latency_calls=0 if speed else latency_calls,
                            throughput=speed is None,
                            progress=progress,
                        )
                        if speed is None:
                            speed = {
                                k: v for k, v in metrics.items() if k.startswith(("latency", "throughput"))
                            }
                            if native and not window:
                                speed |= _native(pipeline, test.X, latency_calls)
                        metrics |= speed
                        row = _row(exp, split_name, exp_task, spec, pipeline, metrics, test)
                        row["eval_seconds"] = round(time.perf_counter() - started, 3)
                        outcome.results.append(row)
                    if keep_models is not None:
                        name = f"{exp.dataset}-{exp.train_split}-{exp_task}-{spec.name}".replace(
                            ":", "_"
                        ).replace("/", "_")
                        save_artifact(pipeline, keep_models / name, metrics=metrics, overwrite=True)
                overall.advance()
    return outcome


def window_table(data: Any) -> pd.DataFrame:
    """A dataset's features plus the columns a window model orders flows by (``src_ip``, times)."""
    keys = [
        c for c in ("src_ip", "ts_first", "ts_last") if c in data.frame.columns and c not in data.features
    ]
    return data.frame[list(data.features) + keys]


def _native(pipeline: TrainedPipeline, X: pd.DataFrame, calls: int) -> dict[str, Any]:
    """The model's own in-memory predict (scikit-learn) on one already preprocessed row."""
    matrix = pipeline.transform(X.iloc[: max(calls, 1000)])
    own = pipeline.model.predict_proba if pipeline.kind == "classifier" else pipeline.model.attack_score  # type: ignore[attr-defined]
    return native_latency(own, matrix, calls=calls)


def _row(
    exp: Experiment,
    split: str,
    task: str,
    spec: Any,
    pipeline: TrainedPipeline,
    metrics: dict[str, Any],
    test: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dataset": exp.dataset,
        "protocol": exp.protocol,
        "train_split": exp.train_split,
        "split": split,
        "task": task,
        "model": spec.name,
        "model_title": spec.title,
        "kind": spec.kind,
        "family": spec.family,
    }
    for key in ("accuracy", "precision", "recall", "f1", "f1_macro", "fpr", "roc_auc"):
        row[key] = metrics.get(key)
    for key in ("latency_p50_us", "latency_p99_us", "latency_mean_us", "throughput_per_s"):
        row[key] = metrics.get(key)
    row["train_seconds"] = pipeline.training["seconds"]
    row["train_cpu_seconds"] = pipeline.training.get("cpu_seconds")
    row["model_bytes"] = metrics["model_bytes"]
    row["threshold"] = pipeline.threshold
    row["threshold_rule"] = pipeline.threshold_info
    row["train_rows"] = pipeline.training["rows"]
    row["test_rows"] = metrics["test_rows"]
    row["test_attack_rows"] = metrics["test_attack_rows"]
    row["unseen_family"] = exp.unseen_family
    if exp.unseen_family is not None:
        unseen = [c for c in metrics.get("per_category", []) if c["category"] == exp.unseen_family]
        row["unseen_detection_rate"] = unseen[0]["flagged"] if unseen else None
    row["hyperparameters"] = pipeline.training.get("hyperparameters", {})
    row["protocol_notes"] = exp.notes
    for key in ("native_latency_p50_us", "native_latency_p99_us", "native_latency_mean_us"):
        if key in metrics:
            row[key] = metrics[key]
    for key in ("per_category", "per_class", "confusion_matrix", "binary"):
        if key in metrics:
            row[key] = metrics[key]
    return row


__all__ = ["BENIGN", "Outcome", "evaluate_model", "run_experiments"]
