"""Fold alerts into incidents, so an operator reads one line per attack instead of thousands.

An alert joins the open incident of its attacker and family when that incident's last alert is less than
``window`` seconds older (evidence time, so replayed captures fold like live traffic). The incident gathers
the victim set, the alert count, the highest score and severity, and the features that drove its alerts.

Floods from many sources (spoofed or a botnet) would still give one incident per source; so once a victim
has been hit by ``fanin`` distinct attackers of one family within the window, alerts from further sources
fold into one *distributed* incident for that victim, which lists every source in ``src_ips``. And when
sources *and* victims are random (a spoofed flood sprayed across addresses), once ``scatter`` incidents of one
family have opened within the window, further new sources fold into one family-wide distributed incident.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from iotguard.core.records import Alert, Incident, eve_timestamp
from iotguard.detect.recent import RecentSet


class FoldConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: float = Field(300.0, gt=0)
    """Seconds without an alert after which an incident closes and the next alert opens a new one."""
    fanin: int = Field(10, ge=2)
    """Distinct attackers of one family against one victim before further sources fold per victim."""
    scatter: int = Field(50, ge=2)
    """Incidents of one family opened within the window before new sources fold into one family-wide incident."""
    max_sources: int = Field(100_000, ge=1)
    """Most source addresses one distributed incident lists and counts exactly; past it the summary says
    "more than" that many (a flood of spoofed sources must not grow memory without end)."""


@dataclass
class _Open:
    incident: Incident
    features: Counter = field(default_factory=Counter)
    victims: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    distributed: bool = False
    more_sources: bool = False
    """Sources past ``max_sources`` were seen (and not kept)."""


class IncidentFolder:
    """Streaming folder. :meth:`fold` assigns each alert to an incident and returns that incident."""

    def __init__(self, config: FoldConfig | None = None) -> None:
        self.config = config or FoldConfig()
        self._by_src: dict[tuple[str, str], _Open] = {}
        self._by_victim: dict[tuple[str, str], _Open] = {}
        # victim, family -> who hit this victim recently (for the fan-in rule)
        self._attackers: dict[tuple[str, str], RecentSet] = {}
        self._by_family: dict[tuple[str, str], _Open] = {}
        self._opened: dict[str, deque[float]] = {}  # family -> when its recent incidents opened
        self._local_ids = itertools.count(1)
        self.alerts_in = 0
        self.incidents_opened = 0
        self.now = float("-inf")
        self._pruned = float("-inf")

    def _live(self, table: dict, key: tuple[str, str], ts: float) -> _Open | None:
        entry = table.get(key)
        if entry is None:
            return None
        if ts - entry.incident.last_seen > self.config.window:
            entry.incident.status = "closed"
            del table[key]
            return None
        return entry

    def fold(self, alert: Alert) -> tuple[Incident, bool]:
        """Assign ``alert`` to an incident; returns ``(incident, opened)``. Sets ``alert.incident_id`` when the
        incident already has an id (a new one gets its id when stored)."""
        self.alerts_in += 1
        ts = alert.timestamp
        self.now = max(self.now, ts)
        src, family, victim = alert.src_ip, alert.family, alert.dest_ip or "*"
        entry = self._live(self._by_src, (src, family), ts)
        opened = False
        if entry is None:
            entry = self._live(self._by_victim, (victim, family), ts) or self._live(
                self._by_family, ("*", family), ts
            )
            if entry is None:
                recent = self._recent(victim, family)
                recent.prune(self.now)
                if victim != "*" and len(recent) >= self.config.fanin and src not in recent:
                    entry = self._open(alert, distributed=True)
                    self._by_victim[(victim, family)] = entry
                else:
                    recent_opened = self._opened.setdefault(family, deque())
                    while recent_opened and ts - recent_opened[0] > self.config.window:
                        recent_opened.popleft()
                    if len(recent_opened) >= self.config.scatter:
                        entry = self._open(alert, distributed=True)
                        self._by_family[("*", family)] = entry
                    else:
                        recent_opened.append(ts)
                        entry = self._open(alert, distributed=False)
                        self._by_src[(src, family)] = entry
                opened = True
        if victim != "*":
            self._recent(victim, family).touch(src, self.now)
        self._add(entry, alert)
        if entry.incident.id is not None:
            alert.incident_id = entry.incident.id
        return entry.incident, opened

    def _recent(self, victim: str, family: str) -> RecentSet:
        recent = self._attackers.get((victim, family))
        if recent is None:
            recent = self._attackers[(victim, family)] = RecentSet(self.config.fanin, self.config.window)
        return recent

    def _open(self, alert: Alert, *, distributed: bool) -> _Open:
        self.incidents_opened += 1
        inc = Incident(
            src_ip=alert.src_ip,
            family=alert.family,
            severity=alert.severity,
            first_seen=alert.timestamp,
            last_seen=alert.timestamp,
            max_score=alert.score,
        )
        return _Open(inc, distributed=distributed)

    def _add(self, entry: _Open, alert: Alert) -> None:
        inc = entry.incident
        inc.alert_count += 1
        inc.first_seen = min(inc.first_seen, alert.timestamp)
        inc.last_seen = max(inc.last_seen, alert.timestamp)
        inc.severity = min(inc.severity, alert.severity)
        if alert.score == alert.score:
            inc.max_score = max(inc.max_score, alert.score)
        if alert.dest_ip and alert.dest_ip not in entry.victims:
            entry.victims.add(alert.dest_ip)
            inc.dest_ips.append(alert.dest_ip)
        if alert.src_ip not in entry.sources:
            if len(entry.sources) < self.config.max_sources:
                entry.sources.add(alert.src_ip)
                inc.src_ips.append(alert.src_ip)
            else:
                entry.more_sources = True
        for name, weight in alert.top_features[:3]:
            if weight > 0:
                entry.features[name] += 1
        inc.summary = _summary(entry)

    def expire(self, now: float | None = None) -> list[Incident]:
        """Close incidents idle for longer than the window at evidence time ``now``; returns them."""
        now = self.now if now is None else now
        closed = []
        for table in (self._by_src, self._by_victim, self._by_family):
            for key, entry in list(table.items()):
                if now - entry.incident.last_seen > self.config.window:
                    entry.incident.status = "closed"
                    closed.append(entry.incident)
                    del table[key]
        if now - self._pruned >= self.config.window / 10:  # one victim per address of a sprayed flood
            self._pruned = now
            for key, recent in list(self._attackers.items()):
                recent.prune(now)
                if not recent:
                    del self._attackers[key]
        return closed

    def open_incidents(self) -> list[Incident]:
        tables = (self._by_src, self._by_victim, self._by_family)
        return [e.incident for e in itertools.chain.from_iterable(t.values() for t in tables)]


def _names(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _summary(entry: _Open) -> str:
    inc = entry.incident
    duration = inc.last_seen - inc.first_seen
    count = f"more than {len(entry.sources)}" if entry.more_sources else str(len(entry.sources))
    who = f"{count} sources ({_names(inc.src_ips)})" if entry.distributed else inc.src_ip
    victims = f"{len(inc.dest_ips)} host(s) ({_names(inc.dest_ips)})" if inc.dest_ips else "unknown hosts"
    text = (
        f"{inc.family} from {who} against {victims}: {inc.alert_count} alert(s) over {duration:.1f} s"
        f" since {eve_timestamp(inc.first_seen)}, max score {inc.max_score:.3f}, severity {inc.severity}"
    )
    if entry.features:
        text += "; driven by " + ", ".join(name for name, _ in entry.features.most_common(3))
    return text
