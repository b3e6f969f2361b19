"""The site's devices: addresses or networks with a name, tags and a criticality.

Detection raises the severity of alerts against critical assets; response policies match on device tags
(``dst_tags: [camera]``). Configured in YAML::

    devices:
      - {address: 192.168.1.20, name: door-camera, tags: [camera, critical], criticality: high}
      - {address: 192.168.1.0/26, tags: [sensor]}
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

Criticality = Literal["high", "normal", "low"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Device:
    network: Network
    name: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    criticality: Criticality = "normal"


class Assets:
    """Look devices up by address; the most specific configured network wins."""

    def __init__(self, devices: list[Any] | None = None) -> None:
        """``devices``: :class:`Device` objects or ``iotguard.core.config.DeviceConfig`` entries (those
        without an address, known only by MAC or MQTT id, are skipped here)."""
        parsed: list[Device] = []
        for d in devices or []:
            if not isinstance(d, Device):
                if not getattr(d, "address", None):
                    continue
                d = Device(
                    ipaddress.ip_network(d.address, strict=False), d.name, frozenset(d.tags), d.criticality
                )
            parsed.append(d)
        # Most specific first, so the first containing network is the answer.
        self.devices = sorted(parsed, key=lambda d: -d.network.prefixlen)
        self.lookup = lru_cache(maxsize=65536)(self._lookup)

    def _lookup(self, address: str | None) -> Device | None:
        if not address or not self.devices:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for d in self.devices:
            if ip.version == d.network.version and ip in d.network:
                return d
        return None

    def tags(self, address: str | None) -> frozenset[str]:
        d = self.lookup(address)
        return d.tags if d else frozenset()

    def name(self, address: str | None) -> str | None:
        d = self.lookup(address)
        return d.name if d else None

    def criticality(self, address: str | None) -> Criticality:
        d = self.lookup(address)
        return d.criticality if d else "normal"

    def __len__(self) -> int:
        return len(self.devices)
