"""Output paths the OS refuses: every command says so in one line naming the path and the OS's reason, exits
2, and does it before the slow work (no traceback, nothing half-written)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_run import one_line_error, run
from iotguard.core.schema import FLOW_FEATURES


def flows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.lognormal(2, 1, (n, len(FLOW_FEATURES))), columns=list(FLOW_FEATURES))
    attack = rng.random(n) < 0.4
    frame.loc[attack, "syn_flag_count"] += 100
    frame["is_attack"] = attack.astype(int)
    return frame


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "flows.csv"
    flows(60).to_csv(path, index=False)
    return path


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A plain file: nothing can be created below it, whoever runs the test (root included)."""
    path = tmp_path / "blocker"
    path.write_text("not a folder\n")
    return path


def _cases(table: Path, blocker: Path, tmp_path: Path) -> list[tuple[list, str]]:
    missing = tmp_path / "no-such-detector"
    return [
        (["flows", "capture.pcap", "-o", blocker / "x.parquet"], "flow table"),
        (["detect", table, "--model", missing, "--json", blocker / "x.json"], "JSON summary"),
        (["train", "--model", "lr", "--flows", table, "--out", blocker / "m"], "model artifact"),
        (["predict", table, "--model", missing, "-o", blocker / "p.csv"], "predictions"),
        (["evaluate", "--dataset", "nsl-kdd", "--models", "lr", "--out", blocker / "ev"], "report"),
        (["baseline", table, "--out", blocker / "site"], "detector"),
        (["baseline", table, "--out", tmp_path / "site", "--json", blocker / "b.json"], "JSON summary"),
    ]


@pytest.mark.parametrize("index", range(7))
def test_an_unwritable_output_is_one_line_before_any_work(
    index, table, blocker, tmp_path, capsys, monkeypatch
):
    args, what = _cases(table, blocker, tmp_path)[index]
    # detect and predict name a detector/model that does not exist: the output error coming first shows the
    # path is checked before anything is loaded or run (detect used to fail only after the whole run)
    code, _, err = run(args, capsys, monkeypatch)
    target = next(a for a in args if isinstance(a, Path) and blocker in a.parents)
    one_line_error(code, err, rf"{re.escape(str(target))}: cannot write {what}: Not a directory")
    assert not (tmp_path / "site").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_proc_is_refused_with_the_os_reason(table, tmp_path, capsys, monkeypatch):
    code, _, err = run(
        ["predict", table, "--model", tmp_path / "none", "-o", "/proc/iotguard-p.csv"], capsys, monkeypatch
    )
    one_line_error(code, err, r"/proc/iotguard-p.csv: cannot write predictions: No such file or directory")


def test_a_folder_given_for_a_file_is_refused(table, tmp_path, capsys, monkeypatch):
    (tmp_path / "out.csv").mkdir()
    code, _, err = run(
        ["predict", table, "--model", tmp_path / "none", "-o", tmp_path / "out.csv"], capsys, monkeypatch
    )
    one_line_error(code, err, r"cannot write predictions: Is a directory")


def test_check_writable_leaves_nothing_behind(tmp_path):
    from iotguard.core.paths import check_writable

    check_writable(tmp_path / "a.csv")
    check_writable(tmp_path / "new" / "deeper" / "a.csv")
    check_writable(tmp_path, directory=True)
    assert list(tmp_path.iterdir()) == []


def test_eve_and_store_use_the_same_error(blocker):
    from iotguard.core.errors import ConfigError
    from iotguard.core.store import Store
    from iotguard.detect.eve import EveWriter

    with pytest.raises(ConfigError, match=r"blocker/sub/eve.json: cannot write EVE log: Not a directory"):
        EveWriter(blocker / "sub" / "eve.json")
    with pytest.raises(ConfigError, match=r"blocker/sub/s.db: cannot write database: Not a directory"):
        Store(blocker / "sub" / "s.db")
