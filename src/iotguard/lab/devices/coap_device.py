"""A CoAP sensor node (constrained device, RFC 7252) observed by the hub (RFC 7641).

The hub first discovers the node's resources (``GET /.well-known/core``), then registers an observation of its
reading (CON GET with Observe=0, answered by a piggy-backed ACK 2.05 Content). The node then pushes a
notification whenever the reading is due: non-confirmable most of the time, confirmable every few
notifications (acknowledged by the hub), as the RFC asks so that a vanished observer is noticed.
"""

from __future__ import annotations

import json

from iotguard.lab.devices.common import boot
from iotguard.lab.network import Host
from iotguard.lab.proto import coap
from iotguard.lab.sim import Sim

PORT = 5683


def simulate(sim: Sim, node: Host, hub: Host, start: float, end: float) -> None:
    rng = sim.rng("coap", node.name)
    boot(sim, node, start)
    resource = rng.choice(("sensors/temp", "sensors/light", "sensors/soil", "sensors/pressure"))
    interval = rng.choice((2.0, 5.0, 10.0, 20.0))
    hub_port = rng.randrange(40000, 60000)
    mid = rng.randrange(0, 65536)
    node_mid = rng.randrange(0, 65536)
    value = rng.uniform(10, 30)

    def rtt(host: Host, think: float) -> float:
        return 2 * host.delay + think

    t = sim.arp(start + rng.uniform(1, 3), hub, node)
    # discovery
    mid = (mid + 1) & 0xFFFF
    token = rng.getrandbits(32).to_bytes(4, "big")
    sim.udp(t, hub, node, hub_port, PORT, coap.get(mid, token, ".well-known/core"))
    t += rtt(node, rng.uniform(1e-3, 5e-3))
    links = f'</{resource}>;rt="sensor";obs,</actuators/led>;rt="light",</.well-known/core>'.encode()
    sim.udp(t, node, hub, PORT, hub_port, coap.content(coap.ACK, mid, token, links, fmt=coap.LINK_FORMAT))
    # observe registration
    t += rtt(hub, 0.01)
    mid = (mid + 1) & 0xFFFF
    token = rng.getrandbits(64).to_bytes(8, "big")
    sim.udp(t, hub, node, hub_port, PORT, coap.get(mid, token, resource, observe=0))
    t += rtt(node, rng.uniform(1e-3, 5e-3))
    seq = rng.randrange(2, 1000)
    sim.udp(
        t,
        node,
        hub,
        PORT,
        hub_port,
        coap.content(coap.ACK, mid, token, _reading(value), observe=seq, max_age=int(interval * 2)),
    )
    count = 0
    t += interval
    while t < end:
        value += rng.gauss(0, 0.1)
        seq += 1
        count += 1
        node_mid = (node_mid + 1) & 0xFFFF
        confirmable = count % 5 == 0
        msg = coap.content(
            coap.CON if confirmable else coap.NON,
            node_mid,
            token,
            _reading(value),
            observe=seq,
            max_age=int(interval * 2),
        )
        sim.udp(t, node, hub, PORT, hub_port, msg)
        if confirmable:
            sim.udp(t + rtt(hub, 2e-4), hub, node, hub_port, PORT, coap.empty_ack(node_mid))
        if rng.random() < 0.02:  # the hub toggles the node's LED
            mid = (mid + 1) & 0xFFFF
            tok = rng.getrandbits(32).to_bytes(4, "big")
            at = t + rng.uniform(0.1, interval / 2)
            sim.udp(at, hub, node, hub_port, PORT, coap.get(mid, tok, "actuators/led"))
            sim.udp(
                at + rtt(node, 2e-3),
                node,
                hub,
                PORT,
                hub_port,
                coap.content(coap.ACK, mid, tok, b'{"led":1}'),
            )
        t += interval * (1 + rng.uniform(-0.01, 0.01))


def _reading(value: float) -> bytes:
    return json.dumps({"v": round(value, 2), "u": "C"}, separators=(",", ":")).encode()
