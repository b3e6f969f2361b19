"""The evidence gate: alerts raise an incident only once what they show together fits their family, and the
detection engine attributes reply-only flows (ICMP errors) to the host whose traffic caused them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iotguard.core.records import Alert
from iotguard.detect.attribution import attribute_flows
from iotguard.detect.evidence import EvidenceConfig, EvidenceGate, EvidenceRule, Observation


def _alert(src: str, dst: str, ts: float, family: str) -> Alert:
    return Alert(
        timestamp=ts, src_ip=src, dest_ip=dst, family=family, severity=2, score=0.9, confidence=0.9, model="m",
        signature_id=1, signature="s",
    )  # fmt: skip


def _obs(
    src: str, dst: str, sport: int, dport: int, *, flow: int | None = None, packets=3, rate=1.0, **volume
):
    conversation = (6, src, sport, dst, dport)
    flow_id = flow if flow is not None else hash(conversation)
    return Observation(flow_id, conversation, (dst, dport), packets, rate, **volume)


def _admit(gate, src, dst, ts, family, sport=40000, dport=80, **kw):
    """One alert of ``family`` from ``src`` to ``dst:dport`` through the gate; returns what it releases."""
    return gate.admit(_alert(src, dst, ts, family), _obs(src, dst, sport, dport, **kw))


def test_a_scan_of_one_port_is_held_and_dropped_five_ports_raise():
    gate = EvidenceGate(window=60)
    # the same port again and again: no scan
    out = [_admit(gate, "10.0.0.5", "10.0.0.9", t, "PortScan", 40000 + t, 80) for t in range(10)]
    assert all(o == [] for o in out) and gate.held == 10 and gate.dropped == 0
    assert gate.expire(65.0) == 0 and gate.held == 10  # within the window of its last alert: still held
    assert gate.expire(100.0) == 10
    assert gate.held == 0 and gate.dropped == 10
    # five ports of one host: a scan; the held alerts come out in order with the one that completed it
    released = [_admit(gate, "10.0.0.6", "10.0.0.9", 200 + i, "PortScan", 50000, port) for i, port in enumerate((22, 23, 80, 443, 8080))]  # fmt: skip
    assert released[:4] == [[], [], [], []]
    assert [a.timestamp for a in released[4]] == [200, 201, 202, 203, 204]
    # from then on its alerts pass at once
    assert len(_admit(gate, "10.0.0.6", "10.0.0.9", 205, "PortScan", 50000, 9)) == 1
    assert gate.held == 0 and gate.dropped == 10


def test_held_alerts_past_the_window_are_dropped_and_counted_not_released_later():
    gate = EvidenceGate(window=60)
    for i in range(4):  # four ports: one short of a scan
        assert _admit(gate, "10.0.0.5", "10.0.0.9", float(i), "PortScan", dport=20 + i) == []
    # the fifth port comes after the window: the old four are dropped, the new one starts afresh
    assert _admit(gate, "10.0.0.5", "10.0.0.9", 200.0, "PortScan", dport=99) == []
    assert gate.dropped == 4 and gate.held == 1
    assert gate.close() == 1 and gate.dropped == 5 and gate.held == 0


def test_a_scan_of_ip_protocols_touches_many_targets(tmp_path):
    # nmap -sO: raw IP packets of many protocol numbers to one host, no ports; the engine's targets count them
    from scapy.all import IP, Ether, Raw, wrpcap

    from iotguard.detect.engine import DetectionEngine
    from iotguard.flows import read_flows

    protocols = (2, 4, 41, 47, 50, 51, 103, 132)
    frames = [Ether() / IP(src="10.0.0.66", dst="10.0.0.9", proto=p) / Raw(b"") for p in protocols]
    for i, frame in enumerate(frames):
        frame.time = 1_700_000_000 + i * 0.01
    wrpcap(str(tmp_path / "ipproto.pcap"), frames)
    flows = read_flows(tmp_path / "ipproto.pcap")
    assert len(flows) == 8 and set(flows["dst_port"]) == {0}
    engine = DetectionEngine(_always_detector())
    events = engine.process(flows)
    assert len(events) == 8 and {e.alert.src_ip for e in events} == {"10.0.0.66"}


def test_a_flood_of_one_short_flow_is_not_a_flood_but_one_fast_flow_is():
    gate = EvidenceGate()
    handshake = _alert("10.0.0.7", "10.0.0.9", 1.0, "DDoS")
    assert gate.admit(handshake, _obs("10.0.0.7", "10.0.0.9", 4000, 80, packets=3, rate=3000.0)) == []
    # a single connection's early record of 10 packets at 1,200 packets/s: a flood on its own
    flood = _alert("10.0.0.8", "10.0.0.9", 2.0, "DDoS")
    pushed = {"bytes": 5120, "byte_rate": 110_000.0}
    assert gate.admit(flood, _obs("10.0.0.8", "10.0.0.9", 4001, 80, packets=10, rate=1200.0, **pushed)) == [
        flood
    ]
    # ... and ten flows of any size are one too; five are not (a browser opens six to one server at once)
    out = []
    for i in range(10):
        out += _admit(gate, "10.0.0.10", "10.0.0.9", 3.0 + i, "DDoS", 5000 + i, 80)
        assert len(out) == (0 if i < 9 else 10)


def test_a_fast_exchange_is_no_flood_only_a_one_sided_one_is():
    """The 10 packets of a connection's set-up take milliseconds on a LAN ("thousands of packets per second"),
    but both sides talk; a flood's sender pushes payload and gets acknowledgements (no payload) back."""
    gate = EvidenceGate()
    poll = _alert("10.0.0.7", "10.0.0.2", 1.0, "MQTTAbuse")  # a request and its answer, ten packets in 1 ms
    exchange = {"bytes": 12, "byte_rate": 12_000.0, "received_bytes": 11}
    assert (
        gate.admit(poll, _obs("10.0.0.7", "10.0.0.2", 4000, 502, packets=10, rate=9000.0, **exchange)) == []
    )
    silent = _alert("10.0.0.8", "10.0.0.2", 1.0, "MQTTAbuse")  # a fast handshake that sends nothing
    assert gate.admit(silent, _obs("10.0.0.8", "10.0.0.2", 4000, 1883, packets=10, rate=1400.0)) == []
    # a publish flood over TCP: CONNECT and three 256-byte publishes, each acknowledged, one CONNACK back
    flood = _alert("10.0.0.9", "10.0.0.2", 2.0, "MQTTAbuse")
    pushed = {"bytes": 800, "byte_rate": 40_000.0, "received_bytes": 4}
    assert gate.admit(flood, _obs("10.0.0.9", "10.0.0.2", 4000, 1883, packets=10, rate=500.0, **pushed)) == [
        flood
    ]
    assert gate.held == 2


