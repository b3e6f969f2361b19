"""Live capture rate: tcpreplay a capture onto a veth pair between two network namespaces, extract flows on
the other end with ``iter_flows("iface:...")``, and report the replay rate, packets captured and the kernel's
drop counter (root only; the namespaces ``igf<pid>a``/``igf<pid>b`` are deleted afterwards).

    sudo IOTGUARD_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/flows_live.py --packets 1000000 \\
        --rates 50000 100000 200000 0

A rate of 0 means ``tcpreplay --topspeed``. The capture is built by ``flows_capture.py`` unless ``--capture``
is given. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

CAPTURE = r"""
import json, sys, time
from iotguard.flows import iter_flows
stream = iter_flows("iface:" + sys.argv[1], max_packets=int(sys.argv[2]), duration=float(sys.argv[3]), tick=0.2)
flows = 0
start = last = None
seen = 0
for i, frame in enumerate(stream):
    if i == 0:
        print("ready", flush=True)
    now = time.perf_counter()
    if stream.stats.packets != seen:
        seen, last = stream.stats.packets, now
        start = start or now
    flows += int((~frame.partial).sum())
    if last is not None and now - last > 3.0:  # the replay is over
        break
stream.close()
print(json.dumps({"packets": stream.stats.packets, "drops": stream.source_stats.kernel_drops, "flows": flows,
                  "seconds": (last or 0) - (start or 0)}), flush=True)
"""


@contextlib.contextmanager
def namespaces():
    tag = f"igf{os.getpid()}"
    ns_a, ns_b, va, vb = f"{tag}a", f"{tag}b", f"{tag}va", f"{tag}vb"

    def run(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    try:
        run("ip", "netns", "add", ns_a)
        run("ip", "netns", "add", ns_b)
        run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        run("ip", "link", "set", va, "netns", ns_a)
        run("ip", "link", "set", vb, "netns", ns_b)
        for ns, dev in ((ns_a, va), (ns_b, vb)):
            run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            run("ip", "-n", ns, "link", "set", dev, "up")
        yield ns_a, va, ns_b, vb
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def replay(capture: Path, packets: int, rate: int) -> dict:
    with namespaces() as (ns_a, va, ns_b, vb):
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, sys.executable, "-c", CAPTURE, vb, str(packets), "600"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(proc.stderr.read() if proc.stderr else "capture did not start")
            speed = ["--topspeed"] if rate == 0 else [f"--pps={rate}"]
            sent = subprocess.run(
                ["ip", "netns", "exec", ns_a, "tcpreplay", "-i", va, "--preload-pcap", *speed, str(capture)],
                capture_output=True,
                text=True,
                timeout=1800,
            ).stdout
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    actual = re.search(r"Actual: (\d+) packets .* in ([\d.]+) seconds", sent)
    rated = re.search(r"Rated: .*?, ([\d.]+) pps", sent)
    result["sent"] = int(actual.group(1)) if actual else 0
    result["replay_pps"] = float(rated.group(1)) if rated else float("nan")
    return result


def main() -> None:
    from flows_capture import build
    from machine import cpu_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--capture", type=Path)
    parser.add_argument("--rates", type=int, nargs="+", default=[50_000, 100_000, 0])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, AF_PACKET)")
    with tempfile.TemporaryDirectory(prefix="igf-live-") as tmp:
        capture = args.capture
        if capture is None:
            capture = Path(tmp) / "live.pcap"
            build(args.packets, capture)
        rows = [(rate, replay(capture, args.packets, rate)) for rate in args.rates]
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}\n")
    print("| requested rate | tcpreplay rate (pkt/s) | sent | captured | kernel drops | flow records |")
    print("|---|---:|---:|---:|---:|---:|")
    for rate, r in rows:
        label = "top speed" if rate == 0 else f"{rate:,} pkt/s"
        print(
            f"| {label} | {r['replay_pps']:,.0f} | {r['sent']:,} | {r['packets']:,} | {r['drops']:,} | {r['flows']:,} |"
        )


if __name__ == "__main__":
    main()
