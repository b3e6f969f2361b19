"""Telnet (RFC 854) option negotiation and the BusyBox login dialogue Mirai talks to."""

from __future__ import annotations

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA, NAWS = 1, 3, 31

SERVER_HELLO = bytes((IAC, DO, ECHO, IAC, DO, NAWS, IAC, WILL, ECHO, IAC, WILL, SGA))
# Mirai refuses everything except NAWS, and then sends a window size (scanner.c consume_iacs)
MIRAI_REPLY = bytes(
    (IAC, WONT, ECHO, IAC, WILL, NAWS, IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE, IAC, DONT, ECHO, IAC, DO, SGA)
)
