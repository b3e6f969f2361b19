"""MQTT sensors (ESP32-class, lwIP stack) reporting JSON telemetry to the local broker.

Two power profiles, as in real homes:

* mains-powered sensors keep one session open: CONNECT/CONNACK, SUBSCRIBE to their command topic, a PUBLISH
  every ``interval`` seconds (QoS 1 acknowledged by PUBACK, or QoS 0), PINGREQ/PINGRESP whenever nothing else
  was sent for a keep-alive period, and now and then a configuration message from the broker;
* battery sensors wake up, connect, publish one reading, DISCONNECT and close the connection, then sleep.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from iotguard.lab.devices.common import boot, mqtt_publish
from iotguard.lab.network import Host
from iotguard.lab.proto import mqtt
from iotguard.lab.sim import Publish, Sim
from iotguard.lab.tcp import TcpConn

ROOMS = ("kitchen", "living", "bedroom", "hall", "garage", "garden", "office", "bath")
KINDS = ("climate", "motion", "door", "air", "energy", "leak")


@dataclass
class Profile:
    kind: str
    room: str
    client_id: str
    topic: str
    interval: float
    jitter: float
    keepalive: int
    qos: int
    sleepy: bool
    username: str | None
    password: str | None


def profile(rng: random.Random, dev: Host, index: int) -> Profile:
    kind = rng.choice(KINDS)
    room = rng.choice(ROOMS)
    sleepy = kind in ("climate", "motion", "door", "leak") and rng.random() < 0.5
    interval = rng.uniform(30, 120) if sleepy else rng.choice((5.0, 10.0, 15.0, 30.0, 60.0))
    keepalive = rng.choice((15, 30, 60)) if not sleepy else 60
    client_id = f"{kind}-{dev.mac.hex()[6:]}"
    with_auth = rng.random() < 0.7
    return Profile(
        kind=kind,
        room=room,
        client_id=client_id,
        topic=f"home/{room}/{kind}/{index}",
        interval=interval,
        jitter=rng.uniform(0.01, 0.08),
        keepalive=keepalive,
        qos=1 if rng.random() < 0.6 else 0,
        sleepy=sleepy,
        username=f"sensor{index}" if with_auth else None,
        password=f"{rng.getrandbits(40):010x}" if with_auth else None,
    )


class _Reading:
    """A slowly wandering physical state, so consecutive readings look like one sensor's."""

    def __init__(self, kind: str, rng: random.Random) -> None:
        self.kind = kind
        self.rng = rng
        self.temp = rng.uniform(17, 25)
        self.hum = rng.uniform(30, 65)
        self.battery = rng.randrange(40, 101)
        self.co2 = rng.uniform(420, 900)
        self.energy = rng.uniform(10, 900)
        self.power = rng.uniform(20, 400)

    def next(self) -> bytes:
        r = self.rng
        rssi = -r.randrange(45, 85)
        if self.kind == "climate":
            self.temp += r.gauss(0, 0.05)
            self.hum = min(95, max(15, self.hum + r.gauss(0, 0.2)))
            data = {
                "temperature": round(self.temp, 2),
                "humidity": round(self.hum, 1),
                "battery": self.battery,
            }
        elif self.kind == "motion":
            data = {
                "occupancy": r.random() < 0.2,
                "illuminance": r.randrange(0, 900),
                "battery": self.battery,
            }
        elif self.kind == "door":
            data = {"contact": r.random() < 0.9, "tamper": False, "battery": self.battery}
        elif self.kind == "air":
            self.co2 = min(2500, max(400, self.co2 + r.gauss(0, 8)))
            data = {"co2": int(self.co2), "pm25": round(r.uniform(2, 35), 1), "voc": r.randrange(50, 400)}
        elif self.kind == "energy":
            self.power = max(0.0, self.power + r.gauss(0, 15))
            self.energy += self.power / 3600 / 1000
            data = {
                "power": round(self.power, 1),
                "voltage": round(r.gauss(230, 1.5), 1),
                "energy": round(self.energy, 4),
            }
        else:
            data = {"water_leak": False, "battery": self.battery, "temperature": round(self.temp, 1)}
        data["rssi"] = rssi
        return json.dumps(data, separators=(",", ":")).encode()


