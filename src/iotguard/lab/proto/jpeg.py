"""A baseline JPEG/JFIF file with valid segment structure (what a camera snapshot looks like on the wire).

The entropy-coded data is random but byte-stuffed like real scan data (no 0xFF byte is followed by anything
but 0x00), so decoders walking the markers see a well-formed file.
"""

from __future__ import annotations

import random
import struct


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack("!BBH", 0xFF, marker, len(body) + 2) + body


def jpeg(rng: random.Random, size: int, width: int = 1280, height: int = 720) -> bytes:
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = (
        b"\x00"
        + bytes(rng.randrange(2, 40) for _ in range(64))
        + b"\x01"
        + bytes(rng.randrange(4, 60) for _ in range(64))
    )
    sof0 = struct.pack("!BHHB", 8, height, width, 3) + b"\x01\x21\x00\x02\x11\x01\x03\x11\x01"
    # the standard luminance DC Huffman table (ITU T.81 Annex K.3)
    dht = b"\x00" + bytes((0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)) + bytes(range(12))
    sos = b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    scan = rng.randbytes(max(0, size)).replace(b"\xff", b"\xff\x00")
    return (
        b"\xff\xd8"
        + _segment(0xE0, app0)
        + _segment(0xDB, dqt)
        + _segment(0xC0, sof0)
        + _segment(0xC4, dht)
        + _segment(0xDA, sos)
        + scan
        + b"\xff\xd9"
    )
