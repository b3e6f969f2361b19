"""The default detector's recipe knows UDP floods: a detector built as the default is (``build_default``: the
same scenarios, models, balancing and thresholds), on shortened lab networks, flags a Mirai-style UDP plain
flood written packet by packet with scapy and raises a DDoS incident naming each bot, whatever payload size
the flood command chose (Mirai's ``len``: 512 bytes by default, any other up to the MTU).

Without the ``floods`` scenario, a detector built this way names only the 512-byte flood DDoS (the one payload
size ``train`` shows) and calls the 64- and 1,400-byte ones mere anomalies.

Building the real default takes a minute or more, so the scenarios are cut to a few minutes each (one of
each scenario the default uses); ``benchmarks/response_latency.py --attack udp`` and docs/benchmarks.md
measure the real one."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

pytest.importorskip("lightgbm", reason="building a detector needs the train extra")

from iotguard.detect.default import DEFAULT_SCENARIOS, build_default  # noqa: E402

BOTS = {"192.168.3.21": 64, "192.168.3.22": 512, "192.168.3.23": 1400}  # bot -> payload bytes
VICTIM = "192.168.3.2"


@pytest.fixture(scope="module")
def small_default(tmp_path_factory):
    """The default recipe on short networks: each scenario it uses once, 150 s, at most 10 devices."""
    specs, seen = [], set()
    for name, seed, _, devices in DEFAULT_SCENARIOS:
        if name not in seen:
            seen.add(name)
            specs.append((name, seed, 150.0, min(devices or 10, 10)))
    assert "floods" in seen
    return build_default(tmp_path_factory.mktemp("default") / "detector", scenarios=specs)


def _udp_plain_flood(path, *, pps: float, seconds: float, seed: int) -> None:
    """Mirai's udpplain from each bot: one connected socket (fixed ports) to a random port, random payloads of
    the bot's size, as fast as the bot goes (here ``pps`` with some jitter)."""
    from scapy.all import IP, UDP, Ether, Raw, wrpcap

    rng = random.Random(seed)
    packets = []
    for k, (bot, size) in enumerate(BOTS.items()):
        sport, dport = rng.randrange(32768, 61000), rng.randrange(1024, 65536)
        t = 1_700_000_000.0 + 0.3 * k
        for _ in range(int(pps * seconds)):
            frame = (
                Ether(src=f"02:00:00:00:01:{k:02x}", dst="02:00:00:00:00:01")
                / IP(src=bot, dst=VICTIM, ttl=64, id=rng.randrange(65536))
                / UDP(sport=sport, dport=dport)
                / Raw(rng.randbytes(size))
            )
            frame.time = t
            packets.append(frame)
            t += rng.uniform(0.5, 1.5) / pps
    packets.sort(key=lambda p: p.time)
    wrpcap(str(path), packets)


def test_the_default_recipe_flags_a_udp_plain_flood(small_default, tmp_path):
    capture = tmp_path / "udp-flood.pcap"
    _udp_plain_flood(capture, pps=150.0, seconds=2.0, seed=4)
    summary = tmp_path / "summary.json"
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src), "IOTGUARD_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "iotguard", "detect", str(capture), "--model", str(small_default),
         "--json", str(summary)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(summary.read_text())
    assert {inc["family"] for inc in result["incidents"]} == {"DDoS"}, result["incidents"]
    assert {ip for inc in result["incidents"] for ip in inc["src_ips"]} == set(BOTS)
    assert all(VICTIM not in inc["src_ips"] for inc in result["incidents"])
