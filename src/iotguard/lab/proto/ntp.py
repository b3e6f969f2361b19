"""NTPv4 client requests and server replies (RFC 5905), with timestamps consistent with the capture clock."""

from __future__ import annotations

import struct

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def timestamp(unix_seconds: float) -> bytes:
    secs = int(unix_seconds)
    frac = int((unix_seconds - secs) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", (secs + NTP_EPOCH_OFFSET) & 0xFFFFFFFF, frac)


def request(transmit: float, poll: int = 6) -> bytes:
    """SNTP-style client request (mode 3): only the transmit timestamp is set."""
    return struct.pack("!BBbb", 0x23, 0, poll, -20) + b"\x00" * 36 + timestamp(transmit)


def reply(
    origin: bytes, receive: float, transmit: float, reference: float, ref_id: bytes, poll: int = 6
) -> bytes:
    """Server reply (mode 4, stratum 2); ``origin`` is the client's transmit timestamp echoed back."""
    head = struct.pack("!BBbb", 0x24, 2, poll, -24) + struct.pack("!II", 0x00000215, 0x000003A1) + ref_id
    return head + timestamp(reference) + origin + timestamp(receive) + timestamp(transmit)
