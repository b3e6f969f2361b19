"""Metrics on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pytest

from iotguard.evaluate.metrics import binary_metrics, multiclass_metrics, per_category


def test_binary_metrics_by_hand():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    flagged = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], bool)
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.75, 0.2, 0.3, 0.1, 0.0, 0.05])
    m = binary_metrics(truth, flagged, score)
    assert m["accuracy"] == 0.8
    assert m["precision"] == 0.75 and m["recall"] == 0.75 and m["f1"] == 0.75
    assert m["fpr"] == pytest.approx(1 / 6)
    assert m["roc_auc"] == pytest.approx(19.5 / 24)  # ordered attack/benign pairs, a tie counting half
    assert m["confusion_matrix"] == {"labels": ["Benign", "Attack"], "matrix": [[5, 1], [1, 3]]}
    assert binary_metrics(np.zeros(3, bool), np.zeros(3, bool), np.zeros(3))["roc_auc"] is None


def test_multiclass_metrics_by_hand():
    truth = ["Benign", "Benign", "DoS", "DoS", "Probe"]
    pred = ["Benign", "DoS", "DoS", "DoS", "Benign"]
    m = multiclass_metrics(truth, pred)
    assert m["accuracy"] == 0.6
    rows = {r["class"]: r for r in m["per_class"]}
    assert rows["DoS"]["precision"] == pytest.approx(2 / 3) and rows["DoS"]["recall"] == 1.0
    assert rows["Probe"]["f1"] == 0.0 and rows["Probe"]["support"] == 1
    assert m["f1"] == pytest.approx(np.mean([0.5, 0.8, 0.0]))
    assert m["confusion_matrix"]["labels"] == ["Benign", "DoS", "Probe"]
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_per_category_detection_rates():
    rows = per_category(["Benign", "DoS", "DoS", "R2L"], np.array([True, True, False, False]))
    assert rows == [
        {"category": "Benign", "rows": 1, "flagged": 1.0},
        {"category": "DoS", "rows": 2, "flagged": 0.5},
        {"category": "R2L", "rows": 1, "flagged": 0.0},
    ]
