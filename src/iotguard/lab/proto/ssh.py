"""SSH-2 (RFC 4253) as it looks on the wire: version banners, the cleartext key exchange (KEXINIT,
curve25519 ECDH, NEWKEYS), then encrypted packets (chacha20-poly1305: encrypted length, padded payload,
16-byte tag), whose sizes follow what they carry."""

from __future__ import annotations

import random
import struct

CLIENTS = (
    "OpenSSH_9.6p1 Ubuntu-3ubuntu13",
    "OpenSSH_9.2p1 Debian-2+deb12u2",
    "OpenSSH_for_Windows_9.5",
    "PuTTY_Release_0.80",
)
SERVERS = ("OpenSSH_8.9p1 Ubuntu-3ubuntu0.6", "OpenSSH_9.2p1 Debian-2+deb12u3", "dropbear_2022.83")

_KEX = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha256"
_HOSTKEY = "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"
_CIPHERS = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com"
_MACS = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"
_COMP = "none,zlib@openssh.com"


def banner(software: str) -> bytes:
    return f"SSH-2.0-{software}\r\n".encode()


def _string(data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return struct.pack("!I", len(data)) + data


def _packet(payload: bytes, rng: random.Random, block: int = 8) -> bytes:
    """Binary packet: length, padding length, payload, random padding (at least 4, to a block multiple)."""
    pad = block - (5 + len(payload)) % block
    if pad < 4:
        pad += block
    return struct.pack("!IB", 1 + len(payload) + pad, pad) + payload + rng.randbytes(pad)


def kexinit(rng: random.Random, *, server: bool) -> bytes:
    kex = _KEX + (",kex-strict-s-v00@openssh.com" if server else ",ext-info-c,kex-strict-c-v00@openssh.com")
    lists = [kex, _HOSTKEY, _CIPHERS, _CIPHERS, _MACS, _MACS, _COMP, _COMP, "", ""]
    payload = bytes((20,)) + rng.randbytes(16) + b"".join(_string(x) for x in lists) + b"\x00" + b"\x00" * 4
    return _packet(payload, rng)


def ecdh_init(rng: random.Random) -> bytes:
    return _packet(bytes((30,)) + _string(rng.randbytes(32)), rng)


def ecdh_reply(rng: random.Random) -> bytes:
    host_key = _string("ssh-ed25519") + _string(rng.randbytes(32))
    signature = _string("ssh-ed25519") + _string(rng.randbytes(64))
    payload = bytes((31,)) + _string(host_key) + _string(rng.randbytes(32)) + _string(signature)
    return _packet(payload, rng)


def newkeys(rng: random.Random) -> bytes:
    return _packet(bytes((21,)), rng)


def encrypted(rng: random.Random, payload: int) -> bytes:
    """One encrypted packet carrying ``payload`` bytes (chacha20-poly1305: 4 + padded body + 16)."""
    body = 1 + payload
    pad = 8 - body % 8
    if pad < 4:
        pad += 8
    return rng.randbytes(4 + body + pad + 16)
