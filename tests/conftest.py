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


@pytest.fixture(scope="session")
def mqttset_halves(data_file, tmp_path_factory) -> tuple[Path, Path]:
    """MQTTset's benign capture (10,896 packets) split in two by packet count, as docs/benchmarks.md does:
    the second half starts mid-stream, with sensors that first publish a minute or more into it."""
    import shutil
    import subprocess

    capture = data_file("pcaps/mqttset_reduced/benign.pcap")
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (Debian package tshark) is not installed")
    folder = tmp_path_factory.mktemp("mqttset-halves")
    first, second = folder / "first.pcap", folder / "second.pcap"
    subprocess.run([editcap, "-r", str(capture), str(first), "1-5448"], check=True, capture_output=True)
    subprocess.run([editcap, "-r", str(capture), str(second), "5449-10896"], check=True, capture_output=True)
    return first, second