def test_an_unusual_flow_that_floods_one_way_is_a_flood_whatever_the_model_calls_it():
    gate = EvidenceGate()
    # an MQTT publish flood the classifier does not know, flagged by the anomaly model only
    flood = _alert("10.0.0.9", "10.0.0.2", 2.0, "Anomaly")
    pushed = {"bytes": 5120, "byte_rate": 100_000.0, "received_bytes": 4}
    assert gate.admit(flood, _obs("10.0.0.9", "10.0.0.2", 4000, 1883, packets=10, rate=200.0, **pushed)) == [
        flood
    ]
    # an unusual but two-sided exchange at the same rate is one conversation: held
    odd = _alert("10.0.0.10", "10.0.0.2", 2.0, "Anomaly")
    talk = {"bytes": 5120, "byte_rate": 100_000.0, "received_bytes": 5000}
    assert gate.admit(odd, _obs("10.0.0.10", "10.0.0.2", 4000, 443, packets=10, rate=200.0, **talk)) == []
    assert gate.held == 1


def test_a_flood_of_few_large_messages_is_a_flood_by_its_bytes():
    gate = EvidenceGate()
    # six 11-kB publishes in a second, each acknowledged: few packets, slow in packets, but 65 kB one way
    flood = _alert("10.0.0.9", "10.0.0.2", 2.0, "MQTTAbuse")
    big = {"bytes": 65_557, "byte_rate": 68_000.0, "received_bytes": 4}
    assert gate.admit(flood, _obs("10.0.0.9", "10.0.0.2", 4000, 1883, packets=10, rate=10.4, **big)) == [
        flood
    ]
    # the same bytes as a download the attacker *received* are no flood of its own
    fetch = _alert("10.0.0.10", "10.0.0.2", 2.0, "MQTTAbuse")
    down = {"bytes": 600, "byte_rate": 600.0, "received_bytes": 65_557}
    assert gate.admit(fetch, _obs("10.0.0.10", "10.0.0.2", 4000, 1883, packets=46, rate=60.0, **down)) == []
    with pytest.raises(ValueError, match="bytes and byte_rate"):
        EvidenceRule(bytes=100)


