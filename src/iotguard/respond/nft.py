"""Blocking with nftables, in a table of iotguard's own.

Everything lives in one table (``inet iotguard`` by default), so iotguard never touches the operator's own
rules and ``nft delete table inet iotguard`` undoes all of it::

    table inet iotguard {
        set block4 / block6       { flags timeout }            addresses cut off in both directions
        set quar4 / quar6         { flags timeout }            devices that may reach only ...
        set mgmt4 / mgmt6         { flags interval }           ... these management addresses
        set rl4_<rate> / rl6_...  { flags timeout }            addresses rate limited to <rate>
        chain input / forward / output { type filter hook ... priority filter - 10; policy accept;
            ip saddr @block4 drop;  ip daddr @block4 drop
            ip saddr @quar4 ip daddr != @mgmt4 drop;  ip daddr @quar4 ip saddr != @mgmt4 drop
            ip saddr @rl4_<rate> update @rlm4_<rate> { ip saddr limit rate over <rate> } drop
        }
    }

Every element carries a timeout, so a block lifts itself even if iotguard dies. Changes are applied as one
``nft -f -`` transaction each; adding an element re-adds it with a fresh timeout (add, delete, add: idempotent
whether or not it was there), and removing one first adds it, so a release of an absent address succeeds.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from iotguard.core.errors import ResponseError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
_RATE = re.compile(r"^(?P<n>[1-9][0-9]*)/(?P<unit>second|minute|hour)$")
HOOKS = ("input", "forward", "output")


def parse_rate(text: str) -> tuple[int, str]:
    """``"100/second"`` -> ``(100, "second")``; ValueError otherwise."""
    m = _RATE.match(text.strip())
    if not m:
        raise ValueError(f"bad rate {text!r} (expected N/second, N/minute or N/hour)")
    return int(m["n"]), m["unit"]


@dataclass(frozen=True, slots=True)
class Element:
    """One address in one of iotguard's sets, as nft reports it."""

    kind: str
    """block | quarantine | ratelimit"""
    address: str
    expires: float | None
    """Seconds until the kernel removes it."""
    rate: str | None = None


