"""Scenarios: which devices, which attacks and when, and the registry ``iotguard lab list`` shows.

A scenario fixes everything except its size: ``duration``, ``devices`` and ``seed`` have defaults here and can
be overridden per run. Attack windows are fractions of the duration, so a short run still holds every attack.

The training and test scenarios differ on purpose: other seeds, another device mix, other attack rates and
techniques, and attack families the training set never shows (``test`` only: Exfiltration, DoS by slow HTTP,
WebAttack), so that a model's score on ``test`` measures how it copes with attacks it was not trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from iotguard.core.errors import ConfigError
from iotguard.lab.attacks import (
    arp_spoofing,
    exfiltration,
    mirai,
    mqtt_abuse,
    portscan,
    slow_http,
    vnc_bruteforce,
    web_exploits,
)

DEVICE_KINDS = ("mqtt-sensor", "plug", "camera", "coap", "mqtt-node")
"""Device kinds a scenario's ``mix`` weighs; each kind with a weight appears at least once when the scenario
has at least as many devices as weighted kinds (with fewer, the first kinds in this order)."""
EXTRAS = ("office", "modbus", "mqtt-clients", "vnc")
"""Benign behaviours a scenario can add to the home network (see ``docs/lab.md``): ``office`` (PCs browsing over
HTTP and HTTPS, an admin's SSH and telnet sessions and pings, a monitoring server's pings and TCP checks),
``modbus`` (PLCs polled over Modbus/TCP by a SCADA host), ``mqtt-clients`` (a telemetry gateway, scripts, an
automation server and a cloud bridge besides the sensors), ``vnc`` (the recorder's console served over VNC, and
an operator's workstation that logs in to it now and then, ``devices.vnc``)."""


@dataclass(frozen=True)
class AttackKind:
    name: str
    run: Callable
    families: tuple[str, ...]
    labels: tuple[str, ...]
    summary: str


ATTACKS: Mapping[str, AttackKind] = MappingProxyType(
    {
        a.name: a
        for a in (
            AttackKind(
                "mirai",
                mirai.run,
                ("PortScan", "BruteForce", "Botnet", "DDoS"),
                (
                    "mirai-scan",
                    "telnet-bruteforce",
                    "mirai-report",
                    "mirai-download",
                    "mirai-cnc",
                    "syn-flood",
                    "ack-flood",
                    "udp-flood",
                    "http-flood",
                ),
                "telnet scan and brute force, infection, C&C, floods from the bots",
            ),
            AttackKind(
                "mirai-floods",
                mirai.run_campaign,
                ("Botnet", "DDoS"),
                ("mirai-cnc", "syn-flood", "ack-flood", "udp-flood", "http-flood"),
                "bots already infected take flood orders: every vector, varied rates, lengths, payloads, crews",
            ),
            AttackKind(
                "portscan",
                portscan.run,
                ("PortScan",),
                ("syn-scan", "connect-scan", "udp-scan", "version-scan"),
                "nmap-style host discovery and port scans from a rogue LAN host",
            ),
            AttackKind(
                "mqtt-abuse",
                mqtt_abuse.run,
                ("MQTTAbuse",),
                (
                    "mqtt-connect-bruteforce",
                    "mqtt-wildcard-subscribe",
                    "mqtt-publish-flood",
                    "mqtt-malformed",
                ),
                "broker abuse: CONNECT brute force, '#' subscription, publish flood, malformed packets",
            ),
            AttackKind(
                "slowloris",
                slow_http.run,
                ("DoS",),
                ("slowloris",),
                "slow HTTP headers exhausting a camera's web server",
            ),
            AttackKind(
                "exfiltration",
                exfiltration.run,
                ("Exfiltration",),
                ("exfiltration",),
                "large uploads from a device to an outside address at night",
            ),
            AttackKind(
                "web-exploits",
                web_exploits.run,
                ("WebAttack",),
                ("iot-web-exploit",),
                "exploit requests of IoT botnets against a device's web interface",
            ),
            AttackKind(
                "vnc-bruteforce",
                vnc_bruteforce.run,
                ("BruteForce",),
                ("vnc-bruteforce",),
                "VNC password guessing against the recorder's console, one password per connection",
            ),
            AttackKind(
                "arp-spoofing",
                arp_spoofing.run,
                ("Spoofing",),
                ("arp-spoofing",),
                "ARP cache poisoning between devices and the gateway (ARP frames only)",
            ),
        )
    }
)


@dataclass(frozen=True)
class AttackPlan:
    kind: str
    start: float  # fraction of the duration
    end: float
    params: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
        }


