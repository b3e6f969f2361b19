"""MQTT broker abuse (MQTTAbuse) from a rogue LAN host, after the attacks in MQTTset and the MQTT-IoT-IDS work.

* ``mqtt-connect-bruteforce``: one CONNECT per connection with user names and passwords from a word list; the
  broker answers CONNACK 5 (not authorised) and closes the connection;
* ``mqtt-wildcard-subscribe``: an anonymous client subscribes to ``#`` and ``$SYS/#`` and then receives every
  message the sensors publish (the real telemetry of this capture, forwarded by the broker);
* ``mqtt-publish-flood``: one client publishes hundreds of QoS 0 messages a second to random topics;
* ``mqtt-malformed``: connections that send malformed control packets (a five-byte remaining length, a CONNECT
  whose flags promise a password it lacks, a topic length past the end of the packet, reserved SUBSCRIBE
  flags with QoS 3, a truncated packet); the broker drops the connection. These are the only packets in the
  lab that Wireshark reports as malformed.
"""

from __future__ import annotations

import json

import numpy as np

from iotguard.lab.attacks.common import rogue_host, windows
from iotguard.lab.network import Host
from iotguard.lab.proto import mqtt
from iotguard.lab.sim import Sim, World
from iotguard.lab.tcp import TcpConn

LABELS = {
    "connect-bruteforce": "mqtt-connect-bruteforce",
    "wildcard": "mqtt-wildcard-subscribe",
    "publish-flood": "mqtt-publish-flood",
    "malformed": "mqtt-malformed",
}
USERS = (
    "admin",
    "mqtt",
    "user",
    "homeassistant",
    "sensor",
    "iot",
    "test",
    "guest",
    "root",
    "pi",
    "device",
    "broker",
)
PASSWORDS = (
    "123456",
    "password",
    "admin",
    "mqtt",
    "12345678",
    "qwerty",
    "public",
    "changeme",
    "iot",
    "raspberry",
    "letmein",
    "welcome",
    "1234",
    "secret",
    "default",
    "passw0rd",
)


