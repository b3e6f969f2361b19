"""Windows of recent flows per source host, for the temporal (window) models. numpy only: the sensor uses it.

A window model scores a flow together with the flows that the same source host sent just before it. Its input
is ``[N, k, F]``: for flow ``i``, row ``k - 1`` is flow ``i`` itself and rows ``0 .. k - 2`` are the ``k - 1``
most recent earlier flows of the same ``src_ip``, oldest first. A host with fewer than ``k - 1`` earlier flows
gets padding rows at the start (zeros in the model's preprocessed space; NaN in the raw space an artifact reads,
see :data:`RAW_PAD`).

"Earlier" means earlier in the order in which flows become known. A sensor scores a flow when the flow ends, so
the right clock is ``ts_last`` where a table has it; tables with only ``ts_first`` (the CICIDS2017 CSVs) use
that. Flows with equal times keep their row order. A window never holds a flow later than the one it scores.

Two ways to build windows, both giving the same rows:

* :func:`window_index` / :func:`build_windows` for a whole table (training, evaluation, batch scoring);
* :class:`WindowBuffer` for a stream: it keeps the last ``k - 1`` flows of each host and is what the detector
  and the sensor call as flows arrive.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

import numpy as np

from iotguard.core.errors import DataError

DEFAULT_K = 16
"""Flows per window: the scored flow plus the 15 before it from the same host."""

RAW_PAD = np.nan
"""Padding value of a raw (not yet preprocessed) window row: an artifact of a window model maps an all-NaN row
to the zero padding row its network was trained with."""


def order_time(frame) -> np.ndarray | None:  # noqa: ANN001 (a pandas DataFrame; pandas is not imported here)
    """When each flow of a table became known (its end), the clock windows are ordered by.

    ``ts_last`` where the table has it; otherwise ``ts_first`` plus the flow's duration (CICFlowMeter's
    ``flow_duration`` in microseconds, Zeek's ``duration`` in seconds; missing durations count as 0); ``ts_first``
    alone when there is no duration; None when the table has no time at all.
    """
    if "ts_last" in frame.columns:
        return np.asarray(frame["ts_last"], dtype=np.float64)
    if "ts_first" not in frame.columns:
        return None
    time = np.asarray(frame["ts_first"], dtype=np.float64)
    for column, seconds in (("flow_duration", 1e-6), ("duration", 1.0)):
        if column in frame.columns:
            duration = np.asarray(frame[column], dtype=np.float64)
            return time + np.nan_to_num(np.clip(duration, 0, None), nan=0.0, posinf=0.0) * seconds
    return time


HOST_COLUMN = "src_ip"


def window_keys(frame, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """``(hosts, times)`` of a flow table for building windows; :class:`DataError` when a column is missing."""
    if HOST_COLUMN not in frame.columns:
        raise DataError(
            f"no {HOST_COLUMN!r} column",
            where=where,
            expected="the source host of every flow (a window model reads each host's recent flows)",
        )
    time = order_time(frame)
    if time is None:
        raise DataError("no 'ts_first' or 'ts_last' column", where=where, expected="the time of every flow")
    if np.isnan(time).any():
        row = int(np.flatnonzero(np.isnan(time))[0])
        raise DataError(f"flow {row} has no time", where=where, expected="a time on every flow")
    return frame[HOST_COLUMN].astype(str).to_numpy(), time


def window_index(host: Sequence[Hashable] | np.ndarray, time: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """For each row, the row numbers of its window (``[N, k]``, int64), oldest first, ``-1`` for padding.

    ``host`` is the source host of each row, ``time`` when the row became known (see module docs). The last
    column is the row itself; earlier columns are earlier rows of the same host in (time, row) order.
    """
    if k < 1:
        raise ValueError(f"window length k must be >= 1, got {k}")
    time = np.asarray(time, dtype=np.float64)
    n = len(time)
    host_codes = _codes(host)
    if len(host_codes) != n:
        raise ValueError(f"host has {len(host_codes)} rows but time has {n}")
    if n == 0:
        return np.empty((0, k), dtype=np.int64)
    if np.isnan(time).any():
        raise ValueError("time has missing values; windows need a time for every flow")
    # Stable order: host, then time, then original row (ties keep table order).
    order = np.lexsort((np.arange(n), time, host_codes))
    sorted_hosts = host_codes[order]
    position = np.arange(n)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = sorted_hosts[1:] != sorted_hosts[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, position, 0))
    lags = np.arange(k - 1, -1, -1)
    source = position[:, None] - lags[None, :]  # positions in sorted order, oldest first
    valid = source >= group_start[:, None]
    rows = np.where(valid, order[np.clip(source, 0, None)], -1)
    index = np.empty_like(rows)
    index[order] = rows
    return index


def gather_windows(X: np.ndarray, index: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """``X`` rows ``[N, F]`` arranged by ``index`` (from :func:`window_index`) into ``[M, k, F]`` float32."""
    X = np.asarray(X, dtype=np.float32)
    out = X[np.clip(index, 0, None)]
    out[index < 0] = pad
    return out


def build_windows(
    X: np.ndarray, host: Sequence[Hashable] | np.ndarray, time: np.ndarray, k: int = DEFAULT_K
) -> np.ndarray:
    """Windows ``[N, k, F]`` (float32) of preprocessed rows ``X``, zero-padded at the start."""
    return gather_windows(X, window_index(host, time, k))


class WindowBuffer:
    """The last flows of each source host, for scoring a stream with a window model.

    ``windows(hosts, rows)`` takes a batch of flows in arrival order and returns their windows ``[N, k, F]``;
    each window holds the host's earlier flows (from earlier batches and from earlier in this batch) and
    then the flow itself, exactly as :func:`build_windows` would on the whole stream. ``rows`` are what the
    artifact reads (raw features), so padding is :data:`RAW_PAD` by default.

    Memory is bounded: at most ``max_hosts`` hosts are kept, the least recently seen dropped first.
    """

    def __init__(
        self,
        k: int = DEFAULT_K,
        n_features: int | None = None,
        *,
        max_hosts: int = 65536,
        pad: float = RAW_PAD,
    ) -> None:
        if k < 1:
            raise ValueError(f"window length k must be >= 1, got {k}")
        self.k = k
        self.n_features = n_features
        self.max_hosts = max_hosts
        self.pad = pad
        self._history: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._history)

    def clear(self) -> None:
        self._history.clear()

    def windows(self, hosts: Sequence[Hashable], rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] != len(hosts):
            raise ValueError(f"rows must be [len(hosts), F], got {rows.shape} for {len(hosts)} hosts")
        if self.n_features is None:
            self.n_features = rows.shape[1]
        elif rows.shape[1] != self.n_features:
            raise ValueError(f"rows have {rows.shape[1]} features, this buffer holds {self.n_features}")
        k, n = self.k, len(hosts)
        out = np.full((n, k, self.n_features), self.pad, dtype=np.float32)
        if n == 0:
            return out
        # Group the batch by host; within a host the batch keeps arrival order.
        codes, first_seen = _codes_and_keys(hosts)
        for code, host in enumerate(first_seen):
            members = np.flatnonzero(codes == code)
            past = self._history.get(host)
            stream = rows[members] if past is None else np.concatenate([past, rows[members]])
            offset = len(stream) - len(members)
            # Window of the j-th member ends at stream position offset + j.
            ends = offset + np.arange(len(members))
            source = ends[:, None] - np.arange(k - 1, -1, -1)[None, :]
            valid = source >= 0
            window = stream[np.clip(source, 0, None)]
            window[~valid] = self.pad
            out[members] = window
            self._history[host] = stream[-(k - 1) :].copy() if k > 1 else stream[:0].copy()
            self._history.move_to_end(host)
        while len(self._history) > self.max_hosts:
            self._history.popitem(last=False)
        return out


def _codes(values: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    codes, _ = _codes_and_keys(values)
    return codes


def _codes_and_keys(values: Sequence[Hashable] | np.ndarray) -> tuple[np.ndarray, list[Hashable]]:
    """Integer code of each value (in order of first appearance) and the distinct values."""
    seen: dict[Hashable, int] = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int64, count=len(values))
    return codes, list(seen)
