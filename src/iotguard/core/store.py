"""SQLite persistence of alerts, incidents and response actions.

The store is the sensor's memory: detection writes alerts and incidents here *before* any response runs, and
the response engine records each action as ``pending`` before it runs and updates it after, so a crash
(``kill -9``, power loss) loses nothing that was decided.

* WAL journal, ``synchronous=FULL`` by default: a committed record survives a process crash and a power cut.
* One writer (the detection/response thread) and any number of readers (the REST API) at once: writes go
  through one connection behind a lock; every reading thread gets its own connection.
* An alert's EVE JSON line is stored verbatim (``eve`` column) and :meth:`Store.add_alerts` returns the
  same strings, so the EVE file and the database hold identical events.
* Schema versioned in ``meta``; a database written by a newer iotguard is refused rather than damaged.
* Action parameters are redacted (tokens, passwords, credentials in URLs) before they are written.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from iotguard.core.errors import DataError
from iotguard.core.paths import unwritable
from iotguard.core.records import ActionRecord, Alert, Incident

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    src_ip TEXT NOT NULL,
    family TEXT NOT NULL,
    severity INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    alert_count INTEGER NOT NULL,
    dest_ips TEXT NOT NULL,
    src_ips TEXT NOT NULL,
    max_score REAL NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_last_seen ON incidents (last_seen);
CREATE INDEX IF NOT EXISTS incidents_src ON incidents (src_ip);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    timestamp REAL NOT NULL,
    src_ip TEXT NOT NULL,
    dest_ip TEXT,
    src_port INTEGER,
    dest_port INTEGER,
    proto TEXT,
    app_proto TEXT,
    family TEXT NOT NULL,
    severity INTEGER NOT NULL,
    score REAL,
    confidence REAL,
    model TEXT NOT NULL,
    signature_id INTEGER NOT NULL,
    signature TEXT NOT NULL,
    flow_id INTEGER,
    action TEXT NOT NULL,
    partial INTEGER NOT NULL,
    top_features TEXT NOT NULL,
    source TEXT NOT NULL,
    device TEXT,
    incident_id INTEGER REFERENCES incidents (id),
    eve TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_timestamp ON alerts (timestamp);
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident_id);
CREATE INDEX IF NOT EXISTS alerts_src ON alerts (src_ip);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    result TEXT NOT NULL,
    error TEXT,
    alert_id INTEGER,
    incident_id INTEGER,
    expires REAL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_time ON actions (time);
CREATE INDEX IF NOT EXISTS actions_target ON actions (target);
"""

CONTAINMENT_ACTIONS = ("block", "quarantine", "ratelimit")
"""Actions that change the firewall and stay in force until released or expired."""

# -- secrets --------------------------------------------------------------------------------------------
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[-_]?key|authorization|credential|cookie)", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)
REDACTED = "***"


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets replaced by ``***``: values under secret-looking keys and URL userinfo."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)
    return value


# -- filters --------------------------------------------------------------------------------------------
def _in(column: str, values: Any, clauses: list[str], args: list[Any]) -> None:
    if values is None:
        return
    if isinstance(values, str | int | float):
        values = [values]
    values = list(values)
    clauses.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
    args.extend(values)


def _range(
    column: str, since: float | None, until: float | None, clauses: list[str], args: list[Any]
) -> None:
    if since is not None:
        clauses.append(f"{column} >= ?")
        args.append(float(since))
    if until is not None:
        clauses.append(f"{column} < ?")
        args.append(float(until))


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _page(limit: int | None, offset: int) -> str:
    if limit is None:
        return f" LIMIT -1 OFFSET {int(offset)}"
    if limit < 0 or offset < 0:
        raise DataError(f"bad page limit={limit} offset={offset}", expected="non-negative integers")
    return f" LIMIT {int(limit)} OFFSET {int(offset)}"


