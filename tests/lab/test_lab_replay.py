"""``iotguard lab replay``: option checks, a clear error without tcpreplay, and a real replay across a veth
pair between two network namespaces (created here, prefixed ``igl``, removed afterwards), captured with
tcpdump on the far end and compared frame by frame."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from lab_helpers import built_capture
from typer.testing import CliRunner

from iotguard.cli.main import app
from iotguard.core.errors import CaptureError, ConfigError
from iotguard.lab import replay as replay_module
from iotguard.lab.pcap import read_pcap
from iotguard.lab.replay import ReplayError, replay, speed_flags


def test_speed_flags():
    assert speed_flags("realtime") == []
    assert speed_flags("max") == ["--topspeed"]
    assert speed_flags("5000") == ["--pps=5000"]
    assert speed_flags("10x") == ["--multiplier=10"]
    for bad in ("fast", "-3", "0", "x"):
        with pytest.raises(ConfigError, match="--speed"):
            speed_flags(bad)


def test_missing_tcpreplay_is_a_clear_error(tmp_path, monkeypatch):
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 20)
    monkeypatch.setattr(replay_module.shutil, "which", lambda name: None)
    with pytest.raises(ReplayError, match="tcpreplay is not installed"):
        replay(capture, "eth0")
    result = CliRunner().invoke(app, ["lab", "replay", str(capture), "-i", "eth0"])
    assert result.exit_code != 0 and isinstance(result.exception, ReplayError)


def test_bad_inputs(tmp_path):
    with pytest.raises(CaptureError, match="not found"):
        replay(tmp_path / "missing.pcap", "eth0")
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"")
    with pytest.raises(ConfigError, match="interface"):
        replay(capture, "eth0; rm -rf /")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.mark.root
def test_replay_over_a_veth_pair(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in ("ip", "tcpreplay", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    _, capture = built_capture(tmp_path, "showcase", 40.0)
    sent_frames = read_pcap(capture).frames()
    pid = os.getpid()
    ns_a, ns_b = f"igl{pid}a", f"igl{pid}b"
    dev_a, dev_b = f"igl{pid}a0", f"igl{pid}b0"
    received = tmp_path / "received.pcap"
    dump = None
    try:
        for ns in (ns_a, ns_b):
            _run("ip", "netns", "add", ns)
            for key in ("all", "default"):  # no IPv6 router/listener chatter on the link
                _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
        _run("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        _run("ip", "-n", ns_a, "link", "set", dev_a, "up")
        _run("ip", "-n", ns_b, "link", "set", dev_b, "up")
        dump = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns_b,
                "tcpdump",
                "-i",
                dev_b,
                "-w",
                str(received),
                "-U",
                "-n",
                "-s",
                "0",
                "-B",
                "16384",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        line = ""
        while "listening on" not in line and time.monotonic() < deadline:
            line = dump.stderr.readline()
        assert "listening on" in line, "tcpdump did not start"
        env = dict(os.environ)
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns_a,
                sys.executable,
                "-m",
                "iotguard",
                "lab",
                "replay",
                str(capture),
                "-i",
                dev_a,
                "--speed",
                "20000",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"sent {len(sent_frames):,} packets" in done.stdout
        time.sleep(1.0)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=20)
        got = read_pcap(received).frames()
        assert len(got) == len(sent_frames)
        assert got == sent_frames
    finally:
        if dump is not None and dump.poll() is None:
            dump.kill()
            dump.wait(timeout=10)
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
