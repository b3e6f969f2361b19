"""DNS queries and responses (RFC 1035), as a stub resolver and a caching forwarder send them."""

from __future__ import annotations

import struct

A, AAAA = 1, 28


def _name(name: str) -> bytes:
    return b"".join(bytes((len(p),)) + p.encode() for p in name.rstrip(".").split(".")) + b"\x00"


def query(ident: int, name: str, qtype: int = A) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + _name(name) + struct.pack("!HH", qtype, 1)


def response(ident: int, name: str, addresses: list[bytes], ttl: int, qtype: int = A) -> bytes:
    """Answer with A records (pointer to the question name); an empty list gives NOERROR with no answer."""
    answers = [a for a in addresses if qtype == A]
    head = struct.pack("!HHHHHH", ident, 0x8180, 1, len(answers), 0, 0)
    body = _name(name) + struct.pack("!HH", qtype, 1)
    for addr in answers:
        body += struct.pack("!HHHIH", 0xC00C, A, 1, ttl, 4) + addr
    return head + body
