"""Slow HTTP DoS (DoS, ``slowloris``) against a camera's web interface, exposed to the internet by a port
forward, the way the public ``slowloris.py`` tool does it.

The attacker opens many connections and sends each an unfinished request (request line, User-Agent,
Accept-language, no blank line), then keeps each alive with one more bogus header (``X-a: n``) every ~15 s, so
the server's connection slots stay taken. The camera's embedded server gives up on a connection after a minute
or two (``408 Request Timeout`` and FIN); the tool then opens a new one.
"""

from __future__ import annotations

from iotguard.lab.attacks.common import internet_host
from iotguard.lab.proto import http
from iotguard.lab.sim import Sim, World
from iotguard.lab.tcp import TcpConn

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/53.0.2785.143 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/602.1.50 (KHTML, like Gecko) Version/10.0 Safari/602.1.50",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:49.0) Gecko/20100101 Firefox/49.0",
)


def run(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    rng = sim.rng("slowloris")
    pool = [d for d in world.of_kind("camera", "plug") if 80 in d.tcp_open] or world.devices
    victim = pool[rng.randrange(len(pool))]
    attacker = internet_host(sim, "slowloris-attacker", "attacker", delay=0.035)
    tag = sim.episode(attacker.ip, victim.ip, "slowloris", "DoS")
    slots = int(params.get("connections", 100))
    for slot in range(slots):
        t = start + slot * rng.uniform(0.005, 0.03)
        while t < end:
            conn = TcpConn(sim, attacker, victim, 80, tag=tag, rng=rng)
            t = conn.connect(t)
            head = f"GET /?{rng.randrange(0, 2000)} HTTP/1.1\r\nUser-Agent: {rng.choice(USER_AGENTS)}\r\nAccept-language: en-US,en,q=0.5\r\n"
            t = conn.send(t + 1e-4, True, head.encode())
            timeout = t + rng.uniform(60, 120)
            while True:
                nxt = t + 15.0 + rng.uniform(-0.5, 0.5)
                if nxt >= min(end, timeout):
                    break
                t = conn.send(nxt, True, f"X-a: {rng.randrange(1, 5000)}\r\n".encode())
            if timeout < end:
                t = conn.send(
                    timeout, False, http.response(408, b"", content_type="text/html", server="App-webs/")
                )
                t = conn.close(t + 1e-4, from_client=False) + rng.uniform(0.5, 3.0)
            else:
                conn.finish()
                break
