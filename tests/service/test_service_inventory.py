"""Device inventory: accounting from flow records, fingerprints that flag a device unlike itself, MAC changes."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from iotguard.core.config import DeviceConfig, InventoryConfig
from iotguard.service.inventory import Inventory

T0 = 1_700_000_000.0


def flows(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["partial"] = frame.get("partial", False)
    return frame


def flow(src, dst, dport, proto, ts, fp=10, bp=8, fb=1200.0, bb=900.0, partial=False):
    return {
        "src_ip": src,
        "dst_ip": dst,
        "src_port": 40000,
        "dst_port": dport,
        "protocol": proto,
        "ts_first": ts - 1,
        "ts_last": ts,
        "fwd_packets": fp,
        "bwd_packets": bp,
        "fwd_bytes": fb,
        "bwd_bytes": bb,
        "partial": partial,
    }


def camera_minute(rng: random.Random, start: float) -> list[dict]:
    """One minute of an IP camera: RTSP control, RTP video to the NVR, a DNS and an NTP lookup."""
    rows = [flow("192.168.1.20", "192.168.1.5", 554, 6, start + 5, fp=30, bp=30, fb=4e3, bb=3e3)]
    for k in range(rng.randint(8, 12)):
        rows.append(
            flow("192.168.1.20", "192.168.1.5", 50000 + k, 17, start + 6 + k * 4, fp=2000, bp=0,
                 fb=2.4e6 * rng.uniform(0.8, 1.2), bb=0)
        )  # fmt: skip
    rows.append(flow("192.168.1.20", "192.168.1.1", 53, 17, start + 30, fp=1, bp=1, fb=60, bb=120))
    if rng.random() < 0.5:
        rows.append(flow("192.168.1.20", "203.0.113.10", 123, 17, start + 40, fp=1, bp=1, fb=48, bb=48))
    return rows


def test_inventory_accounts_devices_and_peers():
    inv = Inventory(
        InventoryConfig(), [DeviceConfig(name="door-cam", address="192.168.1.20", tags=["camera"])]
    )
    rows = camera_minute(random.Random(0), T0)
    rows.append(flow("8.8.8.8", "198.51.100.1", 53, 17, T0 + 1))  # two remote hosts: not inventoried
    rows.append(flow("192.168.1.20", "192.168.1.5", 554, 6, T0 + 59, partial=True))  # early: last seen only
    assert inv.observe_flows(flows(rows)) == []
    total, items = inv.devices()
    assert total == 3  # camera, NVR, gateway
    cam = inv.get("192.168.1.20")
    assert cam["name"] == "door-cam" and cam["tags"] == ["camera"]
    assert cam["traffic"]["flows_out"] == sum(
        1 for r in rows if r["src_ip"] == "192.168.1.20" and not r["partial"]
    )
    assert cam["last_seen"] == T0 + 59 and cam["first_seen"] == T0 + 4
    assert set(cam["protocols"]) >= {"TCP", "UDP"}
    assert cam["services"]["TCP/554"] == 1
    nvr = inv.get("192.168.1.5")
    assert nvr["traffic"]["flows_in"] >= 9 and nvr["services"]["in:TCP/554"] == 1
    assert inv.get("8.8.8.8") is None
    assert inv.devices(query="door")[0] == 1 and inv.devices(query="camera")[0] == 1


def test_a_camera_that_starts_scanning_is_flagged_and_normal_drift_is_not():
    cfg = InventoryConfig(window=60, warmup_windows=10, drift_windows=2)
    inv = Inventory(cfg)
    rng = random.Random(1)
    alerts = []
    for minute in range(40):  # 40 minutes of normal life
        alerts += inv.observe_flows(flows(camera_minute(rng, T0 + 60 * minute)))
    assert alerts == [], [a.signature for a in alerts]
    assert inv.get("192.168.1.20")["fingerprint"]["samples"] >= 10
    # compromised: Mirai-style telnet scanning of the LAN, no answers
    for minute in range(40, 44):
        start = T0 + 60 * minute
        rows = camera_minute(rng, start)
        for _ in range(300):
            target = f"192.168.{rng.randint(0, 3)}.{rng.randint(2, 254)}"
            rows.append(flow("192.168.1.20", target, rng.choice([23, 2323]), 6, start + rng.uniform(0, 59),
                             fp=1, bp=0, fb=0, bb=0))  # fmt: skip
        alerts += inv.observe_flows(flows(rows))
    mine = [a for a in alerts if a.src_ip == "192.168.1.20"]
    assert len(mine) == 1, [a.signature for a in alerts]
    alert = mine[0]
    assert alert.source == "inventory" and alert.family == "Anomaly"
    assert "TCP/23" in alert.signature
    assert inv.get("192.168.1.20")["fingerprint"]["flagged"] is True
    assert inv.flagged() >= 1


def test_mac_change_is_spoofing_blamed_on_the_impostor():
    inv = Inventory(
        InventoryConfig(), [DeviceConfig(name="plug", address="192.168.1.30", mac="aa:bb:cc:00:00:30")]
    )
    assert inv.observe_macs([("192.168.1.1", "02:00:00:00:00:01", T0, True)]) == []  # the gateway
    assert inv.observe_macs([("192.168.1.66", "02:66:66:66:66:66", T0 + 1, True)]) == []  # a laptop
    # ARP spoofing: the laptop's MAC now claims the gateway's address
    spoof = inv.observe_macs([("192.168.1.1", "02:66:66:66:66:66", T0 + 2, True)])
    assert [(a.family, a.src_ip, a.dest_ip) for a in spoof] == [("Spoofing", "192.168.1.66", "192.168.1.1")]
    assert "the MAC of 192.168.1.66" in spoof[0].signature
    # an unknown MAC: the alert names the MAC, never the impersonated address, as its source; and a MAC
    # first seen in a spoofed claim is not taken to belong to the address it claimed
    other = inv.observe_macs([("192.168.1.1", "02:77:77:77:77:77", T0 + 3, True)])
    assert [(a.src_ip, a.dest_ip) for a in other] == [("02:77:77:77:77:77", "192.168.1.1")]
    inv.observe_macs([("192.168.1.40", "02:00:00:00:00:40", T0 + 3, True)])
    again = inv.observe_macs([("192.168.1.40", "02:77:77:77:77:77", T0 + 4, True)])
    assert [(a.src_ip, a.dest_ip) for a in again] == [("02:77:77:77:77:77", "192.168.1.40")]
    assert inv.observe_macs([("192.168.1.30", "aa:bb:cc:00:00:30", T0, True)]) == []
    wrong = inv.observe_macs([("192.168.1.30", "de:ad:be:ef:00:01", T0 + 5, True)])
    assert len(wrong) == 1 and "was aa:bb:cc:00:00:30" in wrong[0].signature
    assert inv.observe_macs([("8.8.8.8", "02:00:00:00:00:01", T0, True)]) == []


def test_spoofed_sources_never_fill_the_inventory_and_real_ones_are_bounded():
    inv = Inventory(InventoryConfig(max_devices=1000))
    rng = np.random.default_rng(0)

    def frame(batch: int, answered: bool) -> pd.DataFrame:
        n = 4096
        src = [f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 256, size=(n, 3))]
        return pd.DataFrame(
            {
                "src_ip": src,
                "dst_ip": "10.0.0.1",
                "dst_port": 80,
                "protocol": 6,
                "ts_last": T0 + batch,
                "fwd_packets": 1,
                "bwd_packets": int(answered),
                "fwd_bytes": 0.0,
                "bwd_bytes": 0.0,
                "partial": False,
            }
        )

    for batch in range(5):  # a SYN flood from random (spoofed) local addresses: nobody answers
        inv.observe_flows(frame(batch, answered=False))
    assert len(inv) == 0
    # spoofed IPv4 sources do not join through their MAC either; ARP senders do
    assert inv.observe_macs([("10.1.2.3", "02:66:00:00:00:01", T0, False)]) == [] and len(inv) == 0
    inv.observe_macs([("10.1.2.4", "02:66:00:00:00:02", T0, True)])
    assert len(inv) == 1
    for batch in range(5):  # twenty thousand hosts that do talk: the inventory keeps the latest 1000
        inv.observe_flows(frame(10 + batch, answered=True))
    assert len(inv) == 1000 and inv.evicted > 10_000
    assert inv.get("10.0.0.1") is not None  # the most recently seen device is kept


def test_state_round_trip():
    inv = Inventory()
    rng = random.Random(2)
    for minute in range(15):
        inv.observe_flows(flows(camera_minute(rng, T0 + 60 * minute)))
    inv.observe_macs([("192.168.1.20", "02:00:00:00:00:20", T0, True)])
    state = json.loads(json.dumps(inv.state()))
    again = Inventory()
    again.load_state(state)
    assert again.get("192.168.1.20") == inv.get("192.168.1.20")
    assert again.devices()[0] == inv.devices()[0]


def test_state_keeps_whose_mac_each_is():
    # A restarted sensor (or detection started from a site baseline) still names the impostor of an ARP spoof
    # whose MAC it learnt before.
    inv = Inventory()
    inv.observe_macs([("192.168.1.1", "02:00:00:00:00:01", T0, True)])  # the gateway
    inv.observe_macs([("192.168.1.66", "02:66:66:66:66:66", T0 + 1, True)])  # a laptop
    again = Inventory()
    again.load_state(json.loads(json.dumps(inv.state())))
    spoof = again.observe_macs([("192.168.1.1", "02:66:66:66:66:66", T0 + 2, True)])
    assert [(a.family, a.src_ip, a.dest_ip) for a in spoof] == [("Spoofing", "192.168.1.66", "192.168.1.1")]
    # a checkpoint from before the MAC owners were kept still loads
    old = json.loads(json.dumps(inv.state()))
    del old["mac_owners"]
    older = Inventory()
    older.load_state(old)
    assert older.get("192.168.1.1")["macs"] == ["02:00:00:00:00:01"]


def test_a_damaged_state_is_refused_whole_and_the_inventory_kept():
    """A checkpoint is the sensor's own file, but a disk or an editor can damage it: a bad part raises a
    ValueError/KeyError/TypeError (the sensor then starts that part fresh) and changes nothing."""
    inv = Inventory()
    inv.observe_macs([("192.168.1.1", "02:00:00:00:00:01", T0, True)])
    good = json.loads(json.dumps(inv.state()))
    for damage in (
        {"mac_owners": ["02:00:00:00:00:01"]},
        {"devices": {"192.168.1.9": {}}},
        {"devices": [{"address": "192.168.1.9"}]},
        {"version": 2},
        {"devices": 5},
    ):
        target = Inventory()
        target.load_state(good)
        with pytest.raises((ValueError, KeyError, TypeError)):
            target.load_state(good | damage)
        assert target.get("192.168.1.1")["macs"] == ["02:00:00:00:00:01"]
    with pytest.raises(ValueError):
        Inventory().load_state([good])  # type: ignore[arg-type]
