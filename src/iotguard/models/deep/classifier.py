"""scikit-learn style wrapper around the torch classifier networks (MLP, CNN, LSTM, CNN-LSTM)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from iotguard.core.errors import DataError, FeatureMismatchError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.models.deep.export import ClassifierHead, export_onnx
from iotguard.models.deep.nets import ARCHITECTURES
from iotguard.models.deep.train import (
    History,
    TrainConfig,
    batched,
    fit_network,
    torch_session,
    validation_split,
)
from iotguard.models.deep.windows import DEFAULT_K

BENIGN_NAMES = ("Benign", "BENIGN", "benign", "normal", "Normal", "0", "False")
"""Class names taken as the benign class when none is given (binary 0/1 labels give ``"0"``)."""

WINDOW_ARCHITECTURES = frozenset({"lstm_window", "cnn_lstm_window"})

LEARNING_RATES = {
    "mlp": 1e-3,
    "cnn": 1e-3,
    "lstm": 3e-3,
    "cnn_lstm": 3e-3,
    "lstm_window": 3e-3,
    "cnn_lstm_window": 3e-3,
}
"""Adam's default rate for each architecture: the recurrent ones learn too slowly at 1e-3 (chosen on a
validation split of KDDTrain+, never on a test set)."""


class DeepClassifier:
    """A torch classifier with the scikit-learn interface and the iotguard model contract.

    ``fit(X, y)`` takes float32 preprocessed rows ``[N, F]`` (``[N, k, F]`` for the window architectures, see
    :mod:`.windows`; ``k`` is the window length) and labels of any type; ``classes_`` holds them as strings.
    ``attack_score`` is the probability of the attack classes (``1 - P(benign)``). Extra keyword arguments
    go to the network (see :mod:`.nets`), for example ``hidden=(128, 64)`` for the MLP.
    """

    kind = "classifier"

    def __init__(
        self,
        arch: str = "mlp",
        *,
        task: Literal["binary", "multiclass"] = "binary",
        seed: int = 0,
        epochs: int = 30,
        batch_size: int = 512,
        lr: float | None = None,
        weight_decay: float = 1e-5,
        patience: int = 4,
        val_fraction: float = 0.1,
        class_weight: Literal["balanced"] | None = "balanced",
        benign_class: str | None = None,
        threads: int | None = None,
        k: int = DEFAULT_K,
        **net_params: Any,
    ) -> None:
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")
        self.arch = arch
        self.task = task
        self.seed = seed
        self.class_weight = class_weight
        self.benign_class = benign_class
        self.k = k
        self.net_params = net_params
        self.config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr if lr is not None else LEARNING_RATES[arch],
            weight_decay=weight_decay,
            patience=patience,
            val_fraction=val_fraction,
            seed=seed,
            threads=threads,
        )

    @property
    def window(self) -> bool:
        return self.arch in WINDOW_ARCHITECTURES

    # -- training ---------------------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        progress: Progress = NO_PROGRESS,
        **_: Any,
    ) -> DeepClassifier:
        """Train on ``(X, y)``; early stopping watches ``validation`` (rows held out of the training data) or,
        when None, a stratified ``val_fraction`` of ``X``."""
        X = self._check_input(X, fitting=True)
        labels = np.asarray(y).astype(str)
        if len(labels) != len(X):
            raise DataError(f"X has {len(X)} rows but y has {len(labels)}", expected="one label per row")
        self.classes_, codes = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(
                f"training labels hold one class only ({self.classes_[0]!r})", expected="2 or more"
            )
        self.benign_index_ = _benign_index(self.classes_, self.benign_class)
        self.benign_class_ = str(self.classes_[self.benign_index_])
        self.n_features_in_ = X.shape[-1]
        if self.window and X.shape[1] != self.k:
            raise DataError(f"windows hold {X.shape[1]} flows", expected=f"k={self.k} flows per window")

        X_t, y_t = torch.from_numpy(X), torch.from_numpy(codes.astype(np.int64))
        if validation is not None and len(validation[0]):
            X_val = self._check_input(validation[0], fitting=True)
            if X_val.shape[1:] != X.shape[1:]:
                raise FeatureMismatchError(
                    f"validation rows have shape {X_val.shape[1:]}",
                    expected=f"{X.shape[1:]} like the training rows",
                )
            val_labels = np.asarray(validation[1]).astype(str)
            known = np.isin(val_labels, self.classes_)  # a class absent from training cannot be scored
            X_fit, y_fit = X_t, y_t
            X_val_t = torch.from_numpy(X_val[known])
            y_val_t = torch.from_numpy(np.searchsorted(self.classes_, val_labels[known]).astype(np.int64))
            train_codes = codes
        else:
            train_rows, val_rows = validation_split(len(X), self.config.val_fraction, self.seed, strata=codes)
            X_fit, y_fit, X_val_t, y_val_t = X_t[train_rows], y_t[train_rows], X_t[val_rows], y_t[val_rows]
            train_codes = codes[train_rows]
        weight = None
        if self.class_weight == "balanced":
            counts = np.bincount(train_codes, minlength=len(self.classes_)).astype(np.float64)
            weight = torch.tensor(
                len(train_codes) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32
            )
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        with torch_session(self.seed, self.config.threads):
            net = ARCHITECTURES[self.arch](self.n_features_in_, len(self.classes_), **self.net_params)
            self.history_: History = fit_network(
                net,
                X_fit,
                y_fit,
                X_val_t,
                y_val_t,
                loss_fn,
                self.config,
                progress=progress,
                description=f"training {self.arch}",
            )
        self.head_ = ClassifierHead(net, len(self.classes_), self.benign_index_).eval()
        self.hyperparameters = {
            "architecture": self.arch,
            **({"k": self.k} if self.window else {}),
            **self.net_params,
            "parameters": sum(p.numel() for p in net.parameters()),
            "epochs": self.history_.epochs,
            "best_epoch": self.history_.best_epoch,
            "batch_size": self.history_.batch_size,
            "lr": self.config.lr,
            "class_weight": self.class_weight,
        }
        return self

    # -- scoring ----------------------------------------------------------------------------------------
    def _outputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = self._check_input(X)
        if len(X) == 0:
            return np.zeros(0, np.float32), np.zeros((0, len(self.classes_)), np.float32)
        with torch_session(self.seed, self.config.threads):
            score, proba = batched(self.head_, torch.from_numpy(X))
        return score.numpy(), proba.numpy()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(X)[1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        return self._outputs(X)[0]

    def to_onnx(self, n_features: int | None = None) -> Any:
        self._check_fitted()
        n_features = n_features or self.n_features_in_
        if n_features != self.n_features_in_:
            raise FeatureMismatchError(
                f"asked for an ONNX graph over {n_features} features", expected=f"{self.n_features_in_}"
            )
        shape = (1, self.k, n_features) if self.window else (1, n_features)
        return export_onnx(self.head_, shape, ["score", "proba"])

    # -- checks -----------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit first")

    def _check_input(self, X: np.ndarray, *, fitting: bool = False) -> np.ndarray:
        if not fitting:
            self._check_fitted()
        return check_array(X, 3 if self.window else 2, None if fitting else self.n_features_in_)


def check_array(X: Any, ndim: int, n_features: int | None) -> np.ndarray:
    """``X`` as a C-contiguous float32 array of ``ndim`` dimensions with ``n_features`` columns, all finite."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != ndim:
        shape = "[N, F]" if ndim == 2 else "[N, k, F] (windows of flows)"
        raise DataError(f"input has shape {X.shape}", expected=f"an array of shape {shape}")
    if n_features is not None and X.shape[-1] != n_features:
        raise FeatureMismatchError(
            f"input has {X.shape[-1]} features but the model was trained on {n_features}",
            expected=f"{n_features} preprocessed feature columns",
        )
    if not np.isfinite(X).all():
        raise DataError("input holds NaN or infinite values", expected="finite preprocessed features")
    return X


def _benign_index(classes: np.ndarray, benign: str | None) -> int:
    names = [str(c) for c in classes]
    for candidate in [benign] if benign is not None else BENIGN_NAMES:
        if candidate in names:
            return names.index(candidate)
    raise DataError(
        f"no benign class among the labels {names}",
        expected=f"one of {', '.join(BENIGN_NAMES)} or benign_class= naming it",
    )
