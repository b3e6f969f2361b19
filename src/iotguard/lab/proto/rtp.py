"""RTP (RFC 3550) headers and RTCP sender/receiver reports with SDES, as a camera and a recorder send them."""

from __future__ import annotations

import struct

from iotguard.lab.proto.ntp import timestamp as ntp_timestamp


def header(seq: int, timestamp: int, ssrc: int, marker: bool, payload_type: int = 96) -> bytes:
    return struct.pack(
        "!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    )


def _sdes(ssrc: int, cname: str) -> bytes:
    item = b"\x01" + bytes((len(cname),)) + cname.encode()
    chunk = struct.pack("!I", ssrc) + item + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, (4 + len(chunk)) // 4 - 1) + chunk


def sender_report(ssrc: int, unix_time: float, rtp_ts: int, packets: int, octets: int, cname: str) -> bytes:
    body = (
        struct.pack("!I", ssrc)
        + ntp_timestamp(unix_time)
        + struct.pack("!III", rtp_ts & 0xFFFFFFFF, packets, octets)
    )
    sr = struct.pack("!BBH", 0x80, 200, (4 + len(body)) // 4 - 1) + body
    return sr + _sdes(ssrc, cname)


def receiver_report(
    ssrc: int, source: int, highest_seq: int, jitter: int, lsr: int, dlsr: int, cname: str
) -> bytes:
    block = struct.pack("!IIIIII", source, 0, highest_seq & 0xFFFFFFFF, jitter, lsr & 0xFFFFFFFF, dlsr)
    rr = struct.pack("!BBH", 0x81, 201, (8 + len(block)) // 4 - 1) + struct.pack("!I", ssrc) + block
    return rr + _sdes(ssrc, cname)
