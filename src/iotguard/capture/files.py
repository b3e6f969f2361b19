"""Capture files as streams of packet batches: pcap (micro/nanosecond, either byte order), pcapng and gzip.

The file is read in large chunks (default 8 MiB); a jitted loop locates the records in each chunk, and every
batch references the chunk it came from. Memory is bounded by the chunk size, never by the file size.

Damage is normal input: a record header with an impossible length is counted as ``corrupt_record`` and the
reader resynchronises on the next plausible record; a file that ends inside a record counts a
``truncated_record``; a broken gzip stream counts ``compressed_stream_error`` and ends the file. Only a file
that is not a capture at all (or cannot be opened) raises :class:`~iotguard.core.errors.CaptureError`.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from iotguard.capture import _scan
from iotguard.capture.batch import LINKTYPE_NAMES, PacketBatch
from iotguard.core.errors import CaptureError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 65536
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024

_PCAP_MAGICS = {
    # magic as read little-endian -> (byte swap needed?, nanosecond?, record header length)
    0xA1B2C3D4: (False, False, 16),
    0xD4C3B2A1: (True, False, 16),
    0xA1B23C4D: (False, True, 16),
    0x4D3CB2A1: (True, True, 16),
    0xA1B2CD34: (False, False, 24),  # Kuznetzov's modified pcap (extra fields per record)
    0x34CDB2A1: (True, False, 24),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class SourceStats:
    """What a packet source saw: records read, their wire bytes, and damage counted by reason."""

    packets: int = 0
    bytes: int = 0
    filtered: int = 0
    kernel_drops: int = 0
    damaged: Counter[str] = field(default_factory=Counter)


class _Stream:
    """A binary file, transparently gunzipped; counts compressed bytes read for progress bars.

    Decompression uses zlib directly so that a damaged or cut gzip file still yields every byte that can
    be decoded before the damage (``error`` then says what went wrong).
    """

    _RAW_CHUNK = 1 << 20

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise CaptureError(f"cannot open capture: {exc.strerror or exc}", where=str(path)) from exc
        head = self._raw.read(2)
        self._raw.seek(0)
        self.compressed = head == _GZIP_MAGIC
        self.error: str | None = None
        self._z = zlib.decompressobj(wbits=31) if self.compressed else None
        self._pending = b""
        self._raw_eof = False

    @property
    def position(self) -> int:
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def _inflate(self, want: int) -> bytes:
        """Up to ``want`` decompressed bytes (fewer only at the end of the data)."""
        out = [self._pending]
        have = len(self._pending)
        self._pending = b""
        while have < want and self._z is not None:
            if self._z.unconsumed_tail:
                data = self._z.unconsumed_tail
            elif self._z.eof:
                rest = self._z.unused_data
                if not rest:
                    rest = self._raw.read(self._RAW_CHUNK)
                    if not rest:
                        self._z = None
                        break
                if rest[:2] != _GZIP_MAGIC:
                    break  # trailing garbage after the last gzip member is ignored, as gzip(1) does
                self._z = zlib.decompressobj(wbits=31)
                data = rest
            else:
                data = self._raw.read(self._RAW_CHUNK)
                if not data:
                    self.error = "compressed stream ends early"
                    self._z = None
                    break
            try:
                chunk = self._z.decompress(data, max(want - have, 65536))
            except zlib.error as exc:
                self.error = f"corrupt compressed data ({exc})"
                self._z = None
                break
            out.append(chunk)
            have += len(chunk)
        blob = b"".join(out)
        if len(blob) > want:
            self._pending = blob[want:]
            blob = blob[:want]
        return blob

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` as far as the file allows; returns the bytes read (0 at the end)."""
        if not self.compressed:
            total = 0
            while total < len(view):
                got = self._raw.readinto(view[total:])
                if not got:
                    break
                total += got
            return total
        blob = self._inflate(len(view))
        view[: len(blob)] = blob
        return len(blob)

    def close(self) -> None:
        self._raw.close()


