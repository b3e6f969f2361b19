"""MQTT clients other than the IoT sensors (the ``site`` scenario): what else talks to a real broker.

* a **telemetry gateway** (an industrial edge box) keeps one session and publishes many topics every few
  seconds, QoS 0 or 1;
* **scripts** (cron jobs, ``mosquitto_pub``/``mosquitto_sub``) connect, publish or fetch a retained value with
  QoS 0, 1 or 2 (PUBREC, PUBREL, PUBCOMP), and disconnect;
* an **automation server** (Node-RED style) subscribes to everything under ``site/#`` with QoS 1, acknowledges
  every message the broker forwards, and now and then publishes a retained command with QoS 2;
* a **cloud bridge** keeps an MQTT-over-TLS session (port 8883) to a cloud broker: small encrypted records
  every few seconds and keep-alives.
"""

from __future__ import annotations

import json
import random

from iotguard.lab.devices.common import mqtt_forwarded, mqtt_publish
from iotguard.lab.network import Host
from iotguard.lab.proto import mqtt, tls
from iotguard.lab.sim import Publish, Sim
from iotguard.lab.tcp import TcpConn

AREAS = ("hall-a", "hall-b", "boiler", "roof", "server-room", "office-1", "office-2", "lab")
METRICS = ("temperature", "humidity", "pressure", "flow", "power", "vibration", "co2", "level")


def _session(
    sim: Sim, client: Host, broker: Host, t: float, rng: random.Random, client_id: str, keepalive: int
) -> tuple[TcpConn, float]:
    t = sim.arp(t, client, broker)
    conn = TcpConn(sim, client, broker, 1883, loss=0.003, rng=rng)
    t = conn.connect(t)
    hello = mqtt.connect(
        client_id, keepalive, username=client_id.split("-")[0], password=f"{rng.getrandbits(48):012x}"
    )
    return conn, conn.request(
        t + rng.uniform(2e-4, 2e-3), hello, mqtt.connack(), think=rng.uniform(1e-4, 1e-3)
    )


def telemetry_gateway(sim: Sim, gw: Host, broker: Host, start: float, end: float) -> None:
    rng = sim.rng("mqtt-gateway", gw.name)
    area = rng.choice(AREAS)
    topics = [
        f"site/{area}/{gw.name}/{m}-{i}" for i, m in enumerate(rng.sample(METRICS, rng.randrange(3, 8)))
    ]
    values = {tp: rng.uniform(0, 100) for tp in topics}
    interval = rng.choice((1.0, 2.0, 5.0, 10.0))
    qos = 1 if rng.random() < 0.4 else 0
    keepalive = rng.choice((30, 60, 120))
    conn, t = _session(
        sim, gw, broker, start + rng.uniform(1, 10), rng, f"edge-{gw.mac.hex()[6:]}", keepalive
    )
    pid = 0
    last = t
    t_next = t + rng.uniform(0.1, interval)
    while t_next < end:
        if t_next - last > keepalive:
            last = conn.request(max(last + keepalive, t + 1e-3), mqtt.pingreq(), mqtt.pingresp(), 2e-4)
            t = last
            continue
        at = max(t_next, t + 1e-3)
        for topic in topics:
            values[topic] += rng.gauss(0, 0.5)
            payload = json.dumps({"v": round(values[topic], 3), "ts": int(sim.base_unix + at)}).encode()
            sim.publishes.append(Publish(at, topic, payload))
            pid = pid % 65535 + 1
            t = mqtt_publish(conn, at, topic, payload, qos, pid, rng)
            at = t + rng.uniform(1e-4, 2e-3)
        last = t
        t_next += interval * (1 + rng.uniform(-0.02, 0.02))
    conn.finish()


