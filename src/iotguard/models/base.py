"""The contract every model in the zoo follows, and the registry that names them.

Every model follows scikit-learn: ``fit(X, y)`` on a float32 matrix that the preprocessing stage produced.
Classifiers also have ``predict`` and ``predict_proba``; anomaly models are fitted on benign rows only
(``y`` ignored, or used only to select benign rows). On top of that each model has

* ``attack_score(X) -> np.ndarray`` (shape ``(n,)``): higher means more likely an attack. For a classifier it
  is ``1 - P(benign)``; for an anomaly model its raw anomaly score (the threshold lives in the artifact).
* ``to_onnx(n_features) -> onnx.ModelProto``: a graph with one float32 input ``x`` of shape ``[N, n_features]``
  (``[N, k, n_features]`` for window models) and outputs ``score`` (``[N]``, equal to ``attack_score``) and,
  for classifiers, ``proba`` (``[N, n_classes]``, columns in ``classes_`` order). The artifact fuses the
  preprocessing graph in front of it.

``classes_`` (classifiers) lists class names as strings; index 0 need not be benign; ``benign_class`` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

ModelKind = Literal["classifier", "anomaly"]
TaskName = Literal["binary", "multiclass"]


@runtime_checkable
class Model(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> Model: ...

    def attack_score(self, X: np.ndarray) -> np.ndarray: ...

    def to_onnx(self, n_features: int) -> Any: ...


@dataclass(frozen=True)
class ModelSpec:
    name: str
    """Registry key used on the command line: ``lr``, ``svm``, ``rf``, ``cnn``, ``autoencoder`` ..."""
    title: str
    """Human name for tables: ``Random forest``."""
    kind: ModelKind
    family: Literal["classical", "deep"]
    build: Callable[..., Model]
    """``build(task=..., seed=..., **params)`` returns an unfitted model."""
    input: Literal["record", "window"] = "record"
    """``window``: the model reads the k most recent flows of the same source host, shape [N, k, F]."""
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def registry() -> dict[str, ModelSpec]:
    """All registered models, by name (importing the zoo modules registers them)."""
    from iotguard.models import zoo  # noqa: F401  (registers classical and deep models)

    return dict(_REGISTRY)


def get(name: str) -> ModelSpec:
    from iotguard.core.errors import ConfigError

    models = registry()
    if name not in models:
        raise ConfigError(f"unknown model {name!r}", expected="one of " + ", ".join(sorted(models)))
    return models[name]
