"""Lab generation speed and capture sizes: ``iotguard.lab.generate`` per scenario, with scapy as a reference.

For each scenario at its default size this times ``generate(..., flows=False)`` (simulate, order, write the
pcap, episodes and scenario.json) and reports packets, megabytes, and packets per second of wall-clock and of
CPU time (the CPU figure is less disturbed by other jobs on a shared machine). With ``--flows`` it also runs
the flow extractor once per capture and reports the number of flows and the attack share. The reference is
scapy building and writing simple TCP packets (``Ether()/IP()/TCP()/payload`` and ``wrpcap``), the usual way
to script a pcap in Python.

    PYTHONPATH=src python benchmarks/bench_lab.py [--repeat 3] [--flows] [--scenarios train test]

Prints a markdown table (median of the repeats).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from machine import cpu_model

from iotguard.lab import SCENARIOS, generate


def _time(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def scapy_reference(tmp: Path, n: int) -> tuple[float, float]:
    """Packets per second (wall, CPU) for scapy building and writing ``n`` TCP packets with 200-byte payloads."""
    from scapy.all import IP, TCP, Ether, Raw, wrpcap

    def run():
        pkts = [
            Ether(src="24:0a:c4:00:00:01", dst="dc:a6:32:00:00:02")
            / IP(src="192.168.1.10", dst="192.168.1.2")
            / TCP(sport=50000, dport=1883, seq=i * 200, flags="PA")
            / Raw(b"x" * 200)
            for i in range(n)
        ]
        wrpcap(str(tmp / "scapy.pcap"), pkts)

    _, wall, cpu = _time(run)
    return n / wall, n / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--flows", action="store_true", help="also extract flows once per capture and count them"
    )
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, load average {load:.1f} at start; Python {platform.python_version()}; median of {args.repeat} runs.\n"
    )
    header = "| scenario | duration (s) | devices | packets | capture MB | wall (s) | CPU (s) | packets/s (wall) | packets/s (CPU) |"
    if args.flows:
        header += " flows | attack share | flow extraction (s) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    with tempfile.TemporaryDirectory(prefix="igl-bench-") as tmp:
        tmp_path = Path(tmp)
        for name in args.scenarios:
            walls, cpus = [], []
            run = None
            for _ in range(args.repeat):
                run, wall, cpu = _time(lambda name=name: generate(name, out_dir=tmp_path / name, flows=False))
                walls.append(wall)
                cpus.append(cpu)
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            row = f"| {name} | {run.duration:g} | {run.devices} | {run.packets:,} | {run.bytes / 1e6:.1f} | {wall:.2f} | {cpu:.2f} | {run.packets / wall:,.0f} | {run.packets / cpu:,.0f} |"
            if args.flows:
                from iotguard.flows import FlowStream

                flows, fwall, _ = _time(
                    lambda run=run: FlowStream(run.capture, labels=run.episodes_path).to_pandas()
                )
                share = float(flows["is_attack"].mean()) if len(flows) else 0.0
                row += f" {len(flows):,} | {share:.0%} | {fwall:.2f} |"
            print(row, flush=True)
        n = 20_000
        pps_wall, pps_cpu = scapy_reference(tmp_path, n)
        ref = f"| scapy reference ({n:,} TCP packets) | | | {n:,} | | {n / pps_wall:.2f} | {n / pps_cpu:.2f} | {pps_wall:,.0f} | {pps_cpu:,.0f} |"
        print(ref + (" | | |" if args.flows else ""))


if __name__ == "__main__":
    main()
