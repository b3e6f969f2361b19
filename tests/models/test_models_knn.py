"""The k-NN distance detector: benign-only fitting, a benign-only choice of k, a bounded reference set,
ONNX parity for every k, no pickle in its artifact, and the same numbers for the same seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iotguard.core.errors import ConfigError, DataError
from iotguard.models.artifact import load_artifact, save_artifact
from iotguard.models.neighbors import KNNDistanceModel
from iotguard.models.pipeline import train_model


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Benign rows in two clusters of different spread and scale, and attack rows off both clusters."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (600, 6)) * [1, 1, 1, 100, 100, 0.01]
    b = rng.normal(5.0, 0.3, (400, 6)) * [1, 1, 1, 100, 100, 0.01]
    benign = np.vstack([a, b])
    attack = rng.normal(2.5, 0.3, (200, 6)) * [1, 1, 1, 100, 100, 0.01]
    return benign.astype(np.float32), attack.astype(np.float32), rng.permutation(len(benign))


def test_fits_on_benign_rows_only_and_beats_a_trivial_baseline():
    benign, attack, order = blobs()
    X = np.vstack([benign[order[:800]], attack])
    y = np.array(["Benign"] * 800 + ["Attack"] * 200)
    val = (benign[order[800:]], np.array(["Benign"] * 200))
    model = KNNDistanceModel(seed=0).fit(X, y, validation=val)
    assert model.hyperparameters["benign_rows"] == 800  # the attack rows were not learned
    assert len(model.reference_) == 800
    normal, odd = model.attack_score(benign[order[800:]]), model.attack_score(attack)
    assert normal.dtype == np.float32 and normal.shape == (200,)
    assert np.mean(odd > np.quantile(normal, 0.99)) > 0.95  # a constant score would flag none or all


@pytest.mark.parametrize("scaling", [None, "auto"])
def test_k_and_scale_are_chosen_on_benign_rows_only(scaling):
    benign, attack, order = blobs()
    X, y = benign[order[:800]], np.array(["Benign"] * 800)
    val = benign[order[800:]]
    options = {} if scaling is None else {"scaling": scaling}
    fitted = KNNDistanceModel(seed=0, **options).fit(X, y, validation=(val, np.array(["Benign"] * 200)))
    # the validation set with attacks added: attack rows play no part in the choice
    with_attacks = (np.vstack([val, attack]), np.array(["Benign"] * 200 + ["Attack"] * 200))
    again = KNNDistanceModel(seed=0, **options).fit(X, y, validation=with_attacks)
    assert (fitted.k_, fitted.scaling_) == (again.k_, again.scaling_)
    candidates = {"both"} if scaling is None else {"standard", "rank", "both"}
    assert fitted.k_ in (1, 2, 3, 5, 10) and fitted.scaling_ in candidates
    selection = fitted.hyperparameters["selection"]
    assert selection["rule"].startswith("most synthetic anomalies")
    assert set(selection["flagged"]) == candidates
    assert all(set(v) == {"1", "2", "3", "5", "10"} for v in selection["flagged"].values())
    best = max(v for shares in selection["flagged"].values() for v in shares.values())
    assert selection["flagged"][fitted.scaling_][str(fitted.k_)] == best
    assert selection == again.hyperparameters["selection"]


def test_fixed_choices_and_defaults_without_validation():
    benign, attack, order = blobs()
    X, y = benign[order[:800]], np.array(["Benign"] * 800)
    with_attacks = (np.vstack([benign[order[800:]], attack]), np.array(["Benign"] * 200 + ["Attack"] * 200))
    fixed = KNNDistanceModel(seed=0, k=4, scaling="rank").fit(X, y, validation=with_attacks)
    assert (fixed.k_, fixed.scaling_) == (4, "rank")
    default = KNNDistanceModel(seed=0).fit(X, y)  # no validation rows: no thresholds to combine two scales
    assert (default.k_, default.scaling_) == (1, "standard")


def test_rank_scaling_bounds_each_feature():
    benign, attack, _ = blobs()
    model = KNNDistanceModel(seed=0, scaling="rank").fit(benign)
    ranks = model._scale(np.vstack([benign, attack, benign * 1e6]), "rank")
    assert ranks.min() >= 0.0 and ranks.max() <= 1.0
    assert model._scale(benign.max(axis=0, keepdims=True) + 1, "rank").tolist() == [[1.0] * 6]


def test_both_scales_flag_what_either_flags():
    benign, attack, order = blobs()
    fit, val = benign[order[:800]], (benign[order[800:]], np.array(["Benign"] * 200))
    both = KNNDistanceModel(seed=0, scaling="both").fit(fit, validation=val)
    parts = [
        KNNDistanceModel(seed=0, scaling=s, k=both.k_).fit(fit, validation=val) for s in ("standard", "rank")
    ]
    divisors = both.hyperparameters["divisors"]
    assert len(divisors) == 2 and min(divisors) > 0
    expected = np.maximum(*(p.attack_score(attack) / d for p, d in zip(parts, divisors, strict=True)))
    np.testing.assert_allclose(both.attack_score(attack), expected, rtol=1e-6)


def test_reference_set_is_bounded_and_seeded():
    benign, _, _ = blobs()
    a = KNNDistanceModel(seed=3, max_reference=100).fit(benign)
    b = KNNDistanceModel(seed=3, max_reference=100).fit(benign)
    c = KNNDistanceModel(seed=4, max_reference=100).fit(benign)
    assert a.reference_.shape == (100, 6)
    np.testing.assert_array_equal(a.reference_, b.reference_)
    assert not np.array_equal(a.reference_, c.reference_)


@pytest.mark.parametrize(
    ("k", "scaling"), [(1, "standard"), (3, "standard"), (1, "rank"), (2, "rank"), (1, "both"), (3, "both")]
)
@pytest.mark.parametrize("discrete", [False, True])
def test_onnx_graph_equals_numpy(k, scaling, discrete):
    import onnxruntime as ort

    benign, attack, order = blobs()
    if discrete:  # flag counts and ports: many rows exactly on a quantile, where ranks tie
        benign, attack = np.round(benign / 50), np.round(attack / 50)
    fit, val = benign[order[:800]], (benign[order[800:]], np.array(["Benign"] * 200))
    model = KNNDistanceModel(seed=0, k=k, scaling=scaling, max_reference=300).fit(fit, validation=val)
    session = ort.InferenceSession(model.to_onnx(6).SerializeToString(), providers=["CPUExecutionProvider"])
    rows = np.vstack([benign[:50], attack[:50]])
    (got,) = session.run(["score"], {"x": rows})
    np.testing.assert_allclose(got, model.attack_score(rows), rtol=1e-6, atol=1e-6)


def test_bad_options_and_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown knn option"):
        KNNDistanceModel(neighbours=3)
    with pytest.raises(ConfigError, match="whole numbers"):
        KNNDistanceModel(k=0)
    with pytest.raises(DataError, match="at least 20"):
        KNNDistanceModel(scaling="both").fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(ConfigError, match="auto, standard, rank or both"):
        KNNDistanceModel(scaling="minmax")
    with pytest.raises(ConfigError, match="binary"):
        KNNDistanceModel(task="multiclass")
    with pytest.raises(DataError, match="benign training row"):
        KNNDistanceModel().fit(np.zeros((5, 3)), np.array(["Attack"] * 5))
    model = KNNDistanceModel().fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(DataError, match=r"\[N, 3\]"):
        model.attack_score(np.zeros((2, 4)))


def test_artifact_round_trip_without_pickles_and_same_seed_same_numbers(nsl_slice, tmp_path):
    s = nsl_slice
    runs = [
        train_model("knn", s.train[s.features], s.train["is_attack"], categorical=s.categorical, seed=5)
        for _ in range(2)
    ]
    first = runs[0].predict(s.test[s.features])
    np.testing.assert_array_equal(first.score, runs[1].predict(s.test[s.features]).score)
    assert runs[0].threshold == runs[1].threshold
    path = save_artifact(runs[0], tmp_path / "knn")
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.onnx"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"]["name"] == "knn"
    assert 16 <= manifest["batch_rows"] < 65_536  # the artifact scores big tables in bounded calls
    artifact = load_artifact(path)
    whole = artifact.predict(s.test).score
    np.testing.assert_allclose(whole, first.score, rtol=1e-5, atol=1e-5)
    artifact.batch_rows = 7  # many small onnxruntime calls give the same scores, by table or by array
    np.testing.assert_array_equal(artifact.predict(s.test).score, whole)
    rows = s.test[artifact.features].to_numpy(dtype=object)
    np.testing.assert_array_equal(artifact.predict_array(rows).score, whole)


def test_keys_skip_the_reference_rows_that_share_one_and_bad_keys_are_clear_errors():
    """knn's keys: a row scored while fitting skips reference rows sharing a key (leave-one-out is 'each row
    its own key'); here rows come in identical pairs that share a key, so each is scored without its twin."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 4))
    X = np.repeat(base, 2, axis=0)
    keys = np.repeat(np.arange(200), 2)
    twins = KNNDistanceModel(k=1, scaling="standard").fit(X, keys=keys)
    plain = KNNDistanceModel(k=1, scaling="standard").fit(X)
    assert (plain.calibration_scores_ < 1e-6).all()  # each row's twin is at distance 0
    scaled = (base - twins.mean_) * twins.inv_std_
    d = np.sqrt(((scaled[:, None] - scaled[None]) ** 2).sum(axis=2)) + np.diag(np.full(200, np.inf))
    np.testing.assert_allclose(twins.calibration_scores_, np.repeat(d.min(axis=1), 2), rtol=1e-6)
    with pytest.raises(DataError, match="knn keys"):
        KNNDistanceModel(k=1).fit(X, keys=np.zeros((3, 1), np.int64))
