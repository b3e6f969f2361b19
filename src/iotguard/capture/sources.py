"""One way to open any packet source: a capture file path or ``iface:NAME`` for a live interface."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from iotguard.capture.batch import PacketBatch
from iotguard.capture.bpf import compile_filter, filter_mask
from iotguard.capture.files import DEFAULT_BATCH_SIZE, CaptureFile, SourceStats

LIVE_PREFIX = "iface:"


class PacketSource(Protocol):
    """What every source offers: iteration over batches, counters, and ``close``."""

    stats: SourceStats
    live: bool

    def __iter__(self) -> Iterator[PacketBatch]: ...

    def close(self) -> None: ...


def is_live(spec: str | os.PathLike[str]) -> bool:
    return isinstance(spec, str) and spec.startswith(LIVE_PREFIX)


class _Filtered:
    """A capture file whose batches keep only the packets a BPF filter accepts."""

    live = False

    def __init__(self, inner: CaptureFile, expression: str) -> None:
        self.inner = inner
        self.expression = expression
        self.stats = inner.stats
        self.path = inner.path
        self.size = inner.size

    @property
    def position(self) -> int:
        return self.inner.position

    def __iter__(self) -> Iterator[PacketBatch]:
        for batch in self.inner:
            mask = filter_mask(self.expression, batch)
            kept = int(mask.sum())
            self.stats.filtered += len(batch) - kept
            if kept:
                yield batch if kept == len(batch) else batch.select(mask)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> _Filtered:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(
    spec: str | os.PathLike[str],
    *,
    bpf: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    snaplen: int = 65535,
) -> PacketSource:
    """Open a capture file (pcap, pcapng, gzip) or ``iface:NAME`` (live, needs root) as a packet source.

    ``bpf`` is a tcpdump-syntax filter; live capture runs it in the kernel, files in a jitted interpreter.
    A bad filter, a missing file or a file that is not a capture raises CaptureError.
    """
    if is_live(spec):
        from iotguard.capture.live import LiveCapture

        return LiveCapture(str(spec)[len(LIVE_PREFIX) :], bpf=bpf, snaplen=snaplen)
    if bpf:
        compile_filter(bpf, 1)  # a syntax error surfaces now, not at the first packet
    source = CaptureFile(spec, batch_size=batch_size)
    return _Filtered(source, bpf) if bpf else source
