"""A household tablet running an MQTT dashboard: it subscribes to the sensors' state topics on the hub's
broker and receives every matching message the sensors publish (QoS 0 forwarding), with keep-alives."""

from __future__ import annotations

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
    last_ping = t
    for pub in sorted(sim.publishes, key=lambda p: p.t):
        if pub.t <= t or not mqtt.topic_matches(TOPIC_FILTER, pub.topic):
            continue
        while last_ping + keepalive < pub.t:
            last_ping = max(last_ping + keepalive, t + 1e-3)
            t = conn.request(last_ping, mqtt.pingreq(), mqtt.pingresp(), 2e-4)
        at = max(pub.t + 2 * broker.delay + rng.uniform(1e-4, 4e-4), t + 1e-4)
        if at >= end:
            break
        t = conn.send(at, False, mqtt.publish(pub.topic, pub.payload))
    while max(last_ping + keepalive, t + 1e-3) < end:
        last_ping = max(last_ping + keepalive, t + 1e-3)
        t = conn.request(last_ping, mqtt.pingreq(), mqtt.pingresp(), 2e-4)
    conn.finish()
