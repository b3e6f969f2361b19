"""Data exfiltration (Exfiltration, ``exfiltration``): a compromised device uploads large files to an outside
address, in the middle of the night (the test scenario's clock starts at 02:30 UTC).

A dozen or so HTTP POSTs of about a megabyte of high-entropy data (what an encrypted archive looks like) go to a drop
server in a documentation address range, each on its own connection, minutes apart. A camera normally only
sends to the recorder on the LAN; a multi-megabyte upload to the internet is the anomaly.
"""

from __future__ import annotations

from iotguard.lab.attacks.common import internet_host
from iotguard.lab.proto import http
from iotguard.lab.sim import Sim, World
from iotguard.lab.tcp import TcpConn


def run(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    rng = sim.rng("exfiltration")
    pool = world.of_kind("camera") or world.devices
    thief = pool[rng.randrange(len(pool))]
    drop = internet_host(sim, "exfil-drop", "cnc", delay=0.06)
    tag = sim.episode(thief.ip, drop.ip, "exfiltration", "Exfiltration")
    total = int(float(params.get("megabytes", 10.0)) * 1_000_000)
    uploads = rng.randrange(8, 15)
    sizes = [
        total // uploads + rng.randrange(-total // (4 * uploads), total // (4 * uploads))
        for _ in range(uploads)
    ]
    t = start
    step = (end - start) / uploads
    for i, size in enumerate(sizes):
        t = max(t, start + i * step + rng.uniform(0, step * 0.2))
        if t >= end:
            break
        conn = TcpConn(sim, thief, drop, 80, tag=tag, rng=rng)
        t = conn.connect(t)
        body = rng.randbytes(size)
        req = http.request(
            "POST",
            f"/api/v2/upload?id={rng.getrandbits(48):012x}&part={i}",
            drop.ip,
            [("User-Agent", "curl/7.64.0"), ("Content-Type", "application/octet-stream")],
            body,
        )
        resp = http.response(201, b'{"status":"ok"}', server="nginx", close=True)
        t = conn.request(t + 1e-3, req, resp, think=rng.uniform(0.02, 0.1))
        t = conn.close(t + 1e-3, from_client=False) + rng.uniform(2, 10)
