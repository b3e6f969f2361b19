"""The high-level API: flows from any packet source, in batches or as one table.

>>> for frame in iter_flows("trace.pcap.gz", early=10):      # or "iface:eth0" (root), or a list of files
...     handle(frame)                                      # a DataFrame of finished and early records
>>> flows = read_flows("trace.pcapng")                     # a capture, or a saved .parquet/.csv flow table
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iotguard.capture.batch import LINKTYPE_ETHERNET
from iotguard.capture.bpf import compile_filter
from iotguard.capture.files import DEFAULT_BATCH_SIZE, CaptureFile, SourceStats
from iotguard.capture.sources import is_live, open_source
from iotguard.core.episodes import Episode
from iotguard.core.errors import DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import FLOW_FEATURES, IDENTITY_COLUMNS
from iotguard.flows.features import empty_records
from iotguard.flows.labels import label_flows, load_episodes
from iotguard.flows.meter import FlowConfig, FlowMeter

log = logging.getLogger(__name__)

Source = str | os.PathLike[str]
FLOW_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")


class FlowStream:
    """Flow records from one or more packet sources, as an iterator of DataFrames.

    Files are read in the order given through one meter: when a file starts at or after the previous
    file's last packet (a capture split into parts) its flows continue across the boundary; otherwise the
    meter is flushed first so unrelated captures never merge. Live sources (``iface:NAME``) yield a frame
    at least every ``tick`` seconds, empty when nothing ended, so a caller can check for shutdown.
    ``stats`` (the meter's) and ``source_stats`` (records read, damage, kernel drops) grow as it runs.
    """

    def __init__(
        self,
        sources: Source | Sequence[Source],
        *,
        config: FlowConfig | dict[str, Any] | None = None,
        early: int | None = None,
        early_seconds: float | None = None,
        bpf: str | None = None,
        labels: Source | Sequence[Episode] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Progress = NO_PROGRESS,
        tick: float = 1.0,
        duration: float | None = None,
        max_packets: int | None = None,
    ) -> None:
        if isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        self.sources = list(sources)
        if not self.sources:
            raise DataError("no packet source given", expected="a capture file or iface:NAME")
        self.meter = FlowMeter(config, early_packets=early, early_seconds=early_seconds)
        # Fail now, not after a progress bar appeared: every file must be a capture, the filter must compile.
        for spec in self.sources:
            if not is_live(spec):
                CaptureFile(spec).close()
        if bpf:
            compile_filter(bpf, LINKTYPE_ETHERNET)
        self.bpf = bpf
        self.batch_size = batch_size
        self.episodes = load_episodes(labels) if labels is not None else None
        self.progress = progress
        self.tick = tick
        self.duration = duration
        self.max_packets = max_packets
        self._done_stats = SourceStats()
        self._source = None
        self._iter: Iterator[pd.DataFrame] | None = None

    @property
    def stats(self):
        return self.meter.stats

    @property
    def source_stats(self) -> SourceStats:
        """Records read, filtered, damaged and dropped by the kernel, so far (the open source included)."""
        total = SourceStats()
        parts = [self._done_stats] + ([self._source.stats] if self._source is not None else [])
        for part in parts:
            total.packets += part.packets
            total.bytes += part.bytes
            total.filtered += part.filtered
            total.kernel_drops += part.kernel_drops
            total.damaged.update(part.damaged)
        return total

    def close(self) -> None:
        """Stop early: close the open source (a live socket is released) without flushing the meter."""
        if self._iter is not None:
            self._iter.close()  # runs the generator's cleanup

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def __next__(self) -> pd.DataFrame:
        return next(iter(self))

    def to_pandas(self) -> pd.DataFrame:
        """Run to the end and return every record in one DataFrame."""
        frames = [f for f in self if len(f)]
        if not frames:
            return self._finish(empty_records())
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _finish(self, frame: pd.DataFrame) -> pd.DataFrame:
        return label_flows(frame, self.episodes) if self.episodes is not None else frame

    def _merge_stats(self, stats: SourceStats) -> None:
        self._done_stats.packets += stats.packets
        self._done_stats.bytes += stats.bytes
        self._done_stats.filtered += stats.filtered
        self._done_stats.kernel_drops += stats.kernel_drops
        self._done_stats.damaged.update(stats.damaged)

    def _run(self) -> Iterator[pd.DataFrame]:
        sizes = [Path(s).stat().st_size for s in self.sources if not is_live(s) and Path(s).is_file()]
        started = time.monotonic()
        with self.progress.task("reading packets", total=sum(sizes) or None) as task:
            for spec in self.sources:
                source = open_source(spec, bpf=self.bpf, batch_size=self.batch_size)
                self._source = source
                live = source.live
                done_bytes = 0
                first = True
                last_expire = time.monotonic()
                try:
                    for batch in source:
                        if (
                            first
                            and len(batch)
                            and self.meter.now is not None
                            and batch.ts_us.min() < self.meter.now * 1e6
                        ):
                            frame = self.meter.flush()
                            if len(frame):
                                yield self._finish(frame)
                        if len(batch):
                            first = False
                        frame = self.meter.feed(batch)
                        if live and time.monotonic() - last_expire >= self.tick:
                            more = self.meter.expire(time.time())
                            last_expire = time.monotonic()
                            frame = pd.concat([frame, more], ignore_index=True) if len(more) else frame
                        if not live:
                            position = getattr(source, "position", 0)
                            task.advance(max(0, position - done_bytes))
                            done_bytes = max(done_bytes, position)
                        if len(frame) or live:
                            yield self._finish(frame)
                        if self.max_packets is not None and self.meter.stats.packets >= self.max_packets:
                            break
                        if self.duration is not None and time.monotonic() - started >= self.duration:
                            break
                finally:
                    source.close()
                    self._merge_stats(source.stats)
                    self._source = None
            frame = self.meter.flush()
            if len(frame):
                yield self._finish(frame)


def iter_flows(
    sources: Source | Sequence[Source],
    *,
    config: FlowConfig | dict[str, Any] | None = None,
    early: int | None = None,
    early_seconds: float | None = None,
    bpf: str | None = None,
    labels: Source | Sequence[Episode] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = NO_PROGRESS,
    tick: float = 1.0,
    duration: float | None = None,
    max_packets: int | None = None,
) -> FlowStream:
    """Flow records from capture files or ``iface:NAME``, as an iterator of DataFrames (see FlowStream).

    ``early=N`` adds a partial record (``partial=True``) after a flow's first N packets, ``early_seconds=T``
    one once a flow is T seconds old; ``bpf`` keeps only packets a tcpdump-syntax filter accepts;
    ``labels`` (an episodes file) adds ``label``, ``category`` and ``is_attack``. ``duration`` and
    ``max_packets`` stop a live capture.
    """
    return FlowStream(
        sources,
        config=config,
        early=early,
        early_seconds=early_seconds,
        bpf=bpf,
        labels=labels,
        batch_size=batch_size,
        progress=progress,
        tick=tick,
        duration=duration,
        max_packets=max_packets,
    )


def is_flow_file(path: Source) -> bool:
    return str(path).lower().endswith(FLOW_FILE_SUFFIXES)


def read_flow_table(path: Source) -> pd.DataFrame:
    """Read a saved flow table (.parquet, .csv, .csv.gz); it must have the identity and feature columns."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path) if str(path).lower().endswith(".parquet") else pd.read_csv(path)
    except FileNotFoundError as exc:
        raise DataError("no such flow file", where=str(path)) from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad input file
        raise DataError(f"cannot read flow table: {exc}", where=str(path)) from exc
    require_flow_columns(frame, path)
    return frame


def require_flow_columns(frame: pd.DataFrame, path: Source) -> None:
    """A flow table has the identity and feature columns of :mod:`iotguard.core.schema`."""
    missing = [c for c in dict.fromkeys((*IDENTITY_COLUMNS, *FLOW_FEATURES)) if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"not a flow table: {len(missing)} columns missing ({shown})",
            where=str(path),
            expected="the columns of iotguard.core.schema",
        )


def read_flows(
    path: Source | Sequence[Source],
    *,
    config: FlowConfig | dict[str, Any] | None = None,
    early: int | None = None,
    bpf: str | None = None,
    labels: Source | Sequence[Episode] | None = None,
) -> pd.DataFrame:
    """All flow records of a capture (or several), or of a saved flow table, as one DataFrame."""
    if isinstance(path, (str, os.PathLike)) and is_flow_file(path):
        frame = read_flow_table(path)
        return label_flows(frame, labels) if labels is not None else frame
    return iter_flows(path, config=config, early=early, bpf=bpf, labels=labels).to_pandas()


def summarise(stream: FlowStream, elapsed: float) -> dict[str, Any]:
    """The numbers the CLI prints after a run."""
    stats = stream.stats
    skipped = Counter(stats.skipped)
    skipped.update(stream.source_stats.damaged)
    return {
        "packets": stats.packets,
        "bytes": stats.bytes,
        "flows": stats.flows,
        "early": stats.early,
        "evicted": stats.evicted,
        "filtered": stream.source_stats.filtered,
        "kernel_drops": stream.source_stats.kernel_drops,
        "skipped": dict(sorted(skipped.items())),
        "seconds": elapsed,
        "packets_per_s": stats.packets / elapsed if elapsed > 0 else 0.0,
    }
