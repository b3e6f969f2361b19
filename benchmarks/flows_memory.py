"""Peak memory of ``iotguard flows`` as the capture grows: 100k, 1M and 5M packets of the same traffic.

The captures come from ``flows_capture.py`` (the shared captures' busiest 10 minutes replayed back to back
with fresh addresses, so the traffic's intensity is the same at every length). Each run is the command line a
user would type, writing Parquet, in its own process; peak RSS is the maximum resident set size of that
process (``getrusage``), and the resident size when it ends is reported too. A flat column is the claim:
memory follows the flow table, not the file size::

    IOTGUARD_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/flows_memory.py --sizes 100000 1000000 5000000

The captures are written to a temporary folder (about 120 MB per million packets) and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

RUN = r"""
import json, resource, sys, time
from iotguard.cli.main import app
t = time.perf_counter()
try:
    app(["flows", sys.argv[1], "-o", sys.argv[2], "-q"], standalone_mode=False)
finally:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    end = int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
    print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": peak, "end_mb": end}))
"""


def main() -> None:
    from flows_capture import build
    from machine import cpu_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--core", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median and spread reported)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="igf-mem-") as tmp:
        captures = {}
        for size in args.sizes:  # build everything first: no run overlaps the writing of a capture
            captures[size] = Path(tmp) / f"cap{size}.pcap"
            print(build(size, captures[size]), file=sys.stderr)
        os.sync()
        for size, capture in captures.items():
            out = Path(tmp) / f"flows{size}.parquet"
            runs = []
            for _ in range(args.repeat):
                proc = subprocess.run(
                    ["taskset", "-c", str(args.core), sys.executable, "-c", RUN, str(capture), str(out)],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(size, runs[-1], file=sys.stderr)
            import pyarrow.parquet as pq

            flows = pq.ParquetFile(out).metadata.num_rows
            seconds = statistics.median(r["seconds"] for r in runs)
            peaks = sorted(r["rss_mb"] for r in runs)
            end_mb = statistics.median(r["end_mb"] for r in runs)
            rows.append((size, capture.stat().st_size, flows, seconds, peaks, end_mb))
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; {time.ctime()}\n"
    )
    print(
        "| packets | capture (MB) | flow records | seconds | packets/s | peak RSS (MB), median (min-max) | RSS at the end (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size, nbytes, flows, seconds, peaks, end_mb in rows:
        print(
            f"| {size:,} | {nbytes / 2**20:,.0f} | {flows:,} | {seconds:.1f} | {size / seconds:,.0f} "
            f"| {statistics.median(peaks):.0f} ({peaks[0]:.0f}-{peaks[-1]:.0f}) | {end_mb:.0f} |"
        )


if __name__ == "__main__":
    main()
