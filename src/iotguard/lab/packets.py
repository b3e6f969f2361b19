"""Frame builders, one frame at a time: Ethernet II carrying ARP, or IPv4 carrying TCP, UDP or ICMP.

Every builder returns the complete frame as ``bytes`` with correct lengths and checksums (IPv4 header, TCP and
UDP over the pseudo-header, ICMP). These are the conversation path (handshakes, requests, replies); streams and
floods use the array builders in :mod:`iotguard.lab.bulk`.

Checksums use one identity instead of a loop over 16-bit words: a big-endian byte string read as one integer is
congruent modulo 0xFFFF to the sum of its 16-bit words (because 2**16 = 1 mod 0xFFFF), so the one's-complement
sum is that remainder (0xFFFF for a non-zero multiple). Python's big integers make that a C-speed operation.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

# TCP flag bits
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

_ETH = struct.Struct("!6s6sH")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIHHHH")
_UDP = struct.Struct("!HHHH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ICMP = struct.Struct("!BBHHH")


def mac(text: str) -> bytes:
    """``"aa:bb:cc:dd:ee:ff"`` -> 6 bytes."""
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def ip(text: str) -> bytes:
    """Dotted IPv4 -> 4 bytes."""
    return ipaddress.IPv4Address(text).packed


def fold(total: int) -> int:
    """Internet checksum of data whose 16-bit words are congruent to ``total`` (see the module docstring)."""
    rest = total % 0xFFFF
    if rest == 0 and total:
        rest = 0xFFFF
    return 0xFFFF - rest


def words(data: bytes) -> int:
    """An integer congruent (mod 0xFFFF) to the sum of ``data``'s 16-bit words, zero-padded to even length."""
    value = int.from_bytes(data, "big")
    return value << 8 if len(data) & 1 else value


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data``."""
    return fold(words(data))


def ethernet(src_mac: bytes, dst_mac: bytes, ethertype: int, payload: bytes) -> bytes:
    return _ETH.pack(dst_mac, src_mac, ethertype) + payload


def ipv4_header(
    src: bytes, dst: bytes, proto: int, payload_len: int, ident: int, ttl: int, tos: int = 0, df: bool = True
) -> bytes:
    total = 20 + payload_len
    flags = 0x4000 if df else 0
    head = _IP.pack(0x45, tos, total, ident & 0xFFFF, flags, ttl, proto, 0, src, dst)
    csum = fold(words(head))
    return head[:10] + csum.to_bytes(2, "big") + head[12:]


def tcp_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    payload: bytes = b"",
    options: bytes = b"",
    ident: int = 0,
    ttl: int = 64,
    tos: int = 0,
) -> bytes:
    """One Ethernet/IPv4/TCP frame; ``options`` must be padded to a multiple of 4 bytes."""
    hlen = 20 + len(options)
    seg_len = hlen + len(payload)
    head = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hlen << 10) | flags, window, 0, 0)
    head += options
    total = words(src + dst) + PROTO_TCP + seg_len + words(head) + words(payload)
    csum = fold(total)
    head = head[:16] + csum.to_bytes(2, "big") + head[18:]
    return (
        _ETH.pack(dst_mac, src_mac, ETH_IPV4)
        + ipv4_header(src, dst, PROTO_TCP, seg_len, ident, ttl, tos)
        + head
        + payload
    )


def udp_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    payload: bytes,
    ident: int = 0,
    ttl: int = 64,
    tos: int = 0,
    df: bool = True,
) -> bytes:
    length = 8 + len(payload)
    total = words(src + dst) + PROTO_UDP + length + sport + dport + length + words(payload)
    csum = fold(total) or 0xFFFF  # 0 means "no checksum" in UDP, so a computed 0 is sent as 0xFFFF
    return (
        _ETH.pack(dst_mac, src_mac, ETH_IPV4)
        + ipv4_header(src, dst, PROTO_UDP, length, ident, ttl, tos, df)
        + _UDP.pack(sport, dport, length, csum)
        + payload
    )


def icmp_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src: bytes,
    dst: bytes,
    icmp_type: int,
    code: int,
    rest: bytes,
    ident: int = 0,
    ttl: int = 64,
) -> bytes:
    """ICMP message; ``rest`` is everything after the type/code/checksum (4 header bytes then data)."""
    body = bytes((icmp_type, code, 0, 0)) + rest
    csum = checksum(body)
    body = body[:2] + csum.to_bytes(2, "big") + body[4:]
    return (
        _ETH.pack(dst_mac, src_mac, ETH_IPV4)
        + ipv4_header(src, dst, PROTO_ICMP, len(body), ident, ttl, df=False)
        + body
    )


def icmp_port_unreachable(
    src_mac: bytes, dst_mac: bytes, src: bytes, dst: bytes, original: bytes, ident: int = 0, ttl: int = 64
) -> bytes:
    """Destination unreachable (port) quoting the IP header and first 8 payload bytes of ``original`` (a frame)."""
    quoted = original[14 : 14 + 28]
    return icmp_frame(src_mac, dst_mac, src, dst, 3, 3, b"\x00\x00\x00\x00" + quoted, ident, ttl)


def arp_frame(
    src_mac: bytes,
    dst_mac: bytes,
    op: int,
    sender_mac: bytes,
    sender_ip: bytes,
    target_mac: bytes,
    target_ip: bytes,
) -> bytes:
    """ARP request (op 1) or reply (op 2), padded to the 60-byte Ethernet minimum as NICs send it."""
    body = _ARP.pack(1, ETH_IPV4, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip)
    return _ETH.pack(dst_mac, src_mac, ETH_ARP) + body + b"\x00" * 18


# -- TCP options --------------------------------------------------------------------------------------------


def syn_options(mss: int, sack: bool, wscale: int | None, tsval: int | None) -> bytes:
    """SYN options in the order Linux sends them (MSS, SACK-permitted, timestamps, NOP, window scale)."""
    opts = struct.pack("!BBH", 2, 4, mss)
    if tsval is not None:
        opts += (b"\x04\x02" if sack else b"\x01\x01") + struct.pack("!BBII", 8, 10, tsval & 0xFFFFFFFF, 0)
    elif sack:
        opts += b"\x01\x01\x04\x02"
    if wscale is not None:
        opts += struct.pack("!BBBB", 1, 3, 3, wscale)
    return opts


def synack_options(mss: int, sack: bool, wscale: int | None, tsval: int | None, tsecr: int) -> bytes:
    opts = struct.pack("!BBH", 2, 4, mss)
    if tsval is not None:
        opts += (b"\x04\x02" if sack else b"\x01\x01") + struct.pack(
            "!BBII", 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF
        )
    elif sack:
        opts += b"\x01\x01\x04\x02"
    if wscale is not None:
        opts += struct.pack("!BBBB", 1, 3, 3, wscale)
    return opts


def ts_option(tsval: int, tsecr: int) -> bytes:
    return struct.pack("!BBBBII", 1, 1, 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)
