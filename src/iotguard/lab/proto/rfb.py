"""RFB 3.8 (VNC, RFC 6143) messages as a server and a viewer send them: the handshake with VNC authentication
(security type 2), the initialisation, the viewer's requests and input events, and framebuffer updates in
ZRLE (encoding 16) compressed with zlib, one zlib stream per connection as the RFC asks.

The VNC-authentication response is the 16-byte challenge DES-encrypted with the password; no DES ships with
the lab's dependencies, so :func:`vnc_response` derives 16 bytes from the challenge and the password with a
keyed hash instead. On the wire the two are alike (16 bytes that look random and depend on both), and nothing
that reads the capture (Wireshark, iotguard's flow meter) checks the cipher.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np

VERSION_38 = b"RFB 003.008\n"
VNC_AUTH = 2  # security type "VNC Authentication"
OK, FAILED = 0, 1  # SecurityResult status
ZRLE = 16
ENCODINGS = (ZRLE, 7, 5, 6, 1, 0, -239, -223, -224)
"""What the viewer asks for, best first: ZRLE, Tight, Hextile, Zlib, CopyRect, Raw, and the Cursor,
DesktopSize and LastRect pseudo-encodings. ZRLE first is RealVNC's viewer's order; TigerVNC's and TightVNC's
viewers put Tight first."""
TILE = 64  # ZRLE tiles are 64x64 pixels, the right and bottom ones smaller

SET_PIXEL_FORMAT, SET_ENCODINGS, UPDATE_REQUEST, KEY_EVENT, POINTER_EVENT = 0, 2, 3, 4, 5


def pixel_format() -> bytes:
    """32 bits per pixel, depth 24, little-endian true colour 8-8-8 (red at bit 16): what servers offer and
    viewers ask for; ZRLE then sends 3-byte compressed pixels."""
    return struct.pack("!BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


def security_types(*types: int) -> bytes:
    return bytes((len(types), *types))


def security_refused(reason: str) -> bytes:
    """No security types (a count of 0) and why: how a 3.8 server turns a client away before any challenge,
    e.g. an address blacklisted after too many failures."""
    text = reason.encode()
    return b"\x00" + struct.pack("!I", len(text)) + text


def vnc_response(challenge: bytes, password: str) -> bytes:
    """The viewer's 16-byte answer to ``challenge`` (a keyed-hash stand-in for DES; see the module docstring).
    VNC passwords are at most 8 characters: longer ones are cut, as viewers do."""
    key = password.encode()[:8].ljust(8, b"\x00")
    return hashlib.blake2b(challenge, key=key, digest_size=16).digest()


def security_result(ok: bool, reason: str = "Authentication failed") -> bytes:
    """SecurityResult; a 3.8 server gives the failure's reason in the same message."""
    if ok:
        return struct.pack("!I", OK)
    text = reason.encode()
    return struct.pack("!II", FAILED, len(text)) + text


def client_init(shared: bool = True) -> bytes:
    return b"\x01" if shared else b"\x00"


def server_init(width: int, height: int, name: str) -> bytes:
    text = name.encode()
    return struct.pack("!HH", width, height) + pixel_format() + struct.pack("!I", len(text)) + text


def set_pixel_format() -> bytes:
    return struct.pack("!B3x", SET_PIXEL_FORMAT) + pixel_format()


def set_encodings(encodings: tuple[int, ...] = ENCODINGS) -> bytes:
    return struct.pack(f"!BxH{len(encodings)}i", SET_ENCODINGS, len(encodings), *encodings)


def update_request(incremental: bool, x: int, y: int, width: int, height: int) -> bytes:
    return struct.pack("!BBHHHH", UPDATE_REQUEST, int(incremental), x, y, width, height)


def key_event(down: bool, keysym: int) -> bytes:
    return struct.pack("!BB2xI", KEY_EVENT, int(down), keysym)


def pointer_event(buttons: int, x: int, y: int) -> bytes:
    return struct.pack("!BBHH", POINTER_EVENT, buttons, x, y)


class ZrleEncoder:
    """One connection's ZRLE encoder: every rectangle's tiles go through the connection's single zlib stream,
    each rectangle ending in a full flush (``Z_FULL_FLUSH``: a flush to a byte boundary that also resets the
    compression history) so the viewer can decode it at once."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(6)

    def rect(self, x: int, y: int, width: int, height: int, busy: float, rng: np.random.Generator) -> bytes:
        """A rectangle header and its ZRLE data. A tile is *busy* with probability ``busy``: runs of 2 to 16
        colours (text, icons, menus, a thumbnail), sent as a packed palette, the subencoding an encoder picks
        for such tiles; the others are one solid colour (background), a 4-byte tile."""
        tiles = []
        for ty in range(0, height, TILE):
            for tx in range(0, width, TILE):
                w, h = min(TILE, width - tx), min(TILE, height - ty)
                if rng.random() < busy:
                    tiles.append(_packed_palette(w, h, rng))
                else:
                    tiles.append(b"\x01" + rng.integers(0, 256, 3, dtype=np.uint8).tobytes())  # 1: solid
        raw = b"".join(tiles)
        # a full flush keeps it one zlib stream, as the RFC asks, and since it forgets the history, every
        # rectangle after the first also inflates on its own as raw deflate (no zlib header: only the first
        # carries the stream's 2-byte header), which Wireshark's dissector tries
        data = self._zlib.compress(raw) + self._zlib.flush(zlib.Z_FULL_FLUSH)
        return struct.pack("!HHHHiI", x, y, width, height, ZRLE, len(data)) + data


def framebuffer_update(rects: list[bytes]) -> bytes:
    """A FramebufferUpdate message carrying rectangles made by :meth:`ZrleEncoder.rect`."""
    return struct.pack("!BxH", 0, len(rects)) + b"".join(rects)


def _packed_palette(width: int, height: int, rng: np.random.Generator) -> bytes:
    """A ZRLE tile of subencoding 2-16: that many 3-byte palette colours, then each row's palette indices
    packed 1, 2 or 4 bits each (2, up to 4, up to 16 colours), most significant bits first, every row padded
    to a whole byte. The indices come in runs, as text and flat areas do."""
    size = int(rng.integers(2, 17))
    palette = rng.integers(0, 256, size * 3, dtype=np.uint8).tobytes()
    pixels = width * height
    mean = float(rng.uniform(2.0, 16.0))  # mean run length
    # enough runs to cover the tile nearly always (the rest repeats the last)
    runs = int(2 * pixels / mean) + 16
    index = np.repeat(rng.integers(0, size, runs, dtype=np.uint8), rng.geometric(1 / mean, runs))
    index = index[:pixels] if len(index) >= pixels else np.pad(index, (0, pixels - len(index)), mode="edge")
    bits = 1 if size == 2 else 2 if size <= 4 else 4
    per = 8 // bits
    row = -(-width // per) * per
    padded = np.zeros((height, row), np.uint8)
    padded[:, :width] = index.reshape(height, width)
    shifts = (8 - bits * (np.arange(per) + 1)).astype(np.uint8)
    packed = (padded.reshape(height, row // per, per) << shifts).sum(axis=2, dtype=np.uint16)
    return bytes((size,)) + palette + packed.astype(np.uint8).tobytes()