def scripts(sim: Sim, host: Host, broker: Host, start: float, end: float) -> None:
    rng = sim.rng("mqtt-scripts", host.name)
    t = start + rng.uniform(5, 120)
    while t < end:
        conn, at = _session(sim, host, broker, t, rng, f"script-{rng.getrandbits(24):06x}", 60)
        if rng.random() < 0.3:  # mosquitto_sub -C 1: the retained value, then leave
            topic = f"site/{rng.choice(AREAS)}/setpoint"
            at = conn.request(at + 1e-3, mqtt.subscribe(1, [(topic, 1)]), mqtt.suback(1, [1]), 3e-4)
            at = conn.send(
                at + 1e-4, False, mqtt.publish(topic, str(rng.randrange(15, 25)).encode(), retain=True)
            )
        else:
            qos = rng.choice((0, 1, 2))
            for k in range(rng.randrange(1, 4)):
                topic = f"site/{rng.choice(AREAS)}/report/{rng.choice(METRICS)}"
                payload = json.dumps({"status": "ok", "n": rng.randrange(1000)}).encode()
                sim.publishes.append(Publish(at, topic, payload))
                at = mqtt_publish(conn, at + rng.uniform(1e-3, 1e-2), topic, payload, qos, k + 1, rng)
        at = conn.send(at + rng.uniform(1e-4, 2e-3), True, mqtt.disconnect())
        conn.close(at + rng.uniform(1e-4, 1e-3), from_client=True)
        t += rng.uniform(30, 600)


def automation(sim: Sim, server: Host, broker: Host, start: float, end: float) -> None:
    """Runs after every publisher: it is forwarded what they published (``sim.publishes``)."""
    rng = sim.rng("mqtt-automation", server.name)
    keepalive = 60
    conn, t = _session(
        sim, server, broker, start + rng.uniform(1, 5), rng, f"nodered-{rng.getrandbits(24):06x}", keepalive
    )
    t = conn.request(
        t + 2e-3, mqtt.subscribe(1, [("site/#", 1), ("home/+/+/+", 0)]), mqtt.suback(1, [1, 0]), 3e-4
    )
    pid_b = rng.randrange(1, 1000)
    pid = 1
    next_cmd = t + rng.uniform(60, 600)

    def command(t: float, until: float) -> float | None:
        """Now and then a retained set point with QoS 2, between forwards."""
        nonlocal pid, next_cmd
        if next_cmd >= until:
            return None
        pid = pid % 65535 + 1
        body = json.dumps({"setpoint": rng.randrange(15, 25)}).encode()
        topic = f"site/{rng.choice(AREAS)}/setpoint"
        t = mqtt_publish(conn, max(next_cmd, t + 1e-3), topic, body, 2, pid, rng, retain=True)
        next_cmd += rng.uniform(120, 900)
        return t

    mqtt_forwarded(
        sim, conn, [("site/#", 1), ("home/+/+/+", 0)], t, end, keepalive, rng, pid=pid_b, before=command
    )
    conn.finish()


def cloud_bridge(sim: Sim, host: Host, start: float, end: float) -> None:
    """MQTT over TLS to a cloud broker: handshake, then small encrypted records (publishes, keep-alives)."""
    rng = sim.rng("mqtt-cloud", host.name)
    name = rng.choice(
        ("a1b2c3d4e5-ats.iot.eu-west-1.amazonaws.com", "site-hub.azure-devices.net", "mqtt.cloud.example")
    )
    t_dns, _ = sim.resolve(start + rng.uniform(2, 20), host, name)
    conn = TcpConn(sim, host, sim.internet_service(name), 8883, loss=0.003, rng=rng)
    t = conn.connect(t_dns + 1e-4)
    hello = tls.client_hello(rng, name, ("x-amzn-mqtt-ca",) if "amazonaws" in name else ())
    flight = tls.server_hello(rng, tls.session_id_of(hello)) + tls.encrypted(rng, rng.randrange(2400, 4800))
    t = conn.request(t + 2e-4, hello, flight, think=rng.uniform(0.005, 0.03))
    t = conn.send(
        conn.reply_at(t, host, 1e-3),
        True,
        tls.change_cipher_spec() + tls.encrypted(rng, rng.randrange(900, 1800)),
    )
    t = conn.request(
        t + 1e-3, tls.encrypted(rng, rng.randrange(80, 160)), tls.encrypted(rng, 20), 0.01
    )  # CONNECT
    interval = rng.choice((5.0, 10.0, 30.0, 60.0))
    t_next = t + rng.uniform(0.5, interval)
    while t_next < end:
        t = conn.request(
            max(t_next, t + 1e-3), tls.encrypted(rng, rng.randrange(60, 400)), tls.encrypted(rng, 20), 0.02
        )
        t_next += interval * (1 + rng.uniform(-0.05, 0.05))
    conn.finish()
