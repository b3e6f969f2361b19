"""Removing duplicate rows before a train/test split, so that no test row is a copy of a training row."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deduplicated:
    frame: pd.DataFrame
    """The table without repeated rows (first occurrence kept, index reset)."""
    removed: int
    """How many rows were dropped."""
    conflicting: int
    """Rows left whose features equal another row's but whose label differs (no split can separate them)."""


def deduplicate(
    frame: pd.DataFrame, features: Sequence[str] | None = None, label: str | None = "label"
) -> Deduplicated:
    """Drop rows that repeat an earlier row's ``features`` and ``label`` (all columns if ``features`` is None).

    A function, not a transformer: it changes which rows exist, so it runs once on the whole table before
    the split (duplicates spread over both sides make a test set partly a copy of the training set).
    """
    columns = list(features) if features is not None else list(frame.columns)
    key = columns + ([label] if label and label in frame.columns and label not in columns else [])
    keep = ~frame.duplicated(subset=key, keep="first")
    out = frame.loc[keep.to_numpy()].reset_index(drop=True)
    conflicting = int(out.duplicated(subset=columns, keep=False).sum()) if label in frame.columns else 0
    removed = len(frame) - len(out)
    log.info("deduplicate: %d of %d rows removed, %d conflicting", removed, len(frame), conflicting)
    return Deduplicated(out, removed, conflicting)
