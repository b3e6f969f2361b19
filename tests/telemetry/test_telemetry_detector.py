"""Per-device baselines on synthetic but realistic sensor traffic: quiet when normal, each anomaly raised."""

from __future__ import annotations

import json
import random

import pytest

from iotguard.core.config import DeviceConfig, TelemetryConfig
from iotguard.telemetry import TelemetryDetector, TelemetryMessage
from iotguard.telemetry.baseline import RangeBaseline, RateBaseline, Welford

T0 = 1_700_000_000.0


def sensor_traffic(devices: int, seconds: int, seed: int = 1, start: float = T0):
    """Each device publishes a JSON reading every ~2 s (jittered): temperature, humidity, an uptime counter."""
    events = []
    for d in range(devices):
        base = 18 + 4 * random.Random(d).random()  # each device its own climate, whatever the seed
        rng = random.Random(seed * 1000 + d)
        t = start + rng.random()
        up = rng.randint(0, 10_000)
        while t < start + seconds:
            up += 2
            payload = {
                "temperature": round(base + rng.gauss(0, 0.4), 2),
                "humidity": round(45 + rng.gauss(0, 2.0), 1),
                "uptime": up,
                "battery": 100,
            }
            events.append(TelemetryMessage(f"sensors/dev{d}/state", json.dumps(payload).encode(), t))
            t += 2 + rng.uniform(-0.2, 0.2)
    return sorted(events, key=lambda m: m.timestamp)


def run(detector, messages):
    alerts = []
    for m in messages:
        alerts.extend(detector.process(m))
    return alerts


@pytest.fixture
def cfg():
    return TelemetryConfig(warmup_messages=30, global_warmup=60, alert_cooldown=30, frozen_count=20)


def test_normal_traffic_raises_nothing(cfg):
    detector = TelemetryDetector(cfg)
    alerts = run(detector, sensor_traffic(devices=8, seconds=1800))
    assert alerts == []
    assert detector.messages > 8 * 800
    dev = {d["device"]: d for d in detector.devices()}["dev0"]
    assert dev["fields"]["uptime"]["monotonic"] is True
    assert 0.3 < dev["usual_rate"] < 0.7  # one message every ~2 s


def warmed(cfg, seconds=300):
    detector = TelemetryDetector(cfg)
    normal = sensor_traffic(devices=3, seconds=seconds)
    assert run(detector, normal) == []
    return detector, normal[-1].timestamp


def test_flood_is_raised_once_per_cooldown(cfg):
    detector, t = warmed(cfg)
    flood = [
        TelemetryMessage("sensors/dev1/state", b'{"temperature": 20.0, "humidity": 45}', t + 1 + i / 300)
        for i in range(3000)
    ]  # 300 msg/s for 10 s
    alerts = run(detector, flood)
    kinds = [a.signature_id for a in alerts]
    floods = [a for a in alerts if "flood" in a.signature]
    assert len(floods) == 1, kinds
    alert = floods[0]
    assert alert.source == "telemetry" and alert.device == "dev1" and alert.family == "MQTTAbuse"
    assert dict(alert.top_features)["rate_per_s"] > cfg.flood_min_rate  # raised as soon as it passes
    assert alert.to_eve()["iotguard"]["source"] == "telemetry"


def test_flood_from_a_new_client_is_raised(cfg):
    detector, t = warmed(cfg)
    flood = [TelemetryMessage("attack/x", b"A" * 500, t + 1 + i / 1000) for i in range(5000)]
    alerts = run(detector, flood)
    assert {a.signature.split(":")[1].split()[1] for a in alerts} >= {"unknown", "message"}


def test_out_of_range_and_frozen_readings(cfg):
    detector, t = warmed(cfg)
    hot = TelemetryMessage("sensors/dev2/state", b'{"temperature": 95.0, "humidity": 45, "uptime": 1}', t + 2)
    alerts = detector.process(hot)
    assert [a.family for a in alerts] == ["SensorAnomaly"]
    assert "temperature=95" in alerts[0].signature
    # a stuck humidity sensor: the same value over and over (temperature still moves, so only one field)
    rng = random.Random(3)
    stuck = [
        TelemetryMessage(
            "sensors/dev0/state",
            json.dumps({"temperature": 20 + rng.gauss(0, 0.3), "humidity": 44.0}).encode(),
            t + 10 + 2 * i,
        )
        for i in range(25)
    ]
    alerts = run(detector, stuck)
    assert [a.signature for a in alerts if "frozen" in a.signature] == [a.signature for a in alerts] and len(
        alerts
    ) == 1
    assert "humidity stuck at 44" in alerts[0].signature


