"""False-positive control before folding: suppression rules and k-of-n confirmation.

* A **suppression rule** drops alerts that match it (attacker and/or victim network, family), optionally
  until a time; use it for a known-noisy device or a scanner you run yourself.
* **k-of-n confirmation** holds a host's alerts of one family until ``k`` of its last ``n`` scored flows
  were flagged; a one-off false positive then never becomes an alert. ``k = n = 1`` (the default) is off.
"""

from __future__ import annotations

import ipaddress
from collections import deque

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _net(value: str | None) -> str | None:
    if value is not None:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR network") from None
    return value


class SuppressRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    src: str | None = None
    """Attacker address or network."""
    dst: str | None = None
    """Victim address or network."""
    family: str | None = None
    until: float | None = None
    """Epoch seconds after which the rule no longer applies (evidence time)."""
    reason: str = ""

    _src = field_validator("src")(classmethod(lambda cls, v: _net(v)))
    _dst = field_validator("dst")(classmethod(lambda cls, v: _net(v)))

    @model_validator(mode="after")
    def _something(self) -> SuppressRule:
        if self.src is None and self.dst is None and self.family is None:
            raise ValueError("a suppression rule needs src, dst or family")
        return self


class ConfirmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(1, ge=1)
    n: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _k_le_n(self) -> ConfirmConfig:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


class Suppressor:
    def __init__(self, rules: list[SuppressRule] | None = None) -> None:
        self.rules = [
            (
                ipaddress.ip_network(r.src, strict=False) if r.src else None,
                ipaddress.ip_network(r.dst, strict=False) if r.dst else None,
                r.family,
                r.until,
            )
            for r in rules or []
        ]
        self.suppressed = 0

    def __call__(self, src: str, dst: str | None, family: str, ts: float) -> bool:
        """True when an alert with these fields is suppressed."""
        for src_net, dst_net, fam, until in self.rules:
            if fam is not None and fam != family:
                continue
            if until is not None and ts > until:
                continue
            if src_net is not None and not _contains(src_net, src):
                continue
            if dst_net is not None and not _contains(dst_net, dst):
                continue
            self.suppressed += 1
            return True
        return False


def _contains(net: ipaddress.IPv4Network | ipaddress.IPv6Network, address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == net.version and ip in net


class Confirmer:
    """Per-host sliding window of the last ``n`` verdicts; a flagged flow is confirmed when ``k`` of them are
    flagged. Bounded memory: at most ``max_hosts`` hosts are remembered (the least recently seen go first)."""

    def __init__(self, config: ConfirmConfig | None = None, max_hosts: int = 100_000) -> None:
        self.k = (config or ConfirmConfig()).k
        self.n = (config or ConfirmConfig()).n
        self.max_hosts = max_hosts
        self._history: dict[str, deque[bool]] = {}
        self.held = 0

    @property
    def enabled(self) -> bool:
        return self.k > 1 or self.n > 1

    def __call__(self, hosts: list[str], flagged: np.ndarray) -> np.ndarray:
        """Feed verdicts in order; returns which flagged ones are confirmed."""
        if not self.enabled:
            return flagged.copy()
        out = np.zeros(len(flagged), dtype=bool)
        for i, (host, flag) in enumerate(zip(hosts, flagged.tolist(), strict=True)):
            hist = self._history.pop(host, None)
            if hist is None:
                hist = deque(maxlen=self.n)
            hist.append(bool(flag))
            self._history[host] = hist  # re-insert: dict order is recency
            if flag:
                if sum(hist) >= self.k:
                    out[i] = True
                else:
                    self.held += 1
        while len(self._history) > self.max_hosts:
            self._history.pop(next(iter(self._history)))
        return out
