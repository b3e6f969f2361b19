"""`iotguard demo` end to end, small: the README's main command must keep working on a fresh machine."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iotguard",
            "demo",
            "-o",
            str(out),
            "--scale",
            "0.15",
            "--models",
            "lr,rf,kmeans,cnn,autoencoder",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())

    # 1. the lab wrote two different captures with ground truth; the test one has families training lacks
    assert summary["lab"]["train"]["packets"] > 1000 and summary["lab"]["test"]["packets"] > 1000
    assert summary["lab"]["train"]["capture"] != summary["lab"]["test"]["capture"]
    assert summary["unseen_families"]
    for role in ("train", "test"):
        assert (out / "lab" / role / "capture.pcap").stat().st_size > 0
        assert (out / "lab" / role / "episodes.csv").read_text().count("\n") > 1

    # 2. every requested model was trained and scored; the forest beats always-"attack" and always-"benign"
    models = {m["model"]: m for m in summary["models"]}
    assert set(models) == {"lr", "rf", "kmeans", "cnn", "autoencoder"}
    for m in models.values():
        assert 0.0 <= m["accuracy"] <= 1.0 and m["latency_p99_us"] > 0
    episodes = summary["episodes"]
    assert models["rf"]["f1"] > 0.8 and models["rf"]["fpr"] < 0.1
    assert (out / "models" / "results.json").is_file() and (out / "models" / "report.md").is_file()

    # 3. detection raised alerts and incidents that name real attackers; every action was a dry run
    det = summary["detection"]
    assert det["alerts"] > 0 and 0 < summary["incidents"] < det["alerts"]
    assert any(e["detected"] for e in episodes)
    assert set(summary["actions"]) <= {"dry-run", "ok", "skipped"}
    eve_lines = (out / "eve.json").read_text().splitlines()
    with sqlite3.connect(out / "iotguard.db") as db:
        stored = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        results = {r[0] for r in db.execute("SELECT result FROM actions WHERE action = 'block'")}
    assert len(eve_lines) == stored == det["alerts"]
    assert results <= {"dry-run", "skipped"}
    assert all(json.loads(line)["event_type"] == "alert" for line in eve_lines[:50])

    # the auth check: the test network's VNC password guessing raised an incident through failed logins, and
    # the operator's own VNC sessions to the same console raised no alert
    [vnc] = [e for e in episodes if e["label"] == "vnc-bruteforce"]
    assert vnc["detected"] and vnc["family"] == "BruteForce"
    hosts = json.loads((out / "lab" / "test" / "scenario.json").read_text())["hosts"]
    operator = next(h["ip"] for h in hosts if h["kind"] == "workstation")
    with sqlite3.connect(out / "iotguard.db") as db:
        checked = db.execute(
            "SELECT DISTINCT src_ip, dest_port FROM alerts WHERE model = 'auth-check'"
        ).fetchall()
        sessions = db.execute(
            "SELECT count(*) FROM alerts WHERE (src_ip = ? AND dest_port = 5900) OR (dest_ip = ? AND src_port = 5900)",
            (operator, operator),
        ).fetchone()[0]
    assert checked == [(vnc["attacker"], 5900)] and sessions == 0
    auth = summary["checks"]["auth-check"]
    assert auth["sources"] == [vnc["attacker"]] and auth["incidents"] >= 1 and auth["alerts"] >= 1
    report = (out / "report.md").read_text()
    assert "| `auth-check` | failed VNC logins" in report and vnc["attacker"] in report

    # the sensor ran it: the device inventory and MQTT telemetry read off the wire took part
    assert summary["devices"] > 5 and summary["telemetry"]["messages"] > 100
    assert summary["alerts_by_source"].get("flow", 0) > 0
    assert sum(summary["alerts_by_source"].values()) == det["alerts"]
    assert "dry_run: true" in (out / "policy.yaml").read_text()

    # a site baseline fitted to the test network before its first attack, saved as a detector directory
    site = summary["site_baseline"]
    assert site is not None and site["normal_flows"] >= 20
    from iotguard.detect.detector import Detector

    fitted = Detector.load(out / "site-detector")
    assert fitted.info["site_baseline"]["flows"] == site["normal_flows"]
    for name in ("built", "site"):
        assert 0 <= site["flagged"][name]["benign"] <= site["benign_flows"]
        assert 0 < site["flagged"][name]["attack"] <= site["attack_flows"]
    # a baseline this short is said to be too short, in the summary and the report (the fit's own warning)
    assert site["warnings"] == fitted.info["baseline_warnings"]
    assert any("held-out baseline flows" in w for w in site["warnings"])

    # 4. the report exists and points at the sensor
    assert "iotguard run --pcap" in report and "unseen" in report
    assert "- warning: the thresholds rest on" in report
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "timeline.png" in report
