"""MQTT telemetry read off the wire: agreement with tshark on real captures, the framing cases, and the
anomalies the real MQTTset attack captures raise (the benign one raises none)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections import Counter

import pytest

from iotguard.capture import open_source
from iotguard.capture.batch import LINKTYPE_ETHERNET, PacketBatch
from iotguard.core.config import TelemetryConfig
from iotguard.telemetry import MqttTap, TelemetryDetector, TelemetryMessage

MQTTSET = "pcaps/mqttset_reduced"


def tap_capture(path):
    tap = MqttTap()
    messages = []
    for batch in open_source(path):
        messages += tap.messages(batch)
    return tap, messages


def tshark_publishes(path) -> Counter:
    """(topic, publisher) of every PUBLISH sent to port 1883, as tshark decodes them."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "mqtt.msgtype == 3 && tcp.dstport == 1883", "-T", "fields"]
        + ["-e", "mqtt.topic", "-e", "ip.src"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: Counter = Counter()
    for line in out.splitlines():
        topics, src = line.split("\t")
        for topic in topics.split(","):  # several PUBLISH in one segment
            found[(topic, src)] += 1
    return found


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", ["benign.pcap", "flood.pcap", "malformed.pcap", "malariados.pcap"])
def test_publishes_agree_with_tshark_on_real_captures(data_file, name):
    path = data_file(f"{MQTTSET}/{name}")
    tap, messages = tap_capture(path)
    ours = Counter((m.topic, m.client) for m in messages)
    theirs = tshark_publishes(path)
    assert sum(theirs.values()) > 0
    # never a message tshark does not see (at most a retransmitted one it marks as such) ...
    assert sum((ours - theirs).values()) <= max(1, sum(theirs.values()) // 1000)
    if name == "malariados.pcap":
        # ... and only messages split over TCP segments missed (tshark reassembles them; we count them)
        missed = sum((theirs - ours).values())
        assert 0 < missed <= tap.skipped["cut_packet"] + tap.skipped["not_at_packet_boundary"]
        # the rest of a split message is continuation, never misread as a broken PUBLISH
        assert tap.skipped["continuation"] > 0 and tap.skipped["malformed_publish"] == 0
        assert missed < 0.1 * sum(theirs.values())
    else:
        assert not theirs - ours


def test_real_mqttset_attacks_raise_anomalies_and_benign_traffic_none(data_file):
    def alerts_of(name):
        detector = TelemetryDetector(TelemetryConfig())
        _, messages = tap_capture(data_file(f"{MQTTSET}/{name}"))
        return [a for m in messages for a in detector.process(m)]

    assert alerts_of("benign.pcap") == []
    flood = alerts_of("flood.pcap")
    assert [a.src_ip for a in flood if "flood" in a.signature] == ["192.168.1.100"]
    dos = alerts_of("malariados.pcap")
    assert dos and {a.src_ip for a in dos} == {"192.168.1.90"} and all(a.family == "MQTTAbuse" for a in dos)


# -- framing, on hand-built frames ------------------------------------------------------------------------
CLIENT, BROKER = "10.0.0.5", "10.0.0.1"


def _ipv4(src: str, dst: str, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, 6, 0,
        bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))),
    )  # fmt: skip
    return header + payload


def _tcp(sport: int, dport: int, data: bytes, seq: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, flags, 65535, 0, 0) + data


def frame(
    data: bytes, *, sport=40000, dport=1883, src=CLIENT, dst=BROKER, vlan=False, seq=1, flags=0x18
) -> bytes:
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    eth += (b"\x81\x00\x00\x07" if vlan else b"") + b"\x08\x00"
    return eth + _ipv4(src, dst, _tcp(sport, dport, data, seq, flags))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, *, qos=0, props: bytes | None = None) -> bytes:
    body = struct.pack("!H", len(topic)) + topic.encode() + (b"\x00\x07" if qos else b"")
    if props is not None:
        body += _varint(len(props)) + props
    body += payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


def connect(level: int) -> bytes:
    body = (
        b"\x00\x04MQTT" + bytes([level, 0x02]) + b"\x00\x3c" + (b"\x00" if level == 5 else b"") + b"\x00\x01c"
    )
    return b"\x10" + _varint(len(body)) + body


def batch(*frames: bytes) -> PacketBatch:
    return PacketBatch.from_packets(
        list(frames), [1_000_000 * (i + 1) for i in range(len(frames))], LINKTYPE_ETHERNET
    )


