"""TLS 1.3 records as they appear on the wire (RFC 8446): the cleartext hellos, then opaque records.

The ClientHello and ServerHello are complete and well formed (SNI, supported versions, key share, ...);
everything after them is encrypted in real TLS 1.3, so random bytes of the right record sizes are exactly what
an observer without keys sees.
"""

from __future__ import annotations

import random
import struct

HANDSHAKE, CHANGE_CIPHER_SPEC, APPLICATION_DATA = 22, 20, 23
CIPHERS = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8)


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _record(kind: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", kind, version, len(body)) + body


def client_hello(rng: random.Random, server_name: str, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> bytes:
    name = server_name.encode()
    sni = _ext(0x0000, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    groups = _ext(0x000A, struct.pack("!HHHH", 6, 0x001D, 0x0017, 0x0018))
    points = _ext(0x000B, b"\x01\x00")
    sigalgs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    signatures = _ext(
        0x000D, struct.pack("!H", 2 * len(sigalgs)) + b"".join(struct.pack("!H", s) for s in sigalgs)
    )
    protocols = b"".join(bytes((len(p),)) + p.encode() for p in alpn)
    alpn_ext = _ext(0x0010, struct.pack("!H", len(protocols)) + protocols) if alpn else b""
    versions = _ext(0x002B, b"\x04\x03\x04\x03\x03")
    psk_modes = _ext(0x002D, b"\x01\x01")
    key_share = _ext(0x0033, struct.pack("!HHH", 36, 0x001D, 32) + rng.randbytes(32))
    extensions = sni + groups + points + signatures + alpn_ext + versions + psk_modes + key_share
    body = b"\x03\x03" + rng.randbytes(32) + b"\x20" + rng.randbytes(32)
    body += struct.pack("!H", 2 * len(CIPHERS)) + b"".join(struct.pack("!H", c) for c in CIPHERS)
    body += b"\x01\x00" + struct.pack("!H", len(extensions)) + extensions
    handshake = struct.pack("!B", 1) + len(body).to_bytes(3, "big") + body
    return _record(HANDSHAKE, handshake, version=0x0301)


def server_hello(rng: random.Random, session_id: bytes) -> bytes:
    """ServerHello choosing TLS_AES_128_GCM_SHA256 and x25519, then ChangeCipherSpec (middlebox compatibility)."""
    extensions = _ext(0x002B, b"\x03\x04") + _ext(0x0033, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))
    body = (
        b"\x03\x03"
        + rng.randbytes(32)
        + bytes((len(session_id),))
        + session_id
        + struct.pack("!HB", 0x1301, 0)
    )
    body += struct.pack("!H", len(extensions)) + extensions
    handshake = struct.pack("!B", 2) + len(body).to_bytes(3, "big") + body
    return _record(HANDSHAKE, handshake) + change_cipher_spec()


def session_id_of(hello: bytes) -> bytes:
    """The legacy session id a ClientHello carries (the ServerHello echoes it)."""
    return hello[44:76]


def change_cipher_spec() -> bytes:
    return _record(CHANGE_CIPHER_SPEC, b"\x01")


def encrypted(rng: random.Random, size: int) -> bytes:
    """Application-data records carrying ``size`` bytes of ciphertext (16 KiB maximum per record)."""
    out = []
    while size > 0:
        chunk = min(size, 16384 + 256)
        out.append(_record(APPLICATION_DATA, rng.randbytes(chunk)))
        size -= chunk
    return b"".join(out)
