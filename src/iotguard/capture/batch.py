"""A batch of captured packets as arrays: the one thing every packet source yields.

A batch holds the raw bytes of many packets in one ``uint8`` buffer plus per-packet arrays that locate them.
Parsers and the flow meter work on whole batches (numba loops over the arrays), never on one Python object
per packet. A batch owns its buffer: sources never reuse or overwrite it, so a batch may be kept, queued or
handed to another thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Link-layer header types (https://www.tcpdump.org/linktypes.html) that the parser understands.
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6 (also 12 and 14 on some systems)
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "EN10MB",
    12: "RAW",
    14: "RAW",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}
SUPPORTED_LINKTYPES = frozenset(LINKTYPE_NAMES)


@dataclass(frozen=True, slots=True)
class PacketBatch:
    """Packets ``i = 0..n-1`` are ``data[offset[i] : offset[i] + caplen[i]]``.

    ``ts_us`` is the capture time in integer microseconds since the Unix epoch (nanosecond captures are
    truncated to microseconds, the resolution CICFlowMeter works in); ``wirelen`` is the length the packet
    had on the wire; ``linktype`` says how to parse each packet (a pcapng file may mix link types).
    """

    data: np.ndarray  # uint8
    offset: np.ndarray  # int64
    caplen: np.ndarray  # int32
    wirelen: np.ndarray  # int32
    ts_us: np.ndarray  # int64
    linktype: np.ndarray  # int32

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    @property
    def wire_bytes(self) -> int:
        return int(self.wirelen.sum(dtype=np.int64))

    def select(self, mask: np.ndarray) -> PacketBatch:
        """The packets where ``mask`` is true (the buffer is shared, not copied)."""
        return PacketBatch(
            self.data,
            self.offset[mask],
            self.caplen[mask],
            self.wirelen[mask],
            self.ts_us[mask],
            self.linktype[mask],
        )

    def packet(self, i: int) -> bytes:
        """The captured bytes of packet ``i`` (for tests and debugging, not for hot paths)."""
        start = int(self.offset[i])
        return self.data[start : start + int(self.caplen[i])].tobytes()

    @staticmethod
    def from_packets(
        packets: list[bytes], ts_us: list[int] | np.ndarray, linktype: int = LINKTYPE_ETHERNET
    ) -> PacketBatch:
        """Build a batch from a list of raw packets (tests, or callers with their own capture library)."""
        lengths = np.fromiter((len(p) for p in packets), dtype=np.int64, count=len(packets))
        offset = np.zeros(len(packets), dtype=np.int64)
        if len(packets) > 1:
            np.cumsum(lengths[:-1], out=offset[1:])
        data = np.frombuffer(b"".join(packets), dtype=np.uint8).copy()
        return PacketBatch(
            data,
            offset,
            lengths.astype(np.int32),
            lengths.astype(np.int32),
            np.asarray(ts_us, dtype=np.int64).copy(),
            np.full(len(packets), linktype, dtype=np.int32),
        )


def empty_batch() -> PacketBatch:
    return PacketBatch(
        np.zeros(0, np.uint8),
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
        np.zeros(0, np.int32),
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
    )
