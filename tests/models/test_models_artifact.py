"""Artifacts: ONNX equals the in-memory pipeline, tampering is refused, wrong columns are named."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from iotguard.core.errors import ArtifactError, FeatureMismatchError
from iotguard.models.artifact import FORMAT_VERSION, _manifest_digest, load_artifact, save_artifact

ALL = ["lr", "svm", "rbf-svm", "rf", "lgbm", "kmeans-clf", "kmeans", "iforest", "knn"]


@pytest.mark.parametrize(
    ("name", "task"),
    [(n, "binary") for n in ALL] + [(n, "multiclass") for n in ("lr", "rf", "lgbm", "rbf-svm")],
)
def test_round_trip_matches_the_in_memory_pipeline(name, task, nsl_slice, trained, tmp_path):
    pipeline = trained(name, task)
    test = nsl_slice.test
    path = save_artifact(pipeline, tmp_path / ("m.zip" if name == "rf" else "m"))
    artifact = load_artifact(path)
    expected = pipeline.predict(test[nsl_slice.features])
    got = artifact.predict(test)  # the full table: label and difficulty columns are known and ignored
    np.testing.assert_allclose(got.score, expected.score, atol=1e-5)
    assert (got.is_attack == expected.is_attack).mean() > 0.999  # only float ties at the threshold may differ
    if expected.proba is not None:
        np.testing.assert_allclose(got.proba, expected.proba, atol=1e-5)
    # the sensor's path: one row, array in the artifact's feature order, no pandas
    rows = test[artifact.features].to_numpy(dtype=object)
    for i in range(0, 40, 7):
        one = artifact.predict_array(rows[i])
        assert one.score[0] == pytest.approx(got.score[i], abs=1e-6)
        if task == "multiclass":
            assert one.family[0] == got.family[i]


def test_manifest_says_what_the_model_is(trained, tmp_path):
    pipeline = trained("rf")
    path = save_artifact(pipeline, tmp_path / "rf", metrics={"KDDTest+": {"accuracy": 0.9}})
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"]["name"] == "rf" and manifest["model"]["kind"] == "classifier"
    assert manifest["inputs"]["features"] == pipeline.features
    assert manifest["inputs"]["vocabularies"]["protocol_type"] == ["icmp", "tcp", "udp"]
    assert manifest["classes"] == ["Attack", "Benign"] and manifest["benign_class"] == "Benign"
    assert manifest["threshold"]["rule"] == "target_fpr" and manifest["threshold"]["target_fpr"] == 0.01
    assert manifest["training"]["fingerprint"].startswith("sha256:")
    assert manifest["metrics"] == {"KDDTest+": {"accuracy": 0.9}}
    onnx_bytes = (path / "model.onnx").read_bytes()
    assert manifest["files"] == {"model.onnx": hashlib.sha256(onnx_bytes).hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rf"]  # no temporary leftovers


def test_save_refuses_to_overwrite_and_leaves_nothing_on_failure(trained, tmp_path, monkeypatch):
    pipeline = trained("lr")
    save_artifact(pipeline, tmp_path / "a")
    with pytest.raises(ArtifactError, match="already exists"):
        save_artifact(pipeline, tmp_path / "a")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("iotguard.models.artifact.build_manifest", boom)
    with pytest.raises(RuntimeError):
        save_artifact(pipeline, tmp_path / "b")
    with pytest.raises(RuntimeError):
        save_artifact(pipeline, tmp_path / "a", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    load_artifact(tmp_path / "a")  # the old artifact is intact


@pytest.fixture
def artifact_dir(trained, tmp_path) -> Path:
    return save_artifact(trained("lr"), tmp_path / "lr")


def test_edited_manifest_is_refused(artifact_dir):
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    manifest["threshold"]["value"] = 0.99
    (artifact_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="modified after the artifact was written"):
        load_artifact(artifact_dir)


def test_edited_onnx_is_refused(artifact_dir):
    data = bytearray((artifact_dir / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (artifact_dir / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 of 'model.onnx' does not match"):
        load_artifact(artifact_dir)


def test_missing_file_is_refused(artifact_dir):
    (artifact_dir / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match="'model.onnx' is missing"):
        load_artifact(artifact_dir)


def test_unknown_format_version_is_refused(artifact_dir):
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    manifest["format_version"] = 99
    manifest["manifest_sha256"] = _manifest_digest(manifest)  # a consistent manifest of a future format
    (artifact_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="unknown format version 99"):
        load_artifact(artifact_dir)


def test_not_an_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="no model artifact here"):
        load_artifact(tmp_path / "nothing")
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path / "x.zip")
    with zipfile.ZipFile(tmp_path / "y.zip", "w") as zf:
        zf.writestr("manifest.json", "{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(tmp_path / "y.zip")


def test_feature_mismatch_names_the_columns(artifact_dir, nsl_slice):
    artifact = load_artifact(artifact_dir)
    table = nsl_slice.test.drop(columns=["src_bytes", "flag"]).assign(bogus=1)
    with pytest.raises(
        FeatureMismatchError, match=r"2 missing column\(s\) 'flag', 'src_bytes'.*'bogus'"
    ) as info:
        artifact.predict(table, where="flows.csv")
    assert str(info.value).startswith("flows.csv: ")
    with pytest.raises(
        FeatureMismatchError, match=rf"rows of 3 values \(expected {len(artifact.features)} features"
    ):
        artifact.predict_array(np.zeros(3))


def test_text_in_a_numeric_column_names_line_and_column(artifact_dir, nsl_slice):
    from iotguard.core.errors import DataError

    artifact = load_artifact(artifact_dir)
    table = nsl_slice.test.head(10).copy()
    table["src_bytes"] = table["src_bytes"].astype(object)
    table.loc[4, "src_bytes"] = "12kB"
    with pytest.raises(DataError, match=r"flows.csv:6 column 'src_bytes': text '12kB' in a numeric column"):
        artifact.predict(table, where="flows.csv", first_line=2)


def test_inference_needs_neither_sklearn_nor_torch(artifact_dir, nsl_slice, tmp_path):
    rows = tmp_path / "rows.csv"
    nsl_slice.test.head(20).to_csv(rows, index=False)
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from iotguard.models.artifact import load_artifact\n"
        f"a = load_artifact({str(artifact_dir)!r})\n"
        f"t = pd.read_csv({str(rows)!r})\n"
        "p = a.predict(t); a.predict_array(t[a.features].to_numpy(dtype=object)[0])\n"
        "heavy = sorted(m for m in ('sklearn', 'torch', 'lightgbm', 'onnx', 'skl2onnx') if m in sys.modules)\n"
        "print(heavy, len(p))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] 20"
