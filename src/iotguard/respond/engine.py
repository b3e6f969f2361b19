"""The response engine: policy rules in, audited actions out, safely.

For every alert (with the incident it folded into) the engine finds the matching rules and runs each rule's
actions at most once per incident. Safety, in the order it is checked:

1. **allowlist**: an allowlisted address is never blocked, quarantined or rate limited (recorded as skipped),
   nor is an address that names no single host (unspecified, multicast, broadcast: containing ``0.0.0.0`` or
   ``ff02::1`` would cut off every host that uses it);
2. **cap**: at most ``limits.max_blocks_per_minute`` new containments in any 60 s (more are skipped), in dry
   run too, so a dry run records what going live would do;
3. **dry run** (the default): every action is recorded with result ``dry-run`` and nothing is touched;
4. **TTL**: every containment expires (``limits.default_ttl``, never more than ``limits.max_ttl``), in the
   kernel too, so a block lifts itself even if iotguard is gone;
5. **idempotent**: containing an address again refreshes its timeout instead of adding a rule.

Every action is written to the store as ``pending`` *before* it runs and updated with its result after.
Containment runs inline (it is fast and latency matters); notifications (webhook, syslog, MQTT) run on a
small thread pool so a slow receiver never holds detection up.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from iotguard.core.errors import IotguardError, ResponseError
from iotguard.core.networks import NetworkSet
from iotguard.core.records import ActionRecord, Alert, Incident
from iotguard.core.store import Store, redact
from iotguard.detect.assets import Assets
from iotguard.detect.attribution import is_host_address
from iotguard.respond.nft import Nftables
from iotguard.respond.notify import MqttPublisher, format_rfc5424, post_webhook, send_syslog, to_json
from iotguard.respond.policy import CONTAINMENT, ActionItem, Match, Policy

log = logging.getLogger(__name__)


class _Template(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class ResponseEngine:
    """Runs a :class:`Policy`. Call :meth:`handle` per alert, :meth:`close` at the end (waits for
    notifications in flight)."""

    def __init__(
        self,
        policy: Policy,
        store: Store | None = None,
        *,
        dry_run: bool | None = None,
        firewall: Nftables | None = None,
        assets: Assets | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        workers: int = 4,
    ) -> None:
        self.policy = policy
        self.store = store
        self.dry_run = policy.dry_run if dry_run is None else dry_run
        cfg = policy.nftables
        self.firewall = firewall or Nftables(
            cfg.table, family=cfg.family, hooks=cfg.hooks, netns=cfg.netns, management=cfg.management
        )
        self.assets = assets or Assets(policy.devices)
        self.clock = clock
        self._sleep = sleep
        self._allow = NetworkSet(policy.allowlist)
        self._rules = [(r, self._compile(r.match)) for r in policy.rules]
        self._lock = threading.RLock()
        self._recent: deque[float] = deque()
        self._active: dict[tuple[str, str], float] = {}  # (kind, address) -> expires (wall clock)
        self._fired: OrderedDict[tuple[Any, int], None] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="iotguard-respond")
        self._futures: set[Future[None]] = set()
        self._mqtt = MqttPublisher()
        self.results: Counter[str] = Counter()
        self.by_action: Counter[str] = Counter()
        self.records: deque[ActionRecord] = deque(maxlen=10_000)
        """The most recent action records (also in the store when there is one)."""
        if store is not None:
            for rec in store.active_containment(self.clock()):
                if rec.dry_run == self.dry_run and rec.expires is not None:
                    self._active[(rec.action, rec.target)] = rec.expires

    # -- matching ---------------------------------------------------------------------------------------
    @staticmethod
    def _compile(m: Match) -> dict[str, Any]:
        return {
            "family": set(m.family) if m.family else None,
            # each rule its own set: an address matches a rule when it lies in one of that rule's networks
            "src": NetworkSet(m.src) if m.src else None,
            "dst": NetworkSet(m.dst) if m.dst else None,
            "src_tags": set(m.src_tags) if m.src_tags else None,
            "dst_tags": set(m.dst_tags) if m.dst_tags else None,
            "source": set(m.source) if m.source else None,
            "severity": m.severity,
            "min_confidence": m.min_confidence,
        }

    def matches(self, m: dict[str, Any], alert: Alert) -> bool:
        if m["family"] is not None and alert.family not in m["family"]:
            return False
        if m["severity"] is not None and alert.severity > m["severity"]:
            return False
        if m["min_confidence"] is not None and not alert.confidence >= m["min_confidence"]:
            return False
        if m["source"] is not None and alert.source not in m["source"]:
            return False
        if m["src"] is not None and alert.src_ip not in m["src"]:
            return False
        if m["dst"] is not None and alert.dest_ip not in m["dst"]:
            return False
        if m["src_tags"] is not None and not (self.assets.tags(alert.src_ip) & m["src_tags"]):
            return False
        return not (m["dst_tags"] is not None and not (self.assets.tags(alert.dest_ip) & m["dst_tags"]))

    def allowlisted(self, address: str) -> bool:
        return address in self._allow

    # -- entry points -----------------------------------------------------------------------------------
    def handle(self, alert: Alert, incident: Incident | None = None) -> list[ActionRecord]:
        """Run the actions of every rule ``alert`` matches (once per rule and incident)."""
        out: list[ActionRecord] = []
        key = (
            ("incident", incident.id)
            if incident is not None and incident.id is not None
            else ("alert", id(alert))
        )
        for index, (rule, compiled) in enumerate(self._rules):
            if not self.matches(compiled, alert):
                continue
            with self._lock:
                fired = (key, index) in self._fired
                if not fired:
                    self._fired[(key, index)] = None
                    while len(self._fired) > 100_000:
                        self._fired.popitem(last=False)
            if not fired:
                for item in rule.actions:
                    out.append(self._run(item, rule.name, alert, incident))
            if rule.stop:
                break
        return out

    def handle_many(self, pairs: Iterable[tuple[Alert, Incident | None]]) -> list[ActionRecord]:
        out: list[ActionRecord] = []
        for alert, incident in pairs:
            out.extend(self.handle(alert, incident))
        return out

    # -- one action -------------------------------------------------------------------------------------
    def _target(self, item_params: Any, alert: Alert) -> str | None:
        return alert.src_ip if getattr(item_params, "target", "src") == "src" else alert.dest_ip

    def _run(self, item: ActionItem, rule: str, alert: Alert, incident: Incident | None) -> ActionRecord:
        kind, params = item.kind, item.params
        now = self.clock()
        record = ActionRecord(
            time=now,
            action=kind,
            target="",
            params={"rule": rule, **params.model_dump(exclude_none=True)},
            dry_run=self.dry_run,
            alert_id=alert.id,
            incident_id=incident.id if incident is not None else alert.incident_id,
        )
        if kind in CONTAINMENT:
            return self._contain(record, params, alert, incident)
        if kind == "webhook":
            record.target = str(redact(params.url))
        elif kind == "syslog":
            record.target = f"{params.host}:{params.port}/{params.protocol}"
        elif kind == "mqtt":
            record.target = self._format(params.topic, alert, incident, self._target(params, alert) or "")
        else:
            record.target = "log"
        if kind == "log":
            self._begin(record)
            log.log(
                _LEVELS[params.level],
                "alert %s %s from %s to %s severity %s confidence %.3f (incident %s)",
                alert.id, alert.family, alert.src_ip, alert.dest_ip, alert.severity, alert.confidence, record.incident_id,
            )  # fmt: skip
            self._finish(record, "ok")
            return record
        if self.dry_run:
            return self._finish(self._begin(record), "dry-run")
        self._begin(record)
        future = self._pool.submit(self._notify, record, kind, params, alert, incident)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._futures_discard)
        return record

    def _futures_discard(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _notify(
        self, record: ActionRecord, kind: str, params: Any, alert: Alert, incident: Incident | None
    ) -> None:
        try:
            payload = {
                "alert": alert.to_eve(),
                "incident": incident.to_dict() if incident is not None else None,
                "action": {"id": record.id, "rule": record.params.get("rule"), "action": kind},
            }
            if kind == "webhook":
                status, attempts = post_webhook(
                    params.url,
                    payload,
                    token=params.token,
                    headers=params.headers,
                    timeout=params.timeout,
                    retries=params.retries,
                    backoff=params.backoff,
                    sleep=self._sleep,
                )
                log.info("webhook %s: HTTP %s after %d attempt(s)", record.target, status, attempts)
            elif kind == "syslog":
                message = format_rfc5424(
                    f"{alert.family} from {alert.src_ip} to {alert.dest_ip}: {alert.signature}",
                    severity=alert.severity,
                    facility=params.facility,
                    app_name=params.app_name,
                    timestamp=self.clock(),
                    data={
                        "alert_id": alert.id,
                        "incident_id": record.incident_id,
                        "family": alert.family,
                        "severity": alert.severity,
                        "confidence": f"{alert.confidence:.3f}",
                        "src": alert.src_ip,
                        "dst": alert.dest_ip,
                    },
                )
                send_syslog(message, host=params.host, port=params.port, protocol=params.protocol)
            elif kind == "mqtt":
                target = self._target(params, alert) or ""
                body = (
                    self._format(params.payload, alert, incident, target)
                    if params.payload is not None
                    else to_json(payload)
                )
                self._mqtt.publish(
                    record.target,
                    body,
                    host=params.host,
                    port=params.port,
                    qos=params.qos,
                    retain=params.retain,
                    username=params.username,
                    password=params.password,
                    tls=params.tls,
                )
            self._finish(record, "ok")
        except IotguardError as exc:
            log.warning("%s action %s failed: %s", kind, record.id, exc)
            self._finish(record, "failed", str(exc))
        except Exception as exc:  # a notification must never take the engine down
            log.exception("%s action %s failed", kind, record.id)
            self._finish(record, "failed", str(redact(f"{type(exc).__name__}: {exc}")))

    def _contain(
        self, record: ActionRecord, params: Any, alert: Alert, incident: Incident | None
    ) -> ActionRecord:
        limits = self.policy.limits
        target = self._target(params, alert)
        record.target = target or ""
        ttl = min(params.ttl or limits.default_ttl, limits.max_ttl)
        record.params["ttl"] = ttl
        kind = record.action
        if not target:
            return self._finish(self._begin(record), "skipped", "no address to act on")
        try:
            ipaddress.ip_address(target)
        except ValueError:
            return self._finish(self._begin(record), "skipped", f"{target!r} is not an IP address")
        if not is_host_address(target):
            log.warning("refusing to %s %s: not one host's address", kind, target)
            return self._finish(self._begin(record), "skipped", "not a host address")
        if self.allowlisted(target):
            log.warning("refusing to %s allowlisted %s", kind, target)
            return self._finish(self._begin(record), "skipped", "allowlisted")
        if incident is not None and len(incident.src_ips) > 1 and params.target == "src":
            return self._finish(self._begin(record), "skipped", "distributed incident: no single attacker")
        with self._lock:
            now = self.clock()
            while self._recent and now - self._recent[0] >= 60.0:
                self._recent.popleft()
            refresh = self._active.get((kind, target), 0.0) > now
            if not refresh and len(self._recent) >= limits.max_blocks_per_minute:
                return self._finish(
                    self._begin(record),
                    "skipped",
                    f"cap of {limits.max_blocks_per_minute} containments per minute",
                )
            record.params["refresh"] = refresh
            record.expires = now + ttl
            self._begin(record)  # pending, in the store, before anything is touched
            if self.dry_run:
                result, error = "dry-run", None
            else:
                try:
                    if kind == "block":
                        self.firewall.block(target, ttl)
                    elif kind == "quarantine":
                        self.firewall.quarantine(target, ttl, params.management)
                    else:
                        self.firewall.ratelimit(target, ttl, params.rate)
                    result, error = "ok", None
                except IotguardError as exc:
                    result, error = "failed", str(exc)
                    log.error("%s %s failed: %s", kind, target, exc)
            if result != "failed":
                if not refresh:
                    self._recent.append(now)
                self._active[(kind, target)] = record.expires
        return self._finish(record, result, error)

    # -- records ----------------------------------------------------------------------------------------
    def _begin(self, record: ActionRecord) -> ActionRecord:
        record.result = "pending"
        if self.store is not None:
            self.store.add_action(record)
        return record

    def _finish(self, record: ActionRecord, result: str, error: str | None = None) -> ActionRecord:
        record.result = result  # type: ignore[assignment]
        record.error = error
        if self.store is not None and record.id is not None:
            self.store.update_action(record.id, result, error=error)
        with self._lock:
            self.results[result] += 1
            self.by_action[record.action] += 1
            self.records.append(record)
        return record

    @staticmethod
    def _format(template: str, alert: Alert, incident: Incident | None, target: str) -> str:
        values = _Template(
            src_ip=alert.src_ip,
            dest_ip=alert.dest_ip or "",
            target=target,
            family=alert.family,
            severity=alert.severity,
            confidence=f"{alert.confidence:.3f}",
            alert_id=alert.id if alert.id is not None else "",
            incident_id=incident.id if incident is not None and incident.id is not None else "",
        )
        try:
            return template.format_map(values)
        except (ValueError, IndexError, AttributeError):
            return template

    # -- operator commands ------------------------------------------------------------------------------
    def release(self, address: str, *, apply: bool | None = None, reason: str = "operator") -> ActionRecord:
        """Lift every block, quarantine and rate limit on ``address``; recorded as a ``release`` action.
        ``apply`` (default: not dry-run) says whether nftables is changed."""
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ResponseError(
                f"{address!r} is not an IP address", expected="one IPv4 or IPv6 address"
            ) from None
        apply = (not self.dry_run) if apply is None else apply
        record = ActionRecord(
            time=self.clock(), action="release", target=address, params={"reason": reason}, dry_run=not apply
        )
        self._begin(record)
        try:
            if apply:
                self.firewall.release(address)
        except IotguardError as exc:
            return self._finish(record, "failed", str(exc))
        with self._lock:
            for key in [k for k in self._active if k[1] == address]:
                del self._active[key]
        if self.store is not None:
            for rec in self.store.active_containment(self.clock()):
                if rec.target == address and rec.id is not None:
                    self.store.update_action(rec.id, "released")
        return self._finish(record, "ok" if apply else "dry-run")

    def expire(self) -> int:
        """Mark containment records whose TTL has passed as ``expired``; returns how many."""
        now = self.clock()
        with self._lock:
            for key in [k for k, exp in self._active.items() if exp <= now]:
                del self._active[key]
        if self.store is None:
            return 0
        n = 0
        for rec in self.store.actions(
            limit=None, action=list(CONTAINMENT), result=["ok", "dry-run"], until=now + 1
        ):
            if rec.expires is not None and rec.expires <= now and rec.id is not None:
                self.store.update_action(rec.id, "expired")
                n += 1
        return n

    def restore(self) -> int:
        """After a restart: re-apply containment still in force (with its remaining TTL); returns how many."""
        if self.store is None or self.dry_run:
            return 0
        n = 0
        now = self.clock()
        for rec in self.store.active_containment(now):
            if rec.dry_run or rec.expires is None:
                continue
            remaining = rec.expires - now
            try:
                if rec.action == "block":
                    self.firewall.block(rec.target, remaining)
                elif rec.action == "quarantine":
                    self.firewall.quarantine(rec.target, remaining, rec.params.get("management", []))
                else:
                    self.firewall.ratelimit(rec.target, remaining, rec.params.get("rate", "100/second"))
            except IotguardError as exc:
                log.error("cannot restore %s on %s: %s", rec.action, rec.target, exc)
                continue
            self._active[(rec.action, rec.target)] = rec.expires
            n += 1
        return n

    def wait(self, timeout: float | None = None) -> None:
        """Wait for notifications in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._futures)
            if not pending:
                return
            for f in pending:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                with contextlib.suppress(Exception):  # the action records its own failure
                    f.result(timeout=remaining)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def close(self, wait: bool = True) -> None:
        if wait:
            self.wait()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._mqtt.close()


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
