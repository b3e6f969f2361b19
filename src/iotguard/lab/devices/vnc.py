"""A VNC console on the recorder (NVR) and the operator who uses it (the ``vnc`` extra of a scenario).

The recorder serves its local console over RFB 3.8 on TCP 5900, with VNC authentication (security type 2,
one password for the console). An operator's workstation opens a session now and then (:func:`operator`):
the handshake, the right password (saved in the viewer, or typed into its prompt), SecurityResult OK,
ClientInit and ServerInit, the viewer's pixel format and encodings, a full-screen update, then some seconds
to minutes of work. The viewer keeps one incremental update request outstanding and the console answers it
when its screen changes: the status bar's clock every second, a camera thumbnail every two, a menu or a
playback list after a click. The mouse sends pointer events every 10-20 ms while it moves (the viewer draws
the cursor itself), a search is typed as key presses and releases, and the viewer closes the connection at
the end.

:func:`login` is the handshake up to the SecurityResult, which the password-guessing attack
(``attacks.vnc_bruteforce``) shares.
"""

from __future__ import annotations

import random

import numpy as np

from iotguard.lab.network import Host
from iotguard.lab.proto import rfb
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

PORT = 5900
SERVICE = "vnc"
SCREEN = (1280, 720)
_PASSWORD_CHARS = "abcdefghijkmnpqrstuvwxyz23456789"
_KEYS = "0123456789-: "  # what a playback search types: a date and a time


def console_password(sim: Sim, server: Host) -> str:
    """The console's password, drawn once per scenario seed: eight characters, the first a capital letter,
    so that no guess from a list of common (lower-case) passwords is it."""
    rng = sim.rng("vnc-password", server.name)
    return rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + "".join(rng.choice(_PASSWORD_CHARS) for _ in range(7))


def login(
    conn: TcpConn,
    t: float,
    password: str,
    guess: str,
    rng: random.Random,
    *,
    prompt: float = 0.0,
    refused: str | None = None,
) -> tuple[float, bool]:
    """The RFB 3.8 handshake of an open connection from ``t``: version banners, security types, VNC
    authentication with ``guess`` against the server's ``password`` (``prompt``: seconds the viewer takes to
    answer the challenge), the SecurityResult. With ``refused`` the server, after the same version exchange,
    sends a security-types count of 0 and ``refused`` as the reason instead (RFB 3.8's way to turn a client
    away; TigerVNC turns a blacklisted address away before any exchange, with ``RFB 003.003\n``, a 4-byte 0
    and the reason). Returns the time of the server's last message and whether the login succeeded."""
    server, client = conn.s.host, conn.c.host
    t = conn.send(conn.reply_at(t, server, rng.uniform(2e-4, 2e-3)), False, rfb.VERSION_38)
    t = conn.send(conn.reply_at(t, client, rng.uniform(1e-4, 1e-3)), True, rfb.VERSION_38)
    if refused is not None:
        return conn.send(
            conn.reply_at(t, server, rng.uniform(1e-4, 1e-3)), False, rfb.security_refused(refused)
        ), False
    t = conn.send(conn.reply_at(t, server, rng.uniform(1e-4, 1e-3)), False, rfb.security_types(rfb.VNC_AUTH))
    t = conn.send(conn.reply_at(t, client, rng.uniform(1e-4, 1e-3)), True, bytes((rfb.VNC_AUTH,)))
    challenge = rng.randbytes(16)
    t = conn.send(conn.reply_at(t, server, rng.uniform(1e-4, 1e-3)), False, challenge)
    response = rfb.vnc_response(challenge, guess)
    t = conn.send(conn.reply_at(t, client, prompt + rng.uniform(1e-4, 1e-3)), True, response)
    ok = guess[:8] == password[:8]  # the server compares its own encryption of the challenge: 8 characters
    t = conn.send(conn.reply_at(t, server, rng.uniform(5e-4, 3e-3)), False, rfb.security_result(ok))
    return t, ok


def operator(sim: Sim, workstation: Host, console: Host, start: float, end: float) -> None:
    """The operator's sessions on ``console`` from ``start``: each 20 s to 3 min, the next one 60-360 s after
    it ends (logins about 80 s to 9 min apart; 2 sessions in the 600 s ``test``)."""
    rng = sim.rng("vnc-operator", workstation.name)
    password = console_password(sim, console)
    saved = rng.random() < 0.5  # the viewer remembers the password, or the operator types it each time
    t = start
    while t < end:
        t = _session(
            sim, workstation, console, t, min(end, t + rng.uniform(20.0, 180.0)), password, saved, rng
        )
        t += rng.uniform(60.0, 360.0)


