"""The row deduplication behind explanations agrees with np.unique(axis=0), NaNs and float64 included."""

from __future__ import annotations

import numpy as np

from iotguard.detect.detector import _unique_rows


def test_unique_rows_matches_numpy():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = rng.integers(0, 4, size=(5000, 40)).astype(dtype)
        x[::3] = x[1::3][: len(x[::3])]
        x[10, 5] = x[11, 5] = np.nan
        uniq, inverse = _unique_rows(x)
        assert np.array_equal(uniq[inverse], x, equal_nan=True)
        assert len(uniq) == len(np.unique(x, axis=0))