class CaptureFile:
    """Iterate over a capture file's packets in batches; ``stats`` counts packets and damage.

    >>> with CaptureFile("trace.pcap.gz") as capture:
    ...     for batch in capture:
    ...         ...
    """

    live = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        if batch_size < 1:
            raise CaptureError(f"batch_size must be at least 1, got {batch_size}", where="batch_size")
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self.chunk_bytes = max(int(chunk_bytes), 2 * (_scan.MAX_CAPLEN + 64))
        self.stats = SourceStats()
        self.size = self.path.stat().st_size if self.path.is_file() else 0
        self._stream = _Stream(self.path)
        self._buf = np.empty(0, np.uint8)
        self._pos = 0
        self._end = 0
        self._eof = False
        try:
            self._detect()
        except BaseException:
            self._stream.close()
            raise

    # -- context manager / iteration --------------------------------------------------------------------
    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    @property
    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for gzip), for progress bars."""
        return self._stream.position

    def __iter__(self) -> Iterator[PacketBatch]:
        try:
            if self.format == "pcapng":
                yield from self._iter_pcapng()
            else:
                yield from self._iter_pcap()
        finally:
            if self._stream.error:
                self.stats.damaged["compressed_stream_error"] += 1
                log.warning(
                    "%s: compressed stream damaged (%s); stopped there", self.path, self._stream.error
                )

    # -- buffer management ------------------------------------------------------------------------------
    def _fill(self, need: int = 0) -> bool:
        """Move the unread bytes to a fresh buffer and read more; False when nothing new arrived."""
        if self._eof:
            return False
        left = self._end - self._pos
        size = max(self.chunk_bytes, left + need)
        new = np.empty(size, np.uint8)
        if left:
            new[:left] = self._buf[self._pos : self._end]
        got = self._stream.readinto(memoryview(new)[left:])
        if got < size - left:
            self._eof = True
        self._buf, self._pos, self._end = new, 0, left + got
        return got > 0

    def _pending(self, field_at: int, extra: int, minimum: int) -> int:
        """Bytes needed for the record at the current position (its length field plus ``extra``)."""
        if self._end - self._pos < field_at + 4:
            return minimum
        raw = self._buf[self._pos + field_at : self._pos + field_at + 4].tobytes()
        length = struct.unpack(">I" if self._swap else "<I", raw)[0]
        return max(minimum, min(length, _scan.MAX_BLOCK) + extra)

    def _head(self, n: int) -> bytes:
        while self._end - self._pos < n and self._fill():
            pass
        return self._buf[self._pos : min(self._end, self._pos + n)].tobytes()

    def _not_capture(self, head: bytes) -> CaptureError:
        shown = head[:8].hex(" ") if head else "nothing (empty file)"
        return CaptureError(
            f"not a capture file: starts with {shown}",
            where=str(self.path),
            expected="pcap, pcapng or a gzip of one",
        )

    def _detect(self) -> None:
        head = self._head(24)
        if len(head) < 4:
            raise self._not_capture(head)
        if head[:4] == _PCAPNG_MAGIC:
            self.format = "pcapng"
            self.linktypes: set[int] = set()
            self._swap = False
            self._interfaces: list[tuple[int, int, int, int, int]] = []
            self._section(first=True)
            return
        magic = struct.unpack("<I", head[:4])[0]
        if magic not in _PCAP_MAGICS:
            raise self._not_capture(head)
        if len(head) < 24:
            raise CaptureError(
                f"pcap global header is cut short ({len(head)} of 24 bytes)", where=str(self.path)
            )
        self.format = "pcap"
        self._swap, self._nano, self._hdr_len = _PCAP_MAGICS[magic]
        order = ">" if self._swap else "<"
        _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", head[4:24])
        # The upper bits of the link-type field carry FCS information; the type is the low 16 bits.
        self.linktype = network & 0xFFFF
        self.linktypes = {self.linktype}
        if self.linktype not in LINKTYPE_NAMES:
            log.warning("%s: link type %d is not supported; its packets will be skipped", self.path, network)
        self._pos += 24

    # -- pcap -------------------------------------------------------------------------------------------
    def _iter_pcap(self) -> Iterator[PacketBatch]:
        last_sec = -1
        while True:
            max_n = max(1, min(self.batch_size, (self._end - self._pos) // self._hdr_len + 1))
            offset = np.empty(max_n, np.int64)
            caplen = np.empty(max_n, np.int32)
            wirelen = np.empty(max_n, np.int32)
            ts_us = np.empty(max_n, np.int64)
            n, pos, status = _scan.scan_pcap(
                self._buf,
                self._pos,
                self._end,
                self._swap,
                self._nano,
                self._hdr_len,
                max_n,
                offset,
                caplen,
                wirelen,
                ts_us,
            )
            self._pos = pos
            if n:
                last_sec = int(ts_us[n - 1] // 1_000_000)
                yield self._batch(offset[:n], caplen[:n], wirelen[:n], ts_us[:n], None)
            if status == _scan.BATCH_FULL:
                continue
            if status == _scan.NEED_MORE:
                if not self._fill(self._pending(8, self._hdr_len, self._hdr_len)):
                    if self._end > self._pos:
                        self.stats.damaged["truncated_record"] += 1
                        log.warning("%s: file ends inside a packet record", self.path)
                    return
                continue
            # CORRUPT: find the next plausible record header.
            self.stats.damaged["corrupt_record"] += 1
            while True:
                found = _scan.resync_pcap(
                    self._buf, self._pos, self._end, self._swap, self._nano, self._hdr_len, last_sec
                )
                if found >= 0:
                    self._pos = found
                    break
                # Keep a tail that may hold the start of the next header, then read on.
                self._pos = max(self._pos + 1, self._end - self._hdr_len)
                if not self._fill():
                    return

    def _batch(self, offset, caplen, wirelen, ts_us, linktype) -> PacketBatch:
        if linktype is None:
            linktype = np.full(offset.shape[0], self.linktype, np.int32)
        batch = PacketBatch(self._buf, offset, caplen, wirelen, ts_us, linktype)
        self.stats.packets += len(batch)
        self.stats.bytes += batch.wire_bytes
        return batch

    # -- pcapng -----------------------------------------------------------------------------------------
    def _iter_pcapng(self) -> Iterator[PacketBatch]:
        counters = np.zeros(4, np.int64)
        while True:
            n_if = len(self._interfaces)
            arrays = np.array(self._interfaces or [(0, 0, 0, 6, 0)], dtype=np.int64).T
            max_n = max(1, min(self.batch_size, (self._end - self._pos) // 32 + 1))
            offset = np.empty(max_n, np.int64)
            caplen = np.empty(max_n, np.int32)
            wirelen = np.empty(max_n, np.int32)
            ts_us = np.empty(max_n, np.int64)
            linktype = np.empty(max_n, np.int32)
            n, pos, status = _scan.scan_pcapng(
                self._buf,
                self._pos,
                self._end,
                self._swap,
                max_n,
                arrays[0].astype(np.int32),
                arrays[1],
                arrays[2],
                arrays[3],
                arrays[4],
                n_if,
                offset,
                caplen,
                wirelen,
                ts_us,
                linktype,
                counters,
            )
            self._pos = pos
            if n:
                yield self._batch(offset[:n], caplen[:n], wirelen[:n], ts_us[:n], linktype[:n])
            if status == _scan.BATCH_FULL:
                continue
            if status == _scan.NEED_MORE:
                if not self._fill(self._pending(4, 0, 12)):
                    if self._end > self._pos:
                        self.stats.damaged["truncated_record"] += 1
                        log.warning("%s: file ends inside a block", self.path)
                    break
                continue
            if status == _scan.SECTION:
                if self._section(first=False):
                    continue
            elif status == _scan.INTERFACE:
                self._interface()
                continue
            # CORRUPT (or an unreadable section header): resynchronise on the next well-formed block.
            self.stats.damaged["corrupt_record"] += 1
            if not self._resync_pcapng():
                break
        if counters[0]:
            self.stats.damaged["malformed_block"] += int(counters[0])
        if counters[1]:
            self.stats.damaged["unknown_interface"] += int(counters[1])

    def _resync_pcapng(self) -> bool:
        while True:
            found = _scan.resync_pcapng(self._buf, self._pos, self._end, self._swap)
            if found >= 0:
                self._pos = found
                return True
            self._pos = max(self._pos + 4, self._end - 12)
            if not self._fill():
                return False

    def _section(self, *, first: bool) -> bool:
        """Parse a section header block at the current position; False if it is unreadable."""
        while self._end - self._pos < 28 and self._fill(28):
            pass
        head = self._buf[self._pos : min(self._end, self._pos + 28)].tobytes()
        if len(head) < 28:
            if first:
                raise CaptureError("pcapng section header is cut short", where=str(self.path))
            return False
        bom = head[8:12]
        if bom == b"\x4d\x3c\x2b\x1a":
            swap = False
        elif bom == b"\x1a\x2b\x3c\x4d":
            swap = True
        else:
            if first:
                raise CaptureError(
                    f"pcapng byte-order magic is {bom.hex()}", where=str(self.path), expected="1a2b3c4d"
                )
            return False
        order = ">" if swap else "<"
        blen = struct.unpack(order + "I", head[4:8])[0]
        if blen < 28 or blen % 4 or blen > _scan.MAX_BLOCK:
            if first:
                raise CaptureError(f"pcapng section header has length {blen}", where=str(self.path))
            return False
        while self._end - self._pos < blen and self._fill(blen):
            pass
        if self._end - self._pos < blen:
            return False
        self._swap = swap
        self._interfaces = []
        self._pos += blen
        return True

    def _interface(self) -> None:
        order = ">" if self._swap else "<"
        start = self._pos
        blen = struct.unpack(order + "I", self._buf[start + 4 : start + 8].tobytes())[0]
        body = self._buf[start + 8 : start + blen - 4].tobytes()
        self._pos += blen
        linktype, snaplen = 0xFFFF, 0
        if len(body) >= 8:
            linktype, _reserved, snaplen = struct.unpack(order + "HHI", body[:8])
        kind, exp, offset_us = 0, 6, 0
        opts = body[8:]
        i = 0
        while i + 4 <= len(opts):
            code, length = struct.unpack(order + "HH", opts[i : i + 4])
            value = opts[i + 4 : i + 4 + length]
            if code == 0:
                break
            if code == 9 and length >= 1:  # if_tsresol
                kind, exp = (1, value[0] & 0x7F) if value[0] & 0x80 else (0, value[0])
            elif code == 14 and length >= 8:  # if_tsoffset, seconds
                offset_us = struct.unpack(order + "q", value[:8])[0] * 1_000_000
            i += 4 + ((length + 3) & ~3)
        if kind == 0 and exp > 18:
            kind, exp = 0, 6  # an impossible resolution: fall back to the default microseconds
        self._interfaces.append((linktype, snaplen, kind, exp, offset_us))
        self.linktypes.add(linktype)
        if linktype not in LINKTYPE_NAMES:
            log.warning(
                "%s: interface %d has unsupported link type %d",
                self.path,
                len(self._interfaces) - 1,
                linktype,
            )


def read_capture(path: str | os.PathLike[str], **kwargs: int) -> Iterator[PacketBatch]:
    """Yield the packet batches of one capture file (see :class:`CaptureFile`)."""
    with CaptureFile(path, **kwargs) as capture:
        yield from capture
