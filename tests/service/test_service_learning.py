"""The sensor's learning period (``model.learn_flows``): it records the site's flows in its state directory,
fits the site baseline on them and switches to it without stopping capture; a restart goes on from what was
recorded, or loads the fitted baseline; what happens to alerts meanwhile is ``model.learn_alerts``.

Real traffic: IoT-23's Philips Hue bridge split in two halves (``hue_halves``), and a detector built by the
default recipe that does not know that home network (``short_default``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("lightgbm", reason="the learning period fits a model: the train extra")

from iotguard.core.config import load_config  # noqa: E402
from iotguard.core.errors import ConfigError  # noqa: E402
from iotguard.core.store import Store  # noqa: E402
from iotguard.detect.detector import Detector  # noqa: E402
from iotguard.detect.site import SITE_INFO  # noqa: E402
from iotguard.service.learning import LEARNING_DIR, SITE_DETECTOR_DIR  # noqa: E402
from iotguard.service.sensor import Sensor  # noqa: E402

# a response policy that acts on every alert (dry run), so that a held response is told from no alert
POLICY = "dry_run: true\nrules:\n  - name: contain\n    actions: [{block: {ttl: 60}}]\n"


def _config(state, pcap, model, **learning):
    state.mkdir(parents=True, exist_ok=True)
    policy = state / "policy.yaml"
    policy.write_text(POLICY)
    data = {
        "service": {"state_dir": str(state), "stats_interval": 0.2},
        "capture": {"pcap": str(pcap)},
        "model": {"path": str(model), **learning},
        "respond": {"policy": str(policy)},
    }
    path = state / "iotguard.yaml"
    path.write_text(json.dumps(data))
    return load_config(path, env={})


def _run(cfg) -> tuple[Sensor, dict]:
    """One sensor run over the capture; what it counted, and what the store holds after it."""
    with Store(cfg.store_path()) as store:
        before = (
            len(store.alerts(limit=None)),
            len(store.incidents(limit=None)),
            len(store.actions(limit=None)),
        )
    sensor = Sensor(cfg, exit_when_done=True)
    sensor.start()
    assert sensor.wait(240), "the sensor did not finish the capture"
    sensor.close()
    assert not sensor.errors, sensor.errors
    with Store(cfg.store_path()) as store:
        after = (
            len(store.alerts(limit=None)),
            len(store.incidents(limit=None)),
            len(store.actions(limit=None)),
        )
    counters = sensor.stats.snapshot()["counters"]
    new = dict(
        zip(
            ("alerts", "incidents", "actions"),
            (a - b for a, b in zip(after, before, strict=True)),
            strict=True,
        )
    )
    return sensor, {
        **new,
        **{k: int(counters.get(k, 0)) for k in ("flows_learnt", "flows_scored", "responses_held_learning")},
    }


def test_it_learns_the_first_half_and_the_second_raises_nothing(tmp_path, hue_halves, short_default):
    first, second = hue_halves
    # the premise: the base detector alone raises incidents on the second half
    _, alone = _run(_config(tmp_path / "alone", second, short_default))
    assert alone["incidents"] >= 3 and alone["actions"] > 0

    cfg = _config(tmp_path / "state", first, short_default, learn_flows=600)
    sensor, run = _run(cfg)
    # learning filled up inside the first half: the sensor fitted the baseline and switched, capture going on
    assert run["flows_learnt"] == 600 and run["flows_scored"] > 600
    assert sensor.detector.name.endswith("+site")
    assert sensor.learning_info()["active"] is False
    state = cfg.state_path()
    assert not (state / LEARNING_DIR).exists()  # the recorded flows are dropped once the fit is saved
    saved = Detector.load(state / SITE_DETECTOR_DIR)
    assert saved.info[SITE_INFO]["flows"] == 600 and saved.info[SITE_INFO]["fitted_from"] == "iotguard-lab"
    # while learning (record, the default), alerts were stored but the policy did not act on them
    assert run["alerts"] > 0 and run["responses_held_learning"] > 0 and run["actions"] == 0

    # a restart loads the learnt baseline: the second half raises nothing
    again, later = _run(_config(tmp_path / "state", second, short_default, learn_flows=600))
    assert again.learning is None and again.detector.name == saved.name
    assert later["flows_learnt"] == 0 and later["flows_scored"] > 300
    assert later["alerts"] == 0 and later["incidents"] == 0


def test_learning_goes_on_after_a_restart(tmp_path, hue_halves, short_default):
    first, second = hue_halves
    target = 1000  # more flow records than the first half holds
    cfg = _config(tmp_path / "state", first, short_default, learn_flows=target)
    sensor, run = _run(cfg)
    recorded = run["flows_learnt"]
    assert 300 < recorded < target and sensor.learning_info()["flows"] == recorded
    assert not sensor.detector.name.endswith("+site")
    learning = cfg.state_path() / LEARNING_DIR
    assert sum(len(pd.read_parquet(p)) for p in learning.glob("flows-*.parquet")) == recorded
    # what a crash can leave: a chunk half-written under its temporary name, a damaged chunk
    (learning / ".flows-000099999.parquet.123.tmp").write_bytes(b"PAR1 half")
    (learning / "flows-999999999.parquet").write_bytes(b"not parquet")

    sensor, run = _run(_config(tmp_path / "state", second, short_default, learn_flows=target))
    assert run["flows_learnt"] == target - recorded  # it went on from what was recorded, no more, no less
    assert sensor.detector.name.endswith("+site")
    assert Detector.load(cfg.state_path() / SITE_DETECTOR_DIR).info[SITE_INFO]["flows"] == target


@pytest.mark.parametrize("mode", ["suppress", "act"])
def test_what_happens_to_alerts_while_learning(mode, tmp_path, hue_halves, short_default):
    _, run = _run(
        _config(tmp_path / "state", hue_halves[0], short_default, learn_flows=5000, learn_alerts=mode)
    )
    assert run["flows_learnt"] > 300
    if mode == "suppress":  # Kitsune's grace period: nothing scored, nothing raised
        assert run["flows_scored"] == 0 and run["alerts"] == 0 and run["actions"] == 0
    else:  # as after learning: the base detector's alerts are acted on
        assert run["flows_scored"] == run["flows_learnt"] and run["alerts"] > 0 and run["actions"] > 0
    assert run["responses_held_learning"] == 0


def test_bad_learning_settings_are_refused(tmp_path, hue_halves, short_default):
    with pytest.raises(ConfigError, match="learn_flows"):
        _config(tmp_path / "a", hue_halves[0], short_default, learn_flows=5)
    with pytest.raises(ConfigError, match="learn_alerts"):
        _config(tmp_path / "b", hue_halves[0], short_default, learn_flows=100, learn_alerts="maybe")
    # a detector already fitted to a site cannot be the base of another fit
    cfg = _config(tmp_path / "c", hue_halves[0], short_default, learn_flows=100)
    _run(cfg)
    fitted = cfg.state_path() / SITE_DETECTOR_DIR
    with pytest.raises(ConfigError, match="already fitted to a site baseline"):
        Sensor(_config(tmp_path / "d", hue_halves[1], fitted, learn_flows=100))


def test_on_a_live_interface_the_fit_runs_beside_detection(tmp_path, hue_halves, short_default):
    """A live interface cannot wait for the fit: it runs in its own thread while the base detector goes on
    scoring, and detection switches between two batches once it is done. Driven batch by batch here (a live
    capture needs an interface); the flow records are the Hue bridge's, metered as the sensor meters them."""
    from iotguard.core.config import FlowsConfig
    from iotguard.flows import read_flows
    from iotguard.service.sensor import flow_config

    flows = read_flows(hue_halves[0], config=flow_config(FlowsConfig()))
    cfg = _config(tmp_path / "state", hue_halves[0], short_default, learn_flows=300)
    sensor = Sensor(cfg)
    sensor.source.live = True  # what a capture from an interface sets
    try:
        sensor._score(flows.iloc[:400])  # learning fills up: the fit starts in the background
        fit = sensor._threads["learn"]
        sensor._score(flows.iloc[400:])  # scored by the base detector meanwhile, nothing more recorded
        fit.join(120)
        assert not fit.is_alive() and sensor.learning is not None  # fitted, not yet switched
        assert sensor.stats.snapshot()["counters"]["flows_learnt"] == 300
        sensor._use_learnt()  # what the detection thread does between two batches
        assert sensor.learning is None and sensor.detector.name.endswith("+site")
        assert sensor.engine.detector is sensor.detector
        assert not (cfg.state_path() / LEARNING_DIR).exists()
        assert Detector.load(cfg.state_path() / SITE_DETECTOR_DIR).info[SITE_INFO]["flows"] == 300
        assert sensor.health()["learning"]["active"] is False and not sensor.errors
    finally:
        sensor.close()


