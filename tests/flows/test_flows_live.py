"""Live capture for real: tcpreplay a capture onto a veth pair between two network namespaces this test
creates, capture on the other end with AF_PACKET, and compare with the offline extraction of the same file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iotguard.core.errors import CaptureError
from iotguard.flows import read_flows

SRC = str(Path(__file__).resolve().parents[2] / "src")

CAPTURE_SCRIPT = r"""
import json, sys
from iotguard.flows import iter_flows
stream = iter_flows("iface:" + sys.argv[1], max_packets=int(sys.argv[2]), duration=float(sys.argv[3]),
                    bpf=sys.argv[4] or None, tick=0.2)
frames = []
for i, frame in enumerate(stream):
    if i == 0:
        print("ready", flush=True)
    frames.append(frame)
import pandas as pd
df = pd.concat(frames, ignore_index=True)
final = df[~df.partial]
print(json.dumps({
    "packets": stream.stats.packets,
    "drops": stream.source_stats.kernel_drops,
    "filtered_in": stream.source_stats.packets,
    "flows": sorted([[r.src_ip, int(r.src_port), r.dst_ip, int(r.dst_port), int(r.protocol),
                      int(r.fwd_packets), int(r.bwd_packets), int(r.fwd_bytes), int(r.bwd_bytes)]
                     for r in final.itertuples()]),
}), flush=True)
"""


def _need_root_tools():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, AF_PACKET)")
    for tool in ("ip", "tcpreplay"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")


@contextlib.contextmanager
def veth_between_namespaces():
    """Two namespaces igf<pid>a/b joined by a veth pair (IPv6 off so the kernel adds no packets)."""
    tag = f"igf{os.getpid()}"
    ns_a, ns_b, va, vb = f"{tag}a", f"{tag}b", f"{tag}va", f"{tag}vb"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    try:
        ip("netns", "add", ns_a)
        ip("netns", "add", ns_b)
        ip("link", "add", va, "type", "veth", "peer", "name", vb)
        ip("link", "set", va, "netns", ns_a)
        ip("link", "set", vb, "netns", ns_b)
        for ns, dev in ((ns_a, va), (ns_b, vb)):
            subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                check=True,
                capture_output=True,
                timeout=30,
            )
            ip("-n", ns, "link", "set", dev, "up")
        yield ns_a, va, ns_b, vb
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _replay_and_capture(capture: Path, expected_packets: int, bpf: str = "") -> dict:
    with veth_between_namespaces() as (ns_a, va, ns_b, vb):
        env = {**os.environ, "PYTHONPATH": SRC}
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns_b,
                sys.executable,
                "-c",
                CAPTURE_SCRIPT,
                vb,
                str(expected_packets),
                "60",
                bpf,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
            subprocess.run(
                ["ip", "netns", "exec", ns_a, "tcpreplay", "-q", "-i", va, "--topspeed", str(capture)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])


@pytest.mark.root
def test_live_capture_matches_offline_extraction(data_file):
    _need_root_tools()
    capture = data_file("pcaps/zeek/ssh_sshguess.pcap")
    offline = read_flows(capture)
    result = _replay_and_capture(capture, 431)
    assert result["packets"] == 431 and result["drops"] == 0
    expected = sorted(
        [
            r.src_ip,
            r.src_port,
            r.dst_ip,
            r.dst_port,
            r.protocol,
            r.fwd_packets,
            r.bwd_packets,
            r.fwd_bytes,
            r.bwd_bytes,
        ]
        for r in offline.itertuples()
    )
    assert result["flows"] == [list(row) for row in expected]


@pytest.mark.root
def test_live_kernel_filter(data_file):
    _need_root_tools()
    capture = data_file("pcaps/zeek/modbus_modbusSmall.pcap")  # 160 TCP and 6 UDP packets
    result = _replay_and_capture(capture, 6, bpf="udp")
    assert result["packets"] == 6 and result["filtered_in"] == 6
    assert all(row[4] == 17 for row in result["flows"])


SLOW_SCRIPT = r"""
import json, sys, time
from iotguard.capture.live import LiveCapture
cap = LiveCapture(sys.argv[1], block_size=4096, blocks=2, block_timeout_ms=10)
print("ready", flush=True)
got, idle = 0, 0
for batch in cap:
    if len(batch):
        got += len(batch)
        idle = 0
        time.sleep(0.2)  # far too slow: the two-block ring overflows
    else:
        idle += 1
        if got and idle > 10:
            break
cap.close()
print(json.dumps({"packets": got, "drops": cap.stats.kernel_drops}), flush=True)
"""


@pytest.mark.root
def test_live_reports_kernel_drops_when_the_consumer_is_too_slow(data_file):
    _need_root_tools()
    capture = data_file("pcaps/markofu_pcaps/evilfingers_nmap/TCP_CONNECT_SCAN.pcap")  # 9,924 packets
    with veth_between_namespaces() as (ns_a, va, ns_b, vb):
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, sys.executable, "-c", SLOW_SCRIPT, vb],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            subprocess.run(
                ["ip", "netns", "exec", ns_a, "tcpreplay", "-q", "-i", va, "--topspeed", str(capture)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["drops"] > 0
    assert result["packets"] + result["drops"] == 9924


def test_live_errors_are_capture_errors():
    from iotguard.capture.live import LiveCapture

    with pytest.raises(CaptureError, match="no such network interface"):
        LiveCapture("igf-no-such-if0")
    with pytest.raises(CaptureError, match="no interface name"):
        LiveCapture("")