def _session(
    sim: Sim, ws: Host, console: Host, t: float, until: float, password: str, saved: bool, rng: random.Random
) -> float:
    npr = sim.nprng("vnc-session", ws.name, round(t, 3))
    width, height = SCREEN
    t = sim.arp(t, ws, console)
    conn = TcpConn(sim, ws, console, PORT, loss=0.002, rng=rng)
    t = conn.connect(t)
    prompt = rng.uniform(0.05, 0.3) if saved else rng.uniform(2.0, 6.0)
    t, ok = login(conn, t, password, password, rng, prompt=prompt)
    assert ok, "the operator knows the console's password"
    t = conn.send(conn.reply_at(t, ws, rng.uniform(1e-3, 5e-3)), True, rfb.client_init())
    t = conn.send(
        conn.reply_at(t, console, rng.uniform(1e-4, 1e-3)),
        False,
        rfb.server_init(width, height, f"{console.name} console"),
    )
    t = conn.send(conn.reply_at(t, ws, rng.uniform(1e-3, 4e-3)), True, rfb.set_pixel_format())
    t = conn.send(t + rng.uniform(1e-5, 1e-4), True, rfb.set_encodings())
    t = conn.send(t + rng.uniform(1e-5, 1e-4), True, rfb.update_request(False, 0, 0, width, height))
    zrle = rfb.ZrleEncoder()
    full = rfb.framebuffer_update([zrle.rect(0, 0, width, height, 0.3, npr)])
    t = conn.send(conn.reply_at(t, console, rng.uniform(0.02, 0.08)), False, full)
    clock, thumb = t + 1.0, t + 2.0  # when the clock and the thumbnail next change
    while True:
        t = conn.send(
            conn.reply_at(t, ws, rng.uniform(1e-4, 1e-3)), True, rfb.update_request(True, 0, 0, width, height)
        )
        act = t + rng.expovariate(1 / 6.0)  # the operator's next move
        nxt = min(clock, thumb, act)
        if nxt >= until:
            break
        rects = []
        if nxt == act:
            t = _input(conn, t, act, rng)
            rects.append(_area(zrle, rng, npr, width, height))
        now = max(t, nxt)
        if clock <= now:  # the status bar's clock (a 200x20 strip) ticks
            rects.append(zrle.rect(width - 200, height - 20, 200, 20, 1.0, npr))
            while clock <= now:
                clock += 1.0
        if thumb <= now:  # a camera's thumbnail in the corner (192x108) refreshes
            rects.append(zrle.rect(0, 0, 192, 108, 1.0, npr))
            while thumb <= now:
                thumb += 2.0
        t = conn.send(now + rng.uniform(1e-3, 2e-2), False, rfb.framebuffer_update(rects))
    conn.close(max(t, until), from_client=True)
    return max(t, until)


def _input(conn: TcpConn, t: float, at: float, rng: random.Random) -> float:
    """The operator moves the mouse and clicks, sometimes then types a search; returns when it is sent."""
    x, y = rng.randrange(0, SCREEN[0]), rng.randrange(0, SCREEN[1])
    at = max(at, t + 1e-3)
    for _ in range(rng.randrange(10, 60)):  # a movement: a pointer event every 10-20 ms
        x = min(SCREEN[0] - 1, max(0, x + rng.randrange(-25, 26)))
        y = min(SCREEN[1] - 1, max(0, y + rng.randrange(-15, 16)))
        at = conn.send(at + rng.uniform(0.01, 0.02), True, rfb.pointer_event(0, x, y))
    at = conn.send(at + rng.uniform(0.05, 0.3), True, rfb.pointer_event(1, x, y))  # button 1 down
    at = conn.send(at + rng.uniform(0.06, 0.15), True, rfb.pointer_event(0, x, y))  # and up
    if rng.random() < 0.25:
        for ch in "".join(rng.choice(_KEYS) for _ in range(rng.randrange(4, 17))):
            at = conn.send(at + rng.uniform(0.08, 0.3), True, rfb.key_event(True, ord(ch)))
            at = conn.send(at + rng.uniform(0.04, 0.12), True, rfb.key_event(False, ord(ch)))
    return at


def _area(
    zrle: rfb.ZrleEncoder, rng: random.Random, npr: np.random.Generator, width: int, height: int
) -> bytes:
    """The part of the screen a click changed: a menu, a dialog or a list, somewhere on the screen."""
    w, h = rng.randrange(120, width // 2), rng.randrange(60, height // 2)
    x, y = rng.randrange(0, width - w), rng.randrange(0, height - h)
    return zrle.rect(x, y, w, h, rng.uniform(0.2, 0.6), npr)
