"""Peak memory of ``iotguard flows`` as the capture grows: 100k, 1M and 5M packets of the same traffic.

The captures come from ``flows_capture.py`` (the shared captures' busiest 10 minutes replayed back to back
with fresh addresses, so the traffic's intensity is the same at every length). Each run is the command line a
user would type, writing Parquet, in its own process; peak RSS is the maximum resident set size of that
process (``getrusage``, children included). A flat column is the claim: memory follows the flow table, not the
file size::

    IOTGUARD_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/flows_memory.py --sizes 100000 1000000 5000000

The captures are written to a temporary folder (about 120 MB per million packets) and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": usage.ru_maxrss / 1024}))
"""


def main() -> None:
    from flows_capture import build
    from flows_offline import cpu_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--core", type=int, default=1)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="igf-mem-") as tmp:
        for size in args.sizes:
            capture = Path(tmp) / f"cap{size}.pcap"
            summary = build(size, capture)
            out = Path(tmp) / f"flows{size}.parquet"
            proc = subprocess.run(
                ["taskset", "-c", str(args.core), sys.executable, "-c", RUN, str(capture), str(out)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            import pyarrow.parquet as pq

            flows = pq.ParquetFile(out).metadata.num_rows
            rows.append((size, capture.stat().st_size, flows, result["seconds"], result["rss_mb"]))
            capture.unlink()
            out.unlink()
            print(summary, result, file=sys.stderr)
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; {time.ctime()}\n"
    )
    print("| packets | capture (MB) | flow records | seconds | packets/s | peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, nbytes, flows, seconds, rss in rows:
        print(
            f"| {size:,} | {nbytes / 2**20:,.0f} | {flows:,} | {seconds:.1f} | {size / seconds:,.0f} | {rss:.0f} |"
        )


if __name__ == "__main__":
    main()