def test_a_damaged_chunk_never_makes_a_later_one_replace_a_good_one(tmp_path):
    """Chunks were named by the records saved so far: with a damaged chunk set aside at a restart, that
    count named the next chunk after a good one, which it replaced (its records lost, the new ones read
    twice)."""
    from iotguard.service.learning import FlowRecorder

    def chunk(start):
        return pd.DataFrame({"x": range(start, start + 100), "ts_first": 0.0, "ts_last": 1.0})

    folder = tmp_path / LEARNING_DIR
    recorder = FlowRecorder(folder, 1000, ["x"])
    for start in (0, 100, 200):
        recorder.record(chunk(start))
        recorder.flush()
    first = sorted(folder.glob("flows-*.parquet"))[0]
    first.write_bytes(b"damaged")  # a chunk in the middle of what was recorded, not the last one

    again = FlowRecorder(folder, 1000, ["x"])  # a restart
    assert again.recorded == 200
    again.record(chunk(1000))
    again.flush()
    assert len(set(again._chunks)) == len(again._chunks) == 3
    flows = again.flows()
    assert len(flows) == again.recorded == 300 and not flows.duplicated().any()
    assert sorted(flows["x"]) == [*range(100, 300), *range(1000, 1100)]
    # and after another restart, the names it counts from include the one set aside
    third = FlowRecorder(folder, 1000, ["x"])
    third.record(chunk(2000))
    third.flush()
    assert sorted(third.flows()["x"]) == [*range(100, 300), *range(1000, 1100), *range(2000, 2100)]


