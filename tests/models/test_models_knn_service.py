"""``knn``'s service identity (``dst_port``/``protocol`` compared as identities, not magnitudes) and its
leave-one-out calibration: real behaviour on flow tables, ONNX == numpy, the fallback without a port column,
same seed same numbers, clear errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.schema import FLOW_FEATURES
from iotguard.models.artifact import load_artifact, save_artifact
from iotguard.models.neighbors import KNNDistanceModel
from iotguard.models.pipeline import encode_labels, fpr_threshold, stratified_split, train_model
from iotguard.preprocess.onnx_graph import DOUBLE, FLOAT, INT64, GraphBuilder, chain

STATS = ("flow_duration", "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "flow_iat_mean")


def services_table(n: int, seed: int = 0, ports: tuple[int, ...] = (53, 80, 443, 22)) -> pd.DataFrame:
    """Benign canonical flows to a few services; each service has its own typical sizes."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(0.0, index=range(n), columns=list(FLOW_FEATURES))
    port = rng.choice(ports, n)
    frame["dst_port"] = port
    frame["protocol"] = np.where(port == 53, 17, 6)
    size = np.where(port == 53, 1.0, np.where(port == 443, 6.0, 4.0))
    for column in STATS:
        frame[column] = rng.lognormal(size, 0.3, n)
    frame["is_attack"] = 0
    return frame


def train(table: pd.DataFrame, **params: object):
    return train_model("knn", table.drop(columns="is_attack"), table["is_attack"], seed=0, params=params)


def test_a_flow_to_a_service_benign_never_used_scores_above_the_same_flow_to_a_known_one():
    pipeline = train(services_table(2000))
    service = pipeline.training["hyperparameters"]["service"]
    assert service["columns"] == ["dst_port", "protocol"] and service["known_services"] == 4
    known = services_table(300, seed=1).drop(columns="is_attack")
    unseen = known.assign(dst_port=8080)  # the same statistics, a service no benign flow used
    before, after = pipeline.predict(known), pipeline.predict(unseen)
    assert (after.score > before.score).all()
    assert after.is_attack.all()  # above every benign calibration flow to a known service
    assert before.is_attack.mean() < 0.05
    # UDP to 443: both values are benign, the pair is not
    assert pipeline.predict(known[known.dst_port == 443].assign(protocol=17)).is_attack.all()


def test_a_flow_is_compared_with_its_own_service_only():
    table = services_table(2000)
    flows = services_table(300, seed=1).drop(columns="is_attack")
    as_dns = flows[flows.dst_port == 443].assign(dst_port=53, protocol=17)  # HTTPS-sized flows to DNS
    pipeline = train(table, scaling="standard", k=1)
    model = pipeline.model
    assert pipeline.predict(as_dns).is_attack.mean() > 0.95
    x = pipeline.transform(as_dns).astype(np.float64)
    scaled = (x - model.mean_) * model.inv_std_
    d = np.sqrt(((scaled[:, None, :] - model.reference_[None, :, :]) ** 2).sum(axis=2))
    dns = model.reference_service_ == model._service_ids(x)[0]
    assert 0 < dns.sum() < len(dns)
    np.testing.assert_allclose(model.attack_score(x), d[:, dns].min(axis=1), rtol=1e-5)
    assert (d[:, dns].min(axis=1) > d.min(axis=1)).all()  # nearer HTTPS flows exist; they do not count


def test_artifact_onnx_equals_numpy_and_same_seed_same_numbers(tmp_path):
    table = services_table(1500)
    rows = services_table(400, seed=2).drop(columns="is_attack")
    rows.loc[::7, "dst_port"] = 8080
    rows.loc[::11, "protocol"] = 1
    rows.loc[::13, "dst_port"] = 65535
    first, second = train(table), train(table)
    expected = first.predict(rows).score
    np.testing.assert_array_equal(expected, second.predict(rows).score)
    assert first.threshold == second.threshold
    path = save_artifact(first, tmp_path / "knn")
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.onnx"]
    artifact = load_artifact(path)
    np.testing.assert_allclose(artifact.predict(rows).score, expected, rtol=1e-5, atol=1e-5)
    assert (expected[::7] >= first.model.unseen_offset_).all()


