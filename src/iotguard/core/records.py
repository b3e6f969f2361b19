"""The records that flow from detection to response to the operator: alerts, incidents, actions.

An :class:`Alert` serialises to one Suricata EVE JSON line (``event_type: "alert"``) with an extra
``iotguard`` object, so SIEM pipelines that ingest Suricata (Filebeat, Logstash, Splunk) take it unchanged.
Severity follows Suricata: 1 is the most severe, 4 the least.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP"}


def proto_name(number: int | None) -> str | None:
    """IANA protocol number -> the name Suricata writes in ``proto``."""
    if number is None:
        return None
    return PROTO_NAMES.get(int(number), str(int(number)))


_LAST_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z, the last time datetime can show


def eve_timestamp(epoch: float) -> str:
    """Suricata's timestamp format: ``2017-07-06T12:39:06.818901+0000``.

    A damaged capture can carry any time at all; it is clamped to 1970..9999 rather than failing the alert.
    """
    epoch = float(epoch)
    if not 0.0 <= epoch <= _LAST_EPOCH:
        epoch = 0.0 if not epoch > 0.0 else _LAST_EPOCH  # NaN and negatives go to the epoch
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


@dataclass(slots=True)
class Alert:
    timestamp: float
    """Epoch seconds of the evidence: the flow's last packet, or the telemetry message."""
    src_ip: str
    dest_ip: str | None
    family: str
    severity: int
    score: float
    confidence: float
    model: str
    signature_id: int
    signature: str
    flow_id: int | None = None
    src_port: int | None = None
    dest_port: int | None = None
    proto: str | None = None
    app_proto: str | None = None
    action: Literal["allowed", "blocked"] = "allowed"
    partial: bool = False
    top_features: list[tuple[str, float]] = field(default_factory=list)
    source: Literal["flow", "telemetry", "inventory"] = "flow"
    device: str | None = None
    incident_id: int | None = None
    id: int | None = None

    def to_eve(self) -> dict[str, Any]:
        """One EVE ``alert`` event as a dict (``json.dumps`` it to get the line)."""
        event: dict[str, Any] = {"timestamp": eve_timestamp(self.timestamp)}
        if self.flow_id is not None:
            event["flow_id"] = int(self.flow_id)
        event["event_type"] = "alert"
        event["src_ip"] = self.src_ip
        if self.src_port is not None:
            event["src_port"] = int(self.src_port)
        if self.dest_ip is not None:
            event["dest_ip"] = self.dest_ip
        if self.dest_port is not None:
            event["dest_port"] = int(self.dest_port)
        if self.proto is not None:
            event["proto"] = self.proto
        if self.app_proto is not None:
            event["app_proto"] = self.app_proto
        event["alert"] = {
            "action": self.action,
            "gid": 1,
            "signature_id": int(self.signature_id),
            "rev": 1,
            "signature": self.signature,
            "category": self.family,
            "severity": int(self.severity),
        }
        event["iotguard"] = {
            "model": self.model,
            "score": _finite(self.score),
            "confidence": _finite(self.confidence),
            "family": self.family,
            "partial": self.partial,
            "source": self.source,
            "top_features": [{"feature": f, "weight": _finite(w)} for f, w in self.top_features],
        }
        if self.device is not None:
            event["iotguard"]["device"] = self.device
        if self.incident_id is not None:
            event["iotguard"]["incident_id"] = self.incident_id
        if self.id is not None:
            event["iotguard"]["alert_id"] = self.id
        return event


@dataclass(slots=True)
class Incident:
    """Alerts folded together: same attacker, family (and victim set) within a time window.

    ``src_ips`` names every attacker folded in: ``[src_ip]`` for one attacker; several for a distributed
    incident (many sources against one victim, e.g. a flood), where ``src_ip`` is the first one seen.
    """

    src_ip: str
    family: str
    severity: int
    first_seen: float
    last_seen: float
    alert_count: int = 0
    dest_ips: list[str] = field(default_factory=list)
    max_score: float = 0.0
    status: Literal["open", "closed"] = "open"
    summary: str = ""
    id: int | None = None
    src_ips: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ActionResult = Literal["pending", "ok", "failed", "skipped", "dry-run", "released", "expired"]


@dataclass(slots=True)
class ActionRecord:
    """One response action. Recorded as ``pending`` before it runs, updated with its result after."""

    time: float
    action: str
    """log | webhook | syslog | mqtt | block | quarantine | ratelimit | release"""
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = True
    result: ActionResult = "pending"
    error: str | None = None
    alert_id: int | None = None
    incident_id: int | None = None
    expires: float | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
