"""The evaluate / train / predict commands end to end, and every bad input as one line with exit code 2."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_run import one_line_error as user_error
from cli_run import run
from iotguard.core.schema import FLOW_FEATURES


# -- end to end on the NSL-KDD 20 % file --------------------------------------------------------------------
@pytest.mark.slow
def test_train_predict_evaluate_on_nsl_kdd(data_root, data_file, tmp_path, capsys, monkeypatch):
    data_file("nsl-kdd/KDDTrain+_20Percent.txt.gz")
    common = ["--data-dir", data_root, "--train-split", "KDDTrain+_20Percent"]

    code, out, err = run(
        ["train", "--dataset", "nsl-kdd", "--model", "rf", "--out", tmp_path / "rf", *common],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    manifest = json.loads((tmp_path / "rf" / "manifest.json").read_text())
    assert set(manifest["metrics"]) == {"KDDTest+", "KDDTest-21"}
    assert manifest["metrics"]["KDDTest+"]["accuracy"] > 0.75

    from iotguard.datasets import load

    test = load("nsl-kdd", "KDDTest+", data_dir=data_root).frame.head(500)
    test.to_csv(tmp_path / "flows.csv", index=False)
    code, out, err = run(
        ["predict", "--model", tmp_path / "rf", tmp_path / "flows.csv", "-o", tmp_path / "pred.csv"],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 500 and {"score", "is_attack", "proba_Attack", "proba_Benign"} <= set(pred.columns)
    assert (pred["is_attack"] == test["is_attack"].to_numpy()).mean() > 0.75
    assert "agreement with is_attack" in err

    code, out, err = run(
        [
            "evaluate",
            "--dataset",
            "nsl-kdd",
            "--models",
            "rf,kmeans",
            "--latency-calls",
            "200",
            "--out",
            tmp_path / "ev",
            *common,
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert doc["schema"] == "iotguard-results" and doc["schema_version"] == 1
    assert [(r["split"], r["model"]) for r in doc["results"]] == [
        ("KDDTest+", "rf"),
        ("KDDTest-21", "rf"),
        ("KDDTest+", "kmeans"),
        ("KDDTest-21", "kmeans"),
    ]
    required = {
        "dataset",
        "split",
        "task",
        "model",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "fpr",
        "roc_auc",
        "latency_p50_us",
        "latency_p99_us",
        "throughput_per_s",
        "train_seconds",
        "model_bytes",
        "protocol",
    }
    for row in doc["results"]:
        assert required <= set(row)
        assert row["protocol"] == "official" and row["train_split"] == "KDDTrain+_20Percent"
        assert 0 < row["latency_p50_us"] <= row["latency_p99_us"] and row["throughput_per_s"] > 0
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| nsl-kdd | KDDTest-21 | binary | Random forest |" in report
    plots = sorted(p.name for p in (tmp_path / "ev" / "plots").iterdir())
    assert len(plots) == 4 and all(p.endswith(".png") for p in plots)
    assert (tmp_path / "ev" / "plots" / plots[0]).read_bytes()[:4] == b"\x89PNG"


# -- a small flow-table model for the bad-input cases ---------------------------------------------------------
def flows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.lognormal(2, 1, (n, len(FLOW_FEATURES))), columns=list(FLOW_FEATURES))
    attack = rng.random(n) < 0.4
    frame.loc[attack, "syn_flag_count"] += 100
    frame["src_ip"] = "10.0.0.2"
    frame["ts_first"] = np.arange(n, dtype=float)
    frame["category"] = np.where(attack, "DoS", "Benign")
    frame["is_attack"] = attack.astype(int)
    return frame


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from iotguard.models.artifact import save_artifact
    from iotguard.models.pipeline import train_model

    table = flows(400)
    return save_artifact(train_model("lr", table, table["is_attack"]), tmp_path_factory.mktemp("m") / "lr")


def test_train_on_a_flow_table_then_predict(tmp_path, capsys, monkeypatch):
    flows(600).to_parquet(tmp_path / "train.parquet")
    code, out, err = run(
        [
            "train",
            "--flows",
            tmp_path / "train.parquet",
            "--model",
            "lgbm",
            "--task",
            "multiclass",
            "--out",
            tmp_path / "m.zip",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert "holdout: accuracy" in out
    flows(50, seed=1).to_csv(tmp_path / "new.csv.gz", index=False)
    code, out, err = run(
        ["predict", "--model", tmp_path / "m.zip", tmp_path / "new.csv.gz"], capsys, monkeypatch
    )
    assert code == 0, err
    table = pd.read_csv(__import__("io").StringIO(out))
    assert len(table) == 50 and {"src_ip", "ts_first", "score", "family", "proba_DoS"} <= set(table.columns)


def check_nothing_written(folder: Path, allowed: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == allowed


@pytest.mark.parametrize(
    ("name", "write", "pattern"),
    [
        ("flows.txt", lambda p: flows(5).to_csv(p, index=False), r"flows.txt: unsupported file type '.txt'"),
        ("flows.csv", lambda p: p.write_bytes(b""), r"flows.csv: empty file \(0 bytes\)"),
        ("flows.csv", lambda p: p.write_text(",".join(FLOW_FEATURES) + "\n"), r"flows.csv.*no data rows"),
        ("flows.csv", lambda p: p.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(60)), r"this is a pcap capture"),
        ("flows.parquet", lambda p: flows(5).to_csv(p, index=False), r"not a parquet file"),
        (
            "flows.csv.gz",
            lambda p: p.write_bytes(gzip.compress(flows(300).to_csv(index=False).encode())[:3000]),
            r"flows.csv.gz:\d+: truncated or corrupt gzip",
        ),
        (
            "flows.csv",
            lambda p: flows(5).drop(columns=["syn_flag_count", "fwd_packets"]).to_csv(p, index=False),
            r"flows.csv: 2 missing column\(s\) 'fwd_packets', 'syn_flag_count'",
        ),
        (
            "flows.csv",
            lambda p: (
                flows(5)
                .astype({"fwd_bytes": object})
                .assign(fwd_bytes=lambda f: f.fwd_bytes.where(f.index != 3, "lots"))
                .to_csv(p, index=False)
            ),
            r"flows.csv:5 column 'fwd_bytes': text 'lots' in a numeric column \(expected a number\)",
        ),
    ],
)
def test_predict_bad_input(name, write, pattern, model_dir, tmp_path, capsys, monkeypatch):
    write(tmp_path / name)
    code, out, err = run(
        ["predict", "--model", model_dir, tmp_path / name, "-o", tmp_path / "out.csv"], capsys, monkeypatch
    )
    user_error(code, err, pattern)
    check_nothing_written(tmp_path, {name})


def test_predict_refuses_a_tampered_artifact(model_dir, tmp_path, capsys, monkeypatch):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["threshold"]["value"] = 0.0
    (bad / "manifest.json").write_text(json.dumps(manifest))
    flows(5).to_csv(tmp_path / "f.csv", index=False)
    code, out, err = run(
        ["predict", "--model", bad, tmp_path / "f.csv", "-o", tmp_path / "o.csv"], capsys, monkeypatch
    )
    user_error(code, err, r"bad/manifest.json: manifest.json was modified")
    assert not (tmp_path / "o.csv").exists()


def test_train_bad_input(tmp_path, capsys, monkeypatch):
    flows(50).drop(columns=["is_attack", "category"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    code, _, err = run(
        ["train", "--flows", tmp_path / "unlabelled.csv", "--model", "rf", "--out", tmp_path / "m"],
        capsys,
        monkeypatch,
    )
    user_error(code, err, r"unlabelled.csv: no 'is_attack' or 'category' column")
    flows(50).drop(columns=["category"]).assign(is_attack=7).to_csv(tmp_path / "odd.csv", index=False)
    code, _, err = run(
        ["train", "--flows", tmp_path / "odd.csv", "--model", "rf", "--out", tmp_path / "m"],
        capsys,
        monkeypatch,
    )
    user_error(code, err, r"column 'is_attack'.*values other than 0/1")
    code, _, err = run(
        ["train", "--flows", tmp_path / "odd.csv", "--model", "xgb", "--out", tmp_path / "m"],
        capsys,
        monkeypatch,
    )
    user_error(code, err, r"unknown model 'xgb'")
    code, _, err = run(
        [
            "train",
            "--flows",
            tmp_path / "odd.csv",
            "--model",
            "iforest",
            "--task",
            "multiclass",
            "--out",
            tmp_path / "m",
        ],
        capsys,
        monkeypatch,
    )
    user_error(code, err, r"no 'category' column")
    (tmp_path / "m").mkdir()
    code, _, err = run(
        ["train", "--flows", tmp_path / "odd.csv", "--model", "rf", "--out", tmp_path / "m"],
        capsys,
        monkeypatch,
    )
    user_error(code, err, r"m: already exists")
    check_nothing_written(tmp_path / "m", set())


def test_evaluate_bad_options(tmp_path, capsys, monkeypatch):
    code, _, err = run(["evaluate", "--dataset", "kdd99", "--out", tmp_path / "ev"], capsys, monkeypatch)
    user_error(code, err, r"no evaluation protocol for dataset 'kdd99'")
    code, _, err = run(
        ["evaluate", "--dataset", "nsl-kdd", "--models", "lr,nope", "--out", tmp_path / "ev"],
        capsys,
        monkeypatch,
    )
    user_error(code, err, r"unknown model 'nope'")
    code, _, err = run(
        ["evaluate", "--dataset", "nsl-kdd", "--task", "ternary", "--out", tmp_path / "ev"],
        capsys,
        monkeypatch,
    )
    user_error(code, err, r"--task: unknown task 'ternary'")
    code, _, err = run(
        ["evaluate", "--dataset", "nsl-kdd", "--data-dir", tmp_path / "empty", "--out", tmp_path / "ev"],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / "ev").exists()
