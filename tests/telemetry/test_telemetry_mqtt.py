"""The subscriber against a real mosquitto broker: anomalies end to end, auth, reconnect, bounded queue."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from iotguard.core.config import TelemetryConfig
from iotguard.core.errors import ConfigError
from iotguard.telemetry import MqttSubscriber, TelemetryDetector
from sensor_fixtures import make_tls, start_broker, stop_broker

pytestmark = pytest.mark.broker


def publisher(broker, user=None, password=None) -> paho.Client:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{random.random()}")
    if user:
        client.username_pw_set(user, password)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def drain(sub: MqttSubscriber, detector: TelemetryDetector, seconds: float) -> list:
    alerts = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            alerts.extend(detector.process(sub.queue.get(timeout=0.05)))
    return alerts


def test_anomalies_end_to_end_through_a_real_broker(mosquitto):
    cfg = TelemetryConfig(
        enabled=True,
        url=mosquitto.url,
        topics=["home/#"],
        warmup_messages=20,
        global_warmup=1.0,
        flood_min_rate=40,
        alert_cooldown=60,
    )
    sub = MqttSubscriber(cfg)
    sub.start()
    pub = publisher(mosquitto)
    try:
        assert sub.subscribed.wait(10)
        rng = random.Random(0)
        # three thermostats at 10 messages/s each for 4 s: the baseline
        for _ in range(40):
            for d in range(3):
                doc = {"temp": round(21 + rng.gauss(0, 0.3), 2), "setpoint": 21 + d}
                pub.publish(f"home/thermo{d}/state", json.dumps(doc)).wait_for_publish(2)
            time.sleep(0.1)
        detector = TelemetryDetector(cfg)
        assert drain(sub, detector, 1.0) == []
        assert detector.messages == 120
        # thermo1 reports 80 degrees, thermo2 floods at ~1000 msg/s
        pub.publish("home/thermo1/state", json.dumps({"temp": 80.0, "setpoint": 22})).wait_for_publish(2)
        for _ in range(2000):
            pub.publish("home/thermo2/state", json.dumps({"temp": 21.0, "setpoint": 23}))
        alerts = drain(sub, detector, 3.0)
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.stop()
    got = {(a.device, a.family) for a in alerts}
    assert ("thermo1", "SensorAnomaly") in got
    assert ("thermo2", "MQTTAbuse") in got
    assert all(a.source == "telemetry" and a.dest_port == mosquitto.port for a in alerts)
    assert sub.stats()["received"] >= 2120


def test_credentials_reconnect_and_the_password_is_never_logged(tmp_path, caplog):
    secret = "pa55-never-in-logs"
    broker = start_broker(tmp_path, users={"sensor": secret, "dev": "devpw"})
    cfg = TelemetryConfig(
        enabled=True,
        host=broker.host,
        port=broker.port,
        username="sensor",
        password=secret,
        topics=["#"],
        reconnect_min=1,
        reconnect_max=2,
    )
    caplog.set_level(logging.DEBUG)
    sub = MqttSubscriber(cfg)
    sub.start()
    try:
        assert sub.subscribed.wait(10)
        # the broker goes away and comes back on the same port: the sensor reconnects and subscribes again
        stop_broker(broker)
        deadline = time.monotonic() + 10
        while sub.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sub.connected.is_set()
        broker = start_broker(tmp_path, users={"sensor": secret, "dev": "devpw"}, port=broker.port)
        assert sub.subscribed.wait(15)
        assert sub.connects >= 2
        pub = publisher(broker, "dev", "devpw")
        pub.publish("a/b/c", b"hello").wait_for_publish(2)
        got = sub.queue.get(timeout=5)
        assert (got.topic, got.payload) == ("a/b/c", b"hello")
        pub.loop_stop()
        pub.disconnect()
    finally:
        sub.stop()
        stop_broker(broker)
    assert secret not in caplog.text
    assert secret not in repr(cfg) and secret not in str(cfg.model_dump())


def test_a_wrong_password_is_reported_not_fatal(tmp_path):
    broker = start_broker(tmp_path, users={"sensor": "right"})
    cfg = TelemetryConfig(host=broker.host, port=broker.port, username="sensor", password="wrong")
    sub = MqttSubscriber(cfg)
    sub.start()
    try:
        deadline = time.monotonic() + 10
        while sub.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sub.last_error and "refused" in sub.last_error and not sub.connected.is_set()
    finally:
        sub.stop()
        stop_broker(broker)


def test_the_queue_is_bounded_and_drops_are_counted(mosquitto):
    cfg = TelemetryConfig(host=mosquitto.host, port=mosquitto.port, topics=["x/#"], queue_size=50)
    sub = MqttSubscriber(cfg)
    sub.start()
    pub = publisher(mosquitto)
    try:
        assert sub.subscribed.wait(10)
        for i in range(500):
            pub.publish("x/y", str(i).encode(), qos=1)
        deadline = time.monotonic() + 10
        while sub.received < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.stop()
    assert sub.queue.qsize() == 50
    assert sub.received == 500 and sub.dropped == 450


def test_tls_broker_with_a_ca_and_credentials(tmp_path):
    tls = make_tls(tmp_path)
    broker = start_broker(tmp_path, users={"sensor": "tls-pw"}, tls=tls)
    good = TelemetryConfig(
        url=f"mqtts://sensor:tls-pw@127.0.0.1:{broker.port}", ca_file=tls["ca"], topics=["t/#"]
    )
    assert good.tls and good.password.get_secret_value() == "tls-pw"
    sub = MqttSubscriber(good)
    sub.start()
    try:
        assert sub.subscribed.wait(15), sub.last_error
    finally:
        sub.stop()
    # a broker whose certificate the configured CA did not sign is refused
    (tmp_path / "other").mkdir()
    other = make_tls(tmp_path / "other")
    wrong = TelemetryConfig(url=f"mqtts://sensor:tls-pw@127.0.0.1:{broker.port}", ca_file=other["ca"],
                            reconnect_min=1, reconnect_max=1)  # fmt: skip
    sub = MqttSubscriber(wrong)
    sub.start()
    try:
        assert not sub.subscribed.wait(4)
    finally:
        sub.stop()
        stop_broker(broker)
    with pytest.raises(ConfigError, match="file not found"):
        MqttSubscriber(TelemetryConfig(tls=True, ca_file=tmp_path / "absent.pem"))
