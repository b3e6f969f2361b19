"""CoAP messages (RFC 7252) with the Observe option (RFC 7641)."""

from __future__ import annotations

import struct

CON, NON, ACK, RST = 0, 1, 2, 3
GET = 0x01
CONTENT = 0x45  # 2.05
NOT_FOUND = 0x84  # 4.04
OBSERVE, URI_PATH, CONTENT_FORMAT, MAX_AGE = 6, 11, 12, 14
JSON = 50
LINK_FORMAT = 40


def _uint(value: int) -> bytes:
    if value == 0:
        return b""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _ext(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes((value - 13,))
    return 14, struct.pack("!H", value - 269)


def message(
    mtype: int,
    code: int,
    message_id: int,
    token: bytes,
    options: list[tuple[int, bytes]],
    payload: bytes = b"",
) -> bytes:
    out = bytearray((0x40 | (mtype << 4) | len(token), code))
    out += struct.pack("!H", message_id) + token
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        dn, dext = _ext(number - last)
        ln, lext = _ext(len(value))
        out.append((dn << 4) | ln)
        out += dext + lext + value
        last = number
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def get(
    message_id: int, token: bytes, path: str, observe: int | None = None, confirmable: bool = True
) -> bytes:
    opts = [(URI_PATH, p.encode()) for p in path.strip("/").split("/")]
    if observe is not None:
        opts.append((OBSERVE, _uint(observe)))
    return message(CON if confirmable else NON, GET, message_id, token, opts)


def content(
    mtype: int,
    message_id: int,
    token: bytes,
    payload: bytes,
    *,
    observe: int | None = None,
    fmt: int = JSON,
    max_age: int | None = None,
) -> bytes:
    opts = [(CONTENT_FORMAT, _uint(fmt))]
    if observe is not None:
        opts.append((OBSERVE, _uint(observe & 0xFFFFFF)))
    if max_age is not None:
        opts.append((MAX_AGE, _uint(max_age)))
    return message(mtype, CONTENT, message_id, token, opts, payload)


def empty_ack(message_id: int) -> bytes:
    return message(ACK, 0, message_id, b"", [])
