"""Deep classifiers and the autoencoder: they learn, they are reproducible, and ONNX says what torch says."""

from __future__ import annotations

import numpy as np
import pytest

onnxruntime = pytest.importorskip("onnxruntime")

from iotguard.core.errors import DataError, FeatureMismatchError  # noqa: E402
from iotguard.models.deep.autoencoder import DeepAutoencoder  # noqa: E402
from iotguard.models.deep.classifier import DeepClassifier  # noqa: E402

RECORD_ARCHS = ["mlp", "cnn", "lstm", "cnn_lstm"]
WINDOW_ARCHS = ["lstm_window", "cnn_lstm_window"]


def run_onnx(model, X):
    session = onnxruntime.InferenceSession(
        model.to_onnx(X.shape[-1]).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"x": X})


@pytest.mark.parametrize("arch", RECORD_ARCHS)
def test_classifier_learns_nsl_kdd_slice(arch, nsl_slice):
    X, y, X_test, y_test = nsl_slice
    model = DeepClassifier(arch, epochs=6, patience=6, batch_size=128, seed=0).fit(X, y)
    history = model.history_
    assert history.train_loss[-1] < 0.6 * history.train_loss[0]  # the loss falls
    accuracy = (model.predict(X_test).astype(int) == y_test).mean()
    majority = max(y_test.mean(), 1 - y_test.mean())
    assert accuracy > majority + 0.3  # far above the trivial baseline (~0.53)
    assert accuracy > 0.9


@pytest.mark.parametrize("arch", WINDOW_ARCHS)
def test_window_classifier_uses_earlier_flows(arch):
    """The label depends on the host's previous flow, which only a window model can see."""
    from iotguard.models.deep.windows import build_windows

    rng = np.random.default_rng(5)
    n, k = 6000, 4
    host = rng.integers(0, 20, n)
    time = np.arange(n, dtype=float)
    X = rng.random((n, 3), dtype=np.float32)
    previous = build_windows(X, host, time, 2)[:, 0, 0]  # feature 0 of the host's previous flow (0 if none)
    y = (previous > 0.5).astype(int)
    windows = build_windows(X, host, time, k)
    model = DeepClassifier(arch, k=k, epochs=20, lr=3e-3, seed=0).fit(windows[:4000], y[:4000])
    accuracy = (model.predict(windows[4000:]).astype(int) == y[4000:]).mean()
    assert model.history_.train_loss[-1] < model.history_.train_loss[0]
    assert accuracy > 0.9  # a per-record model is at chance (~0.5) here


@pytest.mark.parametrize("arch", RECORD_ARCHS + WINDOW_ARCHS)
def test_onnx_equals_torch(arch, synthetic):
    X, y = synthetic
    if arch in WINDOW_ARCHS:
        X = X.reshape(-1, 4, X.shape[1])[:, :, :6].copy()  # [500, 4, 6] windows
        y = y[::4]
        model = DeepClassifier(arch, k=4, epochs=2, seed=0).fit(X, y)
    else:
        model = DeepClassifier(arch, epochs=2, seed=0).fit(X, y)
    score, proba = run_onnx(model, X)
    assert score.shape == (len(X),) and proba.shape == (len(X), 2)
    np.testing.assert_allclose(score, model.attack_score(X), atol=1e-5, rtol=0)
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5, rtol=0)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_autoencoder_onnx_equals_torch(synthetic):
    X, _ = synthetic
    model = DeepAutoencoder(epochs=3, seed=0).fit(X)
    (score,) = run_onnx(model, X)
    np.testing.assert_allclose(score, model.attack_score(X), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["mlp", "lstm"])
def test_same_seed_same_numbers(arch, synthetic):
    X, y = synthetic
    a = DeepClassifier(arch, epochs=3, seed=11).fit(X, y)
    b = DeepClassifier(arch, epochs=3, seed=11).fit(X, y)
    c = DeepClassifier(arch, epochs=3, seed=12).fit(X, y)
    assert a.history_.val_loss == b.history_.val_loss
    np.testing.assert_array_equal(a.attack_score(X), b.attack_score(X))
    assert not np.array_equal(a.attack_score(X), c.attack_score(X))


def test_autoencoder_same_seed_same_threshold(synthetic):
    X, _ = synthetic
    a, b = (DeepAutoencoder(epochs=3, seed=4).fit(X) for _ in range(2))
    assert a.threshold_ == b.threshold_
    np.testing.assert_array_equal(a.attack_score(X), b.attack_score(X))