def simulate(sim: Sim, dev: Host, broker: Host, index: int, start: float, end: float) -> None:
    rng = sim.rng("mqtt-sensor", dev.name)
    prof = profile(rng, dev, index)
    reading = _Reading(prof.kind, rng)
    t = boot(sim, dev, start)
    if prof.sleepy:
        _sleepy(sim, dev, broker, prof, reading, rng, t, end)
    else:
        _always_on(sim, dev, broker, prof, reading, rng, t, end)


def _open_session(
    sim: Sim, dev: Host, broker: Host, prof: Profile, rng: random.Random, t: float
) -> tuple[TcpConn, float]:
    t = sim.arp(t, dev, broker)
    conn = TcpConn(sim, dev, broker, 1883, loss=0.01, rng=rng)
    t = conn.connect(t)
    hello = mqtt.connect(
        prof.client_id, prof.keepalive, username=prof.username, password=prof.password, clean=True
    )
    t = conn.request(t + rng.uniform(2e-4, 1e-3), hello, mqtt.connack(), think=rng.uniform(1e-4, 5e-4))
    return conn, t


def _publish(
    sim: Sim, conn: TcpConn, prof: Profile, t: float, payload: bytes, pid: int, rng: random.Random
) -> float:
    sim.publishes.append(Publish(t, prof.topic, payload))
    return mqtt_publish(conn, t, prof.topic, payload, prof.qos, pid, rng)


def _always_on(
    sim: Sim,
    dev: Host,
    broker: Host,
    prof: Profile,
    reading: _Reading,
    rng: random.Random,
    t: float,
    end: float,
) -> None:
    conn, t = _open_session(sim, dev, broker, prof, rng, t)
    cmd_topic = f"{prof.topic}/set"
    t = conn.request(
        t + rng.uniform(1e-3, 5e-3), mqtt.subscribe(1, [(cmd_topic, 1)]), mqtt.suback(1, [1]), think=2e-4
    )
    last_sent = t
    pid = 1
    next_pub = t + rng.uniform(0.05, 1.0) * prof.interval
    next_cfg = t + rng.expovariate(1 / 300)
    while True:
        ping_at = last_sent + prof.keepalive
        step = min(ping_at, next_pub, next_cfg)
        if step >= end:
            break
        at = max(step, t + 1e-3)  # a retransmission may still be pending from the previous exchange
        if step == ping_at:
            t = conn.request(at, mqtt.pingreq(), mqtt.pingresp(), think=1e-4)
            last_sent = at
        elif step == next_cfg:  # a configuration/command message from the broker (Home Assistant)
            pid_b = rng.randrange(1, 65535)
            body = json.dumps(
                {"interval": int(prof.interval), "led": rng.random() < 0.5}, separators=(",", ":")
            ).encode()
            t = conn.send(at, False, mqtt.publish(cmd_topic, body, 1, pid_b))
            t = conn.send(conn.reply_at(t, dev, rng.uniform(2e-3, 1e-2)), True, mqtt.puback(pid_b))
            last_sent = t
            next_cfg += rng.expovariate(1 / 300)
        else:
            pid = pid % 65535 + 1
            t = _publish(sim, conn, prof, at, reading.next(), pid, rng)
            last_sent = at
            next_pub += prof.interval * (1 + rng.uniform(-prof.jitter, prof.jitter))
    conn.finish()


def _sleepy(
    sim: Sim,
    dev: Host,
    broker: Host,
    prof: Profile,
    reading: _Reading,
    rng: random.Random,
    t: float,
    end: float,
) -> None:
    wake = t + rng.uniform(0, prof.interval)
    pid = 0
    while wake < end:
        conn, t = _open_session(sim, dev, broker, prof, rng, wake)
        pid = pid % 65535 + 1
        t = _publish(sim, conn, prof, t + rng.uniform(2e-4, 2e-3), reading.next(), pid, rng)
        t = conn.send(t + rng.uniform(1e-3, 1e-2), True, mqtt.disconnect())
        if rng.random() < 0.25:  # going to deep sleep, the radio shuts down: lwIP aborts with RST
            conn.abort(t + rng.uniform(1e-4, 1e-3), from_client=True)
        else:
            conn.close(t + rng.uniform(1e-4, 1e-3), from_client=True)
        wake += prof.interval * (1 + rng.uniform(-prof.jitter, prof.jitter))
