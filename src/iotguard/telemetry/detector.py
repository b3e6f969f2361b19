"""Per-device telemetry baselines learned online, and the anomalies they raise as :class:`Alert` s.

A device is named by a JSON payload field (``telemetry.device_field``) or else by a topic level
(``telemetry.device_level``). For each device the detector learns, from its first ``warmup_messages`` messages
on and continuing with every message that is not itself anomalous:

* its message rate (a 10 s window against a slow average), so a **flood** stands out;
* its payload size (mean and spread);
* the topics it publishes on, so a **new topic**, or a topic that until now only *other* devices used
  (**foreign topic**: the device publishes where it never did), stands out;
* the range of every numeric JSON field, so **out-of-range** readings and **frozen** readings (a value that
  used to change and now repeats) stand out. Counters and clocks (fields that only climb) are recognised and
  not range-checked.

A device never seen before that appears after the first ``global_warmup`` seconds (of message time; a restored
checkpoint or a site baseline, ``iotguard detect --baseline``, carries over what was left) raises **new device**, at
most once per ``alert_cooldown`` seconds per publisher (its address when the message was read off the wire,
else all of them together), so a flood of messages each naming a made-up device is one alert, not one per
message. Read off the wire, messages also carry their publisher's address, and each publisher's message rate
is judged like a device's (against its own usual rate once learned, else against ``flood_factor`` x
``flood_min_rate``): a **flood** from one host spread over made-up devices or topics stands out too. Each
other kind of anomaly alerts at most once per ``alert_cooldown`` seconds per device. When the
device table is full, devices that have sent a single message are forgotten first (least recently seen
first), so such a flood cannot push out the baselines of the real devices. Nothing that was judged
anomalous is learned, so an attack does not become the new normal.
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from iotguard.core.config import DeviceConfig, TelemetryConfig
from iotguard.core.records import Alert
from iotguard.telemetry.baseline import RangeBaseline, RateBaseline, TopicSet, Welford

log = logging.getLogger(__name__)

MODEL_NAME = "telemetry-baseline"
MAX_DEVICES = 10_000
MAX_TOPICS = 50_000
MAX_FIELDS = 64
MAX_JSON_BYTES = 65_536

# kind -> (signature id, family, base severity, signature text)
KINDS: dict[str, tuple[int, str, int, str]] = {
    "flood": (9_100_001, "MQTTAbuse", 2, "message flood"),
    "payload_size": (9_100_002, "MQTTAbuse", 3, "unusual payload size"),
    "new_topic": (9_100_003, "MQTTAbuse", 3, "publishes on a new topic"),
    "foreign_topic": (9_100_004, "Spoofing", 2, "publishes where it never did"),
    "out_of_range": (9_100_005, "SensorAnomaly", 2, "reading out of range"),
    "frozen": (9_100_006, "SensorAnomaly", 3, "frozen reading"),
    "new_device": (9_100_007, "Spoofing", 3, "unknown device"),
}

_CRITICALITY_SHIFT = {"low": 1, "normal": 0, "high": -1}


def device_severity(base: int, criticality: str | None) -> int:
    """Suricata severity (1 most severe .. 4) shifted by the device's configured criticality."""
    return min(4, max(1, base + _CRITICALITY_SHIFT.get(criticality or "normal", 0)))


@dataclass(slots=True)
class TelemetryMessage:
    """One MQTT message as the sensor received it."""

    topic: str
    payload: bytes
    timestamp: float
    retained: bool = False
    client: str | None = None
    """The publisher's address, where known (telemetry read off the wire; a broker does not tell)."""
    broker: str | None = None