def _scan(sensor, attacker, ports, ts):
    """PortScan alerts of ``attacker`` on ``ports`` at evidence time ``ts``, through the engine's evidence gate
    and commit as DetectionEngine.process hands on a flow alert the model raised (the gate needs 5 targets)."""
    from iotguard.core.records import Alert
    from iotguard.detect.evidence import Observation

    engine, released = sensor.engine, []
    for port in ports:
        alert = Alert(ts, attacker, "192.168.1.1", "PortScan", 2, 0.9, 0.9, "base", 1, "scan", dest_port=port)
        target = ("192.168.1.1", 6, port)
        released += engine.gate.admit(alert, Observation(flow=target, conversation=target, target=target))
    if released:
        engine._commit(released)


def test_record_mode_never_acts_on_what_was_raised_while_learning(tmp_path, hue_halves, short_default):
    """`record`: no action on a flow alert raised while learning, even when the evidence gate releases it
    after the switch; the evidence gathered while learning does not let the site detector's alerts skip
    theirs; and a flow record from the learning period scored after the switch is not acted on either."""
    from iotguard.core.config import FlowsConfig
    from iotguard.flows import read_flows
    from iotguard.service.sensor import flow_config

    flows = read_flows(hue_halves[0], config=flow_config(FlowsConfig()))
    switch = float(flows["ts_last"].iloc[:300].max())  # the evidence time learning ends at
    sensor = Sensor(_config(tmp_path / "state", hue_halves[0], short_default, learn_flows=300))
    acted = []
    handle = sensor.responder.handle
    sensor.responder.handle = lambda alert, incident: acted.append(alert) or handle(alert, incident)
    try:
        sensor._score(flows.iloc[:299])  # learning (a capture file: the fit comes with the 300th record)
        held = sensor.engine.gate.held  # the base detector's own alerts on the Hue bridge's traffic
        _scan(sensor, "10.66.0.9", (21, 22, 23, 80), switch - 5)  # held by the gate: 4 targets of 5
        _scan(sensor, "10.66.0.10", (21, 22, 23, 80, 443), switch - 5)  # an incident while learning
        assert sensor.engine.gate.held == held + 4
        sensor._score(flows.iloc[299:300])  # learning ends: fitted, switched
        assert sensor.learning is None and sensor.detector.name.endswith("+site")

        # the scan goes on after the switch: one more port would have released the 4 held with it
        _scan(sensor, "10.66.0.9", (443,), switch + 1)
        _scan(sensor, "10.66.0.10", (8080,), switch + 1)  # named while learning: no longer enough alone
        _scan(sensor, "10.66.0.11", (21, 22, 23, 80, 443), switch)  # a learning-period record scored late
        assert [a for a in acted if a.source == "flow"] == []
        # a scan the site detector shows in full is acted on
        _scan(sensor, "10.66.0.9", (8080, 8081, 8082, 8443), switch + 2)
        ours = [a for a in acted if a.src_ip.startswith("10.66.")]
        assert {(a.src_ip, a.dest_port) for a in ours} == {
            ("10.66.0.9", p) for p in (443, 8080, 8081, 8082, 8443)
        }
        assert all(a.timestamp > switch for a in acted if a.source == "flow")
        assert sensor.stats.snapshot()["counters"]["responses_held_learning"] >= 5 + 5
    finally:
        sensor.close()