class Store:
    """Alerts, incidents and actions in one SQLite file. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._readonly = readonly
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        if readonly:
            if not self.path.exists():
                raise DataError("no such database", where=str(self.path))
            self._writer = None
            self._check_version(self._reader())
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unwritable(self.path, exc, "database") from None
        try:
            self._writer = self._connect()
            self._writer.execute(f"PRAGMA synchronous={synchronous}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"cannot open database: {exc}", where=str(self.path)) from exc

    # -- connections ------------------------------------------------------------------------------------
    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
        else:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise DataError("store is closed", where=str(self.path))
            conn = self._connect(readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _check_version(self, conn: sqlite3.Connection) -> int:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"not an iotguard database ({exc})", where=str(self.path), expected="an iotguard store"
            ) from exc
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise DataError(
                f"database schema version {version} is newer than this iotguard's ({SCHEMA_VERSION})",
                where=str(self.path),
                expected="a newer iotguard, or another --db",
            )
        return version

    def _migrate(self) -> None:
        assert self._writer is not None
        with self._tx() as db:
            has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            version = self._check_version(db) if has_meta else 0
            if version < 1:
                # executescript would commit the open transaction; run the statements one by one instead
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)", (repr(time.time()),)
                )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the writer lock (BEGIN IMMEDIATE: other processes wait, not fail)."""
        if self._writer is None:
            raise DataError("store is read-only", where=str(self.path))
        with self._lock:
            if self._closed:
                raise DataError("store is closed", where=str(self.path))
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.ProgrammingError):  # its thread may still be using it
                    conn.close()
            self._readers.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._check_version(self._reader())

    # -- writes -----------------------------------------------------------------------------------------
    def record(
        self,
        incidents: Iterable[Incident] = (),
        alerts: Iterable[Alert] = (),
        incident_of: Iterable[Incident | None] | None = None,
    ) -> list[str]:
        """Save incidents (insert or update) then alerts, in one transaction. Returns the alerts' EVE lines.

        New incidents and alerts get their ``id`` set. ``incident_of`` (one per alert) names the incident each
        alert folded into; its id, new or not, becomes the alert's ``incident_id`` before the alert is written.
        """
        alerts = list(alerts)
        links = list(incident_of) if incident_of is not None else None
        if links is not None and len(links) != len(alerts):
            raise ValueError("incident_of needs one entry per alert")
        with self._tx() as db:
            for incident in incidents:
                self._save_incident(db, incident)
            if links is not None:
                for alert, incident in zip(alerts, links, strict=True):
                    if incident is not None:
                        if incident.id is None:
                            self._save_incident(db, incident)
                        alert.incident_id = incident.id
            return [self._insert_alert(db, alert) for alert in alerts]

    def add_alerts(self, alerts: Iterable[Alert]) -> list[str]:
        """Insert alerts (ids assigned) and return their EVE JSON lines (no newline), as stored."""
        return self.record((), alerts)

    def save_incident(self, incident: Incident) -> int:
        with self._tx() as db:
            return self._save_incident(db, incident)

    def _save_incident(self, db: sqlite3.Connection, inc: Incident) -> int:
        values = (
            inc.src_ip,
            inc.family,
            int(inc.severity),
            float(inc.first_seen),
            float(inc.last_seen),
            int(inc.alert_count),
            json.dumps(list(inc.dest_ips)),
            json.dumps(list(inc.src_ips)),
            float(inc.max_score),
            inc.status,
            inc.summary,
        )
        if inc.id is None:
            cur = db.execute(
                "INSERT INTO incidents (src_ip, family, severity, first_seen, last_seen, alert_count, dest_ips,"
                " src_ips, max_score, status, summary) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            inc.id = int(cur.lastrowid)
        else:
            db.execute(
                "INSERT INTO incidents (src_ip, family, severity, first_seen, last_seen, alert_count, dest_ips,"
                " src_ips, max_score, status, summary, id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET src_ip=excluded.src_ip, family=excluded.family,"
                " severity=excluded.severity, first_seen=excluded.first_seen, last_seen=excluded.last_seen,"
                " alert_count=excluded.alert_count, dest_ips=excluded.dest_ips, src_ips=excluded.src_ips,"
                " max_score=excluded.max_score, status=excluded.status, summary=excluded.summary",
                (*values, int(inc.id)),
            )
        return inc.id

    def _insert_alert(self, db: sqlite3.Connection, a: Alert) -> str:
        if a.id is not None:
            raise ValueError(f"alert {a.id} is already stored")
        cur = db.execute(
            "INSERT INTO alerts (timestamp, src_ip, dest_ip, src_port, dest_port, proto, app_proto, family,"
            " severity, score, confidence, model, signature_id, signature, flow_id, action, partial,"
            " top_features, source, device, incident_id, eve) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'')",
            (
                float(a.timestamp),
                a.src_ip,
                a.dest_ip,
                None if a.src_port is None else int(a.src_port),
                None if a.dest_port is None else int(a.dest_port),
                a.proto,
                a.app_proto,
                a.family,
                int(a.severity),
                float(a.score),
                float(a.confidence),
                a.model,
                int(a.signature_id),
                a.signature,
                None if a.flow_id is None else int(a.flow_id),
                a.action,
                int(bool(a.partial)),
                json.dumps([[f, float(w)] for f, w in a.top_features]),
                a.source,
                a.device,
                a.incident_id,
            ),
        )
        a.id = int(cur.lastrowid)
        line = json.dumps(a.to_eve(), separators=(",", ":"))
        db.execute("UPDATE alerts SET eve=? WHERE id=?", (line, a.id))
        return line

    def add_action(self, action: ActionRecord) -> int:
        """Record an action (normally ``pending``) and set its id. Parameters are redacted first."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO actions (time, action, target, params, dry_run, result, error, alert_id,"
                " incident_id, expires, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    float(action.time),
                    action.action,
                    action.target,
                    json.dumps(redact(action.params), default=str),
                    int(bool(action.dry_run)),
                    action.result,
                    action.error,
                    action.alert_id,
                    action.incident_id,
                    action.expires,
                    time.time(),
                ),
            )
            action.id = int(cur.lastrowid)
            return action.id

    def update_action(
        self,
        action_id: int,
        result: str,
        *,
        error: str | None = None,
        expires: float | None = None,
        set_expires: bool = False,
    ) -> None:
        """Set an action's result (and error; and ``expires`` when ``set_expires``)."""
        with self._tx() as db:
            if set_expires:
                db.execute(
                    "UPDATE actions SET result=?, error=?, expires=?, updated=? WHERE id=?",
                    (result, error, expires, time.time(), int(action_id)),
                )
            else:
                db.execute(
                    "UPDATE actions SET result=?, error=?, updated=? WHERE id=?",
                    (result, error, time.time(), int(action_id)),
                )

    def close_incidents(self, before: float) -> int:
        """Mark open incidents whose last alert is older than ``before`` as closed; returns how many."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE incidents SET status='closed' WHERE status='open' AND last_seen < ?", (float(before),)
            )
            return cur.rowcount

    def purge(
        self, before: float, *, actions_before: float | None = None, now: float | None = None
    ) -> dict[str, int]:
        """Retention: delete alerts whose evidence is older than ``before`` (epoch s), closed incidents whose
        last alert is older and that no alert points at any more, and finished actions recorded before
        ``actions_before`` (default ``before``; containment still in force is kept, whatever its age).
        Returns how many of each went."""
        now = time.time() if now is None else now
        actions_before = before if actions_before is None else actions_before
        with self._tx() as db:
            alerts = db.execute("DELETE FROM alerts WHERE timestamp < ?", (float(before),)).rowcount
            incidents = db.execute(
                "DELETE FROM incidents WHERE status='closed' AND last_seen < ?"
                " AND NOT EXISTS (SELECT 1 FROM alerts WHERE alerts.incident_id = incidents.id)",
                (float(before),),
            ).rowcount
            actions = db.execute(
                "DELETE FROM actions WHERE time < ? AND result != 'pending' AND NOT (action IN"
                " ('block','quarantine','ratelimit') AND result IN ('ok','dry-run') AND expires > ?)",
                (float(actions_before), float(now)),
            ).rowcount
        return {"alerts": alerts, "incidents": incidents, "actions": actions}

    # -- reads ------------------------------------------------------------------------------------------
    def _alert_filter(
        self,
        since: float | None = None,
        until: float | None = None,
        severity: int | Sequence[int] | None = None,
        family: str | Sequence[str] | None = None,
        src: str | Sequence[str] | None = None,
        dest: str | Sequence[str] | None = None,
        incident: int | Sequence[int] | None = None,
    ) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        _range("timestamp", since, until, clauses, args)
        _in("severity", severity, clauses, args)
        _in("family", family, clauses, args)
        _in("src_ip", src, clauses, args)
        _in("dest_ip", dest, clauses, args)
        _in("incident_id", incident, clauses, args)
        return clauses, args

    def alerts(self, *, limit: int | None = 100, offset: int = 0, **filters: Any) -> list[Alert]:
        """Alerts, newest first. Filters: ``since``/``until`` (epoch s, on the alert's timestamp),
        ``severity``, ``family``, ``src``, ``dest``, ``incident`` (each one value or a list)."""
        clauses, args = self._alert_filter(**filters)
        rows = self._reader().execute(
            "SELECT * FROM alerts"
            + _where(clauses)
            + " ORDER BY timestamp DESC, id DESC"
            + _page(limit, offset),
            args,
        )
        return [_alert(r) for r in rows]

    def alert_eve(self, *, limit: int | None = 100, offset: int = 0, **filters: Any) -> list[str]:
        """The stored EVE lines of the alerts :meth:`alerts` would return, newest first."""
        clauses, args = self._alert_filter(**filters)
        rows = self._reader().execute(
            "SELECT eve FROM alerts"
            + _where(clauses)
            + " ORDER BY timestamp DESC, id DESC"
            + _page(limit, offset),
            args,
        )
        return [r[0] for r in rows]

    def count_alerts(self, **filters: Any) -> int:
        clauses, args = self._alert_filter(**filters)
        return int(
            self._reader().execute("SELECT count(*) FROM alerts" + _where(clauses), args).fetchone()[0]
        )

    def alert_counts(self, by: Literal["severity", "family"] = "severity", **filters: Any) -> dict[Any, int]:
        """Alert counts grouped by ``severity`` or ``family``, under the same filters as :meth:`alerts`."""
        if by not in ("severity", "family"):
            raise DataError(f"cannot group by {by!r}", expected="severity or family")
        clauses, args = self._alert_filter(**filters)
        rows = self._reader().execute(
            f"SELECT {by}, count(*) FROM alerts" + _where(clauses) + f" GROUP BY {by} ORDER BY {by}", args
        )
        return {r[0]: int(r[1]) for r in rows}

    def _incident_filter(
        self,
        since: float | None = None,
        until: float | None = None,
        severity: int | Sequence[int] | None = None,
        family: str | Sequence[str] | None = None,
        src: str | None = None,
        status: str | Sequence[str] | None = None,
    ) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        # An incident is in [since, until) when its activity overlaps the range.
        if since is not None:
            clauses.append("last_seen >= ?")
            args.append(float(since))
        if until is not None:
            clauses.append("first_seen < ?")
            args.append(float(until))
        _in("severity", severity, clauses, args)
        _in("family", family, clauses, args)
        _in("status", status, clauses, args)
        if src is not None:
            clauses.append(
                "(src_ip = ? OR EXISTS (SELECT 1 FROM json_each(incidents.src_ips) WHERE value = ?))"
            )
            args.extend([src, src])
        return clauses, args

    def incidents(
        self, *, limit: int | None = 100, offset: int = 0, sources: int | None = None, **filters: Any
    ) -> list[Incident]:
        """Incidents, most recently active first. Filters: ``since``/``until`` (overlap with the incident's
        activity), ``severity``, ``family``, ``src`` (the attacker, or one of several), ``status``.
        ``sources``: return at most this many of each incident's ``src_ips`` (cut in SQLite: a flood's
        incident lists up to 100,000 sources, and parsing them all in Python for a page of incidents is slow)."""
        clauses, args = self._incident_filter(**filters)
        rows = self._reader().execute(
            _incident_select(sources)
            + _where(clauses)
            + " ORDER BY last_seen DESC, id DESC"
            + _page(limit, offset),
            args,
        )
        return [_incident(r) for r in rows]

    def count_incidents(self, **filters: Any) -> int:
        clauses, args = self._incident_filter(**filters)
        return int(
            self._reader().execute("SELECT count(*) FROM incidents" + _where(clauses), args).fetchone()[0]
        )

    def incident_counts(
        self, by: Literal["severity", "family"] = "severity", **filters: Any
    ) -> dict[Any, int]:
        if by not in ("severity", "family"):
            raise DataError(f"cannot group by {by!r}", expected="severity or family")
        clauses, args = self._incident_filter(**filters)
        rows = self._reader().execute(
            f"SELECT {by}, count(*) FROM incidents" + _where(clauses) + f" GROUP BY {by} ORDER BY {by}", args
        )
        return {r[0]: int(r[1]) for r in rows}

    def get_incident(self, incident_id: int, *, sources: int | None = None) -> Incident | None:
        row = (
            self._reader().execute(_incident_select(sources) + " WHERE id=?", (int(incident_id),)).fetchone()
        )
        return _incident(row) if row else None

    def get_alert(self, alert_id: int) -> Alert | None:
        row = self._reader().execute("SELECT * FROM alerts WHERE id=?", (int(alert_id),)).fetchone()
        return _alert(row) if row else None

    def _action_filter(
        self,
        since: float | None = None,
        until: float | None = None,
        action: str | Sequence[str] | None = None,
        target: str | Sequence[str] | None = None,
        result: str | Sequence[str] | None = None,
        incident: int | Sequence[int] | None = None,
        alert: int | Sequence[int] | None = None,
    ) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        _range("time", since, until, clauses, args)
        _in("action", action, clauses, args)
        _in("target", target, clauses, args)
        _in("result", result, clauses, args)
        _in("incident_id", incident, clauses, args)
        _in("alert_id", alert, clauses, args)
        return clauses, args

    def actions(self, *, limit: int | None = 100, offset: int = 0, **filters: Any) -> list[ActionRecord]:
        """Actions, newest first. Filters: ``since``/``until``, ``action``, ``target``, ``result``,
        ``incident``, ``alert``."""
        clauses, args = self._action_filter(**filters)
        rows = self._reader().execute(
            "SELECT * FROM actions" + _where(clauses) + " ORDER BY time DESC, id DESC" + _page(limit, offset),
            args,
        )
        return [_action(r) for r in rows]

    def count_actions(self, **filters: Any) -> int:
        clauses, args = self._action_filter(**filters)
        return int(
            self._reader().execute("SELECT count(*) FROM actions" + _where(clauses), args).fetchone()[0]
        )

    def get_action(self, action_id: int) -> ActionRecord | None:
        row = self._reader().execute("SELECT * FROM actions WHERE id=?", (int(action_id),)).fetchone()
        return _action(row) if row else None

    def active_containment(self, now: float | None = None) -> list[ActionRecord]:
        """Blocks, quarantines and rate limits in force at ``now`` (applied or dry-run, not released or
        expired), newest first."""
        now = time.time() if now is None else now
        rows = self._reader().execute(
            "SELECT * FROM actions WHERE action IN ('block','quarantine','ratelimit')"
            " AND result IN ('ok','dry-run') AND (expires IS NULL OR expires > ?) ORDER BY time DESC, id DESC",
            (float(now),),
        )
        return [_action(r) for r in rows]


def _incident_select(sources: int | None) -> str:
    if sources is None:
        return "SELECT * FROM incidents"
    cols = "id, src_ip, family, severity, first_seen, last_seen, alert_count, dest_ips, max_score, status, summary"
    return (
        f"SELECT {cols}, (SELECT json_group_array(value) FROM (SELECT value FROM json_each(incidents.src_ips)"
        f" LIMIT {max(0, int(sources))})) AS src_ips FROM incidents"
    )


# -- row -> record --------------------------------------------------------------------------------------
def _alert(r: sqlite3.Row) -> Alert:
    return Alert(
        timestamp=r["timestamp"],
        src_ip=r["src_ip"],
        dest_ip=r["dest_ip"],
        family=r["family"],
        severity=r["severity"],
        score=r["score"] if r["score"] is not None else float("nan"),
        confidence=r["confidence"] if r["confidence"] is not None else float("nan"),
        model=r["model"],
        signature_id=r["signature_id"],
        signature=r["signature"],
        flow_id=r["flow_id"],
        src_port=r["src_port"],
        dest_port=r["dest_port"],
        proto=r["proto"],
        app_proto=r["app_proto"],
        action=r["action"],
        partial=bool(r["partial"]),
        top_features=[(f, w) for f, w in json.loads(r["top_features"])],
        source=r["source"],
        device=r["device"],
        incident_id=r["incident_id"],
        id=r["id"],
    )


def _incident(r: sqlite3.Row) -> Incident:
    return Incident(
        src_ip=r["src_ip"],
        family=r["family"],
        severity=r["severity"],
        first_seen=r["first_seen"],
        last_seen=r["last_seen"],
        alert_count=r["alert_count"],
        dest_ips=json.loads(r["dest_ips"]),
        src_ips=json.loads(r["src_ips"]),
        max_score=r["max_score"],
        status=r["status"],
        summary=r["summary"],
        id=r["id"],
    )


def _action(r: sqlite3.Row) -> ActionRecord:
    return ActionRecord(
        time=r["time"],
        action=r["action"],
        target=r["target"],
        params=json.loads(r["params"]),
        dry_run=bool(r["dry_run"]),
        result=r["result"],
        error=r["error"],
        alert_id=r["alert_id"],
        incident_id=r["incident_id"],
        expires=r["expires"],
        id=r["id"],
    )
