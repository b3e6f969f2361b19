"""What scoring a batch of flows returns, the same from the in-memory pipeline and from an artifact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iotguard.core.schema import BENIGN


@dataclass
class Prediction:
    score: np.ndarray
    """Attack score per row (float32): 1 - P(benign) for classifiers, the raw anomaly score otherwise."""
    is_attack: np.ndarray
    """``score >= threshold`` (bool)."""
    family: np.ndarray | None = None
    """Multiclass models: the predicted family; ``"Benign"`` exactly where ``is_attack`` is false, otherwise the
    most probable attack family (so the family never contradicts the thresholded verdict)."""
    proba: np.ndarray | None = None
    """Classifiers: class probabilities [N, n_classes] in ``classes`` order."""
    classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.score)

    def to_frame(self) -> Any:
        import pandas as pd

        data: dict[str, Any] = {"score": self.score, "is_attack": self.is_attack.astype(np.int8)}
        if self.family is not None:
            data["family"] = self.family
        if self.proba is not None and self.classes is not None:
            for j, name in enumerate(self.classes):
                data[f"proba_{name}"] = self.proba[:, j]
        return pd.DataFrame(data)


def make_prediction(
    score: np.ndarray,
    threshold: float,
    proba: np.ndarray | None,
    classes: list[str] | None,
    benign_index: int | None,
    multiclass: bool,
) -> Prediction:
    score = np.asarray(score, dtype=np.float32).reshape(-1)
    is_attack = score >= np.float32(threshold)
    family = None
    if multiclass and proba is not None and classes is not None and benign_index is not None:
        attack_proba = proba.copy()
        attack_proba[:, benign_index] = -1.0
        names = np.asarray(classes, dtype=object)
        family = np.where(is_attack, names[attack_proba.argmax(axis=1)], classes[benign_index])
    return Prediction(score=score, is_attack=is_attack, family=family, proba=proba, classes=classes)


__all__ = ["BENIGN", "Prediction", "make_prediction"]
