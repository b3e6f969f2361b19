"""Broken CSV flow tables (a file cut mid-row, text in a feature column) are refused with the file and line,
the same way by every reader of flow tables: predict, train, and detect/baseline (service.offline)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from cli_run import one_line_error, run


@pytest.fixture(scope="module")
def flow_csv(data_file, tmp_path_factory) -> Path:
    """A real flow table, as `iotguard flows CAPTURE -o flows.csv` writes it, labelled for training."""
    from iotguard.flows import read_flows

    frame = read_flows(data_file("pcaps/markofu_pcaps/evilfingers_nmap/TCP_SYN_SCAN.pcap"))
    assert len(frame) > 40
    frame["is_attack"] = (frame.index % 3 == 0).astype(int)
    path = tmp_path_factory.mktemp("flows") / "flows.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def cut(flow_csv, tmp_path) -> Path:
    """`head -c 3000 flows.csv`: the last row stops after a few of its fields."""
    path = tmp_path / "cut.csv"
    path.write_bytes(flow_csv.read_bytes()[:3000])
    return path


@pytest.fixture
def badval(flow_csv, tmp_path) -> Path:
    """File line 31 (data row 30) holds `abc` in flow_duration."""
    frame = pd.read_csv(flow_csv)
    frame["flow_duration"] = frame["flow_duration"].astype(object)
    frame.loc[29, "flow_duration"] = "abc"
    path = tmp_path / "badval.csv"
    frame.to_csv(path, index=False)
    return path


def _cut_line(path: Path) -> int:
    return path.read_bytes().count(b"\n") + 1


def test_read_table_names_the_short_row(cut):
    from iotguard.core.errors import DataError
    from iotguard.preprocess.tables import read_table

    with pytest.raises(DataError, match=rf"cut.csv:{_cut_line(cut)}: only \d+ fields \(a row cut short\?\)"):
        read_table(cut)


def test_a_short_row_in_the_middle_and_blank_lines(tmp_path):
    from iotguard.core.errors import DataError
    from iotguard.preprocess.tables import read_table

    (tmp_path / "mid.csv").write_text("a,b,c\n1,2,3\n\n4,5\n6,7,8\n")
    with pytest.raises(DataError, match=r"mid.csv:4: only 2 fields"):
        read_table(tmp_path / "mid.csv")
    (tmp_path / "quoted.csv").write_text('a,b,c\n1,"x,y",3\n"4\n",5\n')
    with pytest.raises(DataError, match=r"quoted.csv:4: only 2 fields"):
        read_table(tmp_path / "quoted.csv")
    (tmp_path / "ok.csv").write_text("a,b,c\r\n1,2,3\r\n\r\n4,5,6")
    frame, _ = read_table(tmp_path / "ok.csv")
    assert frame.shape == (2, 3)


def test_predict_refuses_a_cut_table(cut, tmp_path, capsys, monkeypatch):
    import numpy as np

    from iotguard.core.schema import FLOW_FEATURES
    from iotguard.models.artifact import save_artifact
    from iotguard.models.pipeline import train_model

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.lognormal(2, 1, (200, len(FLOW_FEATURES))), columns=list(FLOW_FEATURES))
    model = save_artifact(train_model("lr", x, (rng.random(200) < 0.4).astype(int)), tmp_path / "model")
    code, _, err = run(["predict", cut, "--model", model], capsys, monkeypatch)
    one_line_error(code, err, rf"cut.csv:{_cut_line(cut)}: only \d+ fields")


def test_train_names_the_file_line_not_a_shuffled_row(badval, tmp_path, capsys, monkeypatch):
    code, _, err = run(
        ["train", "--flows", badval, "--model", "lr", "--out", tmp_path / "m"], capsys, monkeypatch
    )
    one_line_error(code, err, r"badval.csv:31 column 'flow_duration': text 'abc' in a numeric column")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("reader", ["flow_batches", "capture_flows"])
def test_detect_and_baseline_read_tables_the_same_way(reader, cut, badval):
    """detect scores a flow table through flow_batches, detect --baseline reads one through capture_flows
    (baseline through read_flow_file): both used to accept these files silently."""
    from iotguard.core.errors import DataError
    from iotguard.service import offline

    def read(path: Path) -> object:
        return (
            list(offline.flow_batches(path, 10))
            if reader == "flow_batches"
            else offline.capture_flows(path, 10)
        )

    with pytest.raises(DataError, match=rf"cut.csv:{_cut_line(cut)}: only \d+ fields"):
        read(cut)
    with pytest.raises(DataError, match=r"badval.csv:31 column 'flow_duration': text 'abc'"):
        read(badval)


def test_a_good_table_still_reads(flow_csv):
    from iotguard.service.offline import read_flow_file

    frame = read_flow_file(flow_csv)
    assert len(frame) == len(pd.read_csv(flow_csv))
    assert pd.api.types.is_numeric_dtype(frame["flow_duration"])


def test_predict_ignores_and_names_columns_that_are_not_features(flow_csv, tmp_path, capsys, monkeypatch):
    """`iotguard flows` output carries columns beyond the CICIDS2017 features (end_reason, app_proto ...):
    a model trained on CICIDS2017 features scores it, naming what it left out; a missing feature still fails."""
    import numpy as np

    from iotguard.core.schema import FLOW_FEATURES
    from iotguard.models.artifact import save_artifact
    from iotguard.models.pipeline import train_model

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.lognormal(2, 1, (200, len(FLOW_FEATURES))), columns=list(FLOW_FEATURES))
    model = save_artifact(train_model("lr", x, (rng.random(200) < 0.4).astype(int)), tmp_path / "model")
    table = pd.read_csv(flow_csv)
    assert {"end_reason", "app_proto"} <= set(table.columns)
    code, _, err = run(["predict", flow_csv, "--model", model, "-o", tmp_path / "p.csv"], capsys, monkeypatch)
    assert code == 0, err
    assert re.search(r"ignored \d+ column\(s\) that are not the model's features: .*'end_reason'", err), err
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(table)

    table.drop(columns=["flow_duration"]).to_csv(tmp_path / "short.csv", index=False)
    code, _, err = run(["predict", tmp_path / "short.csv", "--model", model], capsys, monkeypatch)
    one_line_error(code, err, r"short.csv: 1 missing column\(s\) 'flow_duration'")