@pytest.mark.parametrize("ports", [(53, 80, 443, 22), (0, 53, 123, 443, 8080, 49152, 65534), (53, 443)])
def test_every_port_finds_its_benign_service_in_the_graph_as_in_numpy(ports):
    """All 65,536 ports through the float32 preprocessing (numpy vs ONNX): a benign port is its own
    service, every other port is unseen, whatever the min-max range of the benign ports."""
    pipeline = train(services_table(600, ports=ports))
    model, pre = pipeline.model, pipeline.preprocessor
    probe = pd.DataFrame(0.0, index=range(65536), columns=pre.features_)
    probe["dst_port"] = np.arange(65536)
    probe["protocol"] = np.where(np.isin(probe["dst_port"], [53]), 17, 6)
    numpy_ids = model._service_ids(pre.transform(probe).astype(np.float64))
    g = GraphBuilder("ids")
    x = g.input("x", FLOAT, [None, pre.n_features_out_])
    g.output("ids", model._onnx_service_ids(g, g.op("Cast", x, to=DOUBLE)), INT64, [None])
    graph = chain(pre.to_onnx(), g.model(), [("features", "x")], {"ids": "ids"}, prefix="m_")
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_ids,) = session.run(["ids"], {"x": pre.split(probe)[0]})
    np.testing.assert_array_equal(onnx_ids, numpy_ids)
    benign = np.isin(np.arange(65536), ports)
    assert (numpy_ids[~benign] == -1).all()
    assert len(set(numpy_ids[benign])) == len(ports) and (numpy_ids[benign] >= 0).all()


def test_without_a_port_column_the_plain_form_is_used(nsl_slice):
    s = nsl_slice  # NSL-KDD: a ``service`` categorical, no dst_port
    pipeline = train_model("knn", s.train[s.features], s.train["is_attack"], categorical=s.categorical)
    assert pipeline.training["hyperparameters"]["service"] is None
    plain = train_model(
        "knn",
        s.train[s.features],
        s.train["is_attack"],
        categorical=s.categorical,
        params={"service": "none"},
    )
    np.testing.assert_array_equal(
        pipeline.predict(s.test[s.features]).score, plain.predict(s.test[s.features]).score
    )
    rng = np.random.default_rng(0)
    unnamed = KNNDistanceModel().fit(rng.normal(size=(200, 4)))  # a bare matrix: no names, no services
    assert unnamed.service_ is None


