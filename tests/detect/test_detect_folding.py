"""Incident folding, suppression, k-of-n confirmation, severity and the EVE writer."""

from __future__ import annotations

import json
import os

import numpy as np

from iotguard.core.config import DeviceConfig
from iotguard.core.records import Alert
from iotguard.detect.assets import Assets
from iotguard.detect.eve import EveWriter
from iotguard.detect.filters import ConfirmConfig, Confirmer, Suppressor, SuppressRule
from iotguard.detect.incidents import FoldConfig, IncidentFolder
from iotguard.detect.severity import SeverityModel


def _alert(
    src: str, dst: str, ts: float, family: str = "DoS", severity: int = 2, score: float = 0.9
) -> Alert:
    return Alert(
        timestamp=ts, src_ip=src, dest_ip=dst, family=family, severity=severity, score=score, confidence=0.9,
        model="m", signature_id=1, signature="s", top_features=[("syn_flag_count", 0.5), ("dst_port", 0.1)],
    )  # fmt: skip


def test_same_attacker_family_folds_victims_accumulate():
    f = IncidentFolder(FoldConfig(window=60))
    incidents = {id(f.fold(_alert("10.0.0.9", f"10.0.1.{i % 7}", 100 + i * 0.01))[0]) for i in range(1000)}
    assert len(incidents) == 1
    [inc] = f.open_incidents()
    assert inc.alert_count == 1000 and len(inc.dest_ips) == 7 and inc.src_ips == ["10.0.0.9"]
    assert "DoS from 10.0.0.9 against 7 host(s)" in inc.summary and "syn_flag_count" in inc.summary


def test_window_closes_incident_and_family_separates():
    f = IncidentFolder(FoldConfig(window=60))
    a, opened_a = f.fold(_alert("10.0.0.9", "10.0.1.1", 0))
    b, opened_b = f.fold(_alert("10.0.0.9", "10.0.1.1", 30, family="PortScan"))
    c, opened_c = f.fold(_alert("10.0.0.9", "10.0.1.1", 59))
    d, opened_d = f.fold(_alert("10.0.0.9", "10.0.1.1", 200))
    assert (opened_a, opened_b, opened_c, opened_d) == (True, True, False, True)
    assert a is c and a is not b and d is not a
    assert a.status == "closed" and a.alert_count == 2
    assert f.incidents_opened == 3


def test_distributed_flood_folds_per_victim_and_names_every_attacker():
    f = IncidentFolder(FoldConfig(window=60, fanin=10))
    rng = np.random.default_rng(0)
    sources = [f"198.51.{i // 256}.{i % 256}" for i in range(2000)]
    for i, src in enumerate(sources):
        for k in range(5):
            f.fold(_alert(src, "10.0.1.1", 100 + i * 0.001 + k * 1e-5, score=float(rng.random())))
    incidents = f.open_incidents()
    assert f.alerts_in == 10_000
    assert len(incidents) <= 11  # fanin per-source incidents + one distributed one
    named = {s for inc in incidents for s in inc.src_ips}
    assert named == set(sources)
    big = max(incidents, key=lambda i: i.alert_count)
    assert len(big.src_ips) == 1990 and "1990 sources" in big.summary


def test_suppression_rules():
    s = Suppressor(
        [
            SuppressRule(src="10.0.0.0/24", family="PortScan", reason="our own scanner"),
            SuppressRule(dst="10.9.9.9", until=50),
        ]
    )
    assert s("10.0.0.5", "1.2.3.4", "PortScan", 0)
    assert not s("10.0.0.5", "1.2.3.4", "DoS", 0)
    assert s("8.8.8.8", "10.9.9.9", "DoS", 10)
    assert not s("8.8.8.8", "10.9.9.9", "DoS", 60)
    assert s.suppressed == 2


