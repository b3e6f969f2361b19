"""Helpers for the flow tests: build packets (scapy) and write pcap/pcapng files byte by byte."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from iotguard.capture.batch import PacketBatch
from iotguard.flows import FlowMeter

T0 = 1_500_000_000  # a realistic epoch second (CICFlowMeter's bulk logic treats 0 as "unset")

CLIENT = "192.168.1.10"
SERVER = "10.0.0.1"


def tcp(
    src: str, dst: str, sport: int, dport: int, flags: str, payload: int = 0, window: int = 8192, options=None
):
    layer = TCP(sport=sport, dport=dport, flags=flags, window=window, options=options or [])
    return Ether() / IP(src=src, dst=dst) / layer / (b"x" * payload)


def udp(src: str, dst: str, sport: int, dport: int, payload: int = 0):
    return Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"u" * payload)


def icmp(src: str, dst: str, type_: int = 8, code: int = 0, payload: int = 8):
    return Ether() / IP(src=src, dst=dst) / ICMP(type=type_, code=code) / (b"i" * payload)


def batch(packets: Sequence, times_us: Sequence[int], linktype: int = 1) -> PacketBatch:
    """A batch of scapy packets at ``T0 + times_us`` microseconds."""
    return PacketBatch.from_packets(
        [bytes(p) for p in packets], [T0 * 1_000_000 + t for t in times_us], linktype
    )


def run(packets: Sequence, times_us: Sequence[int], **config) -> pd.DataFrame:
    """Every record (final and early) a fresh meter emits for these packets, in emission order."""
    meter = FlowMeter(**config)
    frames = [meter.feed(batch(packets, times_us)), meter.flush()]
    return pd.concat(frames, ignore_index=True)


def pcap_bytes(
    packets: Sequence[bytes],
    times_us: Sequence[int],
    *,
    linktype: int = 1,
    nano: bool = False,
    big_endian: bool = False,
    snaplen: int = 65535,
) -> bytes:
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for data, t in zip(packets, times_us, strict=True):
        sec, usec = divmod(T0 * 1_000_000 + t, 1_000_000)
        frac = usec * 1000 if nano else usec
        out.append(struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data)
    return b"".join(out)


def _block(btype: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def pcapng_section(order: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def pcapng_interface(
    linktype: int, order: str = "<", tsresol: int | None = None, comment: str | None = None
) -> bytes:
    opts = b""
    if comment is not None:
        raw = comment.encode()
        opts += struct.pack(order + "HH", 1, len(raw)) + raw + b"\0" * (-len(raw) % 4)
    if tsresol is not None:
        opts += struct.pack(order + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
    if opts:
        opts += struct.pack(order + "HH", 0, 0)
    return _block(1, struct.pack(order + "HHI", linktype, 0, 65535) + opts, order)


def pcapng_packet(ifid: int, data: bytes, time_units: int, order: str = "<") -> bytes:
    hi, lo = divmod(time_units, 1 << 32)
    return _block(6, struct.pack(order + "IIIII", ifid, hi, lo, len(data), len(data)) + data, order)


def pcapng_unknown(order: str = "<") -> bytes:
    """A custom block (type 0x40000BAD) and a name-resolution block, which readers must skip."""
    return _block(0x40000BAD, b"vendor data", order) + _block(4, struct.pack(order + "HH", 0, 0), order)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
