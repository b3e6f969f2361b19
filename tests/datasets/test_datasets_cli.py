"""``iotguard datasets list | info | download`` run as a user runs them: a subprocess, exit codes, stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(
    *args: str, data_dir: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONPATH=str(REPO / "src"), COLUMNS="200", **(env or {}))
    if data_dir is not None:
        environ["IOTGUARD_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "iotguard", "datasets", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def test_list(data_root):
    result = run("list", data_dir=data_root)
    assert result.returncode == 0, result.stderr
    for name in ("nsl-kdd", "cicids2017", "unsw-nb15", "iot23"):
        assert name in result.stdout
    assert "1/2" in result.stdout  # unsw-nb15: the testing-set file is not staged
    assert str(data_root) in result.stdout


def test_info_shows_splits_counts_and_citation(data_root):
    result = run("info", "nsl-kdd", data_dir=data_root)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("KDDTrain+ (default)", "125,973", "22,544", "KDDTest-21.txt.gz", "Tavallaee", "CISDA"):
        assert text in out
    result = run("info", "unsw-nb15", data_dir=data_root)
    assert result.returncode == 0, result.stderr
    assert "testing-set" in result.stdout and "missing" in result.stdout and "manual" in result.stdout
    assert "Moustafa" in result.stdout


def test_info_of_an_empty_data_dir(tmp_path):
    result = run("info", "iot23", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "missing" in result.stdout and "Garcia" in result.stdout


def test_unknown_dataset_is_a_one_line_error(tmp_path):
    result = run("info", "kdd99", data_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown dataset 'kdd99'")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_download_through_a_mirror_then_refuse_a_tampered_one(data_root, tmp_path, serve):
    target = tmp_path / "cache"
    with serve(data_root) as (url, _):
        result = run(
            "download", "cicids2017", "--split", "original", "--data-dir", str(target), "--mirror", url
        )
    assert result.returncode == 0, result.stderr
    assert "downloaded" in result.stdout and "web_attacks_balanced.csv.gz" in result.stdout
    assert (target / "cicids2017" / "original_trafficlabelling" / "web_attacks_balanced.csv.gz").is_file()

    tampered = tmp_path / "mirror" / "nsl-kdd"
    tampered.mkdir(parents=True)
    for name in ("KDDTrain+", "KDDTrain+_20Percent", "KDDTest+"):
        (tampered / f"{name}.txt.gz").write_bytes((data_root / "nsl-kdd" / f"{name}.txt.gz").read_bytes())
    (tampered / "KDDTest-21.txt.gz").write_bytes((data_root / "nsl-kdd" / "KDDTest+.txt.gz").read_bytes())
    with serve(tmp_path / "mirror") as (url, _):
        result = run("download", "nsl-kdd", env={"IOTGUARD_DATASET_MIRROR": url}, data_dir=target)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {url}/nsl-kdd/KDDTest-21.txt.gz: sha256 "), result.stderr
    assert "Traceback" not in result.stderr
    assert not (target / "nsl-kdd" / "KDDTest-21.txt.gz").exists()
    assert not list(target.rglob("*.part"))
    # the three good files before it were kept
    assert (target / "nsl-kdd" / "KDDTest+.txt.gz").is_file()
