"""Detection metrics from predictions: binary (attack vs benign), multiclass (family) and per category."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from iotguard.core.schema import BENIGN


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def binary_metrics(truth: np.ndarray, flagged: np.ndarray, score: np.ndarray | None = None) -> dict[str, Any]:
    """Attack is the positive class. ``fpr``: share of benign rows flagged; ``roc_auc`` needs both classes."""
    truth = np.asarray(truth, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    tp = int(np.sum(truth & flagged))
    fp = int(np.sum(~truth & flagged))
    fn = int(np.sum(truth & ~flagged))
    tn = int(np.sum(~truth & ~flagged))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    # F1 of the benign class, for the macro average over both classes
    npv, tnr = _ratio(tn, tn + fn), _ratio(tn, tn + fp)
    f1_benign = _ratio(2 * npv * tnr, npv + tnr)
    roc_auc = None
    if score is not None and 0 < truth.sum() < len(truth):
        from sklearn.metrics import roc_auc_score

        roc_auc = float(roc_auc_score(truth, np.asarray(score, dtype=np.float64)))
    return {
        "accuracy": _ratio(tp + tn, len(truth)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "f1_macro": (f1 + f1_benign) / 2.0,
        "fpr": _ratio(fp, fp + tn),
        "roc_auc": roc_auc,
        "confusion_matrix": {"labels": [BENIGN, "Attack"], "matrix": [[tn, fp], [fn, tp]]},
    }


def multiclass_metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 over every class seen in truth or prediction, per-class rows."""
    truth = np.asarray(truth, dtype=object).astype(str)
    predicted = np.asarray(predicted, dtype=object).astype(str)
    labels = sorted(set(truth) | set(predicted), key=lambda c: (c != BENIGN, c))
    index = {c: i for i, c in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[c] for c in truth], [index[c] for c in predicted]), 1)
    rows = []
    for i, name in enumerate(labels):
        tp = matrix[i, i]
        support = int(matrix[i].sum())
        precision = _ratio(tp, matrix[:, i].sum())
        recall = _ratio(tp, support)
        rows.append(
            {
                "class": name,
                "support": support,
                "precision": precision,
                "recall": recall,
                "f1": _ratio(2 * precision * recall, precision + recall),
            }
        )
    return {
        "accuracy": _ratio(np.trace(matrix), matrix.sum()),
        "precision": float(np.mean([r["precision"] for r in rows])),
        "recall": float(np.mean([r["recall"] for r in rows])),
        "f1": float(np.mean([r["f1"] for r in rows])),
        "per_class": rows,
        "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
    }


def per_category(category: Sequence[str], flagged: np.ndarray) -> list[dict[str, Any]]:
    """For each true category: rows and the share flagged as attack (detection rate; for benign, the FPR)."""
    category = np.asarray(category, dtype=object).astype(str)
    flagged = np.asarray(flagged, dtype=bool)
    out = []
    for name in sorted(set(category), key=lambda c: (c != BENIGN, c)):
        rows = category == name
        out.append(
            {"category": name, "rows": int(rows.sum()), "flagged": _ratio(flagged[rows].sum(), rows.sum())}
        )
    return out