@dataclass
class _Device:
    name: str
    first_seen: float
    last_seen: float
    rate: RateBaseline = field(default_factory=RateBaseline)
    size: Welford = field(default_factory=Welford)
    topics: TopicSet = field(default_factory=TopicSet)
    fields: dict[str, RangeBaseline] = field(default_factory=dict)
    messages: int = 0
    flooding: bool = False
    frozen: set[str] = field(default_factory=set)
    last_alert: dict[str, float] = field(default_factory=dict)
    alerts: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "device": self.name,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "messages": self.messages,
            "usual_rate": self.rate.usual,
            "payload_mean": self.size.mean,
            "topics": sorted(self.topics.topics)[:50],
            "fields": {
                name: {"lo": rb.lo, "hi": rb.hi, "monotonic": rb.monotonic}
                for name, rb in list(self.fields.items())[:50]
                if rb.n
            },
            "alerts": self.alerts,
        }


def parse_json(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, or ``None`` (not JSON, not an object, or over 64 KiB)."""
    if len(payload) > MAX_JSON_BYTES or payload.lstrip()[:1] != b"{":
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def numeric_fields(doc: dict[str, Any] | None) -> dict[str, float]:
    """Numeric leaves of a JSON object, keyed by dotted path (at most 64; booleans excluded)."""
    if not doc:
        return {}
    out: dict[str, float] = {}

    def walk(node: Any, prefix: str, depth: int) -> None:
        if len(out) >= MAX_FIELDS or depth > 4:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            value = float(node)
            if math.isfinite(value):
                out[prefix] = value

    walk(doc, "", 0)
    return out


class TelemetryDetector:
    """Learns per-device baselines from MQTT messages and turns anomalies into alerts.

    ``process(message)`` returns the alerts that message raised (usually none). Not thread-safe: feed it from
    one thread.
    """

    def __init__(
        self,
        config: TelemetryConfig | None = None,
        devices: Iterable[DeviceConfig] = (),
        *,
        broker: tuple[str, int] | None = None,
    ) -> None:
        self.config = config or TelemetryConfig()
        self._known = {d.mqtt_id or d.name: d for d in devices if d.mqtt_id or d.name}
        self._broker = broker or (self.config.host, self.config.port)
        self._devices: OrderedDict[str, _Device] = OrderedDict()
        self._once: OrderedDict[str, None] = OrderedDict()  # devices seen in one message only, LRU first
        self._publishers: OrderedDict[str, RateBaseline] = OrderedDict()  # message rate per publisher address
        self._flooding: set[str] = set()  # publishers flooding now
        self._publisher_alerted: OrderedDict[tuple[str, str], float] = (
            OrderedDict()
        )  # (publisher, kind) -> time
        self._topic_owners: dict[str, set[str]] = {}
        self._started: float | None = None  # the first message's time
        # Seconds of global warm-up still to run, counted down by the message clock from the first message
        # since the detector started or was restored (a checkpoint or a site baseline carries it over).
        self._warmup_left = self.config.global_warmup
        self._warmup_clock: float | None = None
        self.messages = 0
        self.ignored = 0
        self.alert_counts: dict[str, int] = dict.fromkeys(KINDS, 0)

    # -- identity -------------------------------------------------------------------------------------------
    def device_of(self, topic: str, doc: dict[str, Any] | None) -> str:
        """The device a message speaks for: the payload's ``device_field``, else the ``device_level`` topic level."""
        name_field = self.config.device_field
        if name_field and doc:
            value = doc.get(name_field)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)[:128]
        levels = topic.split("/")
        level = self.config.device_level
        return levels[level][:128] if level < len(levels) and levels[level] else topic[:128]

    def _ignored(self, topic: str) -> bool:
        return any(_topic_matches(f, topic) for f in self.config.ignore_topics)

    # -- the detector ---------------------------------------------------------------------------------------
    def process(self, message: TelemetryMessage) -> list[Alert]:
        if message.retained or self._ignored(message.topic):
            # Retained messages are replays of old publishes, not live behaviour.
            self.ignored += 1
            return []
        cfg = self.config
        now = message.timestamp
        self.messages += 1
        if self._started is None:
            self._started = now
        learning_globally = self._warming_up(now)
        doc = parse_json(message.payload)
        values = numeric_fields(doc)
        name = self.device_of(message.topic, doc)
        found: list[tuple[str, float, float, list[tuple[str, float]], str]] = []

        device = self._devices.get(name)
        if device is None:
            if len(self._devices) >= MAX_DEVICES:
                self._forget_one()
            device = _Device(name=name, first_seen=now, last_seen=now)
            device.rate = RateBaseline()
            self._devices[name] = device
            if not learning_globally and self._publisher_due(message.client or "", "new_device", now):
                found.append(
                    ("new_device", 1.0, 0.9, [("messages", 0.0)], f"first message on {message.topic}")
                )
        else:
            self._devices.move_to_end(name)
        device.last_seen = now
        device.messages += 1
        warm = device.messages > cfg.warmup_messages
        if device.messages == 1:
            self._once[name] = None
        elif device.messages == 2:
            self._once.pop(name, None)

        # rate
        rate = device.rate.observe(now, learn=not device.flooding)
        usual = device.rate.usual
        limit = _flood_limit(cfg, usual, learned=warm)
        device.flooding = rate > limit
        if device.flooding:
            found.append(_flood(rate, limit, usual, "rate_per_s", f"{rate:.0f} msg/s, usually {usual:.2f}"))

        if message.client is not None:
            self._publisher_flood(message.client, now, device.flooding, found)

        # payload size
        size = float(len(message.payload))
        z = device.size.score_one(size, floor=max(8.0, 0.1 * device.size.mean))
        if warm and z > cfg.size_sigma:
            score = z / cfg.size_sigma
            found.append(
                (
                    "payload_size",
                    score,
                    score / (score + 1),
                    [("payload_bytes", size), ("usual_payload_bytes", device.size.mean)],
                    f"{size:.0f} bytes, usually {device.size.mean:.0f}",
                )
            )
        elif not device.flooding:
            device.size.learn_one(size)

        # topics
        topic = message.topic
        owners = self._topic_owners.get(topic)
        if warm and device.topics.score_one(topic) > 0:
            others = sorted(owners - {name}) if owners else []
            if others:
                found.append(
                    (
                        "foreign_topic",
                        1.0,
                        0.9,
                        [("owners", float(len(others)))],
                        f"{topic} (used by {others[0]})",
                    )
                )
            elif not learning_globally:
                found.append(
                    ("new_topic", 1.0, 0.8, [("topics_known", float(len(device.topics.topics)))], topic)
                )
        device.topics.learn_one(topic)
        if owners is None:
            if len(self._topic_owners) < MAX_TOPICS:
                self._topic_owners[topic] = {name}
        elif len(owners) < 64:
            owners.add(name)

        # numeric readings
        for key, value in values.items():
            rb = device.fields.get(key)
            if rb is None:
                if len(device.fields) >= MAX_FIELDS:
                    continue
                rb = device.fields[key] = RangeBaseline(seed=cfg.seed + len(device.fields))
            trusted = rb.n >= cfg.warmup_messages
            out = rb.score_one(value, cfg.range_margin) if trusted and not rb.monotonic else 0.0
            if out > 0:
                rb.observe(value)
                found.append(
                    (
                        "out_of_range",
                        1.0 + out,
                        (1.0 + out) / (2.0 + out),
                        [(key, value), (f"{key}.lo", rb.lo), (f"{key}.hi", rb.hi)],
                        f"{key}={value:g}, learned {rb.lo:g}..{rb.hi:g}",
                    )
                )
            elif device.flooding or key in device.frozen:
                rb.observe(value)  # neither a flood nor a stuck value becomes the new normal
            else:
                rb.learn_one(value)
            if trusted and rb.varies and rb.repeats + 1 >= cfg.frozen_count:
                if key not in device.frozen:
                    device.frozen.add(key)
                    found.append(
                        (
                            "frozen",
                            (rb.repeats + 1) / cfg.frozen_count,
                            0.8,
                            [(key, value), ("repeats", float(rb.repeats + 1))],
                            f"{key} stuck at {value:g} for {rb.repeats + 1} messages",
                        )
                    )
            elif rb.repeats == 0:
                device.frozen.discard(key)

        return self._alerts(device, message, found)

    def _warming_up(self, now: float) -> bool:
        """Whether the global warm-up still runs at ``now``. Only time moving forward counts: a clock that
        steps back, or a capture older than the baseline it follows, neither ends nor restarts it."""
        if self._warmup_left > 0:
            clock = self._warmup_clock
            if clock is not None and now > clock:
                self._warmup_left -= now - clock
            if clock is None or now > clock:
                self._warmup_clock = now
        return self._warmup_left > 0

    def _forget_one(self) -> None:
        name = next(iter(self._once)) if self._once else next(iter(self._devices))
        self._once.pop(name, None)
        self._devices.pop(name, None)

    def _publisher_due(self, publisher: str, kind: str, now: float) -> bool:
        key = (publisher, kind)
        last = self._publisher_alerted.get(key)
        if last is not None and now - last < self.config.alert_cooldown:
            return False
        self._publisher_alerted[key] = now
        self._publisher_alerted.move_to_end(key)
        if len(self._publisher_alerted) > MAX_DEVICES:
            self._publisher_alerted.popitem(last=False)
        return True

    def _publisher_flood(self, publisher: str, now: float, device_flooding: bool, found: list[Any]) -> None:
        cfg = self.config
        baseline = self._publishers.get(publisher)
        if baseline is None:
            if len(self._publishers) >= MAX_DEVICES:
                gone, _ = self._publishers.popitem(last=False)
                self._flooding.discard(gone)
            baseline = self._publishers[publisher] = RateBaseline()
        else:
            self._publishers.move_to_end(publisher)
        rate = baseline.observe(now, learn=publisher not in self._flooding)  # a flood is not learned
        usual = baseline.usual
        limit = _flood_limit(cfg, usual, learned=baseline.seconds_learned >= cfg.global_warmup)
        if rate <= limit:
            self._flooding.discard(publisher)
            return
        self._flooding.add(publisher)
        # a device flooding on its own is already an alert of its own
        if not device_flooding and self._publisher_due(publisher, "flood", now):
            detail = f"{rate:.0f} msg/s from {publisher}, usually {usual:.2f}"
            found.append(_flood(rate, limit, usual, "publisher_rate_per_s", detail))

    def _alerts(
        self,
        device: _Device,
        message: TelemetryMessage,
        found: list[tuple[str, float, float, list[tuple[str, float]], str]],
    ) -> list[Alert]:
        alerts = []
        known = self._known.get(device.name)
        address = known.address if known and known.address and "/" not in known.address else None
        for kind, score, confidence, features, detail in found:
            last = device.last_alert.get(kind)
            if last is not None and message.timestamp - last < self.config.alert_cooldown:
                continue
            device.last_alert[kind] = message.timestamp
            sid, family, base, text = KINDS[kind]
            device.alerts += 1
            self.alert_counts[kind] += 1
            alerts.append(
                Alert(
                    timestamp=message.timestamp,
                    src_ip=address or message.client or device.name,
                    dest_ip=message.broker or self._broker[0],
                    dest_port=self._broker[1],
                    proto="TCP",
                    app_proto="mqtt",
                    family=family,
                    severity=device_severity(base, known.criticality if known else None),
                    score=float(score),
                    confidence=float(min(1.0, max(0.0, confidence))),
                    model=MODEL_NAME,
                    signature_id=sid,
                    signature=f"iotguard telemetry: {device.name} {text}: {detail}"[:300],
                    top_features=[(k, float(v)) for k, v in features],
                    source="telemetry",
                    device=device.name,
                )
            )
        return alerts

    # -- introspection and persistence ----------------------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        return [d.summary() for d in reversed(self._devices.values())]

    def state(self) -> dict[str, Any]:
        """Everything learned, as JSON-able data (for checkpoints)."""
        return {
            "version": 1,
            "started": self._started,
            "warmup_left": max(0.0, self._warmup_left),
            "topic_owners": {t: sorted(o) for t, o in self._topic_owners.items()},
            "publishers": {p: rate.state() for p, rate in self._publishers.items()},
            "devices": [
                {
                    "name": d.name,
                    "first_seen": d.first_seen,
                    "last_seen": d.last_seen,
                    "messages": d.messages,
                    "alerts": d.alerts,
                    "rate": d.rate.state(),
                    "size": d.size.state(),
                    "topics": d.topics.state(),
                    "fields": {k: rb.state() for k, rb in d.fields.items()},
                }
                for d in self._devices.values()
            ],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state`; a malformed one raises ``ValueError``/``KeyError``/``TypeError`` and leaves
        this detector as it was (everything is read before anything is replaced)."""
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError("unknown telemetry state version")
        for key in ("topic_owners", "publishers"):
            if not isinstance(state.get(key, {}), dict):
                raise ValueError(f"telemetry state: {key} is not a mapping")
        # A restart keeps the baselines, and the global warm-up goes on only for what was left of it (none
        # in checkpoints older than ``warmup_left``), counted from the first message after the restart; never
        # longer than the configured warm-up (it may have been shortened since).
        started = state.get("started")
        started = None if started is None else float(started)
        left = float(state.get("warmup_left", 0.0)) if started is not None else self.config.global_warmup
        if not math.isfinite(left):
            raise ValueError(f"telemetry state: warmup_left {left}")
        owners = {str(t): {str(o) for o in owned} for t, owned in state["topic_owners"].items()}
        # publishers' usual message rates (absent from older checkpoints); the most recent ones are kept
        publishers = OrderedDict(
            (str(p), RateBaseline.from_state(rate))
            for p, rate in list(state.get("publishers", {}).items())[-MAX_DEVICES:]
        )
        devices: dict[str, _Device] = {}
        for i, item in enumerate(list(state["devices"])[-MAX_DEVICES:]):
            d = _Device(name=str(item["name"]), first_seen=item["first_seen"], last_seen=item["last_seen"])
            d.messages, d.alerts = int(item["messages"]), int(item["alerts"])
            d.rate = RateBaseline.from_state(item["rate"])
            d.size = Welford.from_state(item["size"])
            d.topics = TopicSet.from_state(item["topics"])
            d.fields = {
                k: RangeBaseline.from_state(v, seed=self.config.seed + i) for k, v in item["fields"].items()
            }
            devices[d.name] = d
        self._started = started
        self._warmup_left = min(max(left, 0.0), self.config.global_warmup)
        self._warmup_clock = None
        self._topic_owners = owners
        self._publishers = publishers
        self._flooding.clear()
        self._devices.clear()
        self._once.clear()
        for name, d in devices.items():
            self._devices[name] = d
            if d.messages == 1:
                self._once[name] = None


def _flood_limit(cfg: TelemetryConfig, usual: float, *, learned: bool) -> float:
    """The message rate above which a device or a publisher floods."""
    if learned:
        return max(cfg.flood_min_rate, cfg.flood_factor * usual)
    # Still learning, there is no usual rate of its own to compare with: only a rate far above anything a
    # sensor sends (factor x the minimum flood rate) counts then.
    return cfg.flood_factor * cfg.flood_min_rate


def _flood(
    rate: float, limit: float, usual: float, rate_name: str, detail: str
) -> tuple[str, float, float, list[tuple[str, float]], str]:
    """A ``flood`` finding: score rate/limit, confidence rising towards 1 with it."""
    ratio = rate / limit
    return ("flood", ratio, ratio / (ratio + 1), [(rate_name, rate), ("usual_rate_per_s", usual)], detail)


def _topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    p_levels = pattern.split("/")
    t_levels = topic.split("/")
    for i, p in enumerate(p_levels):
        if p == "#":
            return True
        if i >= len(t_levels):
            return False
        if p != "+" and p != t_levels[i]:
            return False
    return len(p_levels) == len(t_levels)
