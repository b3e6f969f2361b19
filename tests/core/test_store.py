"""The SQLite store: records round-trip, EVE form identical to the EVE file, filters, safety."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from iotguard.core.errors import DataError
from iotguard.core.records import ActionRecord, Alert, Incident
from iotguard.core.store import SCHEMA_VERSION, Store, redact
from iotguard.detect.eve import EveWriter


def _alert(i: int, **kw) -> Alert:
    base = dict(
        timestamp=1000.0 + i,
        src_ip=f"10.0.0.{i % 5 + 1}",
        dest_ip="10.0.1.1",
        family=["DoS", "PortScan"][i % 2],
        severity=1 + i % 4,
        score=0.5 + i / 1000,
        confidence=0.9,
        model="rf",
        signature_id=9000001,
        signature="iotguard DoS",
        src_port=1000 + i,
        dest_port=80,
        proto="TCP",
        top_features=[("syn_flag_count", 0.4), ("dst_port", 0.1)],
    )
    base.update(kw)
    return Alert(**base)


def test_alerts_round_trip_and_eve_identical(tmp_path):
    with Store(tmp_path / "s.db") as store:
        inc = Incident(src_ip="10.0.0.1", family="DoS", severity=1, first_seen=1000, last_seen=1001)
        inc.src_ips = ["10.0.0.1"]
        alerts = [_alert(i) for i in range(3)]
        lines = store.record([inc], alerts)
        assert inc.id == 1 and [a.id for a in alerts] == [1, 2, 3]
        eve = tmp_path / "eve.json"
        with EveWriter(eve) as w:
            w.write_lines(lines)
        # the EVE file and the database hold the same bytes, and they equal Alert.to_eve
        assert eve.read_text().splitlines() == list(reversed(store.alert_eve()))
        for a, line in zip(alerts, lines, strict=True):
            assert json.loads(line) == a.to_eve()
            assert json.loads(line)["iotguard"]["alert_id"] == a.id
        back = store.get_alert(2)
        assert back is not None and back.to_eve() == alerts[1].to_eve()
        assert store.get_incident(1).src_ips == ["10.0.0.1"]


def test_filters_pagination_counts(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.add_alerts([_alert(i) for i in range(40)])
        newest = store.alerts(limit=5)
        assert [a.timestamp for a in newest] == [1039.0, 1038.0, 1037.0, 1036.0, 1035.0]
        page2 = store.alerts(limit=5, offset=5)
        assert page2[0].timestamp == 1034.0
        assert store.count_alerts(family="DoS") == 20
        assert store.count_alerts(severity=[1, 2]) == 20
        assert store.count_alerts(src="10.0.0.1") == 8
        assert store.count_alerts(since=1010, until=1020) == 10
        assert all(1010 <= a.timestamp < 1020 for a in store.alerts(since=1010, until=1020, limit=None))
        assert store.alert_counts("severity") == {1: 10, 2: 10, 3: 10, 4: 10}
        assert store.alert_counts("family", src="10.0.0.1") == {"DoS": 4, "PortScan": 4}
        with pytest.raises(DataError):
            store.alert_counts("src_ip")  # type: ignore[arg-type]


def test_incident_filters_and_update(tmp_path):
    with Store(tmp_path / "s.db") as store:
        a = Incident(
            src_ip="10.0.0.1", family="DoS", severity=1, first_seen=0, last_seen=10, src_ips=["10.0.0.1"]
        )
        b = Incident(
            src_ip="10.0.0.7",
            family="DDoS",
            severity=2,
            first_seen=5,
            last_seen=50,
            src_ips=["10.0.0.7", "10.0.0.9"],
        )
        store.record([a, b])
        a.alert_count, a.last_seen, a.status = 99, 60, "closed"
        store.save_incident(a)
        assert store.get_incident(a.id).alert_count == 99
        assert [i.id for i in store.incidents()] == [a.id, b.id]  # most recently active first
        assert [i.id for i in store.incidents(src="10.0.0.9")] == [b.id]
        assert [i.id for i in store.incidents(status="open")] == [b.id]
        assert store.count_incidents(since=55) == 1
        assert store.incident_counts("family") == {"DDoS": 1, "DoS": 1}
        assert store.close_incidents(before=100) == 1


def test_actions_pending_then_result_and_secrets_redacted(tmp_path):
    with Store(tmp_path / "s.db") as store:
        rec = ActionRecord(
            time=1.0,
            action="webhook",
            target="https://user:pw@hooks.example/x",
            params={
                "url": "https://user:pw@hooks.example/x",
                "token": "s3cret",
                "headers": {"X-Api-Key": "k"},
            },
            dry_run=False,
        )
        store.add_action(rec)
        assert store.get_action(rec.id).result == "pending"
        store.update_action(rec.id, "failed", error="HTTP 500")
        got = store.get_action(rec.id)
        assert got.result == "failed" and got.error == "HTTP 500"
        raw = sqlite3.connect(tmp_path / "s.db").execute("SELECT params FROM actions").fetchone()[0]
        assert "s3cret" not in raw and ":pw@" not in raw and '"k"' not in raw
        assert got.params["token"] == "***"


def test_redact():
    assert redact({"password": "x", "nested": [{"api_key": "y"}], "ok": 1}) == {
        "password": "***",
        "nested": [{"api_key": "***"}],
        "ok": 1,
    }
    assert redact("mqtt://u:p@host:1883") == "mqtt://***@host:1883"


def test_active_containment_and_expiry(tmp_path):
    with Store(tmp_path / "s.db") as store:
        for i, (result, expires) in enumerate(
            [("ok", 200.0), ("ok", 50.0), ("failed", 200.0), ("dry-run", 300.0)]
        ):
            store.add_action(
                ActionRecord(
                    time=float(i), action="block", target=f"10.0.0.{i}", result=result, expires=expires
                )
            )
        active = store.active_containment(now=100.0)
        assert sorted(a.target for a in active) == ["10.0.0.0", "10.0.0.3"]


def test_schema_versioned_and_newer_refused(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(DataError, match="newer"):
        Store(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_text("this is not sqlite" * 100)
    with pytest.raises(DataError, match=str(path)):
        Store(path)


def test_one_writer_many_readers(tmp_path):
    path = tmp_path / "s.db"
    errors: list[BaseException] = []
    with Store(path) as store:
        stop = threading.Event()

        def reader() -> None:
            try:
                while not stop.is_set():
                    n = store.count_alerts()
                    got = store.alerts(limit=10)
                    assert len(got) == min(10, max(n, len(got)))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(50):
            store.add_alerts([_alert(i * 10 + j) for j in range(10)])
        stop.set()
        for t in threads:
            t.join()
        assert not errors
        assert store.count_alerts() == 500
    # readers in another process (the API) see committed data
    ro = Store(path, readonly=True)
    assert ro.count_alerts() == 500
    ro.close()
