"""What the benchmarks print about the machine they ran on (scripts here import it as ``machine``)."""

from __future__ import annotations

from iotguard.evaluate.report import machine


def cpu_model() -> str:
    return str(machine()["cpu"])