def test_new_topic_foreign_topic_and_new_device(cfg):
    detector, t = warmed(cfg)
    payload = json.dumps({"version": "1.4.2-rc7", "url": "http://10.9.9.9/fw.bin"}).encode()
    new_topic = TelemetryMessage("sensors/dev0/firmware", payload, t + 1)
    assert [a.signature_id for a in detector.process(new_topic)] == [9_100_003]
    # dev1 claims (device_id) to be dev1 but publishes on dev2's topic: it publishes where it never did
    foreign = TelemetryMessage(
        "sensors/dev2/state",
        b'{"device_id": "dev1", "temperature": 20.1, "humidity": 44.9, "uptime": 5}',
        t + 2,
    )
    alerts = detector.process(foreign)
    assert [a.family for a in alerts] == ["Spoofing"] and "used by dev2" in alerts[0].signature
    stranger = TelemetryMessage(
        "sensors/rogue/state", b'{"temperature": 20.0, "humidity": 40, "uptime": 9}', t + 3
    )
    assert [a.signature_id for a in detector.process(stranger)] == [9_100_007]


def test_criticality_and_address_from_device_config(cfg):
    devices = [DeviceConfig(name="dev1", address="192.168.1.21", criticality="high")]
    detector = TelemetryDetector(cfg, devices)
    run(detector, sensor_traffic(devices=3, seconds=300))
    hot = b'{"temperature": 500.0, "humidity": 45.1, "uptime": 1234, "battery": 100}'
    alert = detector.process(TelemetryMessage("sensors/dev1/state", hot, T0 + 301))[0]
    assert alert.src_ip == "192.168.1.21" and alert.severity == 1
    other = detector.process(TelemetryMessage("sensors/dev0/state", hot, T0 + 302))[0]
    assert other.src_ip == "dev0" and other.severity == 2


def test_state_round_trip_keeps_the_baselines(cfg):
    detector, t = warmed(cfg)
    state = json.loads(json.dumps(detector.state()))
    restored = TelemetryDetector(cfg)
    restored.load_state(state)
    # normal traffic straight after a restart: no warm-up, no "new device" alerts
    later = sensor_traffic(devices=3, seconds=120, seed=1, start=t + 5)
    assert run(restored, later) == []
    hot = TelemetryMessage(
        "sensors/dev0/state", b'{"temperature": 99.0, "humidity": 45.0, "uptime": 99}', t + 200
    )
    assert [a.family for a in restored.process(hot)] == ["SensorAnomaly"]


def test_retained_and_ignored_topics_are_skipped(cfg):
    detector = TelemetryDetector(cfg)
    assert detector.process(TelemetryMessage("sensors/a/b", b"x", T0, retained=True)) == []
    assert detector.process(TelemetryMessage("iotguard/alerts", b"x", T0)) == []
    assert detector.messages == 0 and detector.ignored == 2


def test_garbage_payloads_never_crash(cfg):
    detector, t = warmed(cfg)
    rng = random.Random(7)
    for i in range(2000):
        n = rng.randint(0, 300)
        payload = bytes(rng.randrange(256) for _ in range(n))
        if i % 3 == 0:
            payload = b"{" + payload
        if i % 5 == 0:
            payload = b'{"a": ' * 5000  # deeply nested, truncated
        detector.process(TelemetryMessage("sensors/dev0/state", payload, t + i * 0.5))


