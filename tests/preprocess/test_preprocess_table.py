"""Preprocessing invariants: fitted on training rows only, plain-JSON parameters, ONNX equal to numpy."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotguard.core.errors import ConfigError, DataError, FeatureMismatchError
from iotguard.preprocess.dedup import deduplicate
from iotguard.preprocess.table import TablePreprocessor


def frame(n: int, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "src_ip": [f"10.0.0.{i % 250}" for i in range(n)],
            "ts_first": np.arange(n, dtype=float) + 1.7e9,
            "flow_duration": rng.exponential(1e5, n) + shift,
            "fwd_bytes": rng.integers(0, 10_000_000, n).astype(float),
            "syn_ratio": rng.random(n),
            "constant": np.full(n, 7.0),
            "proto": rng.choice(["tcp", "udp", "icmp"], n),
            "label": rng.choice(["Benign", "x"], n),
        }
    )


def test_parameters_come_from_training_rows_only():
    train, test = frame(500, seed=1), frame(300, seed=2, shift=5e6)
    pre = TablePreprocessor(log1p=False).fit(train)
    before = json.dumps(pre.to_params())
    out = pre.transform(test)
    assert json.dumps(pre.to_params()) == before  # transforming test rows changes nothing
    col = pre.numeric_.index("flow_duration")
    # min-max bounds are the training extremes, so shifted test rows land far above 1
    assert pre.scaler_.offset_[col] == np.float32(train["flow_duration"].min())
    assert out[:, col].min() > 1.0
    # a fit that did see the test rows would have had other bounds: the assertion above can fail
    leaky = TablePreprocessor(log1p=False).fit(pd.concat([train, test]))
    assert (
        leaky.scaler_.offset_[col] != pre.scaler_.offset_[col]
        or leaky.scaler_.factor_[col] != pre.scaler_.factor_[col]
    )


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(0, 1000))
def test_a_row_encodes_the_same_whatever_else_is_in_the_batch(n_other: int, seed: int):
    train = frame(200, seed=3)
    pre = TablePreprocessor().fit(train)
    row = frame(1, seed=seed)
    others = frame(n_other, seed=seed + 1, shift=float(seed))
    alone = pre.transform(row)
    together = pre.transform(pd.concat([others, row], ignore_index=True))[-1:]
    np.testing.assert_array_equal(alone, together)


def test_identifiers_labels_and_constants_are_dropped():
    pre = TablePreprocessor().fit(frame(100))
    assert pre.features_ == ["flow_duration", "fwd_bytes", "syn_ratio", "proto"]
    assert pre.dropped_ == {
        "labels": ["label"],
        "identifiers": ["src_ip", "ts_first"],
        "constant": ["constant"],
    }
    kept = TablePreprocessor(keep=["ts_first"]).fit(frame(100))
    assert "ts_first" in kept.features_


def test_non_finite_values_are_filled_from_training_statistics():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 10.0, np.inf, np.nan], "b": [0.0, 1, 0, 1, 0, 1]})
    pre = TablePreprocessor(scaler="none", log1p=False).fit(train)
    test = pd.DataFrame({"a": [np.inf, -np.inf, np.nan, 5.0], "b": [0.0, 1, 0, 1]})
    out = pre.transform(test)[:, 0]
    assert out.tolist() == [10.0, 1.0, 2.5, 5.0]  # max, min, median of the finite training values


def test_unknown_category_is_all_zero_not_an_error():
    pre = TablePreprocessor().fit(frame(100))
    test = frame(3)
    test["proto"] = ["tcp", "sctp", None]
    out = pre.transform(test)
    onehot = out[:, -3:]
    assert pre.get_feature_names_out()[-3:].tolist() == ["proto=icmp", "proto=tcp", "proto=udp"]
    assert onehot.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize("scaler", ["minmax", "standard", "robust"])
def test_scalers(scaler: str):
    train = frame(400, seed=5)
    out = TablePreprocessor(scaler=scaler, log1p=False).fit(train).transform(train)[:, :3]
    if scaler == "minmax":
        assert out.min() == 0.0 and out.max() == pytest.approx(1.0, abs=1e-6)
    elif scaler == "standard":
        np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-3)
    else:
        np.testing.assert_allclose(np.median(out, axis=0), 0.0, atol=1e-6)


def test_log1p_auto_picks_heavy_tailed_columns():
    pre = TablePreprocessor().fit(frame(200))
    assert dict(zip(pre.numeric_, pre.log_.mask_.tolist(), strict=True)) == {
        "flow_duration": True,
        "fwd_bytes": True,
        "syn_ratio": False,
    }
    pre = TablePreprocessor(log1p=["syn_ratio"]).fit(frame(200))
    assert pre.log_.mask_.tolist() == [False, False, True]


def test_params_are_json_and_round_trip():
    train, test = frame(300, seed=7), frame(50, seed=8)
    pre = TablePreprocessor(scaler="robust").fit(train)
    text = json.dumps(pre.to_params(), allow_nan=False)
    again = TablePreprocessor.from_params(json.loads(text))
    np.testing.assert_array_equal(again.transform(test), pre.transform(test))


@pytest.mark.parametrize("scaler", ["minmax", "standard", "robust", "none"])
def test_onnx_graph_equals_numpy(scaler: str):
    train, test = frame(300, seed=9), frame(200, seed=10, shift=3e5)
    test.loc[0, "flow_duration"] = np.inf
    test.loc[1, "fwd_bytes"] = -np.inf
    test.loc[2, "syn_ratio"] = np.nan
    test.loc[3, "proto"] = "gre"
    pre = TablePreprocessor(scaler=scaler).fit(train)
    session = ort.InferenceSession(pre.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    numeric, categorical = pre.split(test)
    got = session.run(None, {"x": numeric, "cat": categorical})[0]
    np.testing.assert_allclose(got, pre.transform(test), rtol=1e-5, atol=1e-5)


def test_text_in_a_numeric_column_names_the_cell():
    train = frame(50)
    train["fwd_bytes"] = train["fwd_bytes"].astype(object)
    train.loc[7, "fwd_bytes"] = "lots"
    with pytest.raises(DataError, match=r"row 7 column 'fwd_bytes': text 'lots' in a numeric column"):
        TablePreprocessor().fit(train)


def test_missing_and_unknown_columns_are_named():
    pre = TablePreprocessor().fit(frame(50))
    test = frame(5).drop(columns=["syn_ratio"]).assign(mystery=1.0)
    with pytest.raises(
        FeatureMismatchError, match=r"missing column\(s\) 'syn_ratio'.*unexpected column\(s\) 'mystery'"
    ):
        pre.transform(test)


def test_bad_options_and_empty_input():
    with pytest.raises(ConfigError, match="unknown scaler"):
        TablePreprocessor(scaler="zscore").fit(frame(10))
    with pytest.raises(DataError, match="no rows"):
        TablePreprocessor().fit(frame(0))
    with pytest.raises(DataError, match="no feature column varies"):
        TablePreprocessor().fit(frame(10)[["src_ip", "constant"]])


def test_deduplicate_counts_and_keeps_first():
    table = pd.DataFrame({"a": [1, 1, 2, 2, 3], "b": [0, 0, 0, 0, 1], "label": ["x", "x", "x", "y", "z"]})
    result = deduplicate(table, features=["a", "b"], label="label")
    assert result.removed == 1
    assert result.conflicting == 2  # (2, 0) is labelled both x and y
    assert result.frame["a"].tolist() == [1, 2, 2, 3]