def test_calibration_scores_are_leave_one_out_and_set_the_threshold():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    X[1] = X[0]  # an exact duplicate still counts, as it would for a new flow
    model = KNNDistanceModel(scaling="standard", k=1).fit(X)
    scaled = (X - model.mean_) * model.inv_std_
    d = np.sqrt(((scaled[:, None, :] - scaled[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(d, np.inf)
    assert len(model.reference_) == 300  # every row is a reference row, scored against the 299 others
    np.testing.assert_allclose(
        np.sort(model.calibration_scores_), np.sort(d.min(axis=1)).astype(np.float32), rtol=1e-5, atol=1e-6
    )
    assert model.calibration_scores_[:2].max() < 1e-6  # the duplicated pair: each the other's neighbour
    table = services_table(1500)
    pipeline = train(table)
    info = pipeline.threshold_info
    assert (
        info["calibration_rows"] == len(pipeline.model.calibration_scores_) > info["validation_benign_rows"]
    )
    # the threshold is the 1 % rule over the validation and the calibration scores together
    _, val = stratified_split(encode_labels(table["is_attack"], "binary"), 0.2, 0)
    validation = pipeline.transform(table.drop(columns="is_attack").iloc[val])
    pooled = np.concatenate([pipeline.model.attack_score(validation), pipeline.model.calibration_scores_])
    assert pipeline.threshold == fpr_threshold(pooled, 0.01)[0]
    fresh = services_table(3000, seed=7).drop(columns="is_attack")
    assert pipeline.predict(fresh).is_attack.mean() < 0.03  # new benign flows: about 1 % alert


def test_a_reference_no_larger_than_k_gives_no_infinite_calibration_score():
    # five reference rows and k = 5: each row has only four others, so no leave-one-out score of its own
    rng = np.random.default_rng(1)
    model = KNNDistanceModel(scaling="standard", k=5, max_reference=5).fit(rng.normal(size=(50, 3)))
    assert np.isfinite(model.calibration_scores_).all()


def test_bad_service_options_are_clear_errors():
    with pytest.raises(ConfigError, match="auto or none"):
        KNNDistanceModel(service="port")
    with pytest.raises(DataError, match="feature names for 3 columns"):
        KNNDistanceModel().fit(np.zeros((30, 3)), feature_names=["dst_port", "protocol"])


def _rare_service_matrix(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Raw rows [dst_port, protocol, 3 statistics]: 400 flows each to 53/udp and 443/tcp, two to 22/tcp."""
    rng = np.random.default_rng(seed)
    port = np.r_[np.full(400, 53), np.full(400, 443), [22, 22]]
    protocol = np.where(port == 53, 17, 6)
    stats = rng.lognormal(np.where(port == 53, 1.0, 5.0)[:, None], 0.3, (len(port), 3))
    return np.column_stack([port, protocol, stats]).astype(np.float64), [
        "dst_port",
        "protocol",
        "a",
        "b",
        "c",
    ]


def _onnx_scores(model: KNNDistanceModel, x: np.ndarray) -> np.ndarray:
    graph = model.to_onnx(x.shape[1])
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["score"], {"x": x.astype(np.float32)})[0]


def test_a_service_with_fewer_than_k_benign_rows_is_known_and_judged_against_all_of_them():
    """Known as soon as one benign reference row uses it: with k = 3 and two rows to 22/tcp, a flow to 22/tcp
    scores its distance to the farther of the two (the min(k, n)-th nearest), not the unseen offset."""
    X, names = _rare_service_matrix()
    model = KNNDistanceModel(scaling="standard", k=3).fit(X, feature_names=names)
    assert model.k_ == 3 and (model.reference_service_ == model._service_ids(X[-1:])[0]).sum() == 2
    rng = np.random.default_rng(1)
    queries = X[-2:].repeat(20, axis=0)
    queries[:, 2:] *= rng.lognormal(0.0, 0.2, (40, 3))
    scaled = (queries - model.mean_) * model.inv_std_
    d = np.sqrt(((scaled[:, None, :] - model.reference_[None, -2:, :]) ** 2).sum(axis=2))
    scores = model.attack_score(queries)
    np.testing.assert_allclose(scores, d.max(axis=1), rtol=1e-5)  # the 2nd (= last) of its service's rows
    unseen = model.attack_score(queries.copy() + np.r_[9000.0, 0, 0, 0, 0])  # port 9022: no benign row
    assert (unseen > scores).all() and (unseen >= model.unseen_offset_).all()
    np.testing.assert_allclose(_onnx_scores(model, queries), scores, rtol=1e-5)  # TopK path, k = 3
    np.testing.assert_allclose(_onnx_scores(model, queries + np.r_[9000.0, 0, 0, 0, 0]), unseen, rtol=1e-5)
    # leave-one-out: each 22/tcp reference row has one other row of its service, so it is known too
    calibration = model._final(*model._combine(*_leave_one_out(model)), 0.0)
    assert np.isfinite(calibration[-2:]).all() and (calibration[-2:] <= model.unseen_offset_).all()


def test_a_service_whose_only_benign_row_is_left_out_counts_as_unseen_in_calibration():
    X, names = _rare_service_matrix()
    X = X[:-1]  # one row to 22/tcp: scored leave-one-out, its service has no other row
    model = KNNDistanceModel(scaling="standard", k=2).fit(X, feature_names=names)
    raw = model._combine(*_leave_one_out(model))
    assert np.isinf(raw[1][-1]) and np.isfinite(raw[1][:-1]).all()
    assert model.calibration_scores_.max() >= model.unseen_offset_  # that row scores U + plain distance


def _leave_one_out(model: KNNDistanceModel) -> tuple:
    """Each reference row's distances to the others (its own one skipped)."""
    rows = np.arange(len(model.reference_))
    return model._distances_parts(None, skip=(rows, rows))