def test_a_later_record_of_a_held_flow_adds_its_evidence_without_a_second_alert():
    """A flood whose first early record was slow is held; its second early record (100 packets) is fast, and
    although the flow already alerted, that record's evidence releases the held alert."""
    gate = EvidenceGate()
    first = _alert("10.0.0.9", "10.0.0.2", 1.0, "DDoS")
    slow = {"bytes": 300, "byte_rate": 600.0, "received_bytes": 4}
    assert (
        gate.admit(first, _obs("10.0.0.9", "10.0.0.2", 4000, 1883, flow=7, packets=10, rate=20.0, **slow))
        == []
    )
    fast = {"bytes": 25_000, "byte_rate": 50_000.0, "received_bytes": 4}
    later = _obs("10.0.0.9", "10.0.0.2", 4000, 1883, flow=7, packets=100, rate=200.0, **fast)
    assert gate.observe("10.0.0.9", "PortScan", 1.5, later) == []  # nothing held of that family
    assert gate.observe("10.0.0.9", "DDoS", 1.5, later) == [first]
    assert gate.held == 0
    assert gate.observe("10.0.0.9", "DDoS", 1.6, later) == []  # already raised: nothing more


def test_evidence_is_pooled_across_the_families_of_one_attacker():
    """An OS fingerprint's probes look like a scan to the model on one port and like a flood on another; what
    the attacker did in all of them counts towards each family's rule (when pooled: off by default)."""
    gate = EvidenceGate(EvidenceConfig(pooled=True))
    out = []
    for i in range(6):
        out += _admit(gate, "10.0.0.66", "10.0.0.9", 1.0 + i * 0.01, "PortScan", 50000 + i, 135)
    for i in range(3):
        out += _admit(gate, "10.0.0.66", "10.0.0.9", 1.2 + i * 0.01, "DDoS", 50100 + i, 41296)
    assert out == [] and gate.held == 9  # two ports: no scan; nine conversations: no flood yet
    out += _admit(gate, "10.0.0.66", "10.0.0.9", 1.3, "DDoS", 50103, 41296)
    # 10 conversations of one attacker: the DDoS rule holds, and the incident corroborates the scan's alerts
    assert len(out) == 10 and {a.family for a in out} == {"PortScan", "DDoS"} and gate.held == 0
    unpooled = EvidenceGate()
    for i in range(6):
        assert _admit(unpooled, "10.0.0.66", "10.0.0.9", 1.0, "PortScan", 50000 + i, 135) == []
    for i in range(4):
        assert _admit(unpooled, "10.0.0.66", "10.0.0.9", 1.2, "DDoS", 50100 + i, 41296) == []


def test_many_clients_of_one_server_are_no_evidence_for_service_families():
    """Twelve sensors of one broker, each flagged as MQTT abuse on its one connection, are a broker's clients;
    twelve sources of a flood against one victim are a distributed flood."""
    gate = EvidenceGate(window=60, fanin=10, scatter=20)
    out = []
    for i in range(25):
        out += _admit(gate, f"192.168.0.{100 + i}", "10.0.0.2", 1.0 + i, "MQTTAbuse", 40000, 1883)
    assert out == [] and gate.held == 25
    for i in range(12):
        out += _admit(gate, f"198.51.100.{i}", "10.0.0.2", 30.0 + i * 0.01, "DDoS")
    assert len({a.src_ip for a in out}) == 12 and {a.family for a in out} == {"DDoS"}


def test_single_flow_families_are_never_held():
    gate = EvidenceGate()
    exfiltration = _alert("10.0.0.20", "203.0.113.9", 1.0, "Exfiltration")
    assert gate.admit(exfiltration, _obs("10.0.0.20", "203.0.113.9", 4000, 443)) == [exfiltration]
    assert not gate.holds("Exfiltration") and gate.holds("PortScan")


