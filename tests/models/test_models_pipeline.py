"""train_model on canonical flow tables, label encodings, the FPR threshold rule, the data fingerprint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.schema import FLOW_FEATURES, IDENTITY_COLUMNS
from iotguard.models.pipeline import encode_labels, fingerprint, fpr_threshold, stratified_split, train_model


def flow_table(n: int, seed: int = 0) -> pd.DataFrame:
    """Canonical flow records: benign web-ish flows, SYN floods and port scans, with identity columns."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["Benign", "DoS", "PortScan"], n, p=[0.6, 0.25, 0.15])
    frame = pd.DataFrame(0.0, index=range(n), columns=list(FLOW_FEATURES))
    for column in ("flow_duration", "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "flow_iat_mean"):
        frame[column] = rng.lognormal(3, 1, n)
    frame["syn_flag_count"] = rng.integers(0, 3, n)
    frame["flow_packets_per_s"] = rng.lognormal(2, 1, n)
    dos, scan = kind == "DoS", kind == "PortScan"
    frame.loc[dos, "syn_flag_count"] = rng.integers(50, 500, dos.sum())
    frame.loc[dos, "flow_packets_per_s"] = np.inf  # zero-duration floods, as CICFlowMeter writes them
    frame.loc[scan, "dst_port"] = rng.integers(1, 65535, scan.sum())
    frame.loc[scan, "fwd_packets"] = 1
    frame.loc[~scan, "dst_port"] = rng.choice([80, 443, 1883], (~scan).sum())
    frame.loc[~dos, "flow_bytes_per_s"] = rng.exponential(1e4, (~dos).sum())
    frame["flow_id"] = np.arange(n)
    frame["src_ip"] = [f"10.0.0.{i % 200}" for i in range(n)]
    frame["dst_ip"] = "10.0.1.1"
    frame["src_port"] = rng.integers(1024, 65535, n)
    frame["ts_first"] = 1.7e9 + np.arange(n)
    frame["ts_last"] = frame["ts_first"] + 1
    frame["category"] = kind
    frame["label"] = kind
    frame["is_attack"] = (kind != "Benign").astype(np.int8)
    return frame


@pytest.mark.parametrize(
    ("name", "floor"),
    [("lr", 0.95), ("rf", 0.95), ("lgbm", 0.95), ("iforest", 0.8), ("kmeans", 0.8), ("knn", 0.8)],
)
def test_trains_on_canonical_flow_tables(name, floor):
    train, test = flow_table(1500, seed=1), flow_table(500, seed=2)
    task = "binary" if name in ("iforest", "kmeans", "knn") else "multiclass"
    y = train["is_attack"] if task == "binary" else train["category"]
    pipeline = train_model(name, train, y, task=task, seed=0)  # identity and label columns are dropped
    assert not set(pipeline.features) & (set(IDENTITY_COLUMNS) - {"dst_port", "protocol"})
    assert not {"label", "category", "is_attack"} & set(pipeline.features)
    prediction = pipeline.predict(test)
    accuracy = (prediction.is_attack == test["is_attack"].to_numpy().astype(bool)).mean()
    assert accuracy > floor  # the majority baseline is 0.6


def test_label_encodings():
    assert encode_labels([0, 1, 1], "binary").tolist() == ["Benign", "Attack", "Attack"]
    assert encode_labels(np.array([True, False]), "binary").tolist() == ["Attack", "Benign"]
    assert encode_labels(pd.Series(["Benign", "DoS"]), "binary").tolist() == ["Benign", "Attack"]
    assert encode_labels(["Benign", "DoS"], "multiclass").tolist() == ["Benign", "DoS"]
    with pytest.raises(DataError, match="0 or 1"):
        encode_labels([0, 2], "binary")
    with pytest.raises(DataError, match="missing labels"):
        encode_labels(["Benign", None], "multiclass")


def test_bad_training_requests():
    table = flow_table(200)
    with pytest.raises(DataError, match="3 labels for 200 rows"):
        train_model("lr", table, [0, 1, 0])
    with pytest.raises(ConfigError, match="unknown task"):
        train_model("lr", table, table["is_attack"], task="regression")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no benign"):
        train_model(
            "rf", table[table.is_attack == 1], table.loc[table.is_attack == 1, "category"], task="multiclass"
        )
    with pytest.raises(DataError, match="one class only"):
        train_model("rf", table[table.is_attack == 0], table.loc[table.is_attack == 0, "is_attack"])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1, width=32), min_size=1, max_size=300),
    st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.3]),
)
def test_fpr_threshold_keeps_the_budget_and_is_the_lowest_such(scores, target):
    scores = np.asarray(scores, dtype=np.float32)
    threshold, achieved = fpr_threshold(scores, target)
    assert achieved == pytest.approx(float(np.mean(scores >= np.float32(threshold))))
    assert achieved <= target + 1e-12
    # any benign score at or below the threshold that we could have allowed would break the budget
    below = scores[scores < np.float32(threshold)]
    if len(below):
        assert np.mean(scores >= below.max()) > target


def test_stratified_split_is_disjoint_and_keeps_every_class():
    labels = np.array(["a"] * 50 + ["b"] * 10 + ["c"])
    fit, val = stratified_split(labels, 0.2, seed=0)
    assert not set(fit) & set(val) and len(fit) + len(val) == len(labels)
    assert sorted(labels[val].tolist()) == ["a"] * 10 + ["b"] * 2
    assert "c" in labels[fit]


def test_fingerprint_follows_the_data():
    table = flow_table(100)
    labels = table["category"].to_numpy()
    features = list(FLOW_FEATURES[:5])
    first = fingerprint(table, features, labels)
    assert first == fingerprint(table.copy(), features, labels)
    changed = table.copy()
    changed.loc[3, features[0]] += 1
    assert fingerprint(changed, features, labels) != first
    assert fingerprint(table, features, labels[::-1]) != first


def test_threshold_falls_back_when_the_budget_flags_nothing():
    from iotguard.models.pipeline import choose_threshold

    # 3 % of benign rows look exactly like the attacks: a 1 % budget would flag no attack at all
    benign = np.concatenate([np.zeros(97), np.ones(3)]).astype(np.float32)
    attacks = np.concatenate([np.ones(50), np.full(50, 0.5)]).astype(np.float32)
    info = choose_threshold(benign, attacks, 0.01)
    assert info["target_met"] is False
    assert 0.5 < info["value"] <= 1.0
    assert info["validation_fpr"] == pytest.approx(0.03) and info["validation_recall"] == pytest.approx(0.5)
    # when the budget is reachable the plain rule holds and says nothing about it
    normal = choose_threshold(benign, attacks, 0.05)
    assert "target_met" not in normal and normal["value"] < 1.0 and normal["validation_recall"] == 1.0
