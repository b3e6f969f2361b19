"""The simulation context every device and attack writes into: capture, network, randomness, episodes, services.

Randomness is keyed: ``sim.rng("camera", 3)`` is a :class:`random.Random` seeded from the scenario seed and the
key, so a device's behaviour does not depend on what other devices drew before it. Shared services that many
devices use (the gateway's DNS resolver, ARP, NTP servers, the MQTT broker's message log) live here.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import numpy as np

from iotguard.core.schema import FAMILIES
from iotguard.lab.network import Host, Network
from iotguard.lab.packets import BROADCAST, ZERO_MAC, arp_frame, ip, udp_frame
from iotguard.lab.pcap import Capture
from iotguard.lab.proto import dns, ntp


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """One attack episode before its time window is known (it is measured from the tagged packets)."""

    attacker: str
    victim: str
    label: str
    category: str


@dataclass(slots=True)
class Publish:
    """A message the broker accepted (benign sensors' telemetry), for subscribers the broker forwards it to."""

    t: float
    topic: str
    payload: bytes


@dataclass
class World:
    """Who is who on the simulated network, for the attacks that pick their victims and bots from it."""

    hub: Host  # MQTT broker and home-automation controller
    nvr: Host  # video recorder pulling the cameras' streams
    tablet: Host  # a household tablet (camera snapshots, MQTT dashboard)
    devices: list[Host]  # the IoT devices
    benign_pairs: set[frozenset[bytes]] = field(default_factory=set)

    def of_kind(self, *kinds: str) -> list[Host]:
        return [d for d in self.devices if d.kind in kinds]

    def talks(self, a: Host, b: Host | bytes) -> bool:
        """Whether ``a`` has benign traffic with ``b`` (an attack between them would mislabel that traffic)."""
        return frozenset((a.ip_b, b if isinstance(b, bytes) else b.ip_b)) in self.benign_pairs


@dataclass
class Sim:
    seed: int
    duration: float
    base_unix: float
    net: Network
    cap: Capture
    episodes: list[EpisodeSpec] = field(default_factory=list)
    publishes: list[Publish] = field(default_factory=list)
    names: dict[str, list[str]] = field(default_factory=dict)  # DNS name -> IPv4 addresses
    _dns_cache_until: dict[tuple[str, str], float] = field(default_factory=dict)
    _arp_until: dict[tuple[str, str], float] = field(default_factory=dict)

    # -- randomness ---------------------------------------------------------------------------------------
    def _key(self, key: tuple[object, ...]) -> int:
        text = "/".join(map(str, (self.seed, *key))).encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")

    def rng(self, *key: object) -> random.Random:
        return random.Random(self._key(key))

    def nprng(self, *key: object) -> np.random.Generator:
        return np.random.default_rng(self._key(key))

    # -- ground truth ---------------------------------------------------------------------------------------
    def episode(self, attacker: str, victim: str, label: str, category: str) -> int:
        """Register an episode; returns the tag its packets carry."""
        if category not in FAMILIES:
            raise ValueError(f"unknown family {category!r}")
        self.episodes.append(EpisodeSpec(attacker, victim, label, category))
        return len(self.episodes)

    # -- primitive senders ------------------------------------------------------------------------------------
    def udp(
        self, t: float, src: Host, dst: Host, sport: int, dport: int, payload: bytes, tag: int = 0
    ) -> None:
        src_mac, dst_mac = self.net.macs(src, dst)
        frame = udp_frame(src_mac, dst_mac, src.ip_b, dst.ip_b, sport, dport, payload, src.ident(), src.ttl)
        self.cap.add(t, frame, tag)

    def arp(self, t: float, asker: Host, target: Host, tag: int = 0, *, force: bool = False) -> float:
        """``asker`` resolves ``target``'s MAC unless its cache still holds it; returns when the reply is seen."""
        key = (asker.name, target.name)
        if not force and self._arp_until.get(key, -1.0) > t:
            return t
        self.cap.add(t, arp_frame(asker.mac, BROADCAST, 1, asker.mac, asker.ip_b, ZERO_MAC, target.ip_b), tag)
        t_reply = t + 2 * target.delay + 5e-5
        self.cap.add(
            t_reply, arp_frame(target.mac, asker.mac, 2, target.mac, target.ip_b, asker.mac, asker.ip_b), tag
        )
        self._arp_until[key] = t_reply + 60.0 * (1 + self.rng("arp", *key, int(t)).random())
        return t_reply + 2 * asker.delay

    # -- services ---------------------------------------------------------------------------------------------
    def internet_service(self, name: str, kind: str = "server") -> Host:
        """A benign internet server known by DNS ``name`` (created on first use, its address seeded by name)."""
        host = self.net.hosts.get(name)
        if host is None:
            from iotguard.lab.network import LINUX

            rng = self.rng("service", name)
            host = self.net.add_external(
                name, kind, self.net.public_address(rng), LINUX, delay=rng.uniform(0.004, 0.07)
            )
            self.names[name] = [host.ip]
        return host

    def resolve(
        self, t: float, client: Host, name: str, *, server: Host | None = None, tag: int = 0
    ) -> tuple[float, list[str]]:
        """A DNS A lookup by ``client`` (through the gateway's resolver unless ``server``); returns (time, addresses)."""
        server = server or self.net.gateway
        rng = self.rng("dns", client.name, name, round(t, 3))
        if name not in self.names:  # any other name belongs to a benign internet service
            self.internet_service(name)
        addresses = self.names[name]
        if server is self.net.gateway:
            t = self.arp(t, client, server, tag)
        ident = rng.getrandbits(16)
        sport = client.ephemeral_port() if client.stack.random_ports else rng.randrange(49152, 65535)
        self.udp(t, client, server, sport, 53, dns.query(ident, name), tag)
        cached = self._dns_cache_until.get((server.name, name), -1.0) > t
        upstream = 0.0 if cached or not server.local else rng.uniform(0.008, 0.045)
        t_reply = t + 2 * server.delay + rng.uniform(1e-4, 6e-4) + upstream
        ttl = 300
        if not cached:
            self._dns_cache_until[(server.name, name)] = t_reply + ttl
        answer = [ip(a) for a in addresses]
        self.udp(t_reply, server, client, 53, sport, dns.response(ident, name, answer, ttl), tag)
        return t_reply + 2 * client.delay, addresses

    def ntp_sync(self, t: float, client: Host, server: Host, tag: int = 0) -> float:
        """One SNTP exchange; the server's timestamps follow the capture clock."""
        rng = self.rng("ntp", client.name, round(t, 3))
        sport = 123 if client.stack.name == "linux" else client.ephemeral_port()
        transmit = self.base_unix + t + rng.uniform(-0.3, 0.3)  # the client's own clock is a little off
        request = ntp.request(transmit)
        self.udp(t, client, server, sport, 123, request, tag)
        t_reply = t + 2 * server.delay + rng.uniform(1e-4, 5e-4)
        receive = self.base_unix + t + server.delay
        reply = ntp.reply(
            request[40:48],
            receive,
            receive + 2e-5,
            self.base_unix + t - rng.uniform(30, 900),
            bytes((193, 79, 237, 14)),
        )
        self.udp(t_reply, server, client, 123, sport, reply, tag)
        return t_reply