def test_a_botnet_needs_two_flows_a_persistent_channel_counts():
    gate = EvidenceGate()
    first = _alert("10.0.0.30", "198.51.100.3", 0.0, "Botnet")
    early = _alert("10.0.0.30", "198.51.100.3", 10.0, "Botnet")
    assert gate.admit(first, _obs("10.0.0.30", "198.51.100.3", 4000, 23, flow=1)) == []
    # the same flow's final record is not a second flow
    assert gate.admit(early, _obs("10.0.0.30", "198.51.100.3", 4000, 23, flow=1)) == []
    # the channel continues past the flow timeout: a new flow of the same conversation
    later = _alert("10.0.0.30", "198.51.100.3", 130.0, "Botnet")
    assert gate.admit(later, _obs("10.0.0.30", "198.51.100.3", 4000, 23, flow=2)) == [first, early, later]


def test_many_attackers_against_one_victim_are_evidence_together():
    gate = EvidenceGate(window=60, fanin=10)
    out = []
    for i in range(12):  # a spoofed flood: one short flow per source
        src = f"198.51.100.{i}"
        out += gate.admit(_alert(src, "10.0.0.9", 1.0 + i * 0.01, "DDoS"), _obs(src, "10.0.0.9", 4000, 80))
    assert {a.src_ip for a in out} == {f"198.51.100.{i}" for i in range(12)}
    assert gate.held == 0


def test_nine_attackers_against_one_victim_are_not_enough_but_a_scatter_is():
    gate = EvidenceGate(window=60, fanin=10, scatter=20)
    for i in range(9):  # one short of the fan-in: each still a lone short flow
        assert _admit(gate, f"198.51.100.{i}", "10.0.0.9", 1.0 + i * 0.01, "DDoS") == []
    assert gate.held == 9
    # a spoofed flood sprayed over many victims: 20 sources of one family anywhere release them all
    out = []
    for i in range(11):
        out += _admit(gate, f"203.0.113.{i}", f"10.0.0.{20 + i}", 2.0 + i * 0.01, "DDoS")
    assert len({a.src_ip for a in out}) == 20 and gate.held == 0
    # other families are counted apart
    assert _admit(gate, "192.0.2.1", "10.0.0.9", 3.0, "PortScan") == []


def test_the_gate_ages_a_released_scatter_group():
    """A released family-wide (scatter) group is a 2-tuple, a victim group a 3-tuple: ageing must tell them
    apart (it read the victim group's third field of every group and crashed on a real capture)."""
    gate = EvidenceGate(window=60, fanin=10, scatter=3)
    out = []
    for i in range(3):
        out += _admit(gate, f"203.0.113.{i}", f"10.0.0.{20 + i}", 1.0 + i, "DDoS")
    assert len(out) == 3
    gate.expire(30.0)  # the group is still alive: kept
    assert gate._released_groups == {("family", "DDoS")}
    gate.expire(200.0)  # everyone aged out: the group is forgotten
    assert gate._released_groups == set()


def test_a_flood_from_a_million_style_spread_of_sources_releases_each_newcomer_and_then_goes_quiet():
    """Once a fan-in group is released, each new source is released alone (no walk over the whole group),
    the group falls back below its size as sources age out, and then it holds again."""
    gate = EvidenceGate(window=10, fanin=10, scatter=10**9)
    released = []
    for i in range(5000):
        src = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
        released += _admit(gate, src, "10.0.0.9", 100.0 + i * 0.001, "DDoS")
    assert len(released) == 5000 and gate.held == 0
    # all 5000 are within the 10 s window, but the group keeps only the newest it needs to know it is full
    assert len(gate._by_victim[("10.0.0.9", "DDoS")]) == 10
    # 20 s later the flood is over: a lone source is held again, and the old ones were forgotten
    assert _admit(gate, "192.0.2.7", "10.0.0.9", 125.0, "DDoS") == []
    assert list(gate._by_victim[("10.0.0.9", "DDoS")]) == ["192.0.2.7"] and gate.held == 1