@dataclass(frozen=True)
class Scenario:
    name: str
    role: str  # train, test, benign or showcase
    description: str
    start_time: str  # ISO-8601 UTC: the capture's clock starts here (no wall clock anywhere)
    subnet: str
    duration: float
    devices: int
    seed: int
    mix: Mapping[str, float]  # device kind -> weight
    attacks: tuple[AttackPlan, ...] = ()
    extras: tuple[str, ...] = ()  # benign behaviours beyond the home network (EXTRAS)

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(sorted({f for a in self.attacks for f in ATTACKS[a.kind].families}))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "description": self.description,
            "start_time": self.start_time,
            "subnet": self.subnet,
            "mix": dict(self.mix),
            "attacks": [a.to_json() for a in self.attacks],
        } | ({"extras": list(self.extras)} if self.extras else {})


SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {
        s.name: s
        for s in (
            Scenario(
                name="benign",
                role="benign",
                description="A home IoT network with no attacks: sensors, plugs, cameras, CoAP nodes, MQTT devices of other client libraries, hub, NVR, tablet.",
                start_time="2024-05-13T18:00:00+00:00",
                subnet="192.168.1.0/24",
                duration=300.0,
                devices=16,
                seed=7,
                mix={"mqtt-sensor": 0.45, "plug": 0.2, "camera": 0.1, "coap": 0.25, "mqtt-node": 0.3},
            ),
            Scenario(
                name="site",
                role="benign",
                description="An office and building site with no attacks: the IoT devices plus PCs browsing over HTTP and HTTPS, an admin's SSH and telnet sessions and pings, a monitoring server's pings and TCP checks, Modbus/TCP PLCs polled by a SCADA host, and other MQTT clients.",
                start_time="2024-05-17T08:00:00+00:00",
                subnet="10.20.0.0/24",
                duration=600.0,
                devices=16,
                seed=5,
                mix={"mqtt-sensor": 0.4, "plug": 0.2, "camera": 0.15, "coap": 0.25, "mqtt-node": 0.3},
                # not ``vnc``: this scenario's seeds 201-203 are the default detector's training data, which the
                # VNC console (shown by ``test`` and ``showcase``) would change, and with it every number of it
                extras=("office", "modbus", "mqtt-clients"),
            ),
            Scenario(
                name="train",
                role="train",
                description="Training set: Mirai (scan, brute force, C&C, SYN/UDP/HTTP floods), SYN and connect scans, MQTT brute force/wildcard/publish flood, ARP spoofing.",
                start_time="2024-05-14T10:00:00+00:00",
                subnet="192.168.1.0/24",
                duration=600.0,
                devices=24,
                seed=1,
                mix={"mqtt-sensor": 0.5, "plug": 0.2, "camera": 0.1, "coap": 0.2},
                attacks=(
                    AttackPlan(
                        "mirai",
                        0.05,
                        0.95,
                        {
                            "floods": ("syn", "udp", "http"),
                            "scan_pps": 8.0,
                            "flood_pps": 40.0,
                            "flood_seconds": 0.03,
                        },
                    ),
                    AttackPlan(
                        "portscan",
                        0.12,
                        0.3,
                        {"techniques": ("syn", "connect"), "hosts": 4, "ports": 100, "pps": 100.0},
                    ),
                    AttackPlan(
                        "mqtt-abuse",
                        0.32,
                        0.5,
                        {"modes": ("connect-bruteforce", "wildcard", "publish-flood"), "rate": 1.0},
                    ),
                    AttackPlan("arp-spoofing", 0.6, 0.7, {"victims": 2}),
                ),
            ),
            Scenario(
                name="floods",
                role="train",
                description="Training set for floods only: five Mirai bots take 40 flood orders from their C&C (UDP plain, SYN, ACK, HTTP in equal shares), each against a new target, at 20-1000 packets/s per bot, 2-30 s, default or custom payload sizes, from one bot or several.",
                start_time="2024-05-18T20:00:00+00:00",
                subnet="192.168.7.0/24",
                duration=600.0,
                devices=16,
                seed=301,
                mix={"mqtt-sensor": 0.35, "plug": 0.2, "camera": 0.25, "coap": 0.2, "mqtt-node": 0.2},
                attacks=(AttackPlan("mirai-floods", 0.05, 0.95),),
            ),
            Scenario(
                name="test",
                role="test",
                description="Test set, other mix and rates: Mirai with ACK/SYN/UDP floods, UDP and version scans, malformed MQTT, VNC password guessing against the recorder's console (which an operator also uses), plus families absent from training: slowloris (DoS), night-time exfiltration, IoT web exploits.",
                start_time="2024-05-16T02:30:00+00:00",
                subnet="192.168.50.0/24",
                duration=600.0,
                devices=20,
                seed=2,
                mix={"mqtt-sensor": 0.4, "plug": 0.25, "camera": 0.1, "coap": 0.25},
                attacks=(
                    AttackPlan(
                        "mirai",
                        0.08,
                        0.9,
                        {
                            "floods": ("ack", "syn", "udp"),
                            "scan_pps": 12.0,
                            "flood_pps": 50.0,
                            "flood_seconds": 0.035,
                            "max_infections": 1,
                        },
                    ),
                    AttackPlan(
                        "portscan",
                        0.1,
                        0.25,
                        {"techniques": ("udp", "version", "syn"), "hosts": 3, "ports": 120, "pps": 80.0},
                    ),
                    AttackPlan(
                        "mqtt-abuse",
                        0.28,
                        0.42,
                        {"modes": ("malformed", "wildcard", "publish-flood"), "rate": 1.5},
                    ),
                    AttackPlan("slowloris", 0.45, 0.7, {"connections": 120}),
                    AttackPlan("exfiltration", 0.72, 0.85, {"megabytes": 12.0}),
                    AttackPlan("web-exploits", 0.2, 0.6, {"requests": 40}),
                    AttackPlan("arp-spoofing", 0.86, 0.95, {"victims": 3}),
                    AttackPlan("vnc-bruteforce", 0.62, 0.7, {"guesses": 25}),
                ),
                extras=("vnc",),
            ),
            Scenario(
                name="showcase",
                role="showcase",
                description="Every attack the lab knows, one after another, on a small network (documentation, tests).",
                start_time="2024-05-15T03:00:00+00:00",
                subnet="10.10.0.0/24",
                duration=300.0,
                devices=14,
                seed=3,
                mix={"mqtt-sensor": 0.4, "plug": 0.2, "camera": 0.15, "coap": 0.25},
                attacks=(
                    AttackPlan(
                        "mirai",
                        0.02,
                        0.98,
                        {
                            "floods": ("syn", "ack", "udp", "http"),
                            "scan_pps": 10.0,
                            "flood_pps": 40.0,
                            "flood_seconds": 0.05,
                        },
                    ),
                    AttackPlan(
                        "portscan",
                        0.05,
                        0.3,
                        {"techniques": ("syn", "connect", "udp", "version"), "hosts": 3, "ports": 100},
                    ),
                    AttackPlan(
                        "mqtt-abuse",
                        0.3,
                        0.5,
                        {"modes": ("connect-bruteforce", "wildcard", "publish-flood", "malformed")},
                    ),
                    AttackPlan("slowloris", 0.5, 0.7, {"connections": 60}),
                    AttackPlan("exfiltration", 0.7, 0.8, {"megabytes": 4.0}),
                    AttackPlan("web-exploits", 0.1, 0.4, {"requests": 20}),
                    AttackPlan("arp-spoofing", 0.85, 0.95, {"victims": 2}),
                    AttackPlan("vnc-bruteforce", 0.4, 0.5, {"guesses": 12}),
                ),
                extras=("vnc",),
            ),
        )
    }
)


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ConfigError(
            f"unknown scenario {name!r}", where="--scenario", expected="one of " + ", ".join(SCENARIOS)
        ) from None


def unseen_families(train: str = "train", test: str = "test") -> tuple[str, ...]:
    """Attack families the test scenario has and the training scenario lacks."""
    return tuple(sorted(set(get_scenario(test).families) - set(get_scenario(train).families)))
