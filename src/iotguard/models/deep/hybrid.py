"""Hybrid detector: a supervised classifier for the attacks it was shown, an autoencoder for the ones it was not.

The classifier learns the labelled attack families; the autoencoder learns only benign traffic and flags
whatever it cannot reconstruct. Their verdicts are combined as one score in [0, 1]::

    score = max(P(attack), e / (e + t))

where ``e`` is the reconstruction error and ``t`` the autoencoder's threshold (its ``1 - target_fpr`` quantile
on benign rows held out of training), so ``e / (e + t)`` crosses 0.5 exactly where the autoencoder alone
would alert. A flow is an attack when either part says so. For several classes, ``proba`` keeps the
classifier's ranking of the attack families and gives them the combined attack mass.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from iotguard.core.errors import FeatureMismatchError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.models.deep.autoencoder import DeepAutoencoder
from iotguard.models.deep.classifier import DeepClassifier, check_array
from iotguard.models.deep.export import export_onnx
from iotguard.models.deep.train import batched, torch_session

_EPS = 1e-12


class HybridHead(nn.Module):
    def __init__(
        self, classifier: nn.Module, autoencoder: nn.Module, threshold: float, n_classes: int, benign: int
    ):
        super().__init__()
        self.classifier = classifier
        self.autoencoder = autoencoder
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float32))
        attack = torch.ones(n_classes)
        attack[benign] = 0.0
        self.register_buffer("attack_mask", attack)
        self.register_buffer("benign_onehot", 1.0 - attack)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        proba = torch.softmax(self.classifier(x), dim=1)
        attack_proba = proba * self.attack_mask
        p_attack = attack_proba.sum(dim=1)
        error = (x - self.autoencoder(x)).pow(2).mean(dim=1)
        anomaly = error / (error + self.threshold)
        score = torch.maximum(p_attack, anomaly)
        # Spread the combined attack mass over the attack classes in the classifier's proportions.
        shares = (attack_proba + _EPS * self.attack_mask) / (
            p_attack + _EPS * self.attack_mask.sum()
        ).unsqueeze(1)
        combined = shares * score.unsqueeze(1) + self.benign_onehot * (1.0 - score).unsqueeze(1)
        return score, combined


class DeepHybrid:
    """Classifier (``arch``) + autoencoder; the model contract of a classifier (``classes_``, ``proba``)."""

    kind = "classifier"

    def __init__(
        self,
        arch: str = "mlp",
        *,
        task: Literal["binary", "multiclass"] = "binary",
        seed: int = 0,
        target_fpr: float = 0.01,
        threads: int | None = None,
        classifier: dict[str, Any] | None = None,
        autoencoder: dict[str, Any] | None = None,
    ) -> None:
        self.arch = arch
        self.task = task
        self.seed = seed
        self.target_fpr = target_fpr
        self.classifier = DeepClassifier(arch, task=task, seed=seed, threads=threads, **(classifier or {}))
        self.autoencoder = DeepAutoencoder(
            seed=seed, target_fpr=target_fpr, threads=threads, **(autoencoder or {})
        )
        self.threads = threads

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        progress: Progress = NO_PROGRESS,
        **_: Any,
    ) -> DeepHybrid:
        self.classifier.fit(X, y, validation=validation, progress=progress)
        benign = np.asarray(y).astype(str) == self.classifier.benign_class_
        val_benign = None
        if validation is not None and len(validation[0]):
            val_labels = np.asarray(validation[1]).astype(str)
            val_benign = (validation[0], np.where(val_labels == self.classifier.benign_class_, 0, 1))
        self.autoencoder.fit(X, np.where(benign, 0, 1), validation=val_benign, progress=progress)
        self.classes_ = self.classifier.classes_
        self.benign_index_ = self.classifier.benign_index_
        self.benign_class_ = self.classifier.benign_class_
        self.n_features_in_ = self.classifier.n_features_in_
        self.head_ = HybridHead(
            self.classifier.head_.net,
            self.autoencoder.head_.net,
            self.autoencoder.threshold_,
            len(self.classes_),
            self.benign_index_,
        ).eval()
        self.hyperparameters = {
            "classifier": self.classifier.hyperparameters,
            "autoencoder": self.autoencoder.hyperparameters,
            "autoencoder_threshold": self.autoencoder.threshold_,
        }
        return self

    def _outputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "head_"):
            raise RuntimeError("DeepHybrid is not fitted yet; call fit first")
        X = check_array(X, 2, self.n_features_in_)
        if len(X) == 0:
            return np.zeros(0, np.float32), np.zeros((0, len(self.classes_)), np.float32)
        with torch_session(self.seed, self.threads):
            score, proba = batched(self.head_, torch.from_numpy(X))
        return score.numpy(), proba.numpy()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(X)[1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(X)[0]

    def to_onnx(self, n_features: int | None = None) -> Any:
        n_features = n_features or self.n_features_in_
        if n_features != self.n_features_in_:
            raise FeatureMismatchError(
                f"asked for an ONNX graph over {n_features} features", expected=f"{self.n_features_in_}"
            )
        return export_onnx(self.head_, (1, n_features), ["score", "proba"])
