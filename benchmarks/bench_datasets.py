"""Loader speed: ``iotguard.datasets.load`` against a bare ``pandas.read_csv`` of the same files.

The bare read is the floor: it parses the same bytes with the same C parser but checks nothing and maps
nothing. The difference is the cost of validation (types, labels, field counts) and of the canonical naming.

    IOTGUARD_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/bench_datasets.py [--repeat 5]

Prints a markdown table (median of the repeats).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import pandas as pd
from machine import cpu_model

from iotguard.datasets import load, specs

CASES = [
    ("nsl-kdd", "KDDTrain+", {"header": None}),
    ("nsl-kdd", "KDDTest+", {"header": None}),
    ("cicids2017", "improved", {}),
    ("cicids2017", "original", {}),
    ("unsw-nb15", "training-set", {"encoding": "utf-8-sig"}),
    ("iot23", "all", {"sep": "\t", "comment": "#", "header": None}),
]


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    assert specs()  # registry imports before timing
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"python {platform.python_version()}, pandas {pd.__version__}; median of {args.repeat}\n")  # fmt: skip
    print("| dataset | split | rows | iotguard load (s) | bare pd.read_csv (s) | overhead | rows/s (load) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, split, read_kwargs in CASES:
        ds = load(name, split)
        files = ds.files
        t_load = _median(lambda n=name, s=split: load(n, s), args.repeat)
        t_bare = _median(
            lambda f=files, k=read_kwargs: [pd.read_csv(p, low_memory=False, **k) for p in f], args.repeat
        )
        print(
            f"| {name} | {split} | {len(ds):,} | {t_load:.3f} | {t_bare:.3f} | {t_load / t_bare:.2f}x "
            f"| {len(ds) / t_load:,.0f} |"
        )


if __name__ == "__main__":
    main()