def test_memory_stays_bounded_under_a_flood_of_distinct_sources():
    """A spoofed flood names every source it releases; what the gate remembers stays within max_keys."""
    gate = EvidenceGate(EvidenceConfig(max_keys=100), window=1000, fanin=10, scatter=10**9)
    released = 0
    for i in range(2000):
        released += len(_admit(gate, f"10.1.{i // 256}.{i % 256}", "10.0.0.9", 100.0 + i * 0.001, "DDoS"))
    assert released == 2000 and gate.held == 0
    assert len(gate._keys) <= 100 and len(gate._named) <= 100
    assert "10.1.7.207" in gate._named  # the newest source is still remembered as named
    assert not gate._keys  # every source was released: none is still gathering evidence


def test_an_attacker_named_by_one_incident_corroborates_its_other_alerts():
    gate = EvidenceGate()
    odd = _alert("10.0.0.40", "10.0.0.2", 1.0, "Anomaly")
    assert gate.admit(odd, _obs("10.0.0.40", "10.0.0.2", 4000, 1883)) == []
    flood = _alert("10.0.0.40", "10.0.0.2", 2.0, "MQTTAbuse")
    out = gate.admit(flood, _obs("10.0.0.40", "10.0.0.2", 4001, 1883, packets=10, rate=800.0, bytes=900))
    assert out == [flood, odd]


def test_rules_are_configurable_and_the_gate_can_be_off():
    off = EvidenceGate(EvidenceConfig(enabled=False))
    lone = _alert("10.0.0.5", "10.0.0.9", 0.0, "PortScan")
    assert off.admit(lone, _obs("10.0.0.5", "10.0.0.9", 4000, 80)) == [lone]
    strict = EvidenceGate(EvidenceConfig(rules={"Exfiltration": EvidenceRule(conversations=2)}))
    assert _admit(strict, "10.0.0.5", "1.2.3.4", 0.0, "Exfiltration", 1, 443) == []
    with pytest.raises(ValueError, match="packets and rate"):
        EvidenceRule(packets=10)


def test_held_alerts_are_bounded():
    gate = EvidenceGate(EvidenceConfig(max_held=5, max_keys=3))
    for i in range(20):
        _admit(gate, "10.0.0.5", "10.0.0.9", float(i), "PortScan", 4000 + i, 80)
    assert gate.held == 5 and gate.dropped == 15
    for i in range(5):  # more attackers than keys: the least recently active go first
        _admit(gate, f"10.0.1.{i}", "10.0.0.9", 30.0 + i, "PortScan", 4000, 80)
    assert len(gate._keys) == 3 and gate.held == 3 and gate.close() == 3


