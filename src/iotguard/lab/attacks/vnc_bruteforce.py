"""VNC password guessing (BruteForce, ``vnc-bruteforce``) against the recorder's VNC console.

A naive scanner on the internet has found the console's port (forwarded to the internet, like the web
interfaces the exploit scanners reach) and tries one password per connection, every 0.3-1.5 s, from a list of
the passwords most often set on VNC servers: the RFB 3.8 handshake, VNC authentication with the guess,
SecurityResult "failed" with its reason, and the server closes the connection. The console blacklists an
address after 5 failed passwords for 10 s, doubled at each later block (the schedule of TigerVNC's blacklist
with its defaults, BlacklistThreshold 5 and BlacklistTimeout 10 s). While blacklisted, a connection still gets
the full RFB 3.8 version exchange, then a security-types count of 0 and the reason "Too many security
failures": no challenge, so no password is tried. (TigerVNC answers a blacklisted address differently, right
after accepting it: ``RFB 003.003\n``, a 4-byte 0 and the reason, with no version exchange.) The scanner keeps
its pace through the blacklist and moves to the next password on every refused connection, so the passwords
it meant to try then are never tried: in ``test`` (25 connections) it tries 6 passwords and is refused 19
times, in ``showcase`` (12) it tries 5 and is refused 7 times. Real tools behave otherwise: hydra's ``vnc``
module, for one, negotiates RFB 3.7 with a 3.8 server (so its failure result is 4 bytes, without a reason),
and on a blacklist reply waits 12 s times the number of such replies so far and retries the same password.
None of the guesses is the console's password.
"""

from __future__ import annotations

from iotguard.lab.attacks.common import internet_host
from iotguard.lab.devices import vnc
from iotguard.lab.sim import Sim, World
from iotguard.lab.tcp import TcpConn

PASSWORDS = (
    "123456",
    "password",
    "12345678",
    "admin",
    "1234",
    "vnc",
    "111111",
    "qwerty",
    "raspberry",
    "000000",
    "12345",
    "pass",
    "default",
    "admin123",
    "support",
    "888888",
    "666666",
    "abc123",
    "letmein",
    "secret",
)
BLACKLIST_THRESHOLD = 5  # TigerVNC's BlacklistThreshold and BlacklistTimeout defaults
BLACKLIST_SECONDS = 10.0
REFUSAL = "Too many security failures"


def run(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    rng = sim.rng("vnc-bruteforce")
    consoles = [h for h in sim.net.hosts.values() if h.local and h.tcp_open.get(vnc.PORT) == vnc.SERVICE]
    if not consoles:
        raise ValueError("the vnc-bruteforce attack needs a VNC server: give the scenario the 'vnc' extra")
    console = consoles[rng.randrange(len(consoles))]
    password = vnc.console_password(sim, console)
    scanner = internet_host(sim, "vnc-scanner", "attacker", delay=0.045)
    tag = sim.episode(scanner.ip, console.ip, "vnc-bruteforce", "BruteForce")
    guesses = int(params.get("guesses", 20))
    failures, blocked_until, block = 0, float("-inf"), BLACKLIST_SECONDS
    t = start
    for i in range(guesses):
        if t >= end:
            break
        guess = PASSWORDS[i % len(PASSWORDS)]
        conn = TcpConn(sim, scanner, console, vnc.PORT, tag=tag, rng=rng)
        at = conn.connect(t)
        # blacklisted: the version exchange, then no security type and the reason; the password is skipped
        refused = REFUSAL if at < blocked_until else None
        at, ok = vnc.login(conn, at, password, guess, rng, refused=refused)
        if refused is None and not ok:
            failures += 1
            if failures >= BLACKLIST_THRESHOLD:
                blocked_until, block = at + block, block * 2
        conn.close(at + rng.uniform(1e-4, 1e-3), from_client=False)  # the server hangs up
        t += rng.uniform(0.3, 1.5)
