"""The evidence gate and attribution on real captures (``shared/data/pcaps``), with a stand-in model that flags
every flow as one family: what the gate lets through then depends only on the traffic's own shape.

* MQTTset's benign capture: ten sensors on long connections to one broker. Even with every flow flagged as
  MQTT abuse, nothing raises: each sensor has one conversation, their connection set-ups are fast but
  two-sided, and a broker's crowd of clients is no distributed attack.
* MQTTset's publish flood: one connection pushing large publishes (few packets, ~1 MB one way) raises an
  incident on its bytes.
* Zeek's Modbus capture (anonymised: both ends of every flow have one address): no attacker to name, nothing
  raised, every flagged flow counted as a self flow.
* Zeek's VNC scanner capture: one connection, no volume, held and dropped (documented as missed).
"""

from __future__ import annotations

import numpy as np
import pytest

from iotguard.detect.detector import Calibration, Component, Detector
from iotguard.detect.engine import DetectionEngine
from iotguard.flows import iter_flows


class _Flags:
    """A stand-in classifier artifact flagging every flow as ``family`` with certainty (only the model is
    faked; flows, attribution, gate and folding are the real ones)."""

    kind = "classifier"
    features = ["dst_port"]
    benign_index = 0

    def __init__(self, family: str) -> None:
        self.name = f"always-{family}"
        self.classes = ["Benign", family]

    def predict_array(self, x):
        class P:
            pass

        p = P()
        p.proba = np.tile([1e-9, 1 - 1e-9], (len(x), 1)).astype(np.float32)
        p.score = p.proba[:, 1]
        p.classes = self.classes
        return p


def _run(capture, family: str) -> DetectionEngine:
    comp = Component("classifier", _Flags(family), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    engine = DetectionEngine(Detector(comp, None))
    for batch in iter_flows(capture, early=10):
        engine.process(batch)
    engine.close()
    return engine


def test_a_brokers_sensors_raise_nothing_even_if_every_flow_is_flagged(data_file):
    engine = _run(data_file("pcaps/mqttset_reduced/benign.pcap"), "MQTTAbuse")
    assert engine.stats.flagged == engine.stats.flows > 80
    assert engine.stats.incidents == 0 and engine.stats.alerts == 0
    assert engine.stats.insufficient_evidence > 0


def test_a_publish_flood_of_large_messages_raises_on_its_bytes(data_file):
    engine = _run(data_file("pcaps/mqttset_reduced/flood.pcap"), "MQTTAbuse")
    assert engine.stats.flows == 2  # one connection: its early and its final record
    assert engine.stats.incidents == 1 and engine.stats.alerts >= 1


def test_self_flows_of_an_anonymised_capture_name_no_attacker(data_file):
    engine = _run(data_file("pcaps/zeek/modbus_modbusSmall.pcap"), "DoS")
    assert engine.stats.self_flows == engine.stats.flagged == engine.stats.flows > 30
    assert engine.stats.alerts == 0 and engine.stats.incidents == 0


@pytest.mark.parametrize("family", ["PortScan", "Anomaly"])
def test_one_connection_of_a_vnc_scanner_is_not_enough_evidence(data_file, family):
    engine = _run(data_file("pcaps/zeek/rfb_vnc-scanner.pcap"), family)
    # its early and final record are one flow: one alert, held, dropped
    assert (
        engine.stats.incidents == 0
        and engine.stats.insufficient_evidence == 1
        and engine.stats.duplicate == 1
    )
