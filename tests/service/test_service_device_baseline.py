"""A site baseline teaches the sensor's device detectors (MQTT telemetry, inventory) the site's devices, as
``iotguard detect --baseline`` uses it: on MQTTset's benign capture split in two, the second half raises no
"unknown device" once the first half is the baseline."""

from __future__ import annotations

import pytest

from iotguard.core.errors import DataError
from iotguard.service.offline import CaptureWatch, learn_devices
from iotguard.telemetry.detector import KINDS

NEW_DEVICE = KINDS["new_device"][0]


def unknown_devices(path, baseline=None) -> list[str]:
    records = CaptureWatch(10, baseline=baseline).records(path)
    return sorted(a.device for _, alerts in records for a in alerts if a.signature_id == NEW_DEVICE)


def test_a_baseline_capture_teaches_the_telemetry_its_devices(mqttset_halves):
    first, second = mqttset_halves
    # Without a baseline the second half starts mid-stream: sensors that first publish after the telemetry's
    # global warm-up are "unknown devices" (what the baseline must fix; the whole capture raises none).
    unknown = unknown_devices(second)
    assert unknown
    learnt = learn_devices(first, 10)
    assert learnt.messages > 1000
    assert set(unknown) <= {d["name"] for d in learnt.telemetry["devices"]}
    assert learnt.inventory_devices > 0
    assert unknown_devices(second, learnt) == []


def test_a_baseline_capture_is_learnt_the_same_way_twice(mqttset_halves):
    first, _ = mqttset_halves
    assert learn_devices(first, 10) == learn_devices(first, 10)


def test_a_flow_table_has_no_devices_to_learn(tmp_path):
    with pytest.raises(DataError, match=r"flows\.parquet: a flow table has no MQTT messages"):
        learn_devices(tmp_path / "flows.parquet", 10)
