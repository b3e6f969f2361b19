"""CLI tables written to a pipe are not cut at 80 columns (rich's default without a terminal)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _lab_list(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": str(SRC)} | env_extra
    proc = subprocess.run(
        [sys.executable, "-m", "iotguard", "lab", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_a_table_in_a_pipe_is_not_cut_and_columns_still_wins():
    piped = _lab_list({})
    assert "…" not in piped and max(len(line) for line in piped.splitlines()) > 80
    narrow = _lab_list({"COLUMNS": "60"})
    assert max(len(line) for line in narrow.splitlines()) <= 60