def test_framing_qos_several_per_segment_vlan_and_direction():
    tap = MqttTap()
    first = publish("a/b", b'{"t": 1}') + publish("a/c", b"x" * 300, qos=1)
    got = tap.messages(
        batch(
            frame(first),
            frame(publish("v/1", b"1"), vlan=True, seq=1 + len(first)),
            frame(publish("down/1", b"ignored"), sport=1883, dport=40000, src=BROKER, dst=CLIENT),
        )
    )
    assert [(m.topic, m.payload, m.client, m.broker) for m in got] == [
        ("a/b", b'{"t": 1}', CLIENT, BROKER),
        ("a/c", b"x" * 300, CLIENT, BROKER),
        ("v/1", b"1", CLIENT, BROKER),
    ]
    assert got[0].timestamp == 1.0 and got[2].timestamp == 2.0


def test_mqtt5_properties_are_skipped_after_a_v5_connect():
    tap = MqttTap()
    props = b"\x01\x01"  # payload format indicator = 1
    got = tap.messages(
        batch(frame(connect(5)), frame(publish("s/1", b"hello", props=props), seq=1 + len(connect(5))))
    )
    assert [(m.topic, m.payload) for m in got] == [("s/1", b"hello")]
    # the same bytes on a 3.1.1 connection: the properties are payload
    got = MqttTap().messages(
        batch(
            frame(connect(4), sport=40001),
            frame(publish("s/1", b"hello"), sport=40001, seq=1 + len(connect(4))),
        )
    )
    assert got[0].payload == b"hello"
    # a new connection on a port an MQTT 5 client used, whose CONNECT is missed, is read as 3.1.1 again
    tap = MqttTap()
    tap.messages(batch(frame(connect(5), sport=40002)))
    got = tap.messages(batch(syn(500, sport=40002), frame(publish("s/2", b"hi"), sport=40002, seq=5000)))
    assert got[0].payload == b"hi"


def syn(seq: int, **kw) -> bytes:
    """A client's SYN: the connection's first data byte is ``seq + 1``."""
    return frame(b"", seq=seq, flags=0x02, **kw)


def test_segments_not_at_a_packet_boundary_are_counted_not_guessed():
    tap = MqttTap()
    whole = publish("a/b", b"y" * 400)
    got = tap.messages(
        batch(
            syn(0),
            frame(whole[:200]),
            frame(whole[200:], seq=201),
            frame(b"\x00\x00garbage", sport=40001),
        )
    )
    assert got == []
    assert tap.skipped == Counter(cut_packet=1, continuation=1, not_at_packet_boundary=1)
    # a cut header (the remaining length's bytes) after a whole packet
    got = tap.messages(batch(frame(publish("c/d", b"1") + b"\x30\xff", sport=40003)))
    assert [m.topic for m in got] == ["c/d"] and tap.skipped["cut_packet"] == 2
    bad_topic = b"\x30\x05\x00\x02\xff\xfeZ"  # a topic that is not UTF-8
    assert tap.messages(batch(frame(bad_topic, sport=40002))) == [] and tap.skipped["malformed_publish"] == 1


# -- the detector with publisher addresses ----------------------------------------------------------------
def test_a_flood_of_made_up_devices_is_one_alert_per_kind_and_keeps_real_baselines():
    cfg = TelemetryConfig(global_warmup=10.0, warmup_messages=5)
    detector = TelemetryDetector(cfg)
    alerts = []
    t = 1_700_000_000.0
    for i in range(120):  # four real sensors, one reading every 2 s each
        for d in range(4):
            m = TelemetryMessage(
                f"home/dev{d}/t", json.dumps({"t": 20 + i % 3}).encode(), t + 2 * i, client=f"10.0.0.{d + 10}"
            )
            alerts += detector.process(m)
    assert alerts == []
    t += 240
    # 20,000 messages in 20 s from one host, each naming a new device (more than the device table holds)
    for k in range(20_000):
        m = TelemetryMessage(f"home/x{k:05d}/t", b'{"t": 1}', t + k / 1000, client="10.0.0.66")
        alerts += detector.process(m)
    kinds = Counter(a.signature.split(": ")[1].split(" ", 1)[1] for a in alerts)
    assert {a.src_ip for a in alerts} == {"10.0.0.66"}
    assert kinds == Counter({"unknown device": 1, "message flood": 1})
    names = {d["device"] for d in detector.devices()}
    assert {"dev0", "dev1", "dev2", "dev3"} <= names  # the real devices' baselines survived