def run(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    rng = sim.rng("mqtt-abuse")
    attacker = rogue_host(sim, "rogue-mqtt")
    broker = world.hub
    modes = list(params.get("modes", ("connect-bruteforce",)))
    rate = float(params.get("rate", 1.0))
    for mode, (w0, w1) in zip(modes, windows(start, end, len(modes)), strict=True):
        tag = sim.episode(attacker.ip, broker.ip, LABELS[mode], "MQTTAbuse")
        w0 = sim.arp(w0, attacker, broker, tag)
        if mode == "connect-bruteforce":
            _bruteforce(sim, attacker, broker, w0, w1, rate, tag, rng)
        elif mode == "wildcard":
            _wildcard(sim, attacker, broker, w0, w1, tag, rng)
        elif mode == "publish-flood":
            _flood(sim, attacker, broker, w0, w1, rate, tag, rng)
        elif mode == "malformed":
            _malformed(sim, attacker, broker, w0, w1, tag, rng)
        else:
            raise ValueError(f"unknown MQTT abuse mode {mode!r}")


def _bruteforce(
    sim: Sim, attacker: Host, broker: Host, start: float, end: float, rate: float, tag: int, rng
) -> None:
    t = start
    while t < end:
        conn = TcpConn(sim, attacker, broker, 1883, tag=tag, rng=rng)
        at = conn.connect(t)
        hello = mqtt.connect(
            f"mqtt-bf-{rng.getrandbits(24):06x}",
            60,
            username=rng.choice(USERS),
            password=rng.choice(PASSWORDS),
        )
        at = conn.request(at + 1e-4, hello, mqtt.connack(mqtt.NOT_AUTHORIZED), think=rng.uniform(2e-4, 1e-3))
        conn.close(at + 1e-4, from_client=False)
        t += rng.expovariate(8.0 * rate)


def _wildcard(sim: Sim, attacker: Host, broker: Host, start: float, end: float, tag: int, rng) -> None:
    conn = TcpConn(sim, attacker, broker, 1883, tag=tag, rng=rng)
    t = conn.connect(start)
    t = conn.request(
        t + 1e-4, mqtt.connect(f"mosqsub|{rng.randrange(1000, 9999)}-kali", 60), mqtt.connack(), 3e-4
    )
    t = conn.request(t + 1e-4, mqtt.subscribe(1, [("#", 0), ("$SYS/#", 0)]), mqtt.suback(1, [0, 0]), 3e-4)
    sys_topics = [
        ("$SYS/broker/version", b"mosquitto version 2.0.11"),
        ("$SYS/broker/uptime", f"{rng.randrange(10**5, 10**7)} seconds".encode()),
        ("$SYS/broker/clients/connected", str(rng.randrange(8, 40)).encode()),
        ("$SYS/broker/messages/received", str(rng.randrange(10**4, 10**6)).encode()),
    ]
    for topic, payload in sys_topics:  # retained $SYS messages arrive at once
        t = conn.send(t + rng.uniform(5e-5, 3e-4), False, mqtt.publish(topic, payload, retain=True))
    last_ping = t
    for pub in sorted(sim.publishes, key=lambda p: p.t):
        if pub.t <= t:
            continue
        if pub.t >= end:
            break
        while last_ping + 60 < pub.t:
            last_ping = max(last_ping + 60, t + 1e-3)
            t = conn.request(last_ping, mqtt.pingreq(), mqtt.pingresp(), 2e-4)
        t = conn.send(max(pub.t + 2 * broker.delay, t + 1e-4), False, mqtt.publish(pub.topic, pub.payload))
    t = conn.send(max(end, t + 1e-3), True, mqtt.disconnect())
    conn.close(t + 1e-3, from_client=True)


def _flood(
    sim: Sim, attacker: Host, broker: Host, start: float, end: float, rate: float, tag: int, rng
) -> None:
    npr = np.random.default_rng(rng.getrandbits(64))
    conn = TcpConn(sim, attacker, broker, 1883, tag=tag, rng=rng)
    t = conn.connect(start)
    t = conn.request(t + 1e-4, mqtt.connect(f"flood-{rng.getrandbits(32):08x}", 60), mqtt.connack(), 3e-4)
    per_second = 400.0 * rate
    # the flooding client sets TCP_NODELAY (as mosquitto's clients do): one segment per message
    n = max(1, int(per_second * (end - t)))
    times = t + 1e-3 + np.cumsum(npr.exponential(1 / per_second, n))
    times = times[times < end]
    messages = [
        mqtt.publish(
            f"home/{rng.getrandbits(16):04x}/{rng.getrandbits(16):04x}",
            json.dumps({"v": rng.getrandbits(32), "pad": "A" * rng.randrange(20, 200)}).encode(),
        )
        for _ in range(len(times))
    ]
    t = max(t, conn.send_many(times, True, messages)) + 1e-3
    t = conn.send(t, True, mqtt.disconnect())
    conn.close(t + 1e-3, from_client=True)


def _malformed_packets(rng) -> list[bytes]:
    return [
        b"\x10\xff\xff\xff\xff\x7f" + b"\x00" * 16,  # remaining length longer than four bytes
        b"\x10\x10\x00\x04MQTT\x04\xc2\x00\x3c\x00\x04evil",  # username and password flags, neither present
        b"\x30\x08\xff\xf0home/x",  # PUBLISH whose topic length runs past the packet
        b"\x80\x08\x00\x01\x00\x01#\x03\x00",  # SUBSCRIBE with reserved flags 0 and QoS 3
        mqtt.connect("trunc", 60)[:9],  # CONNECT cut short, then nothing
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\xff\xff",  # client id length past the end
    ]


def _malformed(sim: Sim, attacker: Host, broker: Host, start: float, end: float, tag: int, rng) -> None:
    packets = _malformed_packets(rng)
    t = start
    k = 0
    while t < end:
        conn = TcpConn(sim, attacker, broker, 1883, tag=tag, rng=rng)
        at = conn.connect(t)
        packet = packets[k % len(packets)]
        at = conn.send(at + 1e-4, True, packet)
        if k % 3 == 0:  # mosquitto drops the client: a FIN, or a RST when data is left unread
            conn.close(conn.reply_at(at, broker, 2e-4), from_client=False)
        else:
            conn.abort(conn.reply_at(at, broker, 2e-4), from_client=False)
        k += 1
        t += rng.uniform(0.5, 2.0)