def test_small_baselines():
    w = Welford()
    for x in (1.0, 2.0, 3.0, 4.0):
        w.learn_one(x)
    assert w.mean == 2.5 and abs(w.std - 1.2909944) < 1e-6
    r = RangeBaseline(seed=0)
    for i in range(100):
        r.learn_one(float(i % 10))
    assert (r.lo, r.hi) == (0.0, 9.0) and r.varies and not r.monotonic
    assert r.score_one(5.0, 0.5) == 0 and r.score_one(13.0, 0.5) == 0 and r.score_one(14.0, 0.5) > 0
    rate = RateBaseline(window=10, memory=100)
    for i in range(600):
        rate.learn_one(T0 + i * 0.5)  # 2 msg/s
    assert abs(rate.usual - 2.0) < 0.1 and abs(rate.score_one(T0 + 300) - 2.0) < 0.3
    # seeded: the same seed gives the same sample
    a, b = RangeBaseline(seed=5, size=16), RangeBaseline(seed=5, size=16)
    for i in range(500):
        a.learn_one(float(i))
        b.learn_one(float(i))
    assert a.sample == b.sample


def restored(cfg, detector):
    again = TelemetryDetector(cfg)
    again.load_state(json.loads(json.dumps(detector.state())))
    return again


def new_devices(alerts):
    return [a.device for a in alerts if a.signature_id == 9_100_007]


def test_a_checkpoint_taken_during_the_global_warmup_goes_on_warming_up(cfg):
    # 30 s of the 60 s warm-up seen, then a restart (or detection after a short site baseline), a day later
    detector = TelemetryDetector(cfg)
    assert run(detector, sensor_traffic(devices=3, seconds=30)) == []
    again = restored(cfg, detector)
    start = T0 + 86_400
    again.process(TelemetryMessage("sensors/dev0/state", b'{"temperature": 20.0}', start))
    # still inside the ~30 s left: a device first heard now is learnt, not unknown
    assert new_devices(again.process(TelemetryMessage("sensors/dev7/state", b"{}", start + 20))) == []
    # past it: a device never heard is unknown
    assert new_devices(again.process(TelemetryMessage("sensors/dev8/state", b"{}", start + 40))) == ["dev8"]


def test_a_restored_baseline_knows_new_devices_on_a_clock_older_than_its_own(cfg):
    # a site baseline recorded after the capture that is checked: its warm-up is over whatever the clock says
    detector, _ = warmed(cfg)
    again = restored(cfg, detector)
    earlier = sensor_traffic(devices=3, seconds=120, seed=3, start=T0 - 3600)
    assert new_devices(run(again, earlier)) == []  # the baseline's devices are known
    rogue = TelemetryMessage("sensors/rogue/state", b'{"temperature": 20.0}', T0 - 3000)
    assert new_devices(again.process(rogue)) == ["rogue"]


def test_a_publishers_usual_rate_survives_a_restart(cfg):
    # one host publishing for three sensors, about 1.5 messages/s together; then, after a restart, it sends
    # 60 messages/s over made-up devices: three times the 20/s floor above its own rate, but below the
    # 5 x 20/s that a publisher of unknown rate must exceed
    normal = sensor_traffic(devices=3, seconds=300)
    for m in normal:
        m.client = "192.168.1.50"
    detector = TelemetryDetector(cfg)
    assert run(detector, normal) == []
    again = restored(cfg, detector)
    t = normal[-1].timestamp + 1
    burst = [
        TelemetryMessage(
            f"sensors/fake{i}/state", b'{"temperature": 20.0}', t + i / 60, client="192.168.1.50"
        )
        for i in range(600)
    ]
    floods = [a for a in run(again, burst) if a.signature_id == 9_100_001]
    assert floods and "from 192.168.1.50" in floods[0].signature


def test_a_damaged_state_is_refused_whole_and_the_warmup_never_outlasts_the_config(cfg):
    detector, t = warmed(cfg)
    good = json.loads(json.dumps(detector.state()))
    for damage in (
        {"publishers": [1]},
        {"topic_owners": ["sensors/dev0/state"]},
        {"warmup_left": float("nan")},
        {"devices": [{"name": "dev9"}]},
    ):
        target = restored(cfg, detector)
        with pytest.raises((ValueError, KeyError, TypeError)):
            target.load_state(good | damage)
        assert target.state() == detector.state()  # nothing replaced
    # a warm-up longer than the configured one (a damaged file, or the setting shortened since) is cut to it
    again = TelemetryDetector(cfg)
    again.load_state(good | {"warmup_left": 1e300})
    assert again.state()["warmup_left"] == cfg.global_warmup