def _flows(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_icmp_errors_and_replies_are_attributed_to_the_peer():
    flows = _flows(
        [
            {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.66", "protocol": 1, "icmp_type": 3},  # port unreachable
            {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.66", "protocol": 1, "icmp_type": 11},  # time exceeded
            {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.66", "protocol": 1, "icmp_type": 0},  # echo reply first
            {"src_ip": "10.0.0.66", "dst_ip": "10.0.0.9", "protocol": 1, "icmp_type": 8},  # echo request
            {"src_ip": "10.0.0.66", "dst_ip": "10.0.0.9", "protocol": 6, "icmp_type": -1},
            {"src_ip": "fe80::9", "dst_ip": "fe80::66", "protocol": 58, "icmp_type": 1},  # ICMPv6 unreachable
            {"src_ip": "fe80::66", "dst_ip": "fe80::9", "protocol": 58, "icmp_type": 128},  # ICMPv6 echo req.
        ]
    )
    assert attribute_flows(flows).swapped.tolist() == [True, True, True, False, False, True, False]
    who = attribute_flows(flows)
    assert set(who.attacker) == {"10.0.0.66", "fe80::66"} and set(who.victim) == {"10.0.0.9", "fe80::9"}
    assert who.swapped.sum() == 4 and not who.nobody.any()
    assert attribute_flows(flows.drop(columns=["icmp_type"])).swapped.tolist() == [False] * len(flows)


def test_tcp_flows_opened_by_an_answer_name_the_client_or_nobody():
    """A flow whose first packet seen is a SYN-ACK was opened by its destination (its SYN unseen); one whose
    first packet is a RST is an answer or a forgery: nobody to name. Other first packets stay with the source."""
    server, client = "10.0.0.9", "10.0.0.66"
    row = {"src_ip": server, "dst_ip": client, "protocol": 6, "icmp_type": -1}
    flows = _flows(
        [
            row | {"tcp_first_flags": 0x12, "bwd_packets": 0, "bwd_rst_flags": 0},  # SYN-ACK, nothing back
            row | {"tcp_first_flags": 0x12, "bwd_packets": 4, "bwd_rst_flags": 0},  # the client goes on
            row
            | {
                "tcp_first_flags": 0x12,
                "bwd_packets": 1,
                "bwd_rst_flags": 1,
            },  # refused: flood or backscatter
            row | {"tcp_first_flags": 0x14, "bwd_packets": 0, "bwd_rst_flags": 0},  # RST-ACK first
            row | {"tcp_first_flags": 0x04, "bwd_packets": 0, "bwd_rst_flags": 0},  # RST first
            row | {"tcp_first_flags": 0x02, "bwd_packets": 1, "bwd_rst_flags": 0},  # SYN: the source opened
            row
            | {"tcp_first_flags": 0x10, "bwd_packets": 1, "bwd_rst_flags": 1},  # ACK scan probe / mid-stream
            row | {"tcp_first_flags": 0x29, "bwd_packets": 0, "bwd_rst_flags": 0},  # XMAS probe
            row | {"tcp_first_flags": 0x00, "bwd_packets": 0, "bwd_rst_flags": 0},  # NULL probe
            row | {"protocol": 17, "tcp_first_flags": -1, "bwd_packets": 1, "bwd_rst_flags": 0},
        ]
    )
    who = attribute_flows(flows)
    assert who.swapped.tolist() == [True, True] + [False] * 8
    assert who.attacker.tolist() == [client, client] + [server] * 8
    assert who.victim.tolist()[:2] == [server, server]
    assert who.unattributed.tolist() == [False, False, True, True, True] + [False] * 5
    assert who.nobody.tolist() == who.unattributed.tolist()
    # a flow table without the column (a dataset's CSV): every TCP flow stays with its source
    assert not attribute_flows(flows.drop(columns=["tcp_first_flags"])).swapped.any()


def test_attribution_marks_two_way_self_flows():
    flows = _flows(
        [
            {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.9", "protocol": 6, "bwd_packets": 5},
            {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.9", "protocol": 6, "bwd_packets": 0},  # LAND
            {"src_ip": "10.0.0.9", "dst_ip": "10.0.0.8", "protocol": 6, "bwd_packets": 5},
        ]
    )
    assert attribute_flows(flows).self_flow.tolist() == [True, False, False]
    assert not attribute_flows(flows.drop(columns=["bwd_packets"])).self_flow.any()


class _Always:
    """A stand-in classifier artifact: every flow is a PortScan with certainty (only the edge is faked)."""

    name = "always"
    kind = "classifier"
    features = ["dst_port", "icmp_type"]
    classes = ["Benign", "PortScan"]
    benign_index = 0

    def predict_array(self, x):
        class P:
            pass

        p = P()
        p.proba = np.tile([1e-9, 1 - 1e-9], (len(x), 1)).astype(np.float32)
        p.score = p.proba[:, 1]
        p.classes = self.classes
        return p


def _always_detector():
    from iotguard.detect.detector import Calibration, Component, Detector

    comp = Component("classifier", _Always(), 0.0, Calibration("logistic", np.zeros(0), np.zeros(0)))
    return Detector(comp, None)


def test_engine_names_the_scanner_not_the_victims_answering_it():
    from iotguard.detect.engine import DetectionEngine

    engine = DetectionEngine(_always_detector())
    rows = []
    for i, victim in enumerate(("10.0.0.10", "10.0.0.11", "10.0.0.12")):
        for port in (53, 123, 161, 500, 1900):  # the scanner's UDP probes
            rows.append({"flow_id": len(rows), "src_ip": "10.0.0.66", "src_port": 40000, "dst_ip": victim,
                         "dst_port": port, "protocol": 17, "icmp_type": -1, "ts_last": 100.0 + i})  # fmt: skip
        # and the victim's ICMP port unreachable answers
        rows.append({"flow_id": len(rows), "src_ip": victim, "src_port": 0, "dst_ip": "10.0.0.66",
                     "dst_port": 0, "protocol": 1, "icmp_type": 3, "ts_last": 100.5 + i})  # fmt: skip
    events = engine.process(pd.DataFrame(rows))
    assert {e.alert.src_ip for e in events} == {"10.0.0.66"}
    assert {e.incident.src_ip for e in events} == {"10.0.0.66"}
    replies = [e.alert for e in events if e.alert.proto == "ICMP"]
    assert len(replies) == 3 and {a.dest_ip for a in replies} == {"10.0.0.10", "10.0.0.11", "10.0.0.12"}
    assert engine.stats.reply_flows == 3


def test_the_sensor_configuration_turns_the_gate_off():
    from iotguard.core.config import Config
    from iotguard.detect.engine import detection_config

    assert detection_config(Config()).evidence.enabled
    off = detection_config(Config.model_validate({"detect": {"evidence": False}}))
    assert not off.evidence.enabled


def test_engine_drops_and_counts_a_lone_alert_it_never_stores(tmp_path):
    from iotguard.core.store import Store
    from iotguard.detect.engine import DetectionEngine

    rows = [{"flow_id": 1, "src_ip": "10.0.0.5", "src_port": 40000, "dst_ip": "10.0.0.9", "dst_port": 80,
             "protocol": 6, "icmp_type": -1, "ts_last": 100.0}]  # fmt: skip
    with Store(tmp_path / "a.db") as store:
        engine = DetectionEngine(_always_detector(), store=store)
        assert engine.process(pd.DataFrame(rows)) == []
        assert engine.stats.held == 1 and engine.stats.insufficient_evidence == 0
        assert engine.close() == [] and engine.stats.insufficient_evidence == 1 and engine.stats.held == 0
        assert store.alerts(limit=None) == [] and store.incidents(limit=None) == []


def test_engine_drops_self_flows_but_not_a_land_attack():
    """A two-way flow between an address and itself names no attacker (rewritten addresses or a loopback
    capture); a one-way one (LAND: spoofed packets from the victim to itself) still alerts."""
    from iotguard.detect.engine import DetectionEngine

    engine = DetectionEngine(_always_detector(), config=_no_gate())
    rows = [
        {"flow_id": 1, "src_ip": "10.0.0.9", "src_port": 40000, "dst_ip": "10.0.0.9", "dst_port": 502,
         "protocol": 6, "icmp_type": -1, "ts_last": 100.0, "fwd_packets": 5, "bwd_packets": 5},
        {"flow_id": 2, "src_ip": "10.0.0.9", "src_port": 139, "dst_ip": "10.0.0.9", "dst_port": 139,
         "protocol": 6, "icmp_type": -1, "ts_last": 100.0, "fwd_packets": 1, "bwd_packets": 0},
    ]  # fmt: skip
    events = engine.process(pd.DataFrame(rows))
    assert [e.alert.flow_id for e in events] == [2]
    assert engine.stats.self_flows == 1


def test_engine_names_the_client_of_a_syn_ack_flow_and_nobody_for_a_reset():
    from iotguard.detect.engine import DetectionEngine

    engine = DetectionEngine(_always_detector(), config=_no_gate())
    base = {"src_ip": "10.0.0.9", "src_port": 135, "dst_ip": "10.0.0.66", "protocol": 6, "icmp_type": -1,
            "ts_last": 100.0, "fwd_packets": 1, "bwd_packets": 0, "bwd_rst_flags": 0}  # fmt: skip
    rows = [
        base | {"flow_id": 1, "dst_port": 40001, "tcp_first_flags": 0x12},
        base | {"flow_id": 2, "dst_port": 40002, "tcp_first_flags": 0x14},
    ]
    events = engine.process(pd.DataFrame(rows))
    assert [
        (e.alert.flow_id, e.alert.src_ip, e.alert.src_port, e.alert.dest_ip, e.alert.dest_port)
        for e in events
    ] == [(1, "10.0.0.66", 40001, "10.0.0.9", 135)]
    assert engine.stats.reply_flows == 1 and engine.stats.unattributed == 1 and engine.stats.self_flows == 0


def test_engine_measures_the_attackers_side_of_each_flow():
    from iotguard.detect.engine import _attacker_volumes

    flows = pd.DataFrame(
        {
            "fwd_packets": [10, 2, 5], "bwd_packets": [0, 6, 0], "fwd_bytes": [5120, 0, 100],
            "bwd_bytes": [0, 900, 0], "flow_duration": [45_000, 1_000_000, 0],
        }
    )  # fmt: skip
    # the second record is a reply-only flow: its destination is the attacker, what it sent is the bwd side
    vol = _attacker_volumes(flows, np.array([False, True, False]))
    assert vol["packets"].tolist() == [10, 8, 5] and vol["rate"][1] == pytest.approx(8.0)
    assert vol["bytes"].tolist() == [5120, 900, 100] and vol["received_bytes"].tolist() == [0, 0, 0]
    assert vol["rate"][0] == pytest.approx(222.2, abs=0.1) and vol["byte_rate"][1] == pytest.approx(900.0)
    assert np.isinf(vol["rate"][2])  # all in one microsecond


def _no_gate():
    from iotguard.detect.engine import DetectionConfig

    return DetectionConfig(evidence=EvidenceConfig(enabled=False))


def test_the_gate_ages_even_in_batches_that_release_alerts():
    """A sustained attack releases alerts in every batch; a lone held alert must still be dropped once its
    window has passed, not kept until shutdown."""
    from iotguard.detect.engine import DetectionEngine

    def row(i, src, dst, port, ts):
        return {"flow_id": i, "src_ip": src, "src_port": 40000, "dst_ip": dst, "dst_port": port,
                "protocol": 17, "icmp_type": -1, "ts_last": ts}  # fmt: skip

    engine = DetectionEngine(_always_detector())
    assert engine.process(pd.DataFrame([row(0, "10.0.0.5", "10.0.0.9", 80, 100.0)])) == []  # held
    assert engine.stats.held == 1
    # 400 s later a scanner releases alerts in the same batch that moves the clock past the window
    scan = [row(1 + p, "10.0.0.66", "10.0.0.10", 1000 + p, 500.0) for p in range(6)]
    assert engine.process(pd.DataFrame(scan))
    assert engine.stats.held == 0 and engine.stats.insufficient_evidence == 1


def test_an_attacker_s_evidence_holds_no_more_than_its_rule_reads():
    gate = EvidenceGate(window=60)
    for i in range(4):  # a scanner of four ports, many connections each: held, PortScan needs 5 targets
        for k in range(50):
            _admit(gate, "10.0.0.5", "10.0.0.9", float(i), "PortScan", 40000 + 50 * i + k, 80 + i)
    entry = gate._keys[("10.0.0.5", "PortScan")]
    assert len(entry.targets) == 4 and not entry.conversations and not entry.flows
    assert len(_admit(gate, "10.0.0.5", "10.0.0.9", 5.0, "PortScan", 50000, 99)) == 201  # the fifth port


def test_sources_that_are_no_host_name_nobody():
    """Unspecified, multicast and broadcast sources (DHCP discovery, IPv6 duplicate address detection, forged
    packets) name no host that could be contained: nobody. A directed broadcast or a link-local host is
    not known to be one and stays named."""
    sources = [
        "0.0.0.0",
        "::",
        "ff02::16",
        "224.0.0.251",
        "255.255.255.255",
        "10.0.0.255",
        "fe80::1",
        "10.0.0.7",
    ]
    rows = [{"src_ip": s, "dst_ip": "fe80::9" if ":" in s else "10.0.0.9", "protocol": 17} for s in sources]
    who = attribute_flows(_flows([r | {"tcp_first_flags": -1, "bwd_packets": 0} for r in rows]))
    assert who.unattributed.tolist() == [True] * 5 + [False] * 3
    assert who.nobody.tolist() == who.unattributed.tolist()
    # an ICMP reply-only flow is attributed to its destination: there the destination must be a host
    reply = _flows([{"src_ip": "10.0.0.9", "dst_ip": "224.0.0.1", "protocol": 1, "icmp_type": 0}])
    assert attribute_flows(reply).nobody.tolist() == [True]
