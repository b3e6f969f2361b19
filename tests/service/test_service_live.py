"""The sensor live, for real: tcpreplay of an attack capture onto a veth pair in a namespace this test creates,
live capture, detection, a real nftables block (inside the namespace), the dashboard in headless Chromium
showing the alert and the block, then a restart that puts the block back with its remaining TTL.

Root only (namespaces, raw sockets, nftables); CI runs as root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dashboard_driver
import httpx
import igs_netns
import pytest

from iotguard.core.config import load_config
from iotguard.service.sensor import Sensor
from sensor_fixtures import free_port

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(igs_netns.skip_reason() is not None, reason=igs_netns.skip_reason() or ""),
]
REPO = Path(__file__).resolve().parents[2]
ATTACKER = "172.16.0.8"  # the scanner in synscan.pcapng


def live_available() -> bool:
    try:
        import iotguard.capture.live  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def veth():
    if not live_available():
        pytest.skip("live capture (iotguard.capture.live) is not available")
    pair = igs_netns.create("L")
    try:
        yield pair
    finally:
        pair.delete()


def lab_replay(veth, pcap: Path, speed: str) -> subprocess.CompletedProcess[str]:
    """The lab's replay command (tcpreplay), run inside the namespace on the sender end."""
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            veth.netns,
            sys.executable,
            "-m",
            "iotguard",
            "lab",
            "replay",
            str(pcap),
            "--interface",
            veth.sender,
            "--speed",
            speed,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )


def nft_elements(veth, table: str) -> str:
    return igs_netns.sh(
        "ip", "netns", "exec", veth.netns, "nft", "-j", "list", "table", "inet", table, check=False
    ).stdout


def make_config(tmp_path, veth, detector, table: str, port: int):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        json.dumps(
            {
                "dry_run": False,
                "limits": {"default_ttl": 600},
                "nftables": {"table": table, "netns": veth.netns, "hooks": ["input", "output"]},
                "rules": [{"name": "block-scanners", "match": {"family": "PortScan"}, "actions": ["block"]}],
            }
        )
    )
    data = {
        "capture": {"interface": veth.capture},
        "model": {"path": str(detector)},
        "respond": {"policy": str(policy)},
        "api": {"port": port},
        "service": {"state_dir": str(tmp_path / "state"), "stats_interval": 0.5},
        "flows": {"early_packets": 5},
    }
    path = tmp_path / "iotguard.yaml"
    path.write_text(json.dumps(data))
    return load_config(path, env={})


def test_attack_replay_live_to_alert_block_and_dashboard(tmp_path, veth, small_detector, data_file):
    from iotguard.service.server import ApiServer

    pcap = data_file("pcaps/chrissanders_packets/synscan.pcapng")
    table = f"igs{os.getpid()}"[-20:]
    port = free_port()
    cfg = make_config(tmp_path, veth, small_detector, table, port)
    sensor = Sensor(cfg)
    server = ApiServer(sensor)
    server.start()
    sensor.start()
    try:
        time.sleep(0.5)  # the ring is open before the first frame arrives
        done = lab_replay(veth, pcap, "2000")
        assert done.returncode == 0, done.stdout + done.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            sensor.stats.counters["packets"] < 2011 or not sensor.store.active_containment()
        ):
            time.sleep(0.2)
        snap = sensor.stats.snapshot()
        assert snap["counters"]["packets"] >= 2011  # every replayed frame was captured ...
        assert "kernel" in snap["drops"]  # ... and the kernel's drop counter is reported
        assert snap["alerts"]["total"] > 0
        blocks = sensor.store.active_containment()
        assert [(b.action, b.target, b.result) for b in blocks] == [("block", ATTACKER, "ok")]
        assert ATTACKER in nft_elements(veth, table)  # really in the kernel, inside the namespace

        # the API refuses requests without the token or with a wrong one
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/alerts").status_code == 401
        assert httpx.get(f"{base}/api/alerts", headers={"Authorization": "Bearer nope"}).status_code == 401

        # the dashboard shows the alert and the block
        with dashboard_driver.browser_page() as page:
            from playwright.sync_api import expect

            page.goto(f"{base}/#token={server.context.token}")
            expect(page.locator("#alerts tbody tr.alert").first).to_contain_text("PortScan", timeout=15_000)
            expect(page.locator("#alerts tbody tr.alert").first).to_contain_text(ATTACKER)
            expect(page.locator("#blocks tbody tr.block").first).to_contain_text(ATTACKER)
            expect(page.locator("#c-pps")).not_to_have_text("–")
            assert int(page.locator("#c-alerts").inner_text().replace("k", "000").split(".")[0]) > 0
            assert page.js_errors == []
    finally:
        sensor.close()
        server.stop()

    # a restart re-applies the block with what is left of its TTL (the kernel copy is gone meanwhile, as after
    # a reboot)
    igs_netns.sh("ip", "netns", "exec", veth.netns, "nft", "delete", "table", "inet", table, check=False)
    assert ATTACKER not in nft_elements(veth, table)
    again = Sensor(make_config(tmp_path, veth, small_detector, table, free_port()))
    again.start()
    try:
        assert again.stats.counters["blocks_restored"] == 1
        listing = json.loads(nft_elements(veth, table))
        elems = [
            e
            for item in listing["nftables"]
            if "set" in item and item["set"].get("elem")
            for e in item["set"]["elem"]
        ]
        assert any(ATTACKER in json.dumps(e) for e in elems)
        timeouts = [e["elem"]["timeout"] for e in elems if isinstance(e, dict) and "elem" in e]
        assert timeouts and all(0 < t <= 600 for t in timeouts)
    finally:
        again.close()
        igs_netns.sh("ip", "netns", "exec", veth.netns, "nft", "delete", "table", "inet", table, check=False)
