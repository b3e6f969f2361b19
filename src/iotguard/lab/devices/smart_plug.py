"""Wi-Fi smart plugs (Shelly/Tasmota-style HTTP API on an lwIP stack), polled by the home hub.

The hub opens a new connection for every poll (``GET /status``, ``Connection: close``) every few seconds; the
plug answers with its meter readings in JSON and closes. Now and then the hub switches the relay. Plugs also
check their vendor cloud for firmware updates.
"""

from __future__ import annotations

import json

from iotguard.lab.devices.common import boot, cloud_check
from iotguard.lab.network import Host
from iotguard.lab.proto import http
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

CLOUD = "api.shelly-cloud.example"


def simulate(sim: Sim, plug: Host, hub: Host, start: float, end: float) -> None:
    rng = sim.rng("plug", plug.name)
    boot(sim, plug, start)
    interval = rng.choice((5.0, 10.0, 15.0, 30.0))
    power = rng.uniform(0, 1500)
    on = True
    energy = rng.uniform(1000, 90000)
    t = start + rng.uniform(1, interval)
    next_cloud = start + rng.uniform(30, 600)
    while t < end:
        if next_cloud < t:
            cloud_check(sim, plug, next_cloud, CLOUD, "SHPLG-S", "20230913-114150/v1.14.0")
            next_cloud += rng.uniform(600, 1800)
        t = sim.arp(t, hub, plug)
        conn = TcpConn(sim, hub, plug, 80, loss=0.01, rng=rng)
        at = conn.connect(t)
        if rng.random() < 0.04:  # switch the relay
            on = not on
            path = f"/relay/0?turn={'on' if on else 'off'}"
            body = {"ison": on, "has_timer": False, "timer_duration": 0, "source": "http"}
        else:
            path = "/status"
            power = max(0.0, power + rng.gauss(0, 20)) if on else 0.0
            energy += power * interval / 60
            body = {
                "wifi_sta": {"connected": True, "ssid": "home", "rssi": -rng.randrange(40, 80)},
                "relays": [{"ison": on, "has_timer": False, "overpower": False}],
                "meters": [{"power": round(power, 2), "is_valid": True, "total": int(energy)}],
                "temperature": round(rng.uniform(30, 45), 2),
                "uptime": int(t + 86400),
            }
        req = http.request(
            "GET", path, plug.ip, [("User-Agent", "HomeAssistant/2024.5 aiohttp/3.9.5"), ("Accept", "*/*")]
        )
        resp = http.response(200, json.dumps(body, separators=(",", ":")).encode(), server="Mongoose/6.18")
        at = conn.request(at + 1e-4, req, resp, think=rng.uniform(0.004, 0.03))
        if rng.random() < 0.2:  # the hub's HTTP client drops the connection with RST
            conn.abort(conn.reply_at(at, hub, 2e-4), from_client=True)
        else:
            conn.close(at + rng.uniform(1e-4, 5e-4), from_client=False)
        t += interval * (1 + rng.uniform(-0.02, 0.02))
