"""Speed through the artifact, the path the sensor uses: one row at a time (latency) and in batches."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from iotguard.models.artifact import Artifact


def artifact_rows(artifact: Artifact, frame: pd.DataFrame) -> np.ndarray:
    """The frame's feature columns in the artifact's order, as ``predict_array`` takes them.

    For a window model, one window per row ([N, k, n]), built from the frame's ``src_ip`` and time columns
    as the sensor's :class:`~iotguard.models.deep.windows.WindowBuffer` would build them."""
    dtype = np.float32 if not artifact.categorical else object
    rows = frame[artifact.features].to_numpy(dtype=dtype)
    if artifact.window:
        from iotguard.models.deep.windows import RAW_PAD, window_index, window_keys

        index = window_index(*window_keys(frame), artifact.window)
        rows = rows[np.clip(index, 0, None)]
        pad = (index < 0)[..., None]
        categorical = np.isin(artifact.features, artifact.categorical)
        rows[pad & ~categorical] = RAW_PAD  # padding: NaN numeric values, empty categories
        if categorical.any():  # a float array cannot take "" even through an all-false mask
            rows[pad & categorical] = ""
    return rows


def _percentiles(times_ns: np.ndarray, prefix: str) -> dict[str, float]:
    us = times_ns / 1e3
    return {
        f"{prefix}_p50_us": float(np.percentile(us, 50)),
        f"{prefix}_p99_us": float(np.percentile(us, 99)),
        f"{prefix}_mean_us": float(us.mean()),
    }


def single_row_latency(
    artifact: Artifact, rows: np.ndarray, calls: int = 1000, warmup: int = 100
) -> dict[str, Any]:
    """p50/p99/mean microseconds of ``artifact.predict_array(row)`` over ``calls`` one-row calls."""
    n = len(rows)
    if n == 0:
        return {}
    for i in range(warmup):
        artifact.predict_array(rows[i % n])
    times = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        row = rows[i % n]
        start = clock()
        artifact.predict_array(row)
        times[i] = clock() - start
    return _percentiles(times, "latency") | {"latency_calls": calls}


def native_latency(predict_one: Any, rows: np.ndarray, calls: int = 1000, warmup: int = 50) -> dict[str, Any]:
    """The same measurement for any callable on one preprocessed row (scikit-learn's own ``predict_proba``)."""
    n = len(rows)
    for i in range(min(warmup, calls)):
        predict_one(rows[i % n : i % n + 1])
    times = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        row = rows[i % n : i % n + 1]
        start = clock()
        predict_one(row)
        times[i] = clock() - start
    return _percentiles(times, "native_latency") | {"native_latency_calls": calls}


def batch_throughput(
    artifact: Artifact, rows: np.ndarray, min_seconds: float = 0.5, max_rows: int = 50_000
) -> float:
    """Flows per second scored by ``predict_array`` on batches of up to ``max_rows`` rows (one thread)."""
    batch = rows[:max_rows]
    if len(batch) == 0:
        return 0.0
    artifact.predict_array(batch[:100])
    done, start = 0, time.perf_counter()
    while True:
        artifact.predict_array(batch)
        done += len(batch)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed
