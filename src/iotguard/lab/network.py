"""The simulated network: hosts with their addresses, vendor MACs and TCP/IP stack behaviour.

The capture point is a mirror port on the LAN switch next to the gateway, so it sees every LAN frame. Frames
to or from the internet carry the gateway's MAC on the LAN side, and internet hosts' packets arrive with their
TTL already reduced by the hops between them and us. ``delay`` is a host's one-way latency from the capture
point: a reply from host B to a packet seen at time t is seen at ``t + 2 * B.delay + processing``.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

from iotguard.lab.packets import ip, mac_text

# Real vendor prefixes, so Wireshark names the vendors the way it would on a real IoT network.
OUIS: dict[str, tuple[str, ...]] = {
    "espressif": ("24:0a:c4", "30:ae:a4", "a4:cf:12", "84:cc:a8", "7c:9e:bd", "ec:fa:bc"),
    "hikvision": ("44:19:b6", "c0:56:e3", "bc:ad:28"),
    "dahua": ("3c:ef:8c", "e0:50:8b"),
    "tplink": ("50:c7:bf", "b0:95:75", "1c:3b:f3"),
    "raspberrypi": ("b8:27:eb", "dc:a6:32", "e4:5f:01"),
    "ti": ("00:12:4b",),
    "nordic": ("f4:ce:36",),
    "router": ("00:1d:7e", "74:ac:b9"),
    "intel": ("f4:8c:50", "3c:58:c2", "a4:34:d9"),
    "dell": ("f8:bc:12", "b0:83:fe", "18:66:da"),
    "schneider": ("00:80:f4", "00:00:54"),
    "siemens": ("00:1b:1b", "00:0e:8c"),
}

# First octets of address space that is publicly routed and busy (cloud providers, ISPs), for internet hosts.
PUBLIC_FIRST_OCTETS = (
    23,
    31,
    37,
    45,
    46,
    51,
    62,
    77,
    78,
    80,
    82,
    85,
    87,
    89,
    91,
    94,
    95,
    101,
    103,
    109,
    141,
    146,
    151,
    154,
    176,
    178,
    185,
    188,
    193,
    194,
    195,
    212,
    213,
    217,
)
ATTACKER_RANGES = ("198.51.100.0/24", "203.0.113.0/24")  # RFC 5737 documentation ranges


@dataclass(frozen=True, slots=True)
class Stack:
    """How a host's TCP/IP stack behaves on the wire."""

    name: str
    ttl: int
    mss: int
    window: int  # receive window in bytes (what the SYN advertises, unscaled)
    wscale: int | None  # window-scale shift it offers (None: option not sent)
    sack: bool
    timestamps: bool
    delack: float  # delayed-ACK timer, seconds
    rto: float  # first retransmission timeout, seconds
    random_ports: bool  # ephemeral ports random (Linux) or sequential (lwIP)
    ts_hz: int = 1000


LINUX = Stack("linux", 64, 1460, 64240, 7, True, True, 0.040, 0.204, True)
LWIP = Stack("lwip", 64, 1436, 5744, None, False, False, 0.100, 1.0, False)
EMBEDDED_LINUX = Stack("embedded-linux", 64, 1460, 29200, 6, True, True, 0.040, 0.220, True, ts_hz=100)
WINDOWS = Stack("windows", 128, 1460, 64240, 8, True, False, 0.100, 0.300, True)


@dataclass(slots=True, eq=False)
class Host:
    name: str
    kind: str
    ip: str
    mac: bytes
    stack: Stack
    local: bool
    delay: float  # one-way latency from the capture point, seconds
    hops: int = 0  # routers between the host and the capture point
    tcp_open: dict[int, str] = field(default_factory=dict)  # listening TCP port -> service name
    udp_open: dict[int, str] = field(default_factory=dict)
    ip_b: bytes = b""
    _next_port: int = 0
    _ident: int = 0
    ts_base: int = 0
    _recent: dict[int, None] = field(default_factory=dict, repr=False)  # recently used ports, oldest first
    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def __post_init__(self) -> None:
        self.ip_b = ip(self.ip)
        self._next_port = self.rng.randrange(49152, 60000)
        self._ident = self.rng.randrange(0, 65536)
        self.ts_base = self.rng.getrandbits(32)

    @property
    def ttl(self) -> int:
        """TTL of this host's packets as seen at the capture point."""
        return self.stack.ttl - self.hops

    @property
    def mac_text(self) -> str:
        return mac_text(self.mac)

    def ephemeral_port(self) -> int:
        if self.stack.random_ports:
            # random, but never one still in use: a kernel does not hand out a port twice at once
            while True:
                port = self.rng.randrange(32768, 61000)
                if port not in self._recent:
                    break
            self._recent[port] = None
            if len(self._recent) > 4096:
                del self._recent[next(iter(self._recent))]
            return port
        self._next_port = self._next_port + 1 if self._next_port < 65535 else 49152
        return self._next_port

    def ident(self) -> int:
        """Next IPv4 identification (one counter per host)."""
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def tsval(self, t: float) -> int:
        return (self.ts_base + int(t * self.stack.ts_hz)) & 0xFFFFFFFF


class Network:
    """A /24 (or larger) LAN behind one gateway, plus the internet hosts the scenario talks to."""

    def __init__(self, subnet: str, rng: random.Random) -> None:
        self.subnet = ipaddress.IPv4Network(subnet)
        self.rng = rng
        self.hosts: dict[str, Host] = {}
        self.reserved: set[str] = set()  # addresses handed out for use without a Host
        self.blocks: list[ipaddress.IPv4Network] = []
        self._by_ip: dict[str, Host] = {}
        self._free = [str(a) for a in self.subnet.hosts()]
        self.gateway = self.add_local("gateway", "gateway", "router", LINUX, address=self._free[0])

    def _mac(self, vendor: str) -> bytes:
        oui = self.rng.choice(OUIS[vendor])
        tail = self.rng.getrandbits(24).to_bytes(3, "big")
        return bytes.fromhex(oui.replace(":", "")) + tail

    def _host(self, host: Host) -> Host:
        if host.name in self.hosts:
            raise ValueError(f"duplicate host name {host.name!r}")
        if host.ip in self._by_ip:
            raise ValueError(f"duplicate address {host.ip}")
        self.hosts[host.name] = host
        self._by_ip[host.ip] = host
        return host

    def add_local(
        self,
        name: str,
        kind: str,
        vendor: str,
        stack: Stack,
        *,
        address: str | None = None,
        delay: float | None = None,
    ) -> Host:
        """A LAN host; without ``address`` it takes a free one from the DHCP-like pool (.10 up, with gaps)."""
        if address is None:
            pool = [a for a in self._free if int(a.rsplit(".", 1)[1]) >= 10 and a not in self._by_ip]
            address = pool[min(len(pool) - 1, self.rng.randrange(0, 3))]
        self._free.remove(address)
        if delay is None:
            # Wi-Fi clients: 1-4 ms one way; wired infrastructure well under a millisecond.
            delay = self.rng.uniform(0.0008, 0.004) if kind not in ("gateway", "hub", "nvr") else 0.0002
        rng = random.Random(self.rng.getrandbits(64))
        return self._host(Host(name, kind, address, self._mac(vendor), stack, True, delay, 0, rng=rng))

    def add_external(
        self, name: str, kind: str, address: str, stack: Stack = LINUX, *, delay: float = 0.02
    ) -> Host:
        rng = random.Random(self.rng.getrandbits(64))
        hops = rng.randrange(8, 18)
        return self._host(Host(name, kind, address, self.gateway.mac, stack, False, delay, hops, rng=rng))

    def public_address(self, rng: random.Random, *, block: str | None = None) -> str:
        """A free internet address: inside ``block`` (e.g. a documentation range for attacker infrastructure)
        or in a commonly routed public /8."""
        while True:
            if block is not None:
                net = ipaddress.IPv4Network(block)
                address = str(net.network_address + rng.randrange(1, net.num_addresses - 1))
            else:
                first = rng.choice(PUBLIC_FIRST_OCTETS)
                address = f"{first}.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            in_block = any(
                address.rsplit(".", 1)[0] == str(b.network_address).rsplit(".", 1)[0] for b in self.blocks
            )
            if address not in self._by_ip and address not in self.reserved and not in_block:
                self.reserved.add(address)
                return address

    def public_block(self, rng: random.Random) -> ipaddress.IPv4Network:
        """A /24 of the internet that no simulated host lives in (scan targets)."""
        used = {a.rsplit(".", 1)[0] for a in [*self._by_ip, *self.reserved]} | {
            str(b.network_address).rsplit(".", 1)[0] for b in self.blocks
        }
        while True:
            prefix = f"{rng.choice(PUBLIC_FIRST_OCTETS)}.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}"
            if prefix not in used:
                block = ipaddress.IPv4Network(f"{prefix}.0/24")
                self.blocks.append(block)
                return block

    def by_ip(self, address: str) -> Host | None:
        return self._by_ip.get(address)

    def of_kind(self, *kinds: str) -> list[Host]:
        return [h for h in self.hosts.values() if h.kind in kinds]

    def macs(self, src: Host, dst: Host) -> tuple[bytes, bytes]:
        """Ethernet source and destination of a frame from ``src`` to ``dst`` on the LAN segment."""
        return (src.mac if src.local else self.gateway.mac), (dst.mac if dst.local else self.gateway.mac)
