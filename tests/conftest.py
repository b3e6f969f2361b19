"""Shared fixtures. Dataset files come from $IOTGUARD_DATA_DIR (CI sets it to ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    env = os.environ.get("IOTGUARD_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared dataset folder; tests that need it skip with a reason when it is absent."""
    root = _data_root()
    if not root.is_dir():
        pytest.skip(f"dataset folder {root} is absent (set IOTGUARD_DATA_DIR)")
    return root


@pytest.fixture(scope="session")
def data_file(data_root: Path):
    """``data_file("nsl-kdd/KDDTest+.txt.gz")`` -> path, or skip when that file is absent."""

    def get(relative: str) -> Path:
        path = data_root / relative
        if not path.exists():
            pytest.skip(f"dataset file {path} is absent")
        return path

    return get
