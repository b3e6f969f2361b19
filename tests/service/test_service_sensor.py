"""The sensor runtime on capture files: the whole pipeline, back-pressure, clean stop, checkpoint and resume,
telemetry alerts through the same path, and bad input that must not stop it."""

from __future__ import annotations

import json
import random
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from iotguard.capture import read_capture
from iotguard.core.config import load_config
from iotguard.core.errors import ConfigError
from iotguard.service.sensor import Sensor

SYNSCAN = "pcaps/chrissanders_packets/synscan.pcapng"
BENIGN = "pcaps/mqttset_reduced/benign.pcap"


def config(tmp_path, **sections):
    data = {"service": {"state_dir": str(tmp_path / "state"), "stats_interval": 0.2}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    path = tmp_path / "iotguard.yaml"
    path.write_text(json.dumps(data))
    return load_config(path, env={})


def packets_in(path) -> int:
    return sum(len(b) for b in read_capture(path))


def run_to_end(sensor: Sensor, timeout: float = 120) -> None:
    sensor.start()
    assert sensor.wait(timeout), "the sensor did not finish the capture"
    sensor.close()


def test_a_capture_through_the_whole_pipeline(tmp_path, data_file, small_detector):
    pcap = data_file(SYNSCAN)
    # a 2010 capture under a one-day retention: alerts age from the newest evidence, not the clock
    cfg = config(
        tmp_path,
        capture={"pcap": str(pcap)},
        model={"path": str(small_detector)},
        store={"retention_days": 1},
    )
    sensor = Sensor(cfg, exit_when_done=True)
    run_to_end(sensor)
    snap = sensor.stats.snapshot()
    assert snap["counters"]["packets"] == packets_in(pcap) == 2011
    assert snap["counters"]["flows_final"] > 1000 and snap["counters"]["flows_scored"] > 1000
    assert snap["alerts"]["total"] > 0 and snap["alerts"]["by_source"]["flow"] == snap["alerts"]["total"]
    assert sum(v for k, v in snap["drops"].items() if k != "flow_table") == 0  # a file is never dropped
    # every alert is in SQLite and in the EVE log, identically, in the same order
    import sqlite3

    from iotguard.core.store import Store

    with sqlite3.connect(cfg.store_path()) as db:
        stored = [r[0] for r in db.execute("SELECT eve FROM alerts ORDER BY id")]
    with Store(cfg.store_path()) as store:
        incidents = store.incidents(limit=None)
    eve = cfg.eve_path().read_text().splitlines()
    assert stored == eve and len(eve) == snap["alerts"]["total"]
    assert {json.loads(line)["alert"]["category"] for line in eve} == {"PortScan"}
    assert len(incidents) >= 1 and all(i.status == "closed" for i in incidents)  # closed at shutdown
    # the inventory knows the scanner and its victim
    scanner = max(sensor.inventory.devices(limit=100)[1], key=lambda d: d["traffic"]["flows_out"])
    assert scanner["traffic"]["flows_out"] > 1000 and scanner["alerts"] > 0
    checkpoint = json.loads((cfg.state_path() / "sensor-state.json").read_text())
    assert checkpoint["source"]["packets"] == 2011 and checkpoint["inventory"]["devices"]


def test_a_whole_flow_table_is_scored_in_bounded_pieces(tmp_path, data_file, small_detector, monkeypatch):
    """The end of a capture hands over every open flow at once; detection takes it in pieces of at most
    DETECT_BATCH, so no single step (EVE text, store insert) grows with the table."""
    import iotguard.service.sensor as sensor_module

    monkeypatch.setattr(sensor_module, "DETECT_BATCH", 100)
    pcap = data_file(SYNSCAN)
    cfg = config(tmp_path, capture={"pcap": str(pcap)}, model={"path": str(small_detector)})
    sizes: list[int] = []
    sensor = Sensor(cfg, exit_when_done=True)
    score = sensor._score
    monkeypatch.setattr(sensor, "_score", lambda flows: (sizes.append(len(flows)), score(flows)))
    run_to_end(sensor)
    assert max(sizes) <= 100 and len(sizes) >= 10
    assert sum(sizes) == sensor.stats.snapshot()["counters"]["flows_scored"] > 1000


def test_retention_with_no_alert_yet_spares_an_old_capture_s_first_alerts(
    tmp_path, data_file, small_detector
):
    # The race the whole-pipeline test hit under load: retention reads "no alert yet", the detection thread
    # stores the first alerts of a 2010 capture, then the purge runs. It must not age them from the clock.
    from iotguard.core.records import Alert

    cfg = config(tmp_path, capture={"pcap": str(data_file(SYNSCAN))}, model={"path": str(small_detector)},
                 store={"retention_days": 1})  # fmt: skip
    sensor = Sensor(cfg, exit_when_done=True)
    old = Alert(timestamp=1_278_275_056.0, src_ip="172.16.0.8", dest_ip="64.13.134.52", family="PortScan",
                severity=3, score=1.0, confidence=1.0, model="m", signature_id=1, signature="s")  # fmt: skip
    real_alerts = sensor.store.alerts

    def alerts_then_one_arrives(**kwargs):
        seen = real_alerts(**kwargs)
        sensor.store.record([], [old])
        return seen

    sensor.store.alerts = alerts_then_one_arrives
    try:
        sensor._retention()
        assert sensor.store.count_alerts() == 1
        sensor.store.alerts = real_alerts
        sensor._retention()  # now the newest alert is the reference: it stays, being the newest
        assert sensor.store.count_alerts() == 1
    finally:
        sensor.close()


def test_stop_midway_then_resume_where_it_stopped(tmp_path, data_file, small_detector):
    pcap = data_file(BENIGN)
    total = packets_in(pcap)
    cfg = config(
        tmp_path,
        capture={"pcap": str(pcap), "speed": "realtime", "batch_packets": 64},
        model={"path": str(small_detector)},
    )
    first = Sensor(cfg, exit_when_done=True)
    first.start()
    deadline = time.monotonic() + 30
    while first.stats.counters["packets"] < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.stop()  # what SIGINT/SIGTERM do
    first.close()
    done = first.packets_done
    assert 200 <= done < total
    assert json.loads((cfg.state_path() / "sensor-state.json").read_text())["source"]["packets"] == done
    fast = cfg.model_copy(update={"capture": cfg.capture.model_copy(update={"speed": "max"})})
    second = Sensor(fast, exit_when_done=True)
    run_to_end(second)
    assert second.stats.counters["packets"] == total - done  # no packet twice, none skipped
    third = Sensor(fast, exit_when_done=True, resume=False)  # --from-start
    run_to_end(third)
    assert third.stats.counters["packets"] == total


def test_telemetry_alerts_take_the_same_path_as_flow_alerts(tmp_path, mosquitto, small_detector):
    policy = tmp_path / "policy.yaml"
    rule = {
        "name": "telemetry-to-operators",
        "match": {"source": "telemetry"},
        "actions": [
            {"mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "topic": "iotguard/alerts/{family}"}}
        ],
    }
    policy.write_text(json.dumps({"dry_run": False, "rules": [rule]}))
    cfg = config(
        tmp_path,
        telemetry={
            "enabled": True,
            "url": mosquitto.url,
            "topics": ["home/#"],
            "warmup_messages": 20,
            "global_warmup": 1.0,
            "flood_min_rate": 30,
        },
        model={"path": str(small_detector)},
        respond={"policy": str(policy)},
    )
    sensor = Sensor(cfg)
    sensor.start()
    got: list[str] = []
    watcher = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda c, u, m: got.append(m.topic)
    watcher.connect(mosquitto.host, mosquitto.port)
    watcher.subscribe("iotguard/#")
    watcher.loop_start()
    pub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        assert sensor.subscriber.subscribed.wait(10)
        rng = random.Random(0)
        for _ in range(40):
            for d in range(2):
                pub.publish(f"home/meter{d}/state", json.dumps({"power": round(120 + rng.gauss(0, 3), 1)}))
            time.sleep(0.05)
        time.sleep(0.5)
        pub.publish("home/meter1/state", json.dumps({"power": 9000.0})).wait_for_publish(2)
        deadline = time.monotonic() + 15
        while sensor.stats.snapshot()["alerts"]["total"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        pub.loop_stop()
        pub.disconnect()
        sensor.close()
        watcher.loop_stop()
        watcher.disconnect()
    from iotguard.core.store import Store

    with Store(cfg.store_path()) as store:
        alerts = store.alerts(limit=None)
        actions = store.actions(limit=None)
    assert [(a.source, a.device, a.family) for a in alerts] == [("telemetry", "meter1", "SensorAnomaly")]
    assert alerts[0].incident_id is not None
    assert json.loads(cfg.eve_path().read_text())["iotguard"]["source"] == "telemetry"
    # the policy ran on it: one MQTT message to the operators' topic, recorded before and after
    assert [(a.action, a.result) for a in actions] == [("mqtt", "ok")]
    assert got == ["iotguard/alerts/SensorAnomaly"]
    assert sensor.telemetry.messages >= 81  # the sensor's own message on iotguard/# was not learned


def test_telemetry_read_off_the_captured_traffic(tmp_path, data_file, small_detector):
    """telemetry.from_capture: the MQTT publish flood in a real capture raises a telemetry alert naming the
    flooding host, stored and written like every other alert; no broker involved."""
    pcap = data_file("pcaps/mqttset_reduced/flood.pcap")
    cfg = config(
        tmp_path,
        capture={"pcap": str(pcap)},
        model={"path": str(small_detector)},
        telemetry={"from_capture": True},
    )
    sensor = Sensor(cfg, exit_when_done=True)
    assert sensor.subscriber is None and sensor.tap is not None
    run_to_end(sensor)
    assert sensor.telemetry.messages == 56_304  # every PUBLISH tshark sees in this capture
    from iotguard.core.store import Store

    with Store(cfg.store_path()) as store:
        telemetry = [a for a in store.alerts(limit=None) if a.source == "telemetry"]
    assert telemetry and {a.src_ip for a in telemetry} == {"192.168.1.100"}
    assert all(a.family == "MQTTAbuse" for a in telemetry)
    assert sensor.telemetry_info()["from_capture"] == 56_304


def test_garbage_capture_is_counted_not_fatal(tmp_path, data_file, small_detector):
    good = data_file(SYNSCAN).read_bytes()
    rng = random.Random(3)
    damaged = bytearray(good)
    for _ in range(300):  # flip bytes all over the file, record headers included
        damaged[rng.randrange(200, len(damaged))] = rng.randrange(256)
    pcap = tmp_path / "damaged.pcapng"
    pcap.write_bytes(bytes(damaged))
    cfg = config(tmp_path, capture={"pcap": str(pcap)}, model={"path": str(small_detector)})
    sensor = Sensor(cfg, exit_when_done=True)
    run_to_end(sensor)
    assert sensor.errors == []
    assert sensor.stats.drops.get("detect_errors", 0) == 0  # absurd timestamps included
    snap = sensor.stats.snapshot()
    assert snap["counters"]["packets"] > 0 and snap["counters"]["flows_scored"] > 0


def test_config_errors_before_anything_starts(tmp_path, small_detector):
    with pytest.raises(ConfigError, match="capture file not found"):
        Sensor(config(tmp_path, capture={"pcap": str(tmp_path / "absent.pcap")}))
    with pytest.raises(ConfigError, match="nothing to watch"):
        Sensor(config(tmp_path, model={"path": str(small_detector)}))
    text = tmp_path / "not-a-capture.pcap"
    text.write_text("hello, I am text\n" * 10)
    sensor = Sensor(config(tmp_path, capture={"pcap": str(text)}, model={"path": str(small_detector)}),
                    exit_when_done=True)  # fmt: skip
    from iotguard.core.errors import CaptureError

    with pytest.raises(CaptureError, match="not-a-capture.pcap"):  # before any thread starts
        sensor.start()
    sensor.close()


def test_bounded_packet_queue_under_back_pressure(tmp_path, data_file, small_detector):
    """A file source waits for a slow pipeline instead of growing memory or dropping."""
    pcap = data_file(SYNSCAN)
    cfg = config(
        tmp_path,
        capture={"pcap": str(pcap), "batch_packets": 16},
        service={"packet_queue": 2, "flow_queue": 1},
        model={"path": str(small_detector)},
    )
    sensor = Sensor(cfg, exit_when_done=True)
    slow = sensor.engine.process
    depth = []

    def process(flows, **kw):
        depth.append(sensor.packet_q.qsize())
        time.sleep(0.01)
        return slow(flows, **kw)

    sensor.engine.process = process
    run_to_end(sensor)
    assert max(depth) <= 2 and sensor.stats.counters["packets"] == 2011
    assert sensor.stats.drops.get("packet_queue", 0) == 0
    assert threading.active_count() < 50


def test_a_damaged_checkpoint_part_is_ignored_with_a_warning_and_the_sensor_runs(
    tmp_path, data_file, small_detector, caplog
):
    pcap = data_file(SYNSCAN)
    cfg = config(tmp_path, capture={"pcap": str(pcap)}, model={"path": str(small_detector)})
    cfg.state_path().mkdir(parents=True, exist_ok=True)
    damaged = {"version": 1, "inventory": {"version": 1, "mac_owners": ["x"], "devices": []}}
    (cfg.state_path() / "sensor-state.json").write_text(json.dumps(damaged))
    with caplog.at_level("WARNING", logger="iotguard.service.sensor"):
        sensor = Sensor(cfg, exit_when_done=True)
        run_to_end(sensor)
    assert "ignoring the inventory state in checkpoint" in caplog.text
    assert sensor.stats.snapshot()["counters"]["packets"] == 2011
    assert sensor.inventory.devices(limit=100)[1]  # the inventory started fresh and learnt the capture
