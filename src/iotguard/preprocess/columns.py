"""Which columns of a table are features, and turning them into arrays with errors that name the cell.

Light on purpose (numpy and pandas only): the artifact runtime on a sensor uses it without scikit-learn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from iotguard.core.errors import DataError, FeatureMismatchError, location
from iotguard.core.schema import EXTRA_FEATURES, FLOW_FEATURES, IDENTITY_COLUMNS, PARTIAL_COLUMN

IDENTIFIER_COLUMNS: frozenset[str] = frozenset(
    {c for c in IDENTITY_COLUMNS if c not in ("dst_port", "protocol")}
    | {
        PARTIAL_COLUMN,
        # dataset spellings of flow ids, addresses, source ports and timestamps
        "id",
        "uid",
        "flow id",
        "src ip",
        "dst ip",
        "source ip",
        "destination ip",
        "src port",
        "source port",
        "timestamp",
        "ts",
        "id.orig_h",
        "id.orig_p",
        "id.resp_h",
        "srcip",
        "dstip",
        "sport",
        "stime",
        "ltime",
        "scenario",
        "host",
    }
)
"""Identity columns (compared case-insensitively): never features unless asked for, because a model that
learns addresses, ports chosen by the OS or timestamps learns the capture, not the attack."""

LABEL_LIKE_COLUMNS: frozenset[str] = frozenset(
    {"label", "category", "is_attack", "attack_cat", "difficulty", "detailed-label", "attempted category"}
)
"""Ground truth in any dataset's spelling: never a feature (it would leak the answer)."""

KNOWN_NUMERIC: frozenset[str] = frozenset(FLOW_FEATURES) | frozenset(EXTRA_FEATURES)


def is_identifier(name: str) -> bool:
    return name.strip().lower() in IDENTIFIER_COLUMNS


def is_label(name: str) -> bool:
    return name.strip().lower() in LABEL_LIKE_COLUMNS


def select_features(
    frame: pd.DataFrame, *, keep: Iterable[str] = (), drop_identifiers: bool = True
) -> tuple[list[str], list[str]]:
    """Split a table's columns into ``(features, ignored)``: labels are always ignored, identifiers unless kept."""
    keep = set(keep)
    features, ignored = [], []
    for column in frame.columns:
        name = str(column)
        if is_label(name) or (drop_identifiers and is_identifier(name) and name not in keep):
            ignored.append(name)
        else:
            features.append(name)
    return features, ignored


def check_columns(
    columns: Iterable[str],
    required: Sequence[str],
    *,
    allowed: Iterable[str] = (),
    where: str | None = None,
) -> None:
    """Raise :class:`FeatureMismatchError` naming missing columns, and extra ones nobody knows."""
    present = [str(c) for c in columns]
    have = set(present)
    missing = [c for c in required if c not in have]
    extra = unknown_columns(present, required, allowed=allowed)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing column(s) " + _names(missing))
        if extra:
            parts.append(f"{len(extra)} unexpected column(s) " + _names(extra))
        raise FeatureMismatchError(
            "; ".join(parts),
            where=where,
            expected=f"the {len(required)} columns the model was trained on",
        )


def unknown_columns(
    columns: Iterable[str], required: Sequence[str], *, allowed: Iterable[str] = ()
) -> list[str]:
    """The columns that are neither the model's features nor identity, label or canonical flow columns: the
    ones :func:`check_columns` calls unexpected (a caller may drop them, saying so, instead)."""
    known = set(required) | set(allowed) | KNOWN_NUMERIC | set(IDENTITY_COLUMNS)
    return [
        str(c) for c in columns if str(c) not in known and not is_identifier(str(c)) and not is_label(str(c))
    ]


def names(names: Sequence[str], limit: int = 8) -> str:
    """``'a', 'b' and 3 more``: column names for a one-line message."""
    return _names(names, limit)


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def numeric_matrix(
    frame: pd.DataFrame, columns: Sequence[str], *, where: str | None = None, first_line: int | None = None
) -> np.ndarray:
    """``frame[columns]`` as a float32 matrix; text in a numeric column raises :class:`DataError` naming the cell.

    ``first_line``: the file line of the frame's first row (2 for a CSV with a header), so that errors point
    at the line a user can open. Infinity and missing values pass through (the preprocessing fills them).
    """
    out = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, column in enumerate(columns):
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            out[:, j] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        parsed = pd.to_numeric(series, errors="coerce")
        bad = parsed.isna() & series.notna() & ~series.astype("string").str.strip().isin(["", "nan", "NaN"])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            value = series.iloc[row]
            line = first_line + row if first_line is not None else None
            place = location(where, line=line, column=column) if where else location(column=column)
            if where is None:
                place = f"row {row} {place}"
            raise DataError(f"text {str(value)[:40]!r} in a numeric column", where=place, expected="a number")
        out[:, j] = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def category_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``frame[columns]`` as an object array of strings (missing -> ``""``), the form the ONNX graph takes."""
    out = np.empty((len(frame), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        out[:, j] = as_strings(frame[column].to_numpy(dtype=object))
    return out


def as_strings(values: np.ndarray) -> np.ndarray:
    """Category values as Python strings; missing values become the empty string."""
    values = np.asarray(values, dtype=object)
    if values.size <= 32:  # one flow on the sensor's path: a plain loop beats the vectorised calls
        out = np.empty(values.shape, dtype=object)
        out.ravel()[:] = [
            "" if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v)
            for v in values.ravel()
        ]
        return out
    missing = pd.isna(values)
    out = values.astype(str).astype(object)
    if missing.any():
        out[missing] = ""
    return out