def test_a_publisher_s_flood_is_judged_by_the_same_limit_as_a_device_s():
    # A learned publisher at 2 msg/s, then 50 msg/s spread over ten topics of its own known devices: no device
    # passes its own limit (20 msg/s), the publisher passes max(flood_min_rate, flood_factor x usual) = 20.
    cfg = TelemetryConfig(global_warmup=10.0, warmup_messages=5, flood_min_rate=20.0, flood_factor=5.0)
    detector = TelemetryDetector(cfg)
    t = 1_700_000_000.0
    alerts = []
    for i in range(600):  # ten sensors behind one gateway, 2 msg/s in all, for 300 s
        m = TelemetryMessage(f"site/s{i % 10}/t", b'{"t": 20}', t + i / 2, client="10.0.0.5")
        alerts += detector.process(m)
    assert alerts == []
    t += 300
    for i in range(1_000):  # 50 msg/s for 20 s: 5 msg/s per sensor
        m = TelemetryMessage(f"site/s{i % 10}/t", b'{"t": 20}', t + i / 50, client="10.0.0.5")
        alerts += detector.process(m)
    floods = [a for a in alerts if "message flood" in a.signature]
    assert [a.src_ip for a in floods] == ["10.0.0.5"]
    assert floods[0].top_features[0][0] == "publisher_rate_per_s"


def test_a_split_message_s_rest_is_never_read_as_packets_and_reading_resumes_after_it():
    tap = MqttTap()
    # the payload of a large message holds bytes that look like a whole PUBLISH of their own
    decoy = publish("fake/topic", b"not a message")
    big = publish("cam/1", b"z" * 100 + decoy + b"z" * 400)
    after = publish("cam/2", b'{"t": 2}')
    cut = 150  # the second segment starts at the decoy
    segments = [
        syn(999),
        frame(big[:cut], seq=1000),
        frame(big[cut:] + after, seq=1000 + cut),  # the message's tail, then a whole next one
        frame(big[cut:], seq=1000 + cut),  # a retransmission of the tail
        frame(publish("cam/3", b"3"), seq=1000 + len(big) + len(after)),
    ]
    got = tap.messages(batch(*segments))
    assert [m.topic for m in got] == ["cam/2", "cam/3"]
    assert tap.skipped == Counter(cut_packet=1, retransmission=1)
    # a boundary that lies beyond a whole segment: that segment is continuation, and its decoy is not read
    tap = MqttTap()
    got = tap.messages(batch(syn(4), frame(big[:cut], seq=5), frame(big[cut : cut + 60], seq=5 + cut)))
    assert got == [] and tap.skipped == Counter(cut_packet=1, continuation=1)
    # ... however far the rest of a large message reaches (here 2 MB on), its segments are continuation
    huge = b"\x30\x80\x80\x80\x01" + b"\x00\x05cam/9"  # remaining length 2 MiB
    tap = MqttTap()
    got = tap.messages(batch(syn(0), frame(huge, seq=1), frame(decoy, seq=1 + 1_500_000)))
    assert got == [] and tap.skipped == Counter(cut_packet=1, continuation=1)
    # stray bytes claiming a large packet, where no packet was expected (the sensor started mid-connection),
    # are not believed: the connection's next whole packets are still read
    tap = MqttTap()
    stray = b"\x30\xff\xff\x3f" + b"q" * 40
    got = tap.messages(batch(frame(stray, seq=70), frame(publish("ok/1", b"1"), seq=70 + len(stray))))
    assert [m.topic for m in got] == ["ok/1"] and tap.skipped == Counter(not_at_packet_boundary=1)
    # sequence numbers wrap around
    tap = MqttTap()
    start = (1 << 32) - 50
    got = tap.messages(
        batch(
            syn(start - 1),
            frame(big[:cut], seq=start),
            frame(big[cut:] + after, seq=(start + cut) % (1 << 32)),
        )
    )
    assert [m.topic for m in got] == ["cam/2"]

    # a new connection on the same client port (a SYN, then another initial sequence number) is read afresh
    tap = MqttTap()
    got = tap.messages(
        batch(
            syn(8999),
            frame(big[:cut], seq=9000),
            syn(8000),  # a new connection: its data starts at 8001
            frame(connect(4) + publish("new/1", b"1"), seq=8001),
        )
    )
    assert [m.topic for m in got] == ["new/1"]
    # without the SYN, a segment far before the expected one is still read (a reused port, SYN unseen)
    tap = MqttTap()
    got = tap.messages(batch(frame(publish("a/1", b"1"), seq=5_000_000), frame(publish("b/1", b"1"), seq=7)))
    assert [m.topic for m in got] == ["a/1", "b/1"]


def test_every_frame_the_flow_meter_reads_is_read_here_too():
    # two stacked VLAN tags (QinQ), which the flow parser skips: the tap reuses its headers
    qinq = frame(publish("q/1", b"1"))
    qinq = qinq[:12] + b"\x88\xa8\x00\x05\x81\x00\x00\x07" + qinq[12:]
    got = MqttTap().messages(batch(qinq))
    assert [(m.topic, m.client) for m in got] == [("q/1", CLIENT)]
