"""``iotguard run`` and ``iotguard token`` as a user runs them: one-line errors with exit 2, a clean run, the
token file, and SIGTERM flushing state."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sensor_fixtures import free_port

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, home: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "IOTGUARD_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "iotguard", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_user_errors_are_one_line_and_exit_2(tmp_path, small_detector):
    home = tmp_path / "home"
    model = ["--model", str(small_detector)]
    cases = [
        ([*model], "nothing to watch"),
        (["--pcap", str(tmp_path / "absent.pcap"), *model], "capture file not found"),
        (["--interface", "igsnope0", *model], "igsnope0"),
        (
            ["--pcap", str(tmp_path / "x.pcap"), "--speed", "warp", *model],
            "flag --speed: invalid value, got 'warp' (expected 'realtime' or 'max')",
        ),
        (["--set", "api.prot=1", *model], "unknown key 'prot' (did you mean 'port'?)"),
    ]
    (tmp_path / "x.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows:\n  max_flows: lots\n")
    cases.append((["--config", str(bad), *model], f"{bad}:2:3 field 'flows.max_flows'"))
    for args, expected in cases:
        res = cli("run", *args, home=home)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert expected in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr


def test_port_in_use_is_a_clear_error(tmp_path, small_detector, data_file):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = cli(
            "run", "--pcap", str(data_file("pcaps/markofu_pcaps/portscan.pcap")), "--model", str(small_detector),
            "--set", f"api.port={port}", "--exit-when-done", home=tmp_path / "home",
        )  # fmt: skip
    assert res.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in res.stderr


def test_a_run_to_the_end_and_the_token(tmp_path, small_detector, data_file):
    home = tmp_path / "home"
    pcap = data_file("pcaps/chrissanders_packets/synscan.pcapng")
    port = free_port()
    res = cli(
        "run", "--pcap", str(pcap), "--model", str(small_detector), "--exit-when-done",
        "--set", f"api.port={port}", home=home,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "stopped: 2,011 packets" in res.stderr and f"http://127.0.0.1:{port}/" in res.stderr
    assert "drops: none" in res.stderr  # a file is read as fast as the pipeline goes: nothing dropped
    token_file = home / "api-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token not in res.stderr + res.stdout  # never printed unless asked
    asked = cli("token", "--url", home=home)
    assert asked.stdout.strip() == f"http://127.0.0.1:8787/#token={token}"
    assert (home / "eve.json").read_text().count("\n") > 0 and (home / "sensor-state.json").exists()


def test_sigterm_flushes_flows_and_checkpoints(tmp_path, small_detector, data_file):
    home = tmp_path / "home"
    pcap = data_file("pcaps/mqttset_reduced/benign.pcap")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "IOTGUARD_HOME": str(home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iotguard",
            "run",
            "--pcap",
            str(pcap),
            "--speed",
            "realtime",
            "--model",
            str(small_detector),
            "--set",
            f"api.port={port}",
        ],  # fmt: skip
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        # the API answers before the pipeline starts: stop only once packets have gone through (a fixed sleep
        # was too short on a loaded machine)
        headers = {"Authorization": f"Bearer {(home / 'api-token').read_text().strip()}"}
        while time.monotonic() < deadline:
            stats = httpx.get(f"http://127.0.0.1:{port}/api/stats", headers=headers, timeout=5).json()
            if stats["counters"].get("packets", 0) > 0:
                break
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping" in err and "stopped:" in err
    import json

    state = json.loads((home / "sensor-state.json").read_text())
    assert state["source"]["packets"] > 0  # where a restart resumes
