"""MQTT devices built on the common client libraries, each behaving as its library does by default.

The ``mqtt-sensor`` devices are one firmware; real networks hold many. What differs between client libraries
(MQTT 3.1.1 and the libraries' own defaults and documentation):

* **keep-alive and PINGREQ.** Arduino PubSubClient (``MQTT_KEEPALIVE`` 15 s) and paho-mqtt (60 s) send
  PINGREQ when nothing was *sent* or nothing was *received* for a keep-alive period, so a QoS 0 publisher
  (which receives nothing) pings every period however often it publishes; ESP-IDF's esp-mqtt (120 s) pings
  every half period; Tasmota (PubSubClient underneath, 30 s) likewise pings every period.
* **QoS.** PubSubClient publishes QoS 0 only (it subscribes with QoS 0 or 1); esp-mqtt and paho publish
  QoS 0, 1 (PUBACK) or 2 (PUBREC, PUBREL, PUBCOMP), and so receive.
* **sessions.** Clean sessions mostly; esp-mqtt and paho clients with a fixed client id may keep a persistent
  session (clean session 0): after a reconnect the broker answers "session present", the client does not
  subscribe again and the broker delivers what it queued meanwhile.
* **last will and birth.** A retained ``offline`` will in CONNECT and a retained ``online`` right after
  (Tasmota's ``tele/<topic>/LWT``; common in esp-mqtt and paho applications).
* **reconnects.** Wi-Fi drops: the connection dies silently and the client reconnects after its library's
  retry delay (PubSubClient sketches 5 s, esp-mqtt 10 s, Tasmota 10 s, paho 1 s) on a new port.

Per device: one to six topics per connection, published every 0.5 s to 10 min (Tasmota's ``TelePeriod``
drawn from 10 s to 10 min, 300 s most often; Tasmota allows up to 1 h), on a hardware timer (no jitter) or a sleep loop (jitter), only on change, or on
events (bursts of a few messages); payloads from a bare number to JSON documents of several hundred bytes;
commands from the broker on subscribed topics now and then.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from iotguard.lab.devices.common import boot, mqtt_deliver, mqtt_publish
from iotguard.lab.network import LINUX, LWIP, Host, Stack
from iotguard.lab.proto import mqtt
from iotguard.lab.sim import Publish, Sim
from iotguard.lab.tcp import TcpConn


@dataclass(frozen=True)
class Library:
    name: str
    vendor: str
    stack: Stack
    keepalives: tuple[int, ...]  # the library's default first, then values applications set
    ping_every_half: bool  # esp-mqtt: PINGREQ every keepalive/2; else after a keep-alive without in or out
    publish_qos: tuple[int, ...]
    max_sub_qos: int
    retry: float  # seconds before reconnecting after a lost connection
    persistent: bool  # may keep a persistent session (clean session 0)
    poll: float  # its loop checks timers this often: a PINGREQ leaves up to this late


LIBRARIES = (
    # Arduino loop() runs every few ms; esp-mqtt and paho's network loops wait up to 1 s for data; Tasmota
    # sleeps 50 ms between loops
    Library("pubsubclient", "espressif", LWIP, (15, 15, 30, 60), False, (0,), 1, 5.0, False, 0.01),
    Library("esp-mqtt", "espressif", LWIP, (120, 120, 60, 30), True, (0, 1, 2), 2, 10.0, True, 1.0),
    Library("tasmota", "espressif", LWIP, (30,), False, (0,), 0, 10.0, False, 0.05),
    Library("paho", "raspberrypi", LINUX, (60, 60, 30, 120), False, (0, 1, 2), 2, 1.0, True, 1.0),
)
PERIODS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TELE_PERIODS = (10.0, 60.0, 300.0, 300.0, 600.0)
METRICS = (
    "temperature",
    "humidity",
    "pressure",
    "lux",
    "power",
    "voltage",
    "current",
    "co2",
    "level",
    "rssi",
)


def library(sim: Sim, name: str) -> Library:
    """The client library of device ``name`` (its host's vendor and TCP stack follow from it)."""
    return sim.rng("mqtt-node-library", name).choice(LIBRARIES)


@dataclass
class Node:
    lib: Library
    client_id: str
    keepalive: int
    topics: list[str]
    commands: list[tuple[str, int]]  # subscribed topic filters and their QoS
    mode: str  # periodic, change or event
    period: float  # publish period (mean gap between events for "event")
    jitter: float  # relative; 0 for a hardware timer
    qos: int
    retain: bool  # state topics published retained
    style: str  # value, json or document
    clean: bool
    will: tuple[str, bytes, int, bool] | None
    drops_per_hour: float
    commands_per_hour: float


def node(rng: random.Random, dev: Host, lib: Library, index: int) -> Node:
    """Draw a device's configuration, within what its library and common firmware do."""
    tag = dev.mac.hex()[6:]
    if lib.name == "tasmota":
        base = f"tasmota_{tag.upper()}"
        return Node(
            lib, f"DVES_{tag.upper()}", 30, [f"tele/{base}/STATE", f"tele/{base}/SENSOR"],
            [(f"cmnd/{base}/#", 0), ("cmnd/tasmotas/#", 0), (f"cmnd/DVES_{tag.upper()}_fb/#", 0)],
            "periodic", rng.choice(TELE_PERIODS), 0.0, 0, False, "document", True,
            (f"tele/{base}/LWT", b"Offline", 1, True), rng.choice((0.0, 0.0, 0.5, 2.0)), rng.uniform(0, 6),
        )  # fmt: skip
    prefix = rng.choice(("sensors", "devices", f"node{index}", "esp", "rpi", "iot"))
    name = f"{prefix}/{lib.name}-{tag}"
    topics = [f"{name}/{m}" for m in rng.sample(METRICS, rng.randrange(1, 7))]
    mode = rng.choice(("periodic", "periodic", "change", "event"))
    period = rng.choice(PERIODS) if mode != "event" else rng.choice((5.0, 30.0, 120.0, 600.0))
    qos = rng.choice(lib.publish_qos)
    persistent = lib.persistent and rng.random() < 0.3
    will = (f"{name}/status", b"offline", rng.choice((0, 1)), True) if rng.random() < 0.5 else None
    commands = [(f"{name}/set", rng.randrange(lib.max_sub_qos + 1))] if rng.random() < 0.7 else []
    if commands and rng.random() < 0.3:
        commands.append((f"{prefix}/broadcast/#", rng.randrange(lib.max_sub_qos + 1)))
    return Node(
        lib=lib,
        client_id=f"{lib.name}-{tag}"
        if persistent or rng.random() < 0.7
        else f"{lib.name}-{rng.getrandbits(32):08x}",
        keepalive=rng.choice(lib.keepalives),
        topics=topics,
        commands=commands,
        mode=mode,
        period=period,
        jitter=rng.choice((0.0, 0.0, 0.002, 0.02, 0.1)),
        qos=qos,
        retain=rng.random() < 0.3,
        style=rng.choice(("value", "json", "json", "document")),
        clean=not persistent,
        will=will,
        drops_per_hour=rng.choice((0.0, 0.0, 0.5, 2.0)),
        commands_per_hour=rng.uniform(0, 6) if commands else 0.0,
    )


def _payload(n: Node, topic: str, value: float, rng: random.Random, unix: float) -> bytes:
    metric = topic.rsplit("/", 1)[-1]
    if n.style == "value":
        return f"{value:.1f}".encode()
    if n.style == "json":
        return json.dumps({metric: round(value, 2)}, separators=(",", ":")).encode()
    stamp = f"{int(unix)}"
    if n.lib.name == "tasmota" and topic.endswith("STATE"):
        doc = {
            "Time": stamp, "Uptime": f"0T{int(unix) % 86400 // 3600:02d}:{int(unix) % 3600 // 60:02d}:00",
            "UptimeSec": int(unix) % 86400, "Heap": rng.randrange(20, 30), "SleepMode": "Dynamic", "Sleep": 50,
            "LoadAvg": rng.randrange(15, 30), "MqttCount": 1, "POWER": rng.choice(("ON", "OFF")),
            "Wifi": {"AP": 1, "SSId": "home", "Channel": 6, "Mode": "11n", "RSSI": rng.randrange(40, 90),
                     "Signal": -rng.randrange(50, 80), "LinkCount": 1, "Downtime": "0T00:00:03"},
        }  # fmt: skip
    else:
        doc = {
            "time": stamp, "id": n.client_id, metric: round(value, 3),
            "unit": rng.choice(("C", "%", "hPa", "lx", "W")), "battery": rng.randrange(20, 101),
            "rssi": -rng.randrange(45, 85), "fw": "1.4.2", "uptime": int(unix) % 86400,
        }  # fmt: skip
    return json.dumps(doc, separators=(",", ":")).encode()


class _Session:
    """One MQTT connection and what the client's library tracks for its keep-alive."""

    def __init__(
        self, sim: Sim, dev: Host, broker: Host, n: Node, rng: random.Random, t: float, resumed: bool
    ):
        self.sim, self.dev, self.n, self.rng = sim, dev, n, rng
        self.conn = TcpConn(sim, dev, broker, 1883, loss=0.005, rng=rng)
        t = self.conn.connect(sim.arp(t, dev, broker))
        hello = mqtt.connect(n.client_id, n.keepalive, clean=n.clean, will=n.will)
        t = self.conn.request(
            t + rng.uniform(2e-4, 2e-3), hello, mqtt.connack(session_present=resumed), rng.uniform(1e-4, 1e-3)
        )
        self.pid = 0
        self.last_out = self.last_in = self.last_ping = self.t = t
        if n.will is not None:  # birth message: the retained opposite of the will
            self.publish(
                t + rng.uniform(1e-4, 1e-3),
                n.will[0],
                b"Online" if n.lib.name == "tasmota" else b"online",
                1 if n.lib.publish_qos != (0,) else 0,
                True,
            )
        if n.commands and not resumed:
            self.pid += 1
            at = self.t + rng.uniform(1e-4, 2e-3)
            self.t = self.conn.request(
                at,
                mqtt.subscribe(self.pid, n.commands),
                mqtt.suback(self.pid, [q for _, q in n.commands]),
                3e-4,
            )
            self.last_out, self.last_in = at, self.t

    def next_ping(self) -> float:
        if self.n.lib.ping_every_half:
            return self.last_ping + self.n.keepalive / 2
        return min(self.last_out, self.last_in) + self.n.keepalive

    def publish(self, at: float, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        at = max(at, self.t + 1e-4)
        self.sim.publishes.append(Publish(at, topic, payload))
        self.pid = self.pid % 65535 + 1
        self.t = mqtt_publish(self.conn, at, topic, payload, qos, self.pid, self.rng, retain=retain)
        self.last_out = at
        if qos:
            self.last_in = self.t

    def ping(self, at: float) -> None:
        at = max(at, self.t + 1e-4)
        self.t = self.conn.request(at, mqtt.pingreq(), mqtt.pingresp(), self.rng.uniform(1e-4, 5e-4))
        self.last_out = self.last_ping = at
        self.last_in = self.t

    def command(self, at: float, pid: int) -> None:
        topic, qos = self.rng.choice(self.n.commands)
        topic = topic.replace("#", "all").replace("+", "x")
        body = json.dumps({"cmd": self.rng.choice(("reboot", "ota", "state", "period"))}).encode()
        self.t = mqtt_deliver(
            self.conn, max(at, self.t + 1e-4), topic, body, qos, pid, self.rng, (2e-4, 5e-3)
        )
        self.last_in = self.t
        if qos:
            self.last_out = self.t


def simulate(sim: Sim, dev: Host, broker: Host, index: int, start: float, end: float) -> None:
    rng = sim.rng("mqtt-node", dev.name)
    run(sim, dev, broker, node(rng, dev, library(sim, dev.name), index), boot(sim, dev, start), end, rng)


def _later(rng: random.Random, rate_per_hour: float) -> float:
    return rng.expovariate(rate_per_hour / 3600) if rate_per_hour > 0 else float("inf")


def run(sim: Sim, dev: Host, broker: Host, n: Node, t: float, end: float, rng: random.Random) -> None:
    """Connect, then publish, ping and take commands until ``end``, reconnecting after each Wi-Fi drop."""
    values = {topic: rng.uniform(0, 100) for topic in n.topics}
    broker_pid = rng.randrange(1, 1000)
    resumed, queued = False, 0
    t = t + rng.uniform(0.05, 2.0)
    while t < end:
        s = _Session(sim, dev, broker, n, rng, t, resumed)
        for _ in range(queued):  # what the broker kept for a persistent session while we were away
            broker_pid = broker_pid % 65535 + 1
            s.command(s.t + rng.uniform(1e-4, 1e-3), broker_pid)
        next_pub = s.t + rng.uniform(0.05, 1.0) * n.period
        next_cmd = s.t + _later(rng, n.commands_per_hour)
        drop = s.t + _later(rng, n.drops_per_hour)
        while True:
            ping = s.next_ping()
            step = min(next_pub, next_cmd, drop, ping)
            if step >= end:
                s.conn.finish()
                return
            if step == drop:
                break
            if step == ping:
                s.ping(ping + rng.uniform(0, n.lib.poll))
            elif step == next_cmd:
                broker_pid = broker_pid % 65535 + 1
                s.command(next_cmd, broker_pid)
                next_cmd += _later(rng, n.commands_per_hour)
            else:
                _tick(s, n, values, rng, next_pub)
                gap = rng.expovariate(1 / n.period) if n.mode == "event" else n.period
                next_pub += gap * (1 + rng.uniform(-n.jitter, n.jitter))
        # the Wi-Fi drops: the connection dies without a FIN; the client retries after its library's delay
        s.conn.finish()
        outage = rng.uniform(2.0, 30.0)
        resumed = not n.clean
        queued = sum(rng.random() < n.commands_per_hour * outage / 3600 for _ in range(3)) if resumed else 0
        t = drop + outage + n.lib.retry * rng.uniform(1.0, 1.2)


def _tick(s: _Session, n: Node, values: dict[str, float], rng: random.Random, at: float) -> None:
    """One publishing moment: every topic (periodic), the changed ones (change), or a burst (event)."""
    if n.mode == "event":
        topics = [rng.choice(n.topics) for _ in range(rng.choice((1, 1, 2, 3, 4)))]
    elif n.mode == "change":
        topics = [tp for tp in n.topics if rng.random() < 0.3]
    else:
        topics = n.topics
    unix = s.sim.base_unix + at
    for topic in topics:
        values[topic] += rng.gauss(0, 1.0)
        s.publish(at, topic, _payload(n, topic, values[topic], rng, unix), n.qos, n.retain)
        at = s.t + (rng.uniform(0.05, 0.5) if n.mode == "event" else rng.uniform(1e-4, 3e-3))
