"""Offline speed, one core: iotguard against NFStream and the PyPI cicflowmeter on the same capture.

Each tool runs in its own process pinned to one CPU (``taskset``), on the same >= 1M-packet capture built by
``flows_capture.py`` from the shared captures. The clock starts when the tool is asked for flows (after
imports) and stops when every flow is out: iotguard ``read_flows`` (a DataFrame with all CICFlowMeter
features), NFStream 6.x iterating its flows (statistical features on, DPI off, one meter process), and
cicflowmeter 0.2 writing its CSV. cicflowmeter runs on the first ``--cic-packets`` packets only (at about
1,000 packets/s the whole capture would take hours); it needs its own virtualenv because it pins numpy<2,
and scapy<2.8 (with scapy 2.7/2.8 it writes empty files)::

    python3 -m venv /tmp/cicvenv && /tmp/cicvenv/bin/pip install cicflowmeter 'scapy==2.5.0'
    IOTGUARD_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/flows_offline.py \\
        --packets 1000000 --cicflowmeter /tmp/cicvenv/bin/cicflowmeter

Prints a markdown table (median of ``--repeat`` runs per tool) and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

IOTGUARD = r"""
import json, resource, sys, time
from iotguard.flows import read_flows
t = time.perf_counter()
flows = read_flows(sys.argv[1])
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "flows": len(flows), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

NFSTREAM = r"""
import json, resource, sys, time
from nfstream import NFStreamer
t = time.perf_counter()
n = sum(1 for _ in NFStreamer(source=sys.argv[1], statistical_analysis=True, n_dissections=0, n_meters=1))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "flows": n, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def head(capture: Path, n: int, out: Path) -> Path:
    """The first n records of a little-endian microsecond pcap."""
    with open(capture, "rb") as src, open(out, "wb") as dst:
        dst.write(src.read(24))
        for _ in range(n):
            hdr = src.read(16)
            if len(hdr) < 16:
                break
            dst.write(hdr + src.read(struct.unpack("<IIII", hdr)[2]))
    return out


def run_python(script: str, capture: Path, core: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run(
        ["taskset", "-c", str(core), sys.executable, "-c", script, str(capture)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_cicflowmeter(exe: str, capture: Path, core: int, work: Path) -> dict:
    out = work / "cic.csv"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(
        ["taskset", "-c", str(core), exe, "-f", str(capture), "-c", str(out)], capture_output=True, check=True
    )
    seconds = time.perf_counter() - start
    rows = max(0, len(out.read_text().splitlines()) - 1) if out.exists() else 0
    return {"seconds": seconds, "flows": rows, "rss_mb": float("nan")}


def count_packets(capture: Path) -> int:
    from iotguard.capture import CaptureFile

    with CaptureFile(capture) as c:
        return sum(len(b) for b in c)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--capture", type=Path, help="use this capture instead of building one")
    parser.add_argument("--cicflowmeter", help="cicflowmeter executable (its own venv); skipped if absent")
    parser.add_argument("--cic-packets", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--core", type=int, default=1, help="CPU every tool is pinned to")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="igf-bench-") as tmp:
        work = Path(tmp)
        capture = args.capture
        if capture is None:
            sys.path.insert(0, str(HERE))
            from flows_capture import build

            capture = work / "bench.pcap"
            print("building", build(args.packets, capture), file=sys.stderr)
        packets = count_packets(capture)
        small = head(capture, args.cic_packets, work / "head.pcap")
        run_python(IOTGUARD, small, args.core)  # load (or compile) the jitted code once before timing
        load = os.getloadavg()
        results: dict[str, list[dict]] = {"iotguard": [], "nfstream": [], "cicflowmeter": []}
        for _ in range(args.repeat):
            results["iotguard"].append(run_python(IOTGUARD, capture, args.core))
            try:
                results["nfstream"].append(run_python(NFSTREAM, capture, args.core))
            except subprocess.CalledProcessError as exc:
                print("nfstream failed:", exc.stderr[-500:], file=sys.stderr)
        if args.cicflowmeter and shutil.which(args.cicflowmeter):
            results["cicflowmeter"].append(run_cicflowmeter(args.cicflowmeter, small, args.core, work))
        load = (load, os.getloadavg())

    rows = []
    for tool, runs in results.items():
        if not runs:
            continue
        n = args.cic_packets if tool == "cicflowmeter" else packets
        seconds = statistics.median(r["seconds"] for r in runs)
        rows.append(
            (tool, n, runs[0]["flows"], seconds, n / seconds, statistics.median(r["rss_mb"] for r in runs))
        )
    ours = next(r[4] for r in rows if r[0] == "iotguard")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; load average {load[0][0]:.1f} before, {load[1][0]:.1f} after"
    )
    print(
        f"Capture: {capture.name}, {packets:,} packets; median of {args.repeat} runs, one core (taskset -c {args.core})\n"
    )
    print("| tool | packets | flows | seconds | packets/s | iotguard speed-up | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool, n, flows, seconds, rate, rss in rows:
        print(
            f"| {tool} | {n:,} | {flows:,} | {seconds:.2f} | {rate:,.0f} | {ours / rate:.1f}x | {rss:.0f} |"
        )


if __name__ == "__main__":
    main()
