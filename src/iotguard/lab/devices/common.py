"""What every IoT device does besides its main job: resolve names, set its clock, ask the cloud for updates."""

from __future__ import annotations

import json

from iotguard.lab.network import Host
from iotguard.lab.proto import http
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

NTP_NAME = "pool.ntp.org"


def boot(sim: Sim, dev: Host, t: float) -> float:
    """ARP for the gateway, look up the NTP pool, set the clock; returns when done."""
    t = sim.arp(t, dev, sim.net.gateway, force=True)
    t, addresses = sim.resolve(t + 0.002, dev, NTP_NAME)
    server = sim.net.by_ip(addresses[sim.rng("ntp-pick", dev.name).randrange(len(addresses))])
    return sim.ntp_sync(t + 0.001, dev, server)


def cloud_check(sim: Sim, dev: Host, t: float, cloud_name: str, model: str, version: str) -> float:
    """A firmware-update check over HTTP against the vendor's cloud (Connection: close)."""
    rng = sim.rng("ota", dev.name, round(t, 3))
    t, addresses = sim.resolve(t, dev, cloud_name)
    server = sim.net.by_ip(addresses[0])
    conn = TcpConn(sim, dev, server, 80, loss=0.01, rng=rng)
    t = conn.connect(t)
    req = http.request(
        "GET",
        f"/firmware/latest?model={model}&version={version}",
        cloud_name,
        [("User-Agent", f"{model}/{version}"), ("Accept", "application/json")],
    )
    body = json.dumps({"model": model, "latest": version, "update": False, "check_after": 3600}).encode()
    resp = http.response(200, body, server="nginx", close=True)
    t = conn.request(t + 1e-4, req, resp, think=rng.uniform(0.005, 0.03))
    return conn.close(conn.reply_at(t, server, 1e-4), from_client=False)