class Nftables:
    """iotguard's nftables table. ``netns`` runs every command inside that network namespace."""

    def __init__(
        self,
        table: str = "iotguard",
        *,
        family: str = "inet",
        hooks: Sequence[str] = HOOKS,
        netns: str | None = None,
        management: Iterable[str] = (),
        nft: str = "nft",
        timeout: float = 10.0,
    ) -> None:
        if not _NAME.match(table):
            raise ResponseError(f"bad nftables table name {table!r}", expected="letters, digits, _")
        if family not in ("inet", "ip", "ip6", "bridge"):
            raise ResponseError(f"bad nftables family {family!r}", expected="inet, ip, ip6 or bridge")
        bad = [h for h in hooks if h not in HOOKS]
        if bad or not hooks:
            raise ResponseError(f"bad hooks {list(hooks)}", expected="a subset of input, forward, output")
        self.table = table
        self.family = family
        self.hooks = tuple(hooks)
        self.netns = netns
        self.management = [str(ipaddress.ip_network(m, strict=False)) for m in management]
        self.nft = nft
        self.timeout = timeout
        self._lock = threading.Lock()
        self._ready = False
        self._rates: set[str] = set()

    # -- plumbing ---------------------------------------------------------------------------------------
    def _argv(self, *args: str) -> list[str]:
        nft = shutil.which(self.nft) or self.nft
        argv = [nft, *args]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv

    def _exec(self, args: list[str], script: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                self._argv(*args),
                input=script,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ResponseError(f"cannot run nft: {exc.strerror}", expected="the nftables package") from exc
        except subprocess.TimeoutExpired as exc:
            raise ResponseError(f"nft did not answer within {self.timeout} s") from exc

    def apply(self, script: str) -> None:
        """Run an nft script as one transaction; ResponseError with nft's message on failure."""
        proc = self._exec(["-f", "-"], script)
        if proc.returncode != 0:
            message = " ".join(proc.stderr.strip().splitlines()[:2]) or f"exit status {proc.returncode}"
            raise ResponseError(f"nft refused the change: {message}")

    def available(self) -> bool:
        """True when nft runs and may change rules here (root, or CAP_NET_ADMIN)."""
        try:
            proc = self._exec(["list", "tables"])
        except ResponseError:
            return False
        return proc.returncode == 0

    def exists(self) -> bool:
        proc = self._exec(["list", "table", self.family, self.table])
        return proc.returncode == 0

    def _t(self) -> str:
        return f"{self.family} {self.table}"

    def _matches(self) -> list[tuple[str, str]]:
        """(ip keyword, set suffix) for the address families this table family carries."""
        return {"ip": [("ip", "4")], "ip6": [("ip6", "6")]}.get(self.family, [("ip", "4"), ("ip6", "6")])

    def ensure(self) -> None:
        """Create the table, sets and chains unless they exist (safe to call any number of times)."""
        with self._lock:
            if self._ready:
                return
            if not self.exists():
                t = self._t()
                lines = [f"add table {t}"]
                for _ip, v in self._matches():
                    addr = "ipv4_addr" if v == "4" else "ipv6_addr"
                    lines += [
                        f"add set {t} block{v} {{ type {addr}; flags timeout; }}",
                        f"add set {t} quar{v} {{ type {addr}; flags timeout; }}",
                        f"add set {t} mgmt{v} {{ type {addr}; flags interval; auto-merge; }}",
                    ]
                for hook in self.hooks:
                    lines.append(
                        f"add chain {t} {hook} {{ type filter hook {hook} priority filter - 10; policy accept; }}"
                    )
                    for ip, v in self._matches():
                        lines += [
                            f"add rule {t} {hook} {ip} saddr @block{v} drop",
                            f"add rule {t} {hook} {ip} daddr @block{v} drop",
                            f"add rule {t} {hook} {ip} saddr @quar{v} {ip} daddr != @mgmt{v} drop",
                            f"add rule {t} {hook} {ip} daddr @quar{v} {ip} saddr != @mgmt{v} drop",
                        ]
                self.apply("\n".join(lines) + "\n")
                log.info("created nftables table %s", t)
            if self.management:
                self.add_management(self.management, _locked=True)
            self._ready = True

    def add_management(self, addresses: Iterable[str], *, _locked: bool = False) -> None:
        """Add management addresses (what a quarantined device may still reach)."""
        lines = []
        for a in addresses:
            net = ipaddress.ip_network(a, strict=False)
            v = str(net.version)
            if any(s == v for _, s in self._matches()):
                lines.append(f"add element {self._t()} mgmt{v} {{ {net} }}")
        if lines:
            self.apply("\n".join(lines) + "\n")

    def _ensure_rate(self, rate: str) -> str:
        n, unit = parse_rate(rate)
        key = f"{n}_{unit}"
        if key in self._rates:
            return key
        proc = self._exec(["list", "set", self.family, self.table, f"rl{self._matches()[0][1]}_{key}"])
        if proc.returncode != 0:
            t = self._t()
            lines = []
            for ip, v in self._matches():
                addr = "ipv4_addr" if v == "4" else "ipv6_addr"
                lines += [
                    f"add set {t} rl{v}_{key} {{ type {addr}; flags timeout; }}",
                    f"add set {t} rlm{v}_{key} {{ type {addr}; flags dynamic,timeout; timeout 1m; }}",
                ]
                for hook in self.hooks:
                    lines.append(
                        f"add rule {t} {hook} {ip} saddr @rl{v}_{key}"
                        f" update @rlm{v}_{key} {{ {ip} saddr limit rate over {n}/{unit} }} drop"
                    )
            self.apply("\n".join(lines) + "\n")
        self._rates.add(key)
        return key

    @staticmethod
    def _addr(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        try:
            return ipaddress.ip_address(address)
        except ValueError:
            raise ResponseError(
                f"{address!r} is not an IP address", expected="one IPv4 or IPv6 address"
            ) from None

    def _set_for(self, prefix: str, address: str) -> tuple[str, str]:
        ip = self._addr(address)
        v = str(ip.version)
        if not any(s == v for _, s in self._matches()):
            raise ResponseError(f"table family {self.family} cannot hold IPv{v} address {address}")
        return f"{prefix}{v}", str(ip)

    # -- actions ----------------------------------------------------------------------------------------
    def _put(self, set_name: str, address: str, ttl: float) -> None:
        seconds = max(1, int(round(ttl)))
        t = self._t()
        self.apply(
            f"add element {t} {set_name} {{ {address} }}\n"
            f"delete element {t} {set_name} {{ {address} }}\n"
            f"add element {t} {set_name} {{ {address} timeout {seconds}s }}\n"
        )

    def block(self, address: str, ttl: float) -> None:
        """Drop everything to and from ``address`` for ``ttl`` seconds (refreshes the timeout if present)."""
        self.ensure()
        set_name, addr = self._set_for("block", address)
        self._put(set_name, addr, ttl)

    def quarantine(self, address: str, ttl: float, management: Iterable[str] = ()) -> None:
        """Let ``address`` talk only to the management addresses for ``ttl`` seconds."""
        self.ensure()
        management = list(management)
        if management:
            self.add_management(management)
        set_name, addr = self._set_for("quar", address)
        self._put(set_name, addr, ttl)

    def ratelimit(self, address: str, ttl: float, rate: str) -> None:
        """Drop packets from ``address`` above ``rate`` (``N/second``) for ``ttl`` seconds."""
        self.ensure()
        key = self._ensure_rate(rate)
        set_name, addr = self._set_for("rl", address)
        self._put(f"{set_name}_{key}", addr, ttl)

    def release(self, address: str) -> None:
        """Remove ``address`` from every iotguard set (no error when it is in none)."""
        if not self.exists():
            return
        ip = self._addr(address)
        v = str(ip.version)
        t = self._t()
        lines = []
        for name in self._set_names():
            base = name.split("_", 1)[0]
            if base in (f"block{v}", f"quar{v}", f"rl{v}"):
                lines += [f"add element {t} {name} {{ {ip} }}", f"delete element {t} {name} {{ {ip} }}"]
        if lines:
            self.apply("\n".join(lines) + "\n")

    def _set_names(self) -> list[str]:
        proc = self._exec(["-j", "list", "sets", self.family])
        if proc.returncode != 0:
            return []
        names = []
        for item in _json(proc.stdout):
            s = item.get("set")
            if s and s.get("table") == self.table:
                names.append(s["name"])
        return names

    def elements(self) -> list[Element]:
        """Every address in iotguard's block, quarantine and rate-limit sets, with its remaining time."""
        if not self.exists():
            return []
        proc = self._exec(["-j", "list", "table", self.family, self.table])
        if proc.returncode != 0:
            raise ResponseError(f"cannot list nftables table {self._t()}: {proc.stderr.strip()}")
        out = []
        for item in _json(proc.stdout):
            s = item.get("set")
            if not s:
                continue
            name = s["name"]
            base, _, rate = name.partition("_")
            kind = {"block": "block", "quar": "quarantine", "rl": "ratelimit"}.get(base.rstrip("46"))
            if kind is None or base.startswith("rlm"):
                continue
            for e in s.get("elem", []):
                if isinstance(e, dict) and "elem" in e:
                    val, expires = e["elem"].get("val"), e["elem"].get("expires")
                else:
                    val, expires = e, None
                out.append(Element(kind, str(val), expires, rate.replace("_", "/") if rate else None))
        return out

    def delete_table(self) -> None:
        """Remove iotguard's table and everything in it."""
        if self.exists():
            self.apply(f"delete table {self._t()}\n")
        with self._lock:
            self._ready = False
            self._rates.clear()


def _json(text: str) -> list[dict[str, Any]]:
    try:
        return json.loads(text).get("nftables", [])
    except (ValueError, AttributeError):
        return []
