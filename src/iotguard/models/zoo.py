"""Importing this module registers every model: the classical ones always, the deep ones when torch is there."""

from __future__ import annotations

import importlib
import logging

from iotguard.models import (
    classical,  # noqa: F401  (registers lr, svm, rbf-svm, rf, lgbm, kmeans, ...)
    neighbors,  # noqa: F401  (registers knn)
    neighbors_window,  # noqa: F401  (registers knn-window)
)

log = logging.getLogger(__name__)

try:
    importlib.import_module("iotguard.models.deep")  # registers the torch models
except ModuleNotFoundError as exc:  # a gateway install without torch, or before the deep models land
    if exc.name not in ("torch", "iotguard.models.deep"):
        raise
    log.debug("deep models unavailable: %s", exc)