def test_k_of_n_confirmation():
    c = Confirmer(ConfirmConfig(k=3, n=5))
    hosts = ["a"] * 8 + ["b"]
    flagged = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1], dtype=bool)
    out = c(hosts, flagged)
    # a: flags at 0, 2 held; third flag (index 4) within the last 5 -> confirmed; 5 too; b's single flag held
    assert out.tolist() == [False, False, False, False, True, True, False, False, False]
    assert c.held == 3
    off = Confirmer()
    assert not off.enabled and off(["x"], np.array([True])).tolist() == [True]


def test_severity_from_family_confidence_and_criticality():
    assets = Assets(
        [
            DeviceConfig(address="10.0.0.20", name="door-camera", criticality="high", tags=["camera"]),
            DeviceConfig(address="10.0.0.0/24", criticality="low"),
        ]
    )
    sev = SeverityModel(assets=assets)
    assert sev("DoS", 0.99, "10.0.5.5") == 2
    assert sev("DoS", 0.99, "10.0.0.20") == 1  # critical victim, most specific match
    assert sev("DoS", 0.99, "10.0.0.21") == 3  # low-criticality network
    assert sev("PortScan", 0.5, "10.0.5.5") == 4  # low confidence
    assert sev("Botnet", 0.99, "10.0.0.20") == 1  # clamped
    assert assets.name("10.0.0.20") == "door-camera" and assets.tags("10.0.0.20") == {"camera"}


def test_eve_writer_appends_whole_lines_and_survives_rotation(tmp_path):
    path = tmp_path / "eve.json"
    w = EveWriter(path)
    w.write([_alert("10.0.0.1", "10.0.0.2", 1.0)])
    os.rename(path, tmp_path / "eve.json.1")  # logrotate moves the file away
    w.write([_alert("10.0.0.1", "10.0.0.2", 2.0), _alert("10.0.0.1", "10.0.0.2", 3.0)])
    path.unlink()  # or deletes it
    w.write([_alert("10.0.0.1", "10.0.0.2", 4.0)])
    w.close()
    rotated = (tmp_path / "eve.json.1").read_text().splitlines()
    assert len(rotated) == 1
    now = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["timestamp"][:19] for e in now] == ["1970-01-01T00:00:04"]
    assert all(e["event_type"] == "alert" and e["alert"]["category"] == "DoS" for e in now)
    assert w.lines_written == 4


def test_scattered_spoofed_flood_folds_family_wide():
    f = IncidentFolder(FoldConfig(window=60, fanin=10, scatter=20))
    pairs = [(f"198.51.{i // 256}.{i % 256}", f"203.0.{i // 256}.{i % 256}") for i in range(3000)]
    for i, (src, dst) in enumerate(pairs):
        f.fold(_alert(src, dst, 100 + i * 0.001))
    incidents = f.open_incidents()
    assert len(incidents) == 21
    named = {s for inc in incidents for s in inc.src_ips}
    assert named == {s for s, _ in pairs}


def test_a_flood_past_max_sources_is_counted_as_more_and_memory_stays_bounded():
    f = IncidentFolder(FoldConfig(window=60, fanin=10, scatter=20, max_sources=500))
    for i in range(3000):  # one victim, then a sprayed flood: both fold, both stay bounded
        f.fold(_alert(f"198.51.{i // 256}.{i % 256}", "10.0.1.1", 100 + i * 0.001))
        f.fold(_alert(f"198.52.{i // 256}.{i % 256}", f"203.0.{i // 256}.{i % 256}", 100 + i * 0.001))
    big = max(f.open_incidents(), key=lambda i: i.alert_count)
    assert big.alert_count == 3000 - 10 and len(big.src_ips) == 500
    assert "more than 500 sources" in big.summary
    assert all(len(recent) <= 10 for recent in f._attackers.values())  # the fan-in rule needs only the newest
    f.expire(1000.0)  # everything idle past the window: the per-victim memory goes too
    assert not f._attackers and not f.open_incidents()
