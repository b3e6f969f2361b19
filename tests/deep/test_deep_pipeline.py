"""Deep models through the zoo, the training pipeline and the artifact the sensor loads."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from iotguard.core.errors import ConfigError, DataError, FeatureMismatchError
from iotguard.evaluate.harness import window_table
from iotguard.evaluate.metrics import binary_metrics
from iotguard.models.artifact import load_artifact, save_artifact
from iotguard.models.base import get, registry
from iotguard.models.deep.windows import WindowBuffer, order_time
from iotguard.models.pipeline import train_model

RECORD = ["mlp", "cnn", "lstm", "cnn-lstm", "mlp-ae", "autoencoder"]
WINDOW = ["lstm-window", "cnn-lstm-window"]
FAST = {"epochs": 5, "batch_size": 128}
FAST_PARAMS = {name: FAST for name in RECORD + WINDOW} | {
    "mlp-ae": {"classifier": FAST, "autoencoder": {"epochs": 10, "batch_size": 128}},
    "autoencoder": {"epochs": 15, "batch_size": 128},
}


def test_registry_holds_the_deep_models():
    models = registry()
    assert set(RECORD + WINDOW) <= set(models)
    assert all(models[n].family == "deep" for n in RECORD + WINDOW)
    assert {models[n].input for n in WINDOW} == {"window"}
    assert models["autoencoder"].kind == "anomaly"
    with pytest.raises(ConfigError, match="binary"):
        get("autoencoder").build(task="multiclass", seed=0)


@pytest.fixture(scope="module")
def trained_nsl(nsl_table):
    cache = {}

    def get_pipeline(name, task="binary"):
        if (name, task) not in cache:
            t = nsl_table
            y = t.train["category"] if task == "multiclass" else t.train["is_attack"]
            cache[(name, task)] = train_model(
                name, t.train[t.features], y, task=task, categorical=t.categorical, params=FAST_PARAMS[name]
            )
        return cache[(name, task)]

    return get_pipeline


@pytest.mark.parametrize("name", RECORD)
def test_artifact_round_trip(name, nsl_table, trained_nsl, tmp_path):
    """Saved and loaded back, the artifact (ONNX, preprocessing fused, no torch) scores like the pipeline."""
    pipeline = trained_nsl(name)
    test = nsl_table.test[nsl_table.features]
    expected = pipeline.predict(test)
    artifact = load_artifact(save_artifact(pipeline, tmp_path / name))
    got = artifact.predict(test)
    np.testing.assert_allclose(got.score, expected.score, atol=1e-5, rtol=0)
    if expected.proba is not None:
        np.testing.assert_allclose(got.proba, expected.proba, atol=1e-5, rtol=0)
    assert artifact.manifest["model"]["family"] == "deep"
    assert artifact.manifest["model"]["hyperparameters"]
    truth = nsl_table.test["is_attack"].to_numpy() == 1
    metrics = binary_metrics(truth, got.is_attack, got.score)
    assert metrics["accuracy"] > max(truth.mean(), 1 - truth.mean()) + 0.3, metrics
    # one flow through the sensor's path: an object row in the artifact's feature order
    one = artifact.predict_array(test[artifact.features].to_numpy(dtype=object)[0])
    assert one.score[0] == pytest.approx(got.score[0], abs=1e-6)


def test_multiclass_deep_model_names_families(nsl_table, trained_nsl):
    pipeline = trained_nsl("cnn", "multiclass")
    assert pipeline.classes == sorted(set(nsl_table.train["category"]))  # Benign, DoS, Probe, R2L (+ U2R)
    prediction = pipeline.predict(nsl_table.test[nsl_table.features])
    assert ((prediction.family == "Benign") == ~prediction.is_attack).all()
    accuracy = (prediction.family == nsl_table.test["category"].to_numpy()).mean()
    assert accuracy > 0.85


def test_artifact_refuses_mismatched_features(nsl_table, trained_nsl, tmp_path):
    artifact = load_artifact(save_artifact(trained_nsl("mlp"), tmp_path / "mlp"))
    test = nsl_table.test[nsl_table.features]
    with pytest.raises(FeatureMismatchError, match="missing column.*'src_bytes'"):
        artifact.predict(test.drop(columns=["src_bytes"]))
    with pytest.raises(FeatureMismatchError, match="unexpected column.*'bogus'"):
        artifact.predict(test.assign(bogus=1.0))
    with pytest.raises(FeatureMismatchError, match=f"rows of {len(artifact.features) + 1} values"):
        artifact.predict_array(np.zeros((2, len(artifact.features) + 1)))


@pytest.fixture(scope="module")
def window_pipeline(cic_table):
    return train_model("lstm-window", cic_table.X, cic_table.y, keys=cic_table.frame, params=FAST | {"k": 8})


def test_window_artifact_matches_pipeline_and_stream(window_pipeline, cic_table, tmp_path):
    table = window_table(cic_table)
    expected = window_pipeline.predict(table)
    artifact = load_artifact(save_artifact(window_pipeline, tmp_path / "win"))
    assert artifact.window == 8 and artifact.manifest["window"]["k"] == 8
    got = artifact.predict(table)
    np.testing.assert_allclose(got.score, expected.score, atol=1e-5, rtol=0)
    truth = cic_table.y == 1
    assert binary_metrics(truth, got.is_attack, got.score)["f1"] > 0.9
    # The sensor: flows arrive in time order, in batches, through a WindowBuffer of raw rows.
    order = np.lexsort((np.arange(len(table)), order_time(table)))
    rows = table[artifact.features].to_numpy(np.float32)
    hosts = table["src_ip"].astype(str).to_numpy()
    buffer = WindowBuffer(artifact.window, len(artifact.features))
    streamed = np.empty(len(table), np.float32)
    for start in range(0, len(order), 97):
        batch = order[start : start + 97]
        streamed[batch] = artifact.predict_array(buffer.windows(list(hosts[batch]), rows[batch])).score
    np.testing.assert_allclose(streamed, got.score, atol=1e-6, rtol=0)


def test_window_model_latency_through_the_harness(window_pipeline, cic_table):
    from iotguard.evaluate.harness import evaluate_model

    table = window_table(cic_table)
    m = evaluate_model(window_pipeline, table, is_attack=cic_table.y, latency_calls=50)
    assert m["latency_p50_us"] > 0 and m["throughput_per_s"] > 0
    assert m["f1"] > 0.9


def test_window_model_needs_host_and_time(window_pipeline, cic_table, tmp_path):
    artifact = load_artifact(save_artifact(window_pipeline, tmp_path / "win"))
    table = window_table(cic_table)
    with pytest.raises(DataError, match="'src_ip'"):
        artifact.predict(table.drop(columns=["src_ip"]))
    with pytest.raises(DataError, match="ts_first"):
        artifact.predict(table.drop(columns=["ts_first"]))
    with pytest.raises(FeatureMismatchError, match=r"shape \(2, 4, .*8 flows"):
        artifact.predict_array(np.zeros((2, 4, len(artifact.features)), np.float32))
    with pytest.raises(DataError, match="'src_ip'"):
        train_model("lstm-window", cic_table.X, cic_table.y, params=FAST)


def test_inference_needs_neither_torch_nor_sklearn(
    nsl_table, trained_nsl, window_pipeline, cic_table, tmp_path
):
    record = save_artifact(trained_nsl("cnn"), tmp_path / "cnn")
    window = save_artifact(window_pipeline, tmp_path / "win")
    nsl_csv, cic_csv = tmp_path / "nsl.csv", tmp_path / "cic.csv"
    nsl_table.test[nsl_table.features].head(50).to_csv(nsl_csv, index=False)
    window_table(cic_table).head(200).to_csv(cic_csv, index=False)
    script = f"""
import sys, pandas as pd
from iotguard.models.artifact import load_artifact
for model, table in [({str(record)!r}, {str(nsl_csv)!r}), ({str(window)!r}, {str(cic_csv)!r})]:
    load_artifact(model).predict(pd.read_csv(table))
heavy = [m for m in ("torch", "sklearn", "onnx") if m in sys.modules]
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
