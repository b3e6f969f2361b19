"""A household tablet running an MQTT dashboard: it subscribes to the sensors' state topics on the hub's
broker and receives every matching message the sensors publish (QoS 0 forwarding), with keep-alives."""

from __future__ import annotations

from iotguard.lab.devices.common import mqtt_forwarded
from iotguard.lab.network import Host
from iotguard.lab.proto import mqtt
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

TOPIC_FILTER = "home/+/+/+"


def simulate(sim: Sim, tablet: Host, broker: Host, start: float, end: float) -> None:
    """Run after the sensors: it forwards what they published (``sim.publishes``)."""
    rng = sim.rng("dashboard", tablet.name)
    t = sim.arp(start, tablet, broker)
    conn = TcpConn(sim, tablet, broker, 1883, loss=0.005, rng=rng)
    t = conn.connect(t)
    keepalive = 60
    t = conn.request(
        t + 1e-3,
        mqtt.connect(
            f"dashboard-{rng.getrandbits(32):08x}",
            keepalive,
            username="tablet",
            password="tab-" + f"{rng.getrandbits(32):08x}",
        ),
        mqtt.connack(),
        3e-4,
    )
    t = conn.request(t + 2e-3, mqtt.subscribe(1, [(TOPIC_FILTER, 0)]), mqtt.suback(1, [0]), 3e-4)
    t, last_ping = mqtt_forwarded(sim, conn, [(TOPIC_FILTER, 0)], t, end, keepalive, rng)
    while max(last_ping + keepalive, t + 1e-3) < end:
        last_ping = max(last_ping + keepalive, t + 1e-3)
        t = conn.request(last_ping, mqtt.pingreq(), mqtt.pingresp(), 2e-4)
    conn.finish()
