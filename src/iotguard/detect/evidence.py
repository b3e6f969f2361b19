"""Plausible evidence before an incident: alerts are held until what they show together fits their family.

A model scores one flow at a time, and at any useful threshold some benign flow of a busy network will score
high. What separates an attack from such a one-off is usually the *pattern*: a port scan touches many ports
or hosts, a brute force makes many attempts, a flood is many flows or one flow at a high rate. A "scan" of
one port, "brute force" of one session or "flood" of one three-packet handshake is not plausible evidence,
however sure the model is about the flow.

So each family has an evidence rule over the alerts of one attacker within the fold window. Until the rule
holds, the attacker's alerts of that family are *held*: not stored, not written, no incident, no action. When
it holds, the held alerts are released in order (the incident then starts at the first of them) and every
further alert of that attacker and family passes at once while they keep coming within the window. Held
alerts that never gather enough evidence are dropped after the window and counted
(``insufficient_evidence`` in the detection statistics).

A rule lists criteria; the evidence is enough when **any** of them holds:

* ``flows``: distinct flows with an alert (a long conversation is a new flow every flow timeout, so a channel
  that persists counts; a flow's early and final records are one flow);
* ``conversations``: distinct conversations (5-tuples) with an alert: attempts, connections;
* ``targets``: distinct victim ports (address, protocol and port) with an alert: what a scan touches (for
  protocols without ports, such as an IP protocol scan, the protocol number is what varies);
* ``packets`` and ``rate``: one *one-sided* flow record of at least that many packets at at least that many
  packets per second (a single-connection flood, seen on its early record);
* ``bytes`` and ``byte_rate``: one one-sided flow record in which the attacker sent at least that many payload
  bytes at at least that many bytes per second (a flood of few, large messages, such as an MQTT publish flood
  of big payloads at a few packets per second);

A flood is one-sided: its sender pushes data and the victim has little to say. A rate alone is no evidence: the
10 packets of a connection's set-up (handshake, a request and its answer, a Modbus poll) take a few
milliseconds on a LAN, "thousands of packets per second" over ten packets, but both sides talk. So a record is
one-sided when the attacker sent at least :data:`FLOOD_MIN_BYTES` of payload (more than a login or a poll)
and at least twice as many payload bytes as it received (acknowledgements carry none: a flood over TCP
qualifies however often the victim acknowledges). A flood of empty packets on one connection (SYNs with a
fixed source port) is therefore no one-flow flood; such floods show as many conversations instead. A record that
alerts again after its flow's first alert (the flow's second early record, its final record) adds its evidence
without a second alert (:meth:`EvidenceGate.observe`), so a flood held on a slow first record is released by a
faster later one.

And a rule without criteria is met by the first alert: families whose attacks can be one flow (C&C channel,
exfiltration, an exploit request) are never held.

Attacks from many sources are evidence together: once ``fanin`` distinct attackers have alerts of one family
against one victim within the window (a distributed flood), or ``scatter`` distinct attackers have alerts of
one family anywhere (a spoofed flood sprayed across addresses), all of them are released, just as the incident
folder then folds them into one distributed incident. Only for the families whose attacks come from many
sources by nature (``distributed``: floods, scans, password guessing): many *clients* of one server is the
normal shape of a service (a broker's sensors, a web server's users), so a crowd alerting as MQTT abuse, a
botnet channel or an anomaly against one server is no evidence of anything but the model's view of that
service.

Evidence can also be pooled across families (``pooled``, off by default): the model's family is its best
guess among similar ones (the probes of an OS fingerprint look like a scan to it on one port and like a flood
on another), so pooled, the distinct conversations and targets of *all* an attacker's held alerts count
towards each of its families' rules. On the lab validation scenarios of the default detector's recipe 3 it
raised two false incidents more and caught no episode more, so it is off. Flows are never pooled: a botnet
channel must show itself. And evidence corroborates: once an attacker is named by
an incident of any family, its alerts of other families within the window are released too (a bot caught
scanning that also floods, or whose flood only the anomaly model sees).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from iotguard.core.records import Alert
from iotguard.detect.recent import RecentSet

FLOOD_MIN_BYTES = 256
"""Payload bytes the attacker must have sent in a record for it to be a one-sided flood. Chosen on the lab
validation scenarios: every flood record the volume criteria matched there sent more, and it cuts the benign
records that qualify from 1.2 % to 0.25 % (an MQTT or Modbus client's login or poll sends less)."""


class EvidenceRule(BaseModel):
    """What one attacker's alerts of a family must show (any criterion given is enough)."""

    model_config = ConfigDict(extra="forbid")
    flows: int | None = Field(None, ge=1)
    """Distinct flows (flow ids) with an alert."""
    conversations: int | None = Field(None, ge=1)
    """Distinct conversations (protocol, addresses, ports) with an alert."""
    targets: int | None = Field(None, ge=1)
    """Distinct victim (address, protocol, port) with an alert."""
    packets: int | None = Field(None, ge=1)
    """One one-sided flow record of at least this many packets ..."""
    rate: float | None = Field(None, ge=0)
    """... at at least this many packets per second (both are needed for this criterion)."""
    bytes: int | None = Field(None, ge=1)
    """One flow record in which the attacker sent at least this many payload bytes ..."""
    byte_rate: float | None = Field(None, ge=0)
    """... at at least this many bytes per second, one-sided (both are needed for this criterion)."""

    @model_validator(mode="after")
    def _volume_pair(self) -> EvidenceRule:
        if (self.packets is None) != (self.rate is None):
            raise ValueError("packets and rate go together (one flow record of N packets at R packets/s)")
        if (self.bytes is None) != (self.byte_rate is None):
            raise ValueError("bytes and byte_rate go together (one flow record of N bytes at R bytes/s)")
        return self

    @property
    def immediate(self) -> bool:
        return (
            self.flows is None
            and self.conversations is None
            and self.targets is None
            and self.packets is None
            and self.bytes is None
        )

    def flood(self, obs: Observation) -> bool:
        """Does this one flow record show a one-sided flood (the ``packets``/``rate`` or ``bytes``/
        ``byte_rate`` criterion)?"""
        if not (obs.bytes >= FLOOD_MIN_BYTES and obs.received_bytes * 2 <= obs.bytes):
            return False
        packets = (
            self.packets is not None
            and self.rate is not None
            and obs.packets >= self.packets
            and obs.rate >= self.rate
        )
        data = (
            self.bytes is not None
            and self.byte_rate is not None
            and obs.bytes >= self.bytes
            and obs.byte_rate >= self.byte_rate
        )
        return packets or data

    def met(self, flows: int, conversations: int, targets: int, volume: bool) -> bool:
        if self.immediate:
            return True
        return (
            (self.flows is not None and flows >= self.flows)
            or (self.conversations is not None and conversations >= self.conversations)
            or (self.targets is not None and targets >= self.targets)
            or volume
        )


DEFAULT_RULES: dict[str, EvidenceRule] = {
    # a scan touches many ports or hosts
    "PortScan": EvidenceRule(targets=5),
    # a brute force makes many attempts
    "BruteForce": EvidenceRule(conversations=3),
    # a flood is many flows, or one flow pushing packets or bytes one way at a high rate
    # (more conversations than the 6 parallel connections a browser opens to one server)
    "DDoS": EvidenceRule(conversations=10, packets=10, rate=100.0, bytes=4096, byte_rate=10_000.0),
    "DoS": EvidenceRule(conversations=10, packets=10, rate=100.0, bytes=4096, byte_rate=10_000.0),
    "MQTTAbuse": EvidenceRule(conversations=3, packets=10, rate=50.0, bytes=4096, byte_rate=10_000.0),
    # a few unusual conversations are a curiosity, and so are the 6 parallel connections a browser opens to
    # one server (as for floods); ten from one host are a pattern; and an unusual flow that pushes packets or
    # bytes one way at a flood's rate is a flood, whatever the model calls it
    "Anomaly": EvidenceRule(conversations=10, packets=10, rate=100.0, bytes=4096, byte_rate=10_000.0),
    # a bot resolves its C&C, reports, keeps its channel open: more than one flow
    "Botnet": EvidenceRule(flows=2),
}
"""Rules per family; families not listed (Exfiltration, WebAttack, Infiltration, ...) raise on the first
alert. Chosen on the lab validation scenarios (docs/detection.md), never on test captures."""


DISTRIBUTED_FAMILIES: tuple[str, ...] = ("DDoS", "DoS", "PortScan", "BruteForce")
"""Families whose attacks come from many sources at once (distributed or spoofed floods, distributed scans and
password guessing)."""


class EvidenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    """False: every alert raises (or joins) an incident at once."""
    rules: dict[str, EvidenceRule] = Field(default_factory=lambda: dict(DEFAULT_RULES))
    """Evidence rule per family; a family without a rule is never held."""
    max_held: int = Field(1000, ge=1)
    """Most alerts held per attacker and family (further ones still count as evidence)."""
    max_keys: int = Field(100_000, ge=1)
    """Most attacker/family pairs tracked at once, and most attackers remembered as named by an incident
    (the least recently active go first)."""
    distributed: list[str] = Field(default_factory=lambda: list(DISTRIBUTED_FAMILIES))
    """Families for which many attackers at once (fan-in on one victim, scatter anywhere) are evidence."""
    pooled: bool = False
    """Count the conversations and targets of all an attacker's held alerts towards each of its families."""


@dataclass(slots=True)
class Observation:
    """What one alert adds to the evidence: the flow record's packets (both directions) and packets per second,
    and the payload bytes the attacker sent (and per second) and received in it."""

    flow: Hashable
    conversation: Hashable
    target: Hashable
    packets: float = 0.0
    rate: float = 0.0
    bytes: float = 0.0
    byte_rate: float = 0.0
    received_bytes: float = 0.0


@dataclass(slots=True)
class _Key:
    """An attacker and family still gathering evidence."""

    rule: EvidenceRule
    last_seen: float
    flows: set[Hashable] = field(default_factory=set)
    conversations: set[Hashable] = field(default_factory=set)
    targets: set[Hashable] = field(default_factory=set)
    volume: bool = False
    held: list[Alert] = field(default_factory=list)


class EvidenceGate:
    """Streaming gate. :meth:`admit` takes alerts in evidence-time order and returns those to raise now."""

    def __init__(
        self,
        config: EvidenceConfig | None = None,
        *,
        window: float = 300.0,
        fanin: int = 10,
        scatter: int = 50,
    ) -> None:
        self.config = config or EvidenceConfig()
        self.window = window
        self.fanin = fanin
        self.scatter = scatter
        self._keys: OrderedDict[tuple[str, str], _Key] = OrderedDict()
        # Attackers recently alerting, per (victim, family) and per family: only as many as a group needs.
        self._by_victim: dict[tuple[str, str], RecentSet] = {}
        self._by_family: dict[str, RecentSet] = {}
        self._released_groups: set[tuple[str, ...]] = set()  # groups whose members were all released
        self._named: dict[str, float] = {}  # attacker -> last time one of its alerts raised an incident
        self._held_families: dict[str, set[str]] = {}  # attacker -> families it has held alerts of
        # attacker -> (last seen, conversations, targets) of its held alerts of every family (pooled evidence)
        self._pool: OrderedDict[str, tuple[float, set[Hashable], set[Hashable]]] = OrderedDict()
        self._pool_cap = max(
            (n for r in self.config.rules.values() for n in (r.conversations, r.targets) if n is not None),
            default=1,
        )
        self.held = 0
        """Alerts held right now."""
        self.dropped = 0
        """Alerts dropped because their evidence never became enough."""
        self.now = float("-inf")
        self._pruned = float("-inf")

    def holds(self, family: str) -> bool:
        rule = self.config.rules.get(family)
        return self.config.enabled and rule is not None and not rule.immediate

    def admit(self, alert: Alert, obs: Observation, *, proven: bool = False) -> list[Alert]:
        """Add one alert's evidence; returns the alerts to raise now (held ones first, oldest first).
        ``proven``: the alert is a fixed rule's match (a probe packet, an injection), its own evidence."""
        ts = alert.timestamp
        self.now = max(self.now, ts)
        family = alert.family
        attacker = alert.src_ip
        if proven or not self.holds(family):
            return self._raise([alert])
        named = self._named.get(attacker)
        if named is not None and ts - named <= self.window:
            # named by an incident (of this family or another): its alerts need no more evidence
            return self._raise([alert])
        rule = self.config.rules[family]
        key = (attacker, family)
        entry = self._keys.get(key)
        if entry is not None and ts - entry.last_seen > self.window:
            self._drop(key, entry)
            entry = None
        if entry is None:
            entry = _Key(rule, ts)
            self._keys[key] = entry
            while len(self._keys) > self.config.max_keys:
                old_key, old = next(iter(self._keys.items()))
                self._drop(old_key, old)
        else:
            self._keys.move_to_end(key)
        entry.last_seen = max(entry.last_seen, ts)
        if len(entry.held) < self.config.max_held:
            entry.held.append(alert)
            self.held += 1
        else:
            self.dropped += 1
        self._held_families.setdefault(attacker, set()).add(family)
        if self._enough(entry, attacker, obs):
            return self._raise(self._release(key, entry))
        if family not in self.config.distributed:
            return []
        # many attackers at once: a distributed attack on one victim, or one sprayed across the network
        released: list[Alert] = []
        if alert.dest_ip:
            group = ("victim", alert.dest_ip, family)
            seen = self._by_victim.get((alert.dest_ip, family))
            if seen is None:
                seen = self._by_victim[(alert.dest_ip, family)] = RecentSet(self.fanin, self.window)
            seen.touch(attacker, self.now)  # the evidence clock (not the alert's own time) keeps it in order
            released += self._release_group(group, seen, self.fanin, attacker, family)
        spread = self._by_family.get(family)
        if spread is None:
            spread = self._by_family[family] = RecentSet(self.scatter, self.window)
        spread.touch(attacker, self.now)
        released += self._release_group(("family", family), spread, self.scatter, attacker, family)
        return self._raise(released) if released else released

    def observe(self, attacker: str, family: str, ts: float, obs: Observation) -> list[Alert]:
        """Evidence without a new alert: a later record of a flow that already alerted (its second early
        record, its final one) for the alerts of ``attacker`` and ``family`` held now. Returns the alerts to
        raise now (those held ones, once the evidence is enough)."""
        self.now = max(self.now, ts)
        key = (attacker, family)
        entry = self._keys.get(key)
        if not self.holds(family) or entry is None or ts - entry.last_seen > self.window:
            return []
        entry.last_seen = max(entry.last_seen, ts)
        self._keys.move_to_end(key)
        if self._enough(entry, attacker, obs):
            return self._raise(self._release(key, entry))
        return []

    def _enough(self, entry: _Key, attacker: str, obs: Observation) -> bool:
        """Add one observation to an entry (and its attacker's pool); is the entry's rule met now?"""
        rule = entry.rule
        # each set holds only what its criterion reads, and no more than it asks for: a long scan or brute force
        # from one attacker must not grow its key without end
        for seen, item, need in (
            (entry.flows, obs.flow, rule.flows),
            (entry.conversations, obs.conversation, rule.conversations),
            (entry.targets, obs.target, rule.targets),
        ):
            if need is not None and len(seen) < need:
                seen.add(item)
        entry.volume = entry.volume or rule.flood(obs)
        conversations, targets = len(entry.conversations), len(entry.targets)
        if self.config.pooled:
            conversations, targets = self._pooled(attacker, obs, conversations, targets)
        return rule.met(len(entry.flows), conversations, targets, entry.volume)

    def _pooled(self, attacker: str, obs: Observation, conversations: int, targets: int) -> tuple[int, int]:
        """Add one held alert to its attacker's pool; returns (conversations, targets) at least as the pool's."""
        pool = self._pool.get(attacker)
        if pool is None or self.now - pool[0] > self.window:
            pool = (self.now, set(), set())
        # bounded like the rules' own evidence: a pool never needs more than the largest rule asks for
        if len(pool[1]) < self._pool_cap:
            pool[1].add(obs.conversation)
        if len(pool[2]) < self._pool_cap:
            pool[2].add(obs.target)
        self._pool[attacker] = (self.now, pool[1], pool[2])
        self._pool.move_to_end(attacker)
        while len(self._pool) > self.config.max_keys:
            self._pool.popitem(last=False)
        return max(conversations, len(pool[1])), max(targets, len(pool[2]))

    def _release_group(
        self, group: tuple[str, ...], members: RecentSet, size: int, attacker: str, family: str
    ) -> list[Alert]:
        """Release every member once a group reaches ``size``; after that only newcomers need releasing."""
        if len(members) < size:
            self._released_groups.discard(group)
            return []
        if group in self._released_groups:
            return self._release_attacker(attacker, family)
        self._released_groups.add(group)
        out: list[Alert] = []
        for other in members:
            out += self._release_attacker(other, family)
        return out

    def _raise(self, alerts: list[Alert]) -> list[Alert]:
        """These alerts raise incidents: their attackers are now named, which corroborates whatever else they
        have held (of other families) within the window, so that is released too."""
        out = list(alerts)
        for alert in alerts:
            attacker = alert.src_ip
            self._named[attacker] = max(self._named.get(attacker, alert.timestamp), alert.timestamp)
            if len(self._named) > self.config.max_keys:
                self._forget_named()
            self._pool.pop(attacker, None)  # named: its alerts pass without evidence from now on
            for family in self._held_families.pop(attacker, ()):
                out += self._release_attacker(attacker, family)
        return out

    def _forget_named(self) -> None:
        # A flood from a million sources names a million attackers; keep the most recently named half of the
        # bound. A plain dict of strings and floats is not even tracked by the garbage collector, where an
        # object per attacker would be walked by every full collection and, churning, trigger them.
        # Sorting once per max_keys/2 new names keeps the amortised cost per alert small.
        keep = sorted(self._named.items(), key=lambda item: item[1])[-max(1, self.config.max_keys // 2) :]
        self._named = dict(keep)

    def _release_attacker(self, attacker: str, family: str) -> list[Alert]:
        key = (attacker, family)
        entry = self._keys.get(key)
        return [] if entry is None else self._release(key, entry)

    def _release(self, key: tuple[str, str], entry: _Key) -> list[Alert]:
        """Evidence is enough: hand back what was held. The attacker is named from now on (see ``_raise``),
        which is what lets its further alerts pass, so the key itself is no longer needed."""
        del self._keys[key]
        self.held -= len(entry.held)
        return entry.held

    def _drop(self, key: tuple[str, str], entry: _Key) -> None:
        self.dropped += len(entry.held)
        self.held -= len(entry.held)
        entry.held = []
        del self._keys[key]

    def expire(self, now: float | None = None) -> int:
        """Forget attackers idle for longer than the window (dropping what they still hold); returns how many
        held alerts were dropped."""
        now = self.now if now is None else now
        before = self.dropped
        # keys are in order of their last alert, so the stale ones are at the front
        while self._keys:
            key, entry = next(iter(self._keys.items()))
            if now - entry.last_seen <= self.window:
                break
            self._drop(key, entry)
        if now - self._pruned < self.window / 10:
            return self.dropped - before
        self._pruned = now
        for attacker, last in list(self._named.items()):
            if now - last > self.window:
                del self._named[attacker]
        while self._pool and now - next(iter(self._pool.values()))[0] > self.window:
            self._pool.popitem(last=False)
        for attacker in [
            a for a, fams in self._held_families.items() if not any((a, f) in self._keys for f in fams)
        ]:
            del self._held_families[attacker]
        for table in (self._by_victim, self._by_family):
            for k, seen in list(table.items()):
                seen.prune(now)
                if not seen:
                    del table[k]
        self._released_groups = {
            g
            for g in self._released_groups
            if (g[0] == "victim" and (g[1], g[2]) in self._by_victim)
            or (g[0] == "family" and g[1] in self._by_family)
        }
        return self.dropped - before

    def close(self) -> int:
        """End of input: drop everything still held; returns how many alerts that was."""
        before = self.dropped
        for key, entry in list(self._keys.items()):
            self._drop(key, entry)
        self._by_victim.clear()
        self._by_family.clear()
        self._released_groups.clear()
        self._named.clear()
        self._held_families.clear()
        self._pool.clear()
        return self.dropped - before
