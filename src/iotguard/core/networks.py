"""Membership of addresses in a set of networks, for the hot paths that ask it per flow or per packet."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class NetworkSet:
    """``address in NetworkSet(["10.0.0.0/8", "fc00::/7"])``: whether an address string lies in any of the
    networks. Answers are cached per address (the same hosts come back again and again), the cache bounded;
    a string that is no address is in no network."""

    def __init__(self, networks: Iterable[str], cache: int = 200_000) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._cache: dict[str, bool] = {}
        self._limit = cache

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        key = str(address)
        hit = self._cache.get(key)
        if hit is None:
            try:
                ip = ipaddress.ip_address(key)
            except ValueError:
                hit = False
            else:
                hit = any(ip.version == n.version and ip in n for n in self.networks)
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[key] = hit
        return hit
