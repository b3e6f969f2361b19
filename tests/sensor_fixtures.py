"""Real components for the sensor's tests: a mosquitto broker on a free loopback port, free ports.

Imported by the conftest of tests/telemetry and tests/service (fixtures are registered where imported).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


@dataclass
class Broker:
    host: str
    port: int
    proc: subprocess.Popen
    users: dict[str, str]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def make_tls(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl), for the broker's TLS listener."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ca_key, ca, key, csr, cert = (
        directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=iotguard test CA")  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out",
        str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    for path in (ca, key, cert):
        path.chmod(0o644)
    return {"ca": ca, "cert": cert, "key": key}


def start_broker(
    directory: Path,
    users: dict[str, str] | None = None,
    port: int | None = None,
    tls: dict[str, Path] | None = None,
) -> Broker:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.skip("the mosquitto broker is not installed (apt-get install mosquitto)")
    port = port or free_port()
    lines = [f"listener {port} 127.0.0.1", "persistence false", "log_dest stderr", "log_type error"]
    if tls:
        lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
    if os.geteuid() == 0:
        # As root mosquitto drops to its own user, which cannot read pytest's private tmp directories.
        lines.append("user root")
    if users:
        pwfile = directory / "passwd"
        pwfile.write_text("")
        for user, password in users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(pwfile), user, password], check=True, capture_output=True
            )
        pwfile.chmod(0o644)
        lines += ["allow_anonymous false", f"password_file {pwfile}"]
    else:
        lines.append("allow_anonymous true")
    conf = directory / f"mosquitto-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port("127.0.0.1", port)
    except TimeoutError:
        proc.kill()
        raise TimeoutError(
            f"mosquitto did not start: {proc.stderr.read().decode(errors='replace')}"
        ) from None
    return Broker("127.0.0.1", port, proc, users or {})


def stop_broker(broker: Broker) -> None:
    broker.proc.terminate()
    try:
        broker.proc.wait(5)
    except subprocess.TimeoutExpired:
        broker.proc.kill()
        broker.proc.wait()


@pytest.fixture
def mosquitto(tmp_path):
    """A real mosquitto broker on a free loopback port, anonymous access; stopped after the test."""
    broker = start_broker(tmp_path)
    try:
        yield broker
    finally:
        stop_broker(broker)


# -- a small real detector ------------------------------------------------------------------------------------
TRAINING = [
    ("mqttset_reduced/benign.pcap", "Benign"),
    ("chrissanders_packets/tcp_ports.pcapng", "Benign"),
    ("markofu_pcaps/http.cap", "Benign"),
    ("markofu_pcaps/telnet.pcap", "Benign"),
    ("zeek/mqtt.pcap", "Benign"),
    ("zeek/modbus_modbusSmall.pcap", "Benign"),
    ("tcpdump/coap.pcap", "Benign"),
    ("chrissanders_packets/synscan.pcapng", "PortScan"),
    ("markofu_pcaps/dosattack.pcap", "DoS"),
    ("markofu_pcaps/ftp-crack.pcap", "BruteForce"),
]


@pytest.fixture(scope="session")
def small_detector(tmp_path_factory, data_root):
    """A random-forest detector trained on a few shared captures (labelled by file), saved as a directory.

    Enough to exercise the sensor end to end in seconds; detection quality is the detection stage's concern.
    """
    import pandas as pd

    from iotguard.detect.build import build_detector
    from iotguard.flows import read_flows

    parts = []
    for name, category in TRAINING:
        path = data_root / "pcaps" / name
        if not path.exists():
            pytest.skip(f"{path} is absent")
        flows = read_flows(path)
        flows["category"] = category
        parts.append(flows)
    flows = pd.concat(parts, ignore_index=True)
    work = tmp_path_factory.mktemp("detector")
    detector, sources = build_detector(
        flows, flows["category"], work / "parts", classifier="rf", anomaly=None
    )
    return detector.save(work / "detector", sources=sources)


@pytest.fixture(scope="session")
def lab_detector(tmp_path_factory):
    """A random-forest detector trained on a short lab ``train`` capture (seconds to build)."""
    import pandas as pd

    from iotguard.detect.build import build_detector
    from iotguard.lab import generate

    work = tmp_path_factory.mktemp("lab-detector")
    run = generate("train", 180, None, 11, work / "train", flows=True)
    flows = pd.read_parquet(run.flows_path)
    detector, sources = build_detector(
        flows, flows["category"], work / "parts", classifier="rf", anomaly=None
    )
    return detector.save(work / "detector", sources=sources)


@pytest.fixture(scope="session")
def lab_attack(tmp_path_factory):
    """A short lab ``showcase`` capture (every attack the lab knows) and its episodes."""
    from iotguard.lab import generate

    run = generate("showcase", 120, None, 5, tmp_path_factory.mktemp("lab-showcase"), flows=False)
    return run


# -- a real home network and a detector that does not know it -------------------------------------------------
HUE = "iot23/CTU-Honeypot-Capture-4-1/2018-09-14-13-40-25-Philips-Hue-Bridge.pcap"
HUE_PACKETS = 8573


@pytest.fixture(scope="session")
def hue_halves(data_file, tmp_path_factory):
    """IoT-23's real Philips Hue bridge capture (39 min) split by packet count, as docs/benchmarks.md does:
    the first half (25 min) is the site's normal traffic, the second (14 min) what a sensor then watches."""
    capture = data_file(HUE)
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (Debian package tshark) is not installed")
    folder = tmp_path_factory.mktemp("hue")
    first, second = folder / "first.pcap", folder / "second.pcap"
    half = HUE_PACKETS // 2
    for out, packets in ((first, f"1-{half}"), (second, f"{half + 1}-{HUE_PACKETS}")):
        subprocess.run([editcap, "-r", str(capture), str(out), packets], check=True, capture_output=True)
    return first, second


@pytest.fixture(scope="session")
def short_default(tmp_path_factory):
    """The default detector's recipe (every scenario it uses once) on 150-second lab networks: seconds to
    build, and as noisy on the Hue bridge's home network as the real default (11 incidents on its second half
    through the sensor; the real one 10, docs/detection.md)."""
    pytest.importorskip("lightgbm", reason="building a detector needs the train extra")
    from iotguard.detect.default import DEFAULT_SCENARIOS, build_default

    specs, seen = [], set()
    for name, seed, _, devices in DEFAULT_SCENARIOS:
        if name not in seen:
            seen.add(name)
            specs.append((name, seed, 150.0, min(devices or 10, 10)))
    return build_default(tmp_path_factory.mktemp("default") / "detector", scenarios=specs)
