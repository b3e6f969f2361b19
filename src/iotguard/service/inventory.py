"""The device inventory: every local device seen, what it talks, and whether it still behaves like itself.

For each address in ``inventory.networks`` the inventory keeps first and last seen, the MAC addresses seen
with it (Ethernet captures), flows, packets and bytes in each direction, the services it uses and offers
(``TCP/1883``, ``UDP/53``, ...), its peers and its alert count.

**Behavioural fingerprint.** Traffic is cut into windows of ``inventory.window`` seconds (evidence time, so a
replayed capture behaves like live traffic). Each window of a device gives one sample: its service mix (a
distribution) and six numbers (flows, bytes out, bytes in, distinct peers, mean packet size, share of flows
that got no reply), log-scaled. The first ``warmup_windows`` samples make the fingerprint; afterwards each
sample is compared with it:

* service distance: the Jensen-Shannon divergence (base 2, so 0..1) between the sample's service mix and
  the fingerprint's;
* numeric distance: the share of the six numbers more than 4 standard deviations (floored) from the
  fingerprint's mean.

The distance is the larger of the two. ``drift_windows`` consecutive samples beyond ``drift_threshold`` flag
the device (an alert with source ``inventory``, family ``Anomaly``): a camera that starts scanning telnet
ports, a plug that suddenly uploads, or someone else using the address. Samples that are not flagged keep
refining the fingerprint slowly, so gradual change is learned; flagged ones are not learned.

**MAC change.** A device address seen with a new MAC after it had a stable one raises a ``Spoofing`` alert
(ARP spoofing or a replaced device), unless the MAC is the configured one.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iotguard.core.config import DeviceConfig, InventoryConfig
from iotguard.core.networks import NetworkSet
from iotguard.core.records import Alert

MODEL_NAME = "inventory-fingerprint"
SID_DRIFT = 9_200_001
SID_MAC = 9_200_002
NUMERIC = ("flows", "bytes_out", "bytes_in", "peers", "mean_pkt", "unanswered")
MAX_SERVICES = 48
MAX_PEERS = 512
MAX_MACS = 8
# Ports named individually in the service mix; other ports above 1023 are lumped as "high".
IOT_PORTS = frozenset({1883, 8883, 5683, 5684, 8080, 8443, 554, 8554, 1900, 5353, 502, 47808, 2323, 9000})
LEARN_RATE = 0.05  # after warm-up, how fast the fingerprint follows unflagged samples


@dataclass
class _Window:
    start: float
    flows: int = 0
    packets: int = 0
    bytes_out: float = 0.0
    bytes_in: float = 0.0
    unanswered: int = 0
    services: Counter[str] = field(default_factory=Counter)
    peers: set[str] = field(default_factory=set)

    def vector(self) -> np.ndarray:
        mean_pkt = (self.bytes_out + self.bytes_in) / self.packets if self.packets else 0.0
        return np.log1p(
            np.array(
                [
                    self.flows,
                    self.bytes_out,
                    self.bytes_in,
                    len(self.peers),
                    mean_pkt,
                    100.0 * self.unanswered / max(self.flows, 1),
                ],
                dtype=np.float64,
            )
        )


@dataclass
class _Fingerprint:
    samples: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(len(NUMERIC)))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(len(NUMERIC)))
    services: dict[str, float] = field(default_factory=dict)

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.samples - 1, 1))

    def learn(self, vec: np.ndarray, mix: dict[str, float], warm: bool) -> None:
        self.samples += 1
        if not warm:  # Welford over the warm-up samples
            delta = vec - self.mean
            self.mean = self.mean + delta / self.samples
            self.m2 = self.m2 + delta * (vec - self.mean)
            rate = 1.0 / self.samples
        else:  # exponential forgetting afterwards
            delta = vec - self.mean
            self.mean = self.mean + LEARN_RATE * delta
            self.m2 = (1 - LEARN_RATE) * (self.m2 + LEARN_RATE * delta * delta * max(self.samples - 1, 1))
            rate = LEARN_RATE
        keys = set(self.services) | set(mix)
        merged = {k: (1 - rate) * self.services.get(k, 0.0) + rate * mix.get(k, 0.0) for k in keys}
        top = sorted(merged.items(), key=lambda kv: -kv[1])[:MAX_SERVICES]
        total = sum(v for _, v in top) or 1.0
        self.services = {k: v / total for k, v in top}

    def distance(self, vec: np.ndarray, mix: dict[str, float]) -> tuple[float, float, float]:
        """(distance, service distance, numeric distance), each in 0..1."""
        js = _jensen_shannon(self.services, mix)
        floor = np.maximum(0.25, 0.1 * np.abs(self.mean))
        z = np.abs(vec - self.mean) / np.maximum(self.std(), floor)
        numeric = float(np.mean(z > 4.0))
        return max(js, numeric), js, numeric


def _jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    keys = set(p) | set(q)
    if not keys:
        return 0.0
    total = 0.0
    for k in keys:
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        m = 0.5 * (a + b)
        if a > 0:
            total += 0.5 * a * math.log2(a / m)
        if b > 0:
            total += 0.5 * b * math.log2(b / m)
    return min(1.0, max(0.0, total))


@dataclass
class Device:
    address: str
    first_seen: float
    last_seen: float
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    criticality: str = "normal"
    macs: list[str] = field(default_factory=list)
    expected_mac: str | None = None
    flows_out: int = 0
    flows_in: int = 0
    packets_out: int = 0
    packets_in: int = 0
    bytes_out: float = 0.0
    bytes_in: float = 0.0
    services: Counter[str] = field(default_factory=Counter)
    peers: set[str] = field(default_factory=set)
    alerts: int = 0
    window: _Window | None = None
    fingerprint: _Fingerprint = field(default_factory=_Fingerprint)
    drift: float = 0.0
    unlike: int = 0
    flagged_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "tags": list(self.tags),
            "criticality": self.criticality,
            "mac": self.macs[-1] if self.macs else None,
            "macs": list(self.macs),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "protocols": sorted({s.split("/")[0].removeprefix("in:") for s in self.services}),
            "services": dict(self.services.most_common(12)),
            "traffic": {
                "flows_out": self.flows_out,
                "flows_in": self.flows_in,
                "packets_out": self.packets_out,
                "packets_in": self.packets_in,
                "bytes_out": self.bytes_out,
                "bytes_in": self.bytes_in,
                "peers": len(self.peers),
            },
            "alerts": self.alerts,
            "fingerprint": {
                "samples": self.fingerprint.samples,
                "services": dict(sorted(self.fingerprint.services.items(), key=lambda kv: -kv[1])[:8]),
                "drift": round(self.drift, 4),
                "flagged": self.flagged_at is not None,
                "flagged_at": self.flagged_at,
            },
        }


_IOT_PORTS = np.array(sorted(IOT_PORTS), dtype=np.int64)
HIGH = 65536  # "any port above 1023 that is not a known IoT port"


def _service_codes(proto: np.ndarray, port: np.ndarray) -> np.ndarray:
    """One integer per flow naming its service: ``proto * 65537 + port`` (``HIGH`` for unnamed high ports;
    the port is dropped for protocols without ports). Always below 2**24."""
    named = (port < 1024) | np.isin(port, _IOT_PORTS)
    ports = np.where(named, port, HIGH)
    ports = np.where((proto == 6) | (proto == 17), ports, 0)
    return proto.astype(np.int64) * 65537 + ports


def _service_name(code: int, inbound: bool) -> str:
    proto, port = divmod(int(code), 65537)
    name = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMP"}.get(proto, "IP")
    suffix = ("high" if port == HIGH else str(port)) if proto in (6, 17) else str(proto)
    return f"{'in:' if inbound else ''}{name}/{suffix}"


class Inventory:
    """Thread-safe: the detection thread feeds it, the API reads it."""

    def __init__(
        self, config: InventoryConfig | None = None, devices: list[DeviceConfig] | None = None
    ) -> None:
        self.config = config or InventoryConfig()
        self._local = NetworkSet(self.config.networks)
        self._known = [(ipaddress.ip_network(d.address, strict=False), d) for d in devices or [] if d.address]
        self._known.sort(key=lambda item: -item[0].prefixlen)
        self._devices: OrderedDict[str, Device] = OrderedDict()
        self._mac_owner: dict[str, str] = {}  # MAC -> the address first seen using it
        self._lock = threading.RLock()
        self.evicted = 0

    # -- who is local -------------------------------------------------------------------------------------
    def is_local(self, address: str) -> bool:
        return address in self._local

    def _device(self, address: str, ts: float) -> Device:
        dev = self._devices.get(address)
        if dev is None:
            if len(self._devices) >= self.config.max_devices:
                self._devices.popitem(last=False)
                self.evicted += 1
            dev = Device(address=address, first_seen=ts, last_seen=ts)
            self._configure(dev)
            self._devices[address] = dev
        else:
            self._devices.move_to_end(address)
        return dev

    def _configure(self, dev: Device) -> None:
        try:
            ip = ipaddress.ip_address(dev.address)
        except ValueError:
            return
        for net, conf in self._known:
            if ip.version == net.version and ip in net:
                dev.name = conf.name
                dev.tags = list(conf.tags)
                dev.criticality = conf.criticality
                dev.expected_mac = conf.mac if net.num_addresses == 1 else None
                return

    # -- feeding ------------------------------------------------------------------------------------------
    def observe_flows(self, flows: pd.DataFrame) -> list[Alert]:
        """Account a batch of flow records (early records only refresh first/last seen; final ones count).

        Vectorised: addresses are factorised once per batch and every sum is a ``bincount``; Python runs
        once per device present, not once per flow."""
        n = len(flows) if flows is not None else 0
        if n == 0:
            return []
        codes, uniques = pd.factorize(
            np.concatenate([flows["src_ip"].to_numpy(), flows["dst_ip"].to_numpy()])
        )
        names = [str(a) for a in uniques]
        local = np.fromiter((self.is_local(a) for a in names), dtype=bool, count=len(names))
        if not local.any():
            return []
        m = len(names)
        src, dst = codes[:n], codes[n:]

        def col(name: str, default: float, dtype: type) -> np.ndarray:
            if name in flows:
                return flows[name].to_numpy(dtype=dtype, na_value=default)
            return np.full(n, default, dtype=dtype)

        final = ~col("partial", False, bool)
        ts1 = col("ts_last", 0.0, np.float64)
        ts0 = col("ts_first", np.nan, np.float64)
        ts0 = np.where(np.isnan(ts0), ts1, ts0)
        fp, bp = col("fwd_packets", 1, np.int64), col("bwd_packets", 0, np.int64)
        fb, bb = col("fwd_bytes", 0.0, np.float64), col("bwd_bytes", 0.0, np.float64)
        svc = _service_codes(col("protocol", 0, np.int64), col("dst_port", 0, np.int64))
        # A new address joins the inventory only once it is in a flow that went both ways: a spoofed source
        # (a SYN flood from a million random addresses) never answers, so it never fills the inventory.
        answered = (fp > 0) & (bp > 0)
        proven = np.zeros(m, dtype=bool)
        proven[src[answered]] = True
        proven[dst[answered]] = True
        alerts: list[Alert] = []
        with self._lock:
            for inbound, who, peer in ((False, src, dst), (True, dst, src)):
                mine = local[who]
                if not mine.any():
                    continue
                rows = np.flatnonzero(mine)
                w = who[rows]
                first = np.full(m, np.inf)
                last = np.full(m, -np.inf)
                np.minimum.at(first, w, ts0[rows])
                np.maximum.at(last, w, ts1[rows])
                fin = rows[final[rows]]
                wf = who[fin]
                own_pk, peer_pk = (bp, fp) if inbound else (fp, bp)
                own_by, peer_by = (bb, fb) if inbound else (fb, bb)
                flows_n = np.bincount(wf, minlength=m)
                pk_own = np.bincount(wf, own_pk[fin], minlength=m)
                pk_peer = np.bincount(wf, peer_pk[fin], minlength=m)
                by_own = np.bincount(wf, own_by[fin], minlength=m)
                by_peer = np.bincount(wf, peer_by[fin], minlength=m)
                unanswered = np.bincount(wf, (peer_pk[fin] == 0).astype(np.float64), minlength=m)
                for code in np.unique(w).tolist():
                    if not proven[code] and names[code] not in self._devices:
                        continue
                    dev = self._device(names[code], float(first[code]))
                    dev.first_seen = min(dev.first_seen, float(first[code]))
                    alerts += self._roll(dev, float(last[code]))
                    dev.last_seen = max(dev.last_seen, float(last[code]))
                    k = int(flows_n[code])
                    if not k:
                        continue
                    win = dev.window
                    assert win is not None
                    out_b, in_b = (by_peer[code], by_own[code]) if inbound else (by_own[code], by_peer[code])
                    out_p, in_p = (pk_peer[code], pk_own[code]) if inbound else (pk_own[code], pk_peer[code])
                    if inbound:
                        dev.flows_in += k
                    else:
                        dev.flows_out += k
                        win.unanswered += int(unanswered[code])
                    dev.packets_out += int(out_p)
                    dev.packets_in += int(in_p)
                    dev.bytes_out += float(out_b)
                    dev.bytes_in += float(in_b)
                    win.flows += k
                    win.packets += int(out_p + in_p)
                    win.bytes_out += float(out_b)
                    win.bytes_in += float(in_b)
                if not len(fin):
                    continue
                # services: one count per (device, service) pair
                pairs, counts = np.unique(wf.astype(np.int64) * (1 << 24) + svc[fin], return_counts=True)
                for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
                    dev = self._devices.get(names[pair >> 24])
                    if dev is None or dev.window is None:
                        continue
                    name = _service_name(pair & ((1 << 24) - 1), inbound)
                    dev.window.services[name] += count
                    if name in dev.services or len(dev.services) < MAX_SERVICES:
                        dev.services[name] += count
                # peers: distinct (device, peer) pairs, at most MAX_PEERS per device
                links = np.unique(wf.astype(np.int64) * m + peer[fin])
                for link in links.tolist():
                    dev = self._devices.get(names[link // m])
                    if dev is None or dev.window is None:
                        continue
                    other = names[link % m]
                    if len(dev.window.peers) < MAX_PEERS:
                        dev.window.peers.add(other)
                    if len(dev.peers) < MAX_PEERS:
                        dev.peers.add(other)
        return alerts

    def observe_macs(self, pairs: list[tuple[str, str, float, bool]]) -> list[Alert]:
        """(address, MAC, time, from ARP) seen together in Ethernet frames; a changed MAC raises ``Spoofing``.
        An ARP sender joins the inventory; a plain IPv4 source only updates a device already in it (its
        address may be spoofed).

        The alert's source is the impostor: the address that normally uses the new MAC when the inventory
        knows one, else the MAC itself (not an address, so no response policy can block the impersonated
        device, the gateway say, by mistake); its destination is the impersonated address."""
        alerts = []
        with self._lock:
            for address, mac, ts, arp in pairs:
                if not self.is_local(address) or (not arp and address not in self._devices):
                    continue
                dev = self._device(address, ts)
                dev.last_seen = max(dev.last_seen, ts)
                if mac in dev.macs:
                    continue
                owner = self._mac_owner.get(mac)
                expected = dev.expected_mac
                changed = (expected is not None and mac != expected) or (expected is None and bool(dev.macs))
                if owner is None and not changed:
                    # Only an uncontested sighting says whose MAC it is: a spoofed claim (or a man in the
                    # middle forwarding its victims' packets) would name the victim as the owner.
                    if len(self._mac_owner) >= self.config.max_devices:
                        self._mac_owner.pop(next(iter(self._mac_owner)))
                    self._mac_owner[mac] = owner = address
                previous = expected or (dev.macs[-1] if dev.macs else None)
                dev.macs = [*dev.macs, mac][-MAX_MACS:]
                if changed:
                    impostor = owner if owner != address else None
                    alert = self._alert(
                        dev,
                        ts,
                        SID_MAC,
                        "Spoofing",
                        2,
                        f"iotguard inventory: {dev.address} now answers with MAC {mac}"
                        + (f" (the MAC of {impostor})" if impostor else "")
                        + f", was {previous}",
                        [("macs_seen", float(len(dev.macs)))],
                        score=1.0,
                        confidence=0.9,
                    )
                    alert.src_ip = impostor or mac
                    alert.dest_ip = dev.address
                    alerts.append(alert)
        return alerts

    def note_alert(self, alert: Alert) -> None:
        """Count an alert against the local device(s) it involves."""
        with self._lock:
            for address in {alert.src_ip, alert.dest_ip}:
                if address and address in self._devices:
                    self._devices[address].alerts += 1

    # -- fingerprints -------------------------------------------------------------------------------------
    def _roll(self, dev: Device, ts: float) -> list[Alert]:
        win = dev.window
        if win is None:
            dev.window = _Window(start=ts)
            return []
        if ts - win.start < self.config.window:
            return []
        dev.window = _Window(start=ts)
        return self._judge(dev, win, ts)

    def tick(self, now: float) -> list[Alert]:
        """Close windows of devices that went quiet (call now and then with the evidence clock)."""
        alerts = []
        with self._lock:
            for dev in list(self._devices.values()):
                win = dev.window
                if win is not None and win.flows and now - win.start >= self.config.window:
                    dev.window = _Window(start=now)
                    alerts += self._judge(dev, win, now)
        return alerts

    def _judge(self, dev: Device, win: _Window, ts: float) -> list[Alert]:
        if win.flows == 0:
            return []
        vec = win.vector()
        total = sum(win.services.values()) or 1
        mix = {k: v / total for k, v in win.services.items()}
        fp = dev.fingerprint
        warm = fp.samples >= self.config.warmup_windows
        if not warm:
            fp.learn(vec, mix, warm=False)
            return []
        distance, js, numeric = fp.distance(vec, mix)
        dev.drift = distance
        if distance < self.config.drift_threshold:
            dev.unlike = 0
            dev.flagged_at = None
            fp.learn(vec, mix, warm=True)
            return []
        dev.unlike += 1
        if dev.unlike < self.config.drift_windows or dev.flagged_at is not None:
            return []
        dev.flagged_at = ts
        new = sorted(set(mix) - set(fp.services), key=lambda k: -mix[k])[:3]
        detail = f"new services {', '.join(new)}" if new else "traffic volume or peers far from usual"
        z = np.abs(vec - fp.mean) / np.maximum(fp.std(), np.maximum(0.25, 0.1 * np.abs(fp.mean)))
        top = sorted(zip(NUMERIC, z.tolist(), strict=True), key=lambda kv: -kv[1])[:3]
        return [
            self._alert(
                dev,
                ts,
                SID_DRIFT,
                "Anomaly",
                3,
                f"iotguard inventory: {dev.name or dev.address} behaves unlike itself ({detail})",
                [("service_distance", js), ("numeric_distance", numeric), *top],
                score=distance,
                confidence=min(1.0, 0.5 + distance / 2),
            )
        ]

    def _alert(
        self,
        dev: Device,
        ts: float,
        sid: int,
        family: str,
        severity: int,
        text: str,
        features: list[tuple[str, float]],
        *,
        score: float,
        confidence: float,
    ) -> Alert:
        shift = {"high": -1, "low": 1}.get(dev.criticality, 0)
        return Alert(
            timestamp=ts,
            src_ip=dev.address,
            dest_ip=None,
            family=family,
            severity=min(4, max(1, severity + shift)),
            score=float(score),
            confidence=float(confidence),
            model=MODEL_NAME,
            signature_id=sid,
            signature=text[:300],
            top_features=[(k, float(v)) for k, v in features],
            source="inventory",
            device=dev.name or dev.address,
        )

    # -- reading ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._devices)

    def devices(
        self, *, limit: int = 100, offset: int = 0, query: str | None = None
    ) -> tuple[int, list[dict]]:
        """(total, page) of devices, most recently seen first; ``query`` filters on address, name, MAC, tag."""
        with self._lock:
            items = list(reversed(self._devices.values()))
            if query:
                q = query.lower()
                items = [
                    d
                    for d in items
                    if q in d.address.lower()
                    or q in (d.name or "").lower()
                    or any(q in m for m in d.macs)
                    or any(q in t.lower() for t in d.tags)
                ]
            return len(items), [d.to_dict() for d in items[offset : offset + limit]]

    def get(self, address: str) -> dict[str, Any] | None:
        with self._lock:
            dev = self._devices.get(address)
            return dev.to_dict() if dev else None

    def flagged(self) -> int:
        with self._lock:
            return sum(1 for d in self._devices.values() if d.flagged_at is not None)

    # -- persistence --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": 1,
                "mac_owners": dict(self._mac_owner),
                "devices": [
                    {
                        "address": d.address,
                        "first_seen": d.first_seen,
                        "last_seen": d.last_seen,
                        "macs": d.macs,
                        "flows_out": d.flows_out,
                        "flows_in": d.flows_in,
                        "packets_out": d.packets_out,
                        "packets_in": d.packets_in,
                        "bytes_out": d.bytes_out,
                        "bytes_in": d.bytes_in,
                        "services": dict(d.services),
                        "peers": sorted(d.peers)[:MAX_PEERS],
                        "alerts": d.alerts,
                        "fingerprint": {
                            "samples": d.fingerprint.samples,
                            "mean": d.fingerprint.mean.tolist(),
                            "m2": d.fingerprint.m2.tolist(),
                            "services": d.fingerprint.services,
                        },
                        "flagged_at": d.flagged_at,
                    }
                    for d in self._devices.values()
                ],
            }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state`; a malformed one raises ``ValueError``/``KeyError``/``TypeError`` and leaves
        the inventory as it was (everything is read before anything is replaced)."""
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError("unknown inventory state version")
        if not isinstance(state.get("mac_owners", {}), dict):
            raise ValueError("inventory state: mac_owners is not a mapping")
        # whose MAC each is, so a spoofer is still named after a restart (absent from older checkpoints)
        owners = list(state.get("mac_owners", {}).items())[-self.config.max_devices :]
        mac_owner = {str(mac): str(address) for mac, address in owners}
        devices: dict[str, Device] = {}
        with self._lock:
            for item in list(state["devices"])[-self.config.max_devices :]:
                d = Device(
                    address=item["address"], first_seen=item["first_seen"], last_seen=item["last_seen"]
                )
                self._configure(d)
                d.macs = list(item["macs"])[-MAX_MACS:]
                for key in ("flows_out", "flows_in", "packets_out", "packets_in", "alerts"):
                    setattr(d, key, int(item[key]))
                d.bytes_out, d.bytes_in = float(item["bytes_out"]), float(item["bytes_in"])
                d.services = Counter({k: int(v) for k, v in item["services"].items()})
                d.peers = set(item["peers"])
                f = item["fingerprint"]
                d.fingerprint = _Fingerprint(
                    samples=int(f["samples"]),
                    mean=np.asarray(f["mean"], dtype=np.float64),
                    m2=np.asarray(f["m2"], dtype=np.float64),
                    services={k: float(v) for k, v in f["services"].items()},
                )
                d.flagged_at = item.get("flagged_at")
                devices[d.address] = d
            self._devices.clear()
            self._devices.update(devices)
            self._mac_owner = mac_owner
