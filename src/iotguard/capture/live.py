"""Live capture from a Linux interface: AF_PACKET with a TPACKET_V3 memory-mapped ring, no libpcap binding.

The kernel writes packets into a ring of blocks shared with this process (``block_size`` x ``blocks``,
default 1 MiB x 64). Each filled (or timed-out) block is copied out as one :class:`PacketBatch` by a jitted
walk over its packet headers, then handed back to the kernel, so per-packet work never runs in Python. A BPF
filter compiled by libpcap is attached to the socket (the kernel drops unwanted packets before they reach the
ring). Kernel drop counters come from ``PACKET_STATISTICS`` and add up in ``stats.kernel_drops``.

Needs root (or CAP_NET_RAW). Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import mmap
import select
import socket
import struct
from collections.abc import Iterator

import numpy as np
from numba import njit

from iotguard.capture.batch import LINKTYPE_ETHERNET, LINKTYPE_RAW, PacketBatch, empty_batch
from iotguard.capture.bpf import compile_filter
from iotguard.capture.files import SourceStats
from iotguard.core.errors import CaptureError

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
SO_ATTACH_FILTER = 26
SIOCGIFHWADDR = 0x8927

# Interface hardware types whose frames the flow parser understands.
_ARPHRD_LINKTYPE = {1: LINKTYPE_ETHERNET, 772: LINKTYPE_ETHERNET, 0xFFFE: LINKTYPE_RAW}


@njit(cache=True)
def _walk_block(block, num_pkts, first, offset, caplen, wirelen, ts_us):
    """Locate the packets of one TPACKET_V3 block (a copy of it); returns how many were found."""
    n = 0
    pos = first
    size = block.shape[0]
    for _ in range(num_pkts):
        if pos < 0 or pos + 48 > size:
            break
        nxt = (
            np.int64(block[pos])
            | (np.int64(block[pos + 1]) << 8)
            | (np.int64(block[pos + 2]) << 16)
            | (np.int64(block[pos + 3]) << 24)
        )
        sec = (
            np.int64(block[pos + 4])
            | (np.int64(block[pos + 5]) << 8)
            | (np.int64(block[pos + 6]) << 16)
            | (np.int64(block[pos + 7]) << 24)
        )
        nsec = (
            np.int64(block[pos + 8])
            | (np.int64(block[pos + 9]) << 8)
            | (np.int64(block[pos + 10]) << 16)
            | (np.int64(block[pos + 11]) << 24)
        )
        snap = (
            np.int64(block[pos + 12])
            | (np.int64(block[pos + 13]) << 8)
            | (np.int64(block[pos + 14]) << 16)
            | (np.int64(block[pos + 15]) << 24)
        )
        length = (
            np.int64(block[pos + 16])
            | (np.int64(block[pos + 17]) << 8)
            | (np.int64(block[pos + 18]) << 16)
            | (np.int64(block[pos + 19]) << 24)
        )
        mac = np.int64(block[pos + 24]) | (np.int64(block[pos + 25]) << 8)
        start = pos + mac
        if start + snap <= size:
            offset[n] = start
            caplen[n] = snap
            wirelen[n] = length
            ts_us[n] = sec * 1000000 + nsec // 1000
            n += 1
        if nxt == 0:
            break
        pos += nxt
    return n


class LiveCapture:
    """Batches of packets from a live interface (``with LiveCapture("eth0", bpf="tcp") as cap: ...``).

    Iteration yields one batch per ring block, and an empty batch whenever ``poll_timeout`` passes without
    one, so consumers can run timers (flow expiry) and notice shutdown. It runs until closed.
    """

    live = True

    def __init__(
        self,
        interface: str,
        *,
        bpf: str | None = None,
        snaplen: int = 65535,
        promiscuous: bool = True,
        block_size: int = 1 << 20,
        blocks: int = 64,
        block_timeout_ms: int = 100,
        poll_timeout: float = 0.2,
    ) -> None:
        if not interface:
            raise CaptureError("no interface name given", where="iface:", expected="iface:NAME")
        if block_size < 4096 or block_size & (block_size - 1):
            raise CaptureError(f"block_size {block_size} is not a power of two >= 4096", where="block_size")
        self.interface = interface
        self.stats = SourceStats()
        self.poll_timeout = poll_timeout
        self._block_size = block_size
        self._blocks = blocks
        self._ring: mmap.mmap | None = None
        self._sock: socket.socket | None = None
        self._current = 0
        try:
            ifindex = socket.if_nametoindex(interface)
        except OSError as exc:
            raise CaptureError("no such network interface", where=f"iface:{interface}") from exc
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError as exc:
            raise CaptureError(
                "live capture needs root (or CAP_NET_RAW)", where=f"iface:{interface}"
            ) from exc
        self._sock = sock
        try:
            self.linktype = self._linktype(sock, interface)
            if bpf:
                self._attach_filter(sock, compile_filter(bpf, self.linktype, snaplen))
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frame_size = 1 << max(11, (min(snaplen, block_size) + 64 - 1).bit_length())
            frame_size = min(frame_size, block_size)
            req = struct.pack(
                "IIIIIII",
                block_size,
                blocks,
                frame_size,
                (block_size // frame_size) * blocks,
                block_timeout_ms,
                0,
                0,
            )
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._ring = mmap.mmap(
                sock.fileno(), block_size * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
            if promiscuous:
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            sock.bind((interface, ETH_P_ALL))
            self._read_kernel_stats()  # reset the counters: count from now on
            self.stats.kernel_drops = 0
            self.stats.packets = 0
        except OSError as exc:
            self.close()
            raise CaptureError(f"cannot capture: {exc.strerror or exc}", where=f"iface:{interface}") from exc
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _linktype(sock: socket.socket, interface: str) -> int:
        ifreq = struct.pack("16s16s", interface.encode()[:15], b"")
        try:
            res = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, ifreq)
        except OSError as exc:
            raise CaptureError(
                f"cannot read the interface type: {exc.strerror}", where=f"iface:{interface}"
            ) from exc
        hwtype = struct.unpack("H", res[16:18])[0]
        if hwtype not in _ARPHRD_LINKTYPE:
            raise CaptureError(
                f"interface hardware type {hwtype} is not supported",
                where=f"iface:{interface}",
                expected="Ethernet, loopback or a raw-IP (tun) interface",
            )
        return _ARPHRD_LINKTYPE[hwtype]

    @staticmethod
    def _attach_filter(sock: socket.socket, prog: np.ndarray) -> None:
        insns = b"".join(
            struct.pack("HBBI", int(c), int(jt), int(jf), int(k) & 0xFFFFFFFF) for c, jt, jf, k in prog
        )
        buf = ctypes.create_string_buffer(insns)
        fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)

    def _read_kernel_stats(self) -> None:
        if self._sock is None:
            return
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        _packets, drops, _freeze = struct.unpack("III", raw)
        self.stats.kernel_drops += drops

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._read_kernel_stats()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __iter__(self) -> Iterator[PacketBatch]:
        while self._ring is not None and self._sock is not None:
            batch = self._next_block()
            if batch is None:
                try:
                    ready, _, _ = select.select([self._sock], [], [], self.poll_timeout)
                except OSError as exc:
                    if exc.errno == errno.EINTR:
                        continue
                    raise
                if not ready:
                    self._read_kernel_stats()
                    yield empty_batch()
                continue
            yield batch

    def _next_block(self) -> PacketBatch | None:
        ring = self._ring
        assert ring is not None
        base = self._current * self._block_size
        status, num_pkts, first, blk_len = struct.unpack_from("IIII", ring, base + 8)
        if not status & TP_STATUS_USER:
            return None
        blk_len = min(blk_len, self._block_size)
        block = np.frombuffer(ring, dtype=np.uint8, count=blk_len, offset=base).copy()
        struct.pack_into("I", ring, base + 8, TP_STATUS_KERNEL)  # hand the block back at once
        self._current = (self._current + 1) % self._blocks
        offset = np.empty(num_pkts, np.int64)
        caplen = np.empty(num_pkts, np.int32)
        wirelen = np.empty(num_pkts, np.int32)
        ts_us = np.empty(num_pkts, np.int64)
        n = _walk_block(block, num_pkts, first, offset, caplen, wirelen, ts_us)
        self._read_kernel_stats()
        batch = PacketBatch(
            block, offset[:n], caplen[:n], wirelen[:n], ts_us[:n], np.full(n, self.linktype, np.int32)
        )
        self.stats.packets += n
        self.stats.bytes += batch.wire_bytes
        return batch
