"""The sensor live, for real: tcpreplay of a lab attack capture onto a veth pair in a namespace this test creates,
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
                "allowlist": ["10.10.0.1/32"],  # the lab network's gateway
                "limits": {"default_ttl": 600, "max_blocks_per_minute": 100},
                "nftables": {"table": table, "netns": veth.netns, "hooks": ["input", "output"]},
                "rules": [
                    {
                        "name": "block-attackers",
                        "match": {"severity": 2, "source": "flow"},
                        "actions": ["block"],
                    }
                ],
            }
        )
    )
    data = {
        "capture": {"interface": veth.capture},
        "model": {"path": str(detector)},
        "respond": {"policy": str(policy)},
        "api": {"port": port},
        "service": {"state_dir": str(tmp_path / "state"), "stats_interval": 0.5},
    }
    path = tmp_path / "iotguard.yaml"
    path.write_text(json.dumps(data))
    return load_config(path, env={})


def elements(veth, table: str) -> list[str]:
    """Addresses in the namespace's iotguard sets, with their timeouts."""
    listing = json.loads(nft_elements(veth, table) or '{"nftables": []}')
    found = []
    for item in listing["nftables"]:
        for elem in (item.get("set") or {}).get("elem", []) if "set" in item else []:
            found.append(elem["elem"] if isinstance(elem, dict) and "elem" in elem else {"val": elem})
    return found


def test_lab_attack_replayed_live_to_alert_block_and_dashboard(tmp_path, veth, lab_detector, lab_attack):
    from iotguard.service.server import ApiServer

    table = f"igsn{os.getpid()}"
    port = free_port()
    cfg = make_config(tmp_path, veth, lab_detector, table, port)
    sensor = Sensor(cfg)
    server = ApiServer(sensor)
    server.start()
    sensor.start()
    attackers = {e.attacker for e in lab_attack.episodes}
    try:
        time.sleep(0.5)  # the ring is open before the first frame arrives
        done = lab_replay(veth, lab_attack.capture, "5000")
        assert done.returncode == 0, done.stdout + done.stderr
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sensor.stats.counters["packets"] < lab_attack.packets:
            time.sleep(0.2)
        time.sleep(3)  # the last early records through detection
        snap = sensor.stats.snapshot()
        # every replayed frame was captured (plus the odd frame the namespace end sends by itself) ...
        assert snap["counters"]["packets"] >= lab_attack.packets
        assert snap["drops"]["kernel"] == 0  # ... and the kernel's drop counter is reported
        assert snap["alerts"]["by_source"]["flow"] > 0
        blocks = sensor.store.active_containment()
        assert blocks and all(b.result == "ok" for b in blocks)
        targets = {b.target for b in blocks}
        # real attackers contained; the allowlisted gateway never (whatever the detector thinks of it)
        assert targets & attackers and "10.10.0.1" not in targets
        in_kernel = json.dumps(elements(veth, table))
        assert all(t in in_kernel for t in targets)  # really in nftables, inside the namespace

        # the API refuses requests without the token or with a wrong one
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/alerts").status_code == 401
        assert httpx.get(f"{base}/api/alerts", headers={"Authorization": "Bearer nope"}).status_code == 401

        # the dashboard shows the attack's alerts and the blocks
        with dashboard_driver.browser_page() as page:
            from playwright.sync_api import expect

            page.goto(f"{base}/#token={server.context.token}")
            expect(page.locator("#alerts tbody tr.alert").first).to_be_visible(timeout=15_000)
            shown = page.locator("#alerts tbody").inner_text()
            assert any(f"\t{a}:" in shown or f"\t{a}\t" in shown for a in attackers)  # an attacker's alert
            expect(page.locator("#blocks tbody tr.block")).to_have_count(len(blocks), timeout=10_000)
            expect(page.locator("#devices tbody tr.device").first).to_be_visible()
            assert page.locator("#c-alerts").inner_text() not in ("", "0", "–")
            assert page.js_errors == []
    finally:
        sensor.close()
        server.stop()

    # a restart re-applies the blocks with what is left of their TTL (the kernel copy is gone meanwhile, as
    # after a reboot)
    igs_netns.sh("ip", "netns", "exec", veth.netns, "nft", "delete", "table", "inet", table, check=False)
    assert elements(veth, table) == []
    from iotguard.core.store import Store

    with Store(cfg.store_path()) as store:
        records = store.active_containment()  # a block refreshed by later alerts has several records
    in_force = {b.target for b in records}
    assert targets <= in_force
    again = Sensor(make_config(tmp_path, veth, lab_detector, table, free_port()))
    again.start()
    try:
        assert again.stats.counters["blocks_restored"] == len(records)
        restored = elements(veth, table)
        assert all(t in json.dumps(restored) for t in in_force)
        timeouts = [e["timeout"] for e in restored if "timeout" in e]
        assert timeouts and all(0 < t <= 600 for t in timeouts)
    finally:
        again.close()
        igs_netns.sh("ip", "netns", "exec", veth.netns, "nft", "delete", "table", "inet", table, check=False)
