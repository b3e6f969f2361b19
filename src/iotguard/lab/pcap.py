"""Collect frames in any order, then write them as one time-ordered classic pcap (microsecond, Ethernet).

Simulated devices emit their traffic independently (a whole MQTT session, then a whole RTP stream, ...), each
frame with its own timestamp; :class:`Capture` gathers them with a ground-truth tag (0 benign, otherwise an
episode number) and :meth:`Capture.build` merges them into time order. Ties keep insertion order, so the
output depends only on what was emitted, never on the machine.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iotguard.core.errors import CaptureError
from iotguard.lab.bulk import HEADROOM, Frames

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


@dataclass(frozen=True, slots=True)
class Packets:
    """Time-ordered frames with their capture times (and, from the generator, their ground-truth tags).

    Frames stay where they were built (no copy into one buffer): frame ``i`` is the ``lengths[i]`` bytes at
    offset ``index[i]`` of the byte array ``buffers[source[i]]``, and its pcap record header is the 16 bytes
    in front of it.
    """

    ts_us: np.ndarray  # int64 microseconds since the Unix epoch
    lengths: np.ndarray  # int64
    source: np.ndarray  # int32
    index: np.ndarray  # int64
    buffers: list[np.ndarray]  # uint8 arrays
    tags: np.ndarray | None = None  # int32 ground truth: 0 benign, k the k-th registered episode

    def __len__(self) -> int:
        return len(self.ts_us)

    def frame(self, i: int) -> bytes:
        start = int(self.index[i])
        return self.buffers[int(self.source[i])][start : start + int(self.lengths[i])].tobytes()

    def records(self) -> list[memoryview]:
        """Every pcap record (header and frame) in time order, as memoryview slices (no copies)."""
        views = [memoryview(b) for b in self.buffers]
        return [
            views[s][i - HEADROOM : i + n]
            for s, i, n in zip(self.source.tolist(), self.index.tolist(), self.lengths.tolist(), strict=True)
        ]

    def frames(self) -> list[bytes]:
        """Every frame in time order (copies; for tests and tools, not the hot path)."""
        return [self.frame(i) for i in range(len(self))]

    @property
    def nbytes(self) -> int:
        return int(self.lengths.sum())


class Capture:
    """Frames with timestamps in seconds relative to ``base_us``, gathered in any order.

    Frames added one at a time go, with their pcap record header in front (timestamps are final when a frame
    is added), into one growing byte buffer; frames built in bulk keep their own buffers. Writing the file
    is then one join of contiguous records, and no per-frame object is ever allocated."""

    def __init__(self, base_us: int, duration_s: float) -> None:
        self.base_us = base_us
        self.duration_us = round(duration_s * 1e6)
        self._buf = bytearray()
        self._us: list[int] = []
        self._offsets: list[int] = []
        self._sizes: list[int] = []
        self._tags: list[int] = []
        self._bulk: list[tuple[np.ndarray, Frames, np.ndarray]] = []

    def add(self, t: float, frame: bytes, tag: int = 0) -> None:
        self.add_parts(t, (frame,), len(frame), tag)

    def add_parts(self, t: float, parts: tuple[bytes, ...], size: int, tag: int = 0) -> None:
        """Add one frame given as consecutive pieces of ``size`` bytes in all."""
        us = round(t * 1e6)
        sec, usec = divmod(self.base_us + us, 1_000_000)
        buf = self._buf
        buf += _RECORD.pack(sec, usec, size, size)
        self._offsets.append(len(buf))
        for part in parts:
            buf += part
        self._us.append(us)
        self._sizes.append(size)
        self._tags.append(tag)

    def add_frames(self, t: np.ndarray, frames: Frames, tag: int | np.ndarray = 0) -> None:
        """Add frames built by :mod:`iotguard.lab.bulk` (their headroom receives the record headers)."""
        if len(t) != len(frames):
            raise ValueError(f"{len(t)} timestamps for {len(frames)} frames")
        if not len(frames):
            return
        us = np.rint(np.asarray(t, dtype=np.float64) * 1e6).astype(np.int64)
        when = self.base_us + us
        heads = np.empty((len(frames), 4), dtype="<u4")
        heads[:, 0] = when // 1_000_000
        heads[:, 1] = when % 1_000_000
        heads[:, 2] = frames.lengths
        heads[:, 3] = frames.lengths
        frames.data[(frames.offsets - HEADROOM)[:, None] + np.arange(HEADROOM)] = heads.view(
            np.uint8
        ).reshape(-1, HEADROOM)
        tags = np.broadcast_to(np.asarray(tag, dtype=np.int32), (len(frames),))
        self._bulk.append((us, frames, tags))

    def __len__(self) -> int:
        return len(self._us) + sum(len(f) for _, f, _ in self._bulk)

    def _scalar(self) -> Frames:
        """The one-at-a-time frames as :class:`Frames` over the buffer (which can then no longer grow)."""
        data = np.frombuffer(self._buf, dtype=np.uint8) if self._buf else np.zeros(0, np.uint8)
        return Frames(
            data, np.asarray(self._offsets, dtype=np.int64), np.asarray(self._sizes, dtype=np.int64)
        )

    def ip_pairs(self) -> set[frozenset[bytes]]:
        """Unordered IPv4 address pairs of every frame gathered so far (ARP frames have none)."""
        keys = []
        scalar = self._scalar()
        for frames in [scalar] + [f for _, f, _ in self._bulk]:
            if len(frames):
                ethertype = frames.data[frames.offsets[:, None] + np.arange(12, 14)]
                ipv4 = (ethertype[:, 0] == 0x08) & (ethertype[:, 1] == 0x00)
                heads = frames.data[frames.offsets[ipv4][:, None] + np.arange(26, 34)]
                keys.append(np.unique(np.ascontiguousarray(heads).view(">u8").ravel()))
        del scalar  # release the view so the buffer can grow again
        pairs: set[frozenset[bytes]] = set()
        for key in np.unique(np.concatenate(keys)).tolist() if keys else []:
            raw = key.to_bytes(8, "big")
            pairs.add(frozenset((raw[:4], raw[4:])))
        return pairs

    def build(self) -> Packets:
        """Merge everything into time order, dropping frames outside ``[0, duration)``."""
        sources = [self._scalar()] + [f for _, f, _ in self._bulk]
        times = [np.asarray(self._us, dtype=np.int64)] + [t for t, _, _ in self._bulk]
        tags = [np.asarray(self._tags, dtype=np.int32)] + [g for _, _, g in self._bulk]
        rel_us = np.concatenate(times)
        keep = np.flatnonzero((rel_us >= 0) & (rel_us < self.duration_us))
        order = keep[np.argsort(rel_us[keep], kind="stable")]
        return Packets(
            ts_us=rel_us[order] + self.base_us,
            lengths=np.concatenate([f.lengths for f in sources])[order],
            source=np.concatenate([np.full(len(f), k, dtype=np.int32) for k, f in enumerate(sources)])[order],
            index=np.concatenate([f.offsets for f in sources])[order],
            buffers=[f.data for f in sources],
            tags=np.concatenate(tags)[order],
        )


def write_pcap(path: str | os.PathLike[str], packets: Packets) -> tuple[int, str]:
    """Write ``packets`` as a classic pcap (atomically: temp file, then rename).

    Returns the size in bytes and the SHA-256 of the file."""
    path = Path(path)
    body = _GLOBAL.pack(PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET) + b"".join(packets.records())
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CaptureError(f"cannot write capture: {exc}", where=str(path)) from exc
    return len(body), hashlib.sha256(body).hexdigest()


def read_pcap(path: str | os.PathLike[str]) -> Packets:
    """Read a classic little- or big-endian, micro- or nanosecond pcap of any link type into :class:`Packets`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CaptureError(f"cannot read capture: {exc}", where=str(path)) from exc
    if len(raw) < 24:
        raise CaptureError("file is shorter than a pcap header", where=str(path), expected="a pcap file")
    magic_le = struct.unpack_from("<I", raw)[0]
    known = {0xA1B2C3D4: ("<", 1), 0xA1B23C4D: ("<", 1000), 0xD4C3B2A1: (">", 1), 0x4D3CB2A1: (">", 1000)}
    if magic_le not in known:
        raise CaptureError(f"unknown magic 0x{magic_le:08x}", where=str(path), expected="a classic pcap file")
    endian, ns_div = known[magic_le]
    record = struct.Struct(endian + "IIII")
    ts, offs, lens = [], [], []
    pos = 24
    size = len(raw)
    while pos < size:
        if pos + 16 > size:
            raise CaptureError("truncated record header", where=f"{path} byte {pos}")
        sec, frac, incl, _ = record.unpack_from(raw, pos)
        if pos + 16 + incl > size:
            raise CaptureError("truncated packet", where=f"{path} byte {pos}")
        ts.append(sec * 1_000_000 + frac // ns_div)
        offs.append(pos + 16)
        lens.append(incl)
        pos += 16 + incl
    return Packets(
        ts_us=np.asarray(ts, dtype=np.int64),
        lengths=np.asarray(lens, dtype=np.int64),
        source=np.zeros(len(ts), dtype=np.int32),
        index=np.asarray(offs, dtype=np.int64),
        buffers=[np.frombuffer(raw, dtype=np.uint8)],
    )
