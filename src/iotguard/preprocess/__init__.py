"""Preprocessing: scikit-learn transformers fitted on training data only (clean, encode, scale), exportable
as JSON parameters and as an ONNX graph.

``TablePreprocessor`` (in :mod:`iotguard.preprocess.table`) is the one entry point; ``deduplicate`` runs
before a split. Submodules are imported lazily so that the light ones (``columns``) stay free of scikit-learn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Deduplicated", "TablePreprocessor", "deduplicate"]


def __getattr__(name: str) -> Any:
    if name == "TablePreprocessor":
        from iotguard.preprocess.table import TablePreprocessor

        return TablePreprocessor
    if name in ("deduplicate", "Deduplicated"):
        from iotguard.preprocess import dedup

        return getattr(dedup, name)
    raise AttributeError(name)