def test_training_does_not_disturb_the_global_rng(synthetic):
    import torch

    X, y = synthetic
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DeepClassifier("mlp", epochs=1).fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_autoencoder_threshold_and_detection(nsl_slice):
    """Trained on benign rows only; the threshold holds the FPR near its target on unseen benign rows."""
    X, y, X_test, y_test = nsl_slice
    model = DeepAutoencoder(epochs=30, seed=0, target_fpr=0.05).fit(X, y)
    assert model.history_.train_loss[-1] < model.history_.train_loss[0]
    assert model.holdout_fpr_ <= 0.05
    flagged = model.predict(X_test)
    fpr = flagged[y_test == 0].mean()
    detection = flagged[y_test == 1].mean()
    assert fpr < 0.12  # target 5 %, on different rows
    assert detection > 0.6  # attacks reconstruct worse than benign traffic
    assert detection > 3 * fpr


def test_autoencoder_ignores_attack_rows(synthetic):
    X, _ = synthetic
    labels = np.zeros(len(X), dtype=int)
    noisy = np.vstack([X, np.full((200, X.shape[1]), 50.0, dtype=np.float32)])
    with_attacks = DeepAutoencoder(epochs=2, seed=0).fit(noisy, np.r_[labels, np.ones(200, int)])
    without = DeepAutoencoder(epochs=2, seed=0).fit(X)
    assert with_attacks.threshold_ == without.threshold_


def test_class_weights_help_the_rare_class():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4000, 8)).astype(np.float32)
    y = ((X[:, 0] > 1.6) & (X[:, 1] > -0.5)).astype(int)  # ~4 % positives
    weighted = DeepClassifier("mlp", epochs=8, seed=0).fit(X, y)
    plain = DeepClassifier("mlp", epochs=8, seed=0, class_weight=None).fit(X, y)
    recall_w = weighted.predict(X)[y == 1].astype(int).mean()
    recall_p = plain.predict(X)[y == 1].astype(int).mean()
    assert recall_w > recall_p


def test_multiclass_names_and_benign(synthetic):
    X, y = synthetic
    labels = np.where(y == 1, np.where(X[:, 3] > 0.5, "DoS", "PortScan"), "Benign")
    model = DeepClassifier("mlp", task="multiclass", epochs=3).fit(X, labels)
    assert list(model.classes_) == ["Benign", "DoS", "PortScan"]
    assert model.benign_class_ == "Benign"
    proba = model.predict_proba(X)
    np.testing.assert_allclose(model.attack_score(X), 1 - proba[:, 0], atol=1e-6)
    assert set(model.predict(X)) <= {"Benign", "DoS", "PortScan"}


def test_feature_mismatch_is_a_clear_error(synthetic):
    X, y = synthetic
    model = DeepClassifier("mlp", epochs=1).fit(X, y)
    with pytest.raises(FeatureMismatchError, match="25 features but the model was trained on 24"):
        model.attack_score(np.zeros((3, 25), np.float32))
    with pytest.raises(DataError, match="shape"):
        model.attack_score(np.zeros((3, 4, 24), np.float32))
    with pytest.raises(DataError, match="NaN"):
        model.attack_score(np.full((1, 24), np.nan, np.float32))
    ae = DeepAutoencoder(epochs=1).fit(X)
    with pytest.raises(FeatureMismatchError):
        ae.attack_score(np.zeros((3, 23), np.float32))


def test_bad_training_labels():
    X = np.zeros((20, 3), np.float32)
    with pytest.raises(DataError, match="one class"):
        DeepClassifier("mlp").fit(X, np.zeros(20))
    with pytest.raises(DataError, match="benign"):
        DeepClassifier("mlp").fit(X, np.array(["DoS", "PortScan"] * 10))
    with pytest.raises(DataError, match="rows"):
        DeepClassifier("mlp").fit(X, np.zeros(19))


def test_empty_input_scores_nothing(synthetic):
    X, y = synthetic
    model = DeepClassifier("cnn", epochs=1).fit(X, y)
    assert model.attack_score(X[:0]).shape == (0,)
    assert model.predict_proba(X[:0]).shape == (0, 2)


def test_hybrid_flags_what_either_part_flags(nsl_slice):
    from iotguard.models.deep.hybrid import DeepHybrid

    X, y, X_test, _ = nsl_slice
    labels = np.where(y == 1, "Attack", "Benign")
    model = DeepHybrid("mlp", classifier={"epochs": 4}, autoencoder={"epochs": 10}, seed=0).fit(X, labels)
    score = model.attack_score(X_test)
    p_attack = model.classifier.attack_score(X_test)
    error = model.autoencoder.attack_score(X_test)
    np.testing.assert_allclose(
        score, np.maximum(p_attack, error / (error + model.autoencoder.threshold_)), atol=1e-6
    )
    np.testing.assert_array_equal(score > 0.5, (p_attack > 0.5) | (error > model.autoencoder.threshold_))
    (onnx_score, onnx_proba) = run_onnx(model, X_test)
    np.testing.assert_allclose(onnx_score, score, atol=1e-5, rtol=0)
    np.testing.assert_allclose(onnx_proba, model.predict_proba(X_test), atol=1e-5, rtol=0)
    np.testing.assert_allclose(onnx_proba.sum(axis=1), 1, atol=1e-5)