def test_the_fitted_detector_is_never_lost_in_the_hand_over():
    """The learn thread hands the fitted detector to the detection thread, which may be looking for it at that
    very moment. The hand-over used to be a shared attribute that the detection thread read and then cleared:
    a write falling between the two was dropped (the sensor then never switched, and `record` held responses
    until a restart). The real methods on a stand-in sensor, the learn thread's hand-over made to fall right
    after the detection thread's read, the one interleaving that lost it."""
    import queue
    from types import SimpleNamespace

    fitted = SimpleNamespace(model_name="site")

    class Racing(SimpleNamespace):
        def __getattribute__(self, name):
            value = object.__getattribute__(self, name)
            if name in ("_learnt", "_fitted") and object.__getattribute__(self, "armed"):
                object.__setattr__(self, "armed", False)
                Sensor._fit_and_hand_over(self)  # the learn thread, between the read and what follows it
            return value

    sensor = Racing(
        armed=True, _fitted=queue.SimpleQueue(), _learnt=None, detector=None, errors=[],
        learning=SimpleNamespace(fit=lambda: fitted, failed=None, mode="act", recorder=SimpleNamespace(clear=list)),
        engine=SimpleNamespace(use_detector=lambda detector, **kw: None), stats=SimpleNamespace(info={}),
    )  # fmt: skip
    Sensor._use_learnt(sensor)  # the detection thread, between two batches
    Sensor._use_learnt(sensor)  # and the next time
    assert sensor.detector is fitted and sensor.learning is None


def test_a_failed_fit_ends_learning_in_the_detection_thread_only(tmp_path, hue_halves, short_default):
    """The background fit used to end the learning period itself, from its own thread, while the detection
    thread was testing and using it (an AttributeError there killed detection). It hands the failure over
    like a fitted detector; the detection thread ends learning between two batches and acts again."""
    from iotguard.core.config import FlowsConfig
    from iotguard.core.errors import DataError
    from iotguard.flows import read_flows
    from iotguard.service.sensor import flow_config

    flows = read_flows(hue_halves[0], config=flow_config(FlowsConfig()))
    sensor = Sensor(_config(tmp_path / "state", hue_halves[0], short_default, learn_flows=300))
    sensor.source.live = True

    def unreadable():
        raise DataError("unreadable learnt flows (test)", where="learning")

    sensor.learning.recorder.flows = unreadable
    try:
        sensor._score(flows.iloc[:400])  # learning fills up: the fit starts in the background, and fails
        fit = sensor._threads["learn"]
        fit.join(60)
        assert not fit.is_alive()
        assert sensor.learning is not None and sensor.learning.failed  # not ended behind detection's back
        sensor._score(flows.iloc[400:500])  # scored with the base detector, learning still on for it
        sensor._use_learnt()  # between two batches: the detection thread takes the failure
        assert sensor.learning is None and sensor.detector is not None
        assert any("unreadable learnt flows" in e for e in sensor.errors)
        assert not sensor.detector.name.endswith("+site")
        sensor._score(flows.iloc[500:])
        assert sensor.health()["learning"]["active"] is False
    finally:
        sensor.close()


def test_a_damaged_site_baseline_does_not_stop_the_sensor(tmp_path, hue_halves, short_default):
    """A site-detector/ that no longer loads (here its classifier's ONNX file damaged) used to stop the sensor
    from starting at all. It starts with the base detector, and the log and health name the folder."""
    import shutil

    cfg = _config(tmp_path / "state", hue_halves[0], short_default, learn_flows=300)
    site = cfg.state_path() / SITE_DETECTOR_DIR
    shutil.copytree(short_default, site)
    onnx = site / "classifier" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-100])
    sensor = Sensor(cfg)
    try:
        assert sensor.detector.name == Detector.load(short_default).name
        assert sensor.learning is None  # its fit would replace the folder: that is the operator's call
        health = sensor.health()
        assert not health["ok"] and str(site) in health["errors"][-1]
        assert "cannot load the site baseline" in health["errors"][-1]
        assert onnx.exists()  # left for a look
    finally:
        sensor.close()


def test_learning_needs_what_the_fit_exports_with(monkeypatch, tmp_path, hue_halves, short_default):
    """The site baseline's k-means is exported to ONNX with skl2onnx: without it the fit would fail after the
    whole learning period, so it is refused at the start."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "skl2onnx" else real(name, *a)
    )
    cfg = _config(tmp_path / "state", hue_halves[0], short_default, learn_flows=300)
    with pytest.raises(ConfigError, match="skl2onnx"):
        Sensor(cfg)
