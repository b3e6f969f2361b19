"""MQTT 3.1.1 control packets (OASIS standard), encoded exactly as a client or broker sends them."""

from __future__ import annotations

import struct

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    1,
    2,
    3,
    4,
    8,
    9,
    12,
    13,
    14,
)
ACCEPTED = 0
BAD_CREDENTIALS = 4
NOT_AUTHORIZED = 5


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + remaining_length(len(body)) + body


def connect(
    client_id: str,
    keepalive: int,
    *,
    username: str | None = None,
    password: str | None = None,
    clean: bool = True,
    will: tuple[str, bytes, int, bool] | None = None,
) -> bytes:
    """CONNECT; ``will`` is the last will (topic, message, QoS, retain) the broker publishes if we vanish."""
    flags = (
        (0x02 if clean else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    )
    will_fields = b""
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        will_fields = _str(topic) + _str(message)
    body = _str("MQTT") + bytes((4, flags)) + struct.pack("!H", keepalive) + _str(client_id) + will_fields
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _str(password)
    return _packet(CONNECT << 4, body)


def connack(code: int = ACCEPTED, session_present: bool = False) -> bytes:
    return _packet(CONNACK << 4, bytes((int(session_present), code)))


def publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, retain: bool = False) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _packet((PUBLISH << 4) | (qos << 1) | int(retain), body)


def puback(packet_id: int) -> bytes:
    return _packet(PUBACK << 4, struct.pack("!H", packet_id))


PUBREC, PUBREL, PUBCOMP = 5, 6, 7


def pubrec(packet_id: int) -> bytes:
    return _packet(PUBREC << 4, struct.pack("!H", packet_id))


def pubrel(packet_id: int) -> bytes:
    return _packet((PUBREL << 4) | 0x02, struct.pack("!H", packet_id))


def pubcomp(packet_id: int) -> bytes:
    return _packet(PUBCOMP << 4, struct.pack("!H", packet_id))


def subscribe(packet_id: int, topics: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_str(t) + bytes((q,)) for t, q in topics)
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def suback(packet_id: int, codes: list[int]) -> bytes:
    return _packet(SUBACK << 4, struct.pack("!H", packet_id) + bytes(codes))


def pingreq() -> bytes:
    return bytes((PINGREQ << 4, 0))


def pingresp() -> bytes:
    return bytes((PINGRESP << 4, 0))


def disconnect() -> bytes:
    return bytes((DISCONNECT << 4, 0))


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching with ``+`` and ``#``."""
    pat = pattern.split("/")
    top = topic.split("/")
    for i, part in enumerate(pat):
        if part == "#":
            return True
        if i >= len(top) or (part != "+" and part != top[i]):
            return False
    return len(pat) == len(top)
