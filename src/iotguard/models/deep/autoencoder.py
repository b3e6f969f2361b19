"""Autoencoder anomaly detector: trained on benign rows only, scores by reconstruction error.

The threshold comes from benign training rows the network never trained on: ``threshold_`` is the
``1 - target_fpr`` quantile of their reconstruction errors, so on traffic like the benign training data about
``target_fpr`` of benign flows score above it. No attack row is needed to set it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from iotguard.core.errors import ConfigError, DataError, FeatureMismatchError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.models.deep.classifier import BENIGN_NAMES, check_array
from iotguard.models.deep.export import ReconstructionHead, export_onnx
from iotguard.models.deep.nets import Autoencoder
from iotguard.models.deep.train import (
    History,
    TrainConfig,
    batched,
    fit_network,
    torch_session,
    validation_split,
)


class DeepAutoencoder:
    """Reconstruction-error anomaly detector with the iotguard model contract (kind ``anomaly``).

    Sizes F-128-64-8-64-128-F: on a validation protocol built from KDDTrain+ alone (attack types held out of
    training as unseen), 3 of 4 seeds flagged the held-out probes at the 1 % FPR threshold, against 2 of 4 for
    F-64-32-8. Which side of the threshold such borderline attacks fall on depends on the seed: compare runs
    over several seeds (``benchmarks/deep.py`` does).

    ``fit(X, y)`` keeps the benign rows (``y`` of 0 / False / a benign class name; all rows when ``y`` is
    None), holds out ``holdout_fraction`` of them for early stopping and for the threshold, and trains on the
    rest. ``attack_score`` is the reconstruction error; ``predict`` compares it with ``threshold_``.
    """

    kind = "anomaly"

    def __init__(
        self,
        *,
        seed: int = 0,
        target_fpr: float = 0.01,
        hidden: tuple[int, ...] = (128, 64),
        code: int = 8,
        epochs: int = 40,
        batch_size: int = 512,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 5,
        holdout_fraction: float = 0.2,
        threads: int | None = None,
        task: str = "binary",
    ) -> None:
        if task != "binary":
            raise ConfigError(
                "the autoencoder is an anomaly detector",
                expected="task binary (attack or not), not multiclass",
            )
        if not 0 < target_fpr < 1:
            raise ConfigError(f"target FPR {target_fpr}", expected="a fraction in (0, 1)")
        self.seed = seed
        self.target_fpr = target_fpr
        self.hidden = tuple(hidden)
        self.code = code
        self.task = task
        self.config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            val_fraction=holdout_fraction,
            seed=seed,
            threads=threads,
        )

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray | None = None,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        progress: Progress = NO_PROGRESS,
        **_: Any,
    ) -> DeepAutoencoder:
        """Train on the benign rows of ``X``. The benign rows of ``validation`` (held out of training), or when
        None a ``holdout_fraction`` of the benign rows, drive early stopping and set ``threshold_``."""
        X = self._benign(X, y)
        self.n_features_in_ = X.shape[1]
        if validation is not None and len(validation[0]):
            holdout = self._benign(*validation)
            if holdout.shape[1] != X.shape[1]:
                raise FeatureMismatchError(
                    f"validation rows have {holdout.shape[1]} features", expected=f"{X.shape[1]}"
                )
            X_fit, X_hold = torch.from_numpy(X), torch.from_numpy(holdout)
        else:
            train_rows, holdout_rows = validation_split(len(X), self.config.val_fraction, self.seed)
            X_t = torch.from_numpy(X)
            X_fit, X_hold = X_t[train_rows], X_t[holdout_rows]
        if len(X_hold) == 0:
            raise DataError("no benign rows held out to set the threshold", expected="benign validation rows")
        with torch_session(self.seed, self.config.threads):
            net = Autoencoder(self.n_features_in_, self.hidden, self.code)
            self.history_: History = fit_network(
                net,
                X_fit,
                X_fit,
                X_hold,
                X_hold,
                nn.MSELoss(),
                self.config,
                progress=progress,
                description="training autoencoder",
            )
            self.head_ = ReconstructionHead(net).eval()
            holdout_scores = batched(self.head_, X_hold).numpy()
        self.threshold_ = float(np.quantile(holdout_scores, 1 - self.target_fpr, method="higher"))
        self.holdout_fpr_ = float((holdout_scores > self.threshold_).mean())
        self.hyperparameters = {
            "architecture": "autoencoder",
            "hidden": list(self.hidden),
            "code": self.code,
            "epochs": self.history_.epochs,
            "best_epoch": self.history_.best_epoch,
            "batch_size": self.history_.batch_size,
            "target_fpr": self.target_fpr,
            "benign_rows": len(X_fit),
            "holdout_rows": len(X_hold),
        }
        return self

    def _benign(self, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        X = check_array(X, 2, None)
        if y is not None:
            benign = benign_mask(y)
            if len(benign) != len(X):
                raise DataError(f"X has {len(X)} rows but y has {len(benign)}", expected="one label per row")
            X = X[benign]
        if len(X) < 10:
            raise DataError(f"only {len(X)} benign rows", expected="at least 10")
        return X

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        X = self._check_input(X)
        if len(X) == 0:
            return np.zeros(0, np.float32)
        with torch_session(self.seed, self.config.threads):
            return batched(self.head_, torch.from_numpy(X)).numpy()

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's convention (higher = more normal): the negated reconstruction error."""
        return -self.attack_score(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 where the reconstruction error exceeds ``threshold_`` (an attack), else 0."""
        return (self.attack_score(X) > self.threshold_).astype(np.int8)

    def to_onnx(self, n_features: int | None = None) -> Any:
        self._check_fitted()
        n_features = n_features or self.n_features_in_
        if n_features != self.n_features_in_:
            raise FeatureMismatchError(
                f"asked for an ONNX graph over {n_features} features", expected=f"{self.n_features_in_}"
            )
        return export_onnx(self.head_, (1, n_features), ["score"])

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise RuntimeError("DeepAutoencoder is not fitted yet; call fit first")

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return check_array(X, 2, self.n_features_in_)


def benign_mask(y: np.ndarray) -> np.ndarray:
    """True for benign labels: 0 / False for binary labels, a benign class name for string labels."""
    y = np.asarray(y)
    if y.dtype.kind in "biuf":
        return y == 0
    return np.isin(y.astype(str), BENIGN_NAMES)
