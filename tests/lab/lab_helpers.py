"""Shared helpers for the lab tests (imported by name: this folder has no package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from iotguard.lab import Built, build
from iotguard.lab.pcap import write_pcap

SHOWCASE_SECONDS = 120.0


def built_capture(tmp: Path, scenario: str, duration: float, seed: int | None = None) -> tuple[Built, Path]:
    built = build(scenario, duration=duration, seed=seed)
    path = tmp / f"{scenario}.pcap"
    write_pcap(path, built.packets)
    return built, path


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed")
    return path


def tshark(*args: str) -> str:
    need("tshark")
    done = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def labels_by_tag(built: Built) -> dict[int, str]:
    labels = {0: "benign"}
    for tag, episode in zip(built.tags, built.episodes, strict=True):
        labels[tag] = episode.label
    return labels
