"""Frame builders for many frames at once (floods, scans, media streams, bulk uploads), built with numpy.

Each builder lays its frames out as rows of one zero-padded byte matrix, writes every header field as a column,
computes all IPv4/TCP/UDP checksums with row sums of 16-bit words, and returns :class:`Frames`: the frames back
to back in one flat byte array plus their lengths. Arguments are a scalar (same for every frame) or an array
with one value per frame; addresses are 4/6 raw bytes or an ``(n, 4)``/``(n, 6)`` uint8 array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotguard.lab.packets import ETH_IPV4, PROTO_TCP, PROTO_UDP

IntLike = int | np.ndarray
HEADROOM = 16  # bytes reserved in front of every frame (a pcap record header)
BytesLike = bytes | np.ndarray


@dataclass(frozen=True, slots=True)
class Frames:
    """Frames in one byte buffer: frame ``i`` is ``data[offsets[i] : offsets[i] + lengths[i]]``.

    The builders keep one zero-padded row per frame (nothing is copied to pack them tightly) and leave
    :data:`HEADROOM` free bytes in front of each frame, where the capture writes the frame's pcap record
    header, so that a record is one contiguous slice."""

    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.lengths)

    def frame(self, i: int) -> bytes:
        start = int(self.offsets[i])
        return self.data[start : start + int(self.lengths[i])].tobytes()


def ip_array(addresses: list[bytes]) -> np.ndarray:
    """Raw 4-byte addresses -> ``(n, 4)`` uint8 array."""
    return np.frombuffer(b"".join(addresses), dtype=np.uint8).reshape(-1, 4)


def _bytes_col(value: BytesLike, n: int, width: int) -> np.ndarray:
    if isinstance(value, bytes | bytearray):
        return np.broadcast_to(np.frombuffer(value, dtype=np.uint8), (n, width))
    arr = np.asarray(value, dtype=np.uint8)
    if arr.shape != (n, width):
        raise ValueError(f"address array has shape {arr.shape}, expected {(n, width)}")
    return arr


def _int_col(value: IntLike, n: int, nbytes: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)) & ((1 << (8 * nbytes)) - 1)
    return arr.astype(f">u{nbytes}").view(np.uint8).reshape(n, nbytes)


def _word_sum(block: np.ndarray) -> np.ndarray:
    """Row sums of big-endian 16-bit words of a uint8 block whose rows start at even addresses, even width."""
    return block.view(">u2").sum(axis=1, dtype=np.int64)


def _fold(total: np.ndarray) -> np.ndarray:
    rest = total % 0xFFFF
    rest = np.where((rest == 0) & (total != 0), 0xFFFF, rest)
    return 0xFFFF - rest


def _ip_frames(
    *,
    src_mac: BytesLike,
    dst_mac: BytesLike,
    src: BytesLike,
    dst: BytesLike,
    proto: int,
    l4_header: np.ndarray,
    payload: np.ndarray | None,
    lengths: np.ndarray | None,
    ident: IntLike,
    ttl: IntLike,
    tos: int,
    checksum_at: int,
    df: bool = True,
) -> Frames:
    n = len(l4_header)
    l4h = l4_header.shape[1]
    pmax = 0 if payload is None else payload.shape[1]
    plen = (
        np.zeros(n, dtype=np.int64)
        if lengths is None
        else np.broadcast_to(np.asarray(lengths, np.int64), (n,))
    )
    width = HEADROOM + 34 + l4h + pmax
    width += width & 1
    buf = np.zeros((n, width), dtype=np.uint8)
    rows = buf[:, HEADROOM:]
    rows[:, 0:6] = _bytes_col(dst_mac, n, 6)
    rows[:, 6:12] = _bytes_col(src_mac, n, 6)
    rows[:, 12:14] = _int_col(ETH_IPV4, n, 2)
    seg_len = l4h + plen
    rows[:, 14] = 0x45
    rows[:, 15] = tos
    rows[:, 16:18] = _int_col(20 + seg_len, n, 2)
    rows[:, 18:20] = _int_col(ident, n, 2)
    rows[:, 20] = 0x40 if df else 0  # don't fragment
    rows[:, 22] = np.broadcast_to(np.asarray(ttl, dtype=np.uint8), (n,))
    rows[:, 23] = proto
    rows[:, 26:30] = _bytes_col(src, n, 4)
    rows[:, 30:34] = _bytes_col(dst, n, 4)
    rows[:, 24:26] = _int_col(_fold(_word_sum(rows[:, 14:34])), n, 2)
    rows[:, 34 : 34 + l4h] = l4_header
    if payload is not None and pmax:
        body = rows[:, 34 + l4h : 34 + l4h + pmax]
        body[:] = payload
        short = np.flatnonzero(plen < pmax)
        if len(short):  # bytes past a frame's end must be zero: they are summed into the checksum
            sub = body[short]
            sub[np.arange(pmax)[None, :] >= plen[short, None]] = 0
            body[short] = sub
    pseudo = _word_sum(rows[:, 26:34]) + proto + seg_len
    csum = _fold(_word_sum(rows[:, 34:]) + pseudo)
    if proto == PROTO_UDP:
        csum = np.where(csum == 0, 0xFFFF, csum)
    rows[:, 34 + checksum_at : 36 + checksum_at] = _int_col(csum, n, 2)
    return Frames(
        buf.reshape(-1), np.arange(n, dtype=np.int64) * width + HEADROOM, (34 + seg_len).astype(np.int64)
    )


def udp_frames(
    *,
    src_mac: BytesLike,
    dst_mac: BytesLike,
    src: BytesLike,
    dst: BytesLike,
    sport: IntLike,
    dport: IntLike,
    payload: np.ndarray,
    lengths: IntLike | None = None,
    ident: IntLike = 0,
    ttl: IntLike = 64,
    tos: int = 0,
    df: bool = True,
) -> Frames:
    """UDP datagrams; ``payload`` is ``(n, width)`` uint8, row ``i`` holding ``lengths[i]`` bytes (default: all)."""
    n = payload.shape[0]
    plen = np.broadcast_to(np.asarray(payload.shape[1] if lengths is None else lengths, np.int64), (n,))
    head = np.zeros((n, 8), dtype=np.uint8)
    head[:, 0:2] = _int_col(sport, n, 2)
    head[:, 2:4] = _int_col(dport, n, 2)
    head[:, 4:6] = _int_col(8 + plen, n, 2)
    return _ip_frames(
        src_mac=src_mac,
        dst_mac=dst_mac,
        src=src,
        dst=dst,
        proto=PROTO_UDP,
        l4_header=head,
        payload=payload,
        lengths=plen,
        ident=ident,
        ttl=ttl,
        tos=tos,
        checksum_at=6,
        df=df,
    )


def tcp_frames(
    *,
    src_mac: BytesLike,
    dst_mac: BytesLike,
    src: BytesLike,
    dst: BytesLike,
    sport: IntLike,
    dport: IntLike,
    seq: IntLike,
    ack: IntLike,
    flags: IntLike,
    window: IntLike,
    n: int,
    options: bytes | np.ndarray = b"",
    payload: np.ndarray | None = None,
    lengths: IntLike | None = None,
    ident: IntLike = 0,
    ttl: IntLike = 64,
    tos: int = 0,
    df: bool = True,
) -> Frames:
    """``n`` TCP segments; ``options`` (same for all, or ``(n, k)``) must be padded to a multiple of 4 bytes."""
    opts = (
        _bytes_col(options, n, len(options)) if isinstance(options, bytes) else np.asarray(options, np.uint8)
    )
    olen = opts.shape[1]
    if olen % 4:
        raise ValueError("TCP options must be padded to a multiple of 4 bytes")
    head = np.zeros((n, 20 + olen), dtype=np.uint8)
    head[:, 0:2] = _int_col(sport, n, 2)
    head[:, 2:4] = _int_col(dport, n, 2)
    head[:, 4:8] = _int_col(seq, n, 4)
    head[:, 8:12] = _int_col(ack, n, 4)
    head[:, 12:14] = _int_col(((20 + olen) << 10) | np.asarray(flags, dtype=np.int64), n, 2)
    head[:, 14:16] = _int_col(window, n, 2)
    head[:, 20:] = opts
    plen = None
    if payload is not None:
        plen = np.broadcast_to(np.asarray(payload.shape[1] if lengths is None else lengths, np.int64), (n,))
    return _ip_frames(
        src_mac=src_mac,
        dst_mac=dst_mac,
        src=src,
        dst=dst,
        proto=PROTO_TCP,
        l4_header=head,
        payload=payload,
        lengths=plen,
        ident=ident,
        ttl=ttl,
        tos=tos,
        checksum_at=16,
        df=df,
    )
