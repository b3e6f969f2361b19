"""Realism checks with Wireshark (tshark): what Wireshark's dissectors and expert system say about a capture.

What must be zero, and the exceptions:

* bad IPv4/TCP/UDP/ICMP checksums: none anywhere (validation switched on);
* malformed packets and expert warnings or errors in benign traffic: none, except "Connection reset (RST)",
  which Wireshark raises for every RST and which the lab sends on purpose (RST teardown, closed ports);
* in attack traffic the same, with exceptions where they are the attack itself or unavoidable for the
  attack's bytes: malformed MQTT in ``mqtt-malformed``; random payloads sent to random ports (``ack-flood``,
  ``udp-flood``), which Wireshark hands to whatever dissector owns the port; Mirai's binary C&C protocol on
  TCP 23, which the telnet dissector reads as stray bytes (``mirai-cnc``); and "Duplicate IP address"
  warnings, which are how ARP spoofing shows (``arp-spoofing``).
"""

from __future__ import annotations

import collections

import pytest
from lab_helpers import SHOWCASE_SECONDS, built_capture, labels_by_tag, tshark

NOISY_LABELS = {"mqtt-malformed", "ack-flood", "udp-flood", "mirai-cnc"}
RST = "Connection reset (RST)"


@pytest.fixture(scope="module")
def showcase(tmp_path_factory):
    return built_capture(tmp_path_factory.mktemp("realism"), "showcase", SHOWCASE_SECONDS)


def _prefs() -> list[str]:
    return ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]


def test_no_bad_checksums(showcase):
    _, path = showcase
    bad = 'ip.checksum.status == "Bad" || tcp.checksum.status == "Bad" || udp.checksum.status == "Bad" || icmp.checksum.status == "Bad"'
    out = tshark("-r", str(path), *_prefs(), "-Y", bad, "-T", "fields", "-e", "frame.number")
    assert out.strip() == ""
    good = tshark(
        "-r",
        str(path),
        *_prefs(),
        "-Y",
        'tcp.checksum.status == "Good"',
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    assert len(good.split()) > 1000, "checksum validation is really on"


def test_warnings_and_malformed_packets_only_where_justified(showcase):
    built, path = showcase
    labels = labels_by_tag(built)
    out = tshark(
        "-r",
        str(path),
        *_prefs(),
        "-Y",
        "_ws.malformed || _ws.expert.severity >= warning",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
        "-e",
        "_ws.expert.severity",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    )
    unexpected = collections.Counter()
    seen = collections.Counter()
    for line in out.splitlines():
        number, messages, severities = line.split("\t")
        label = labels[int(built.packets.tags[int(number) - 1])]
        for message, severity in zip(messages.split("|"), severities.split("|"), strict=True):
            if int(severity) < 0x600000:  # chats and notes
                continue
            seen[(label, message[:60])] += 1
            if message == RST or label in NOISY_LABELS:
                continue
            if label == "arp-spoofing" and message.startswith("Duplicate IP address"):
                continue
            unexpected[(label, message[:80])] += 1
    assert not unexpected, unexpected.most_common(10)
    assert seen[("mqtt-malformed", "Malformed Packet (Exception occurred)")] > 0, (
        "the malformed MQTT episode is seen"
    )
    assert any(label == "arp-spoofing" for label, _ in seen), "Wireshark notices the ARP spoofing"


def test_protocols_decode(showcase):
    _, path = showcase
    hierarchy = tshark("-r", str(path), "-q", "-z", "io,phs")
    for proto in (
        "arp",
        "dns",
        "ntp",
        "mqtt",
        "coap",
        "http",
        "rtsp",
        "rtp",
        "rtcp",
        "tls",
        "telnet",
        "icmp",
        "json",
        "image-jfif",
        "vnc",
    ):
        assert f" {proto} " in hierarchy or f"  {proto}" in hierarchy, proto
    checks = {
        "mqtt.msgtype == 1": "CONNECT",
        "mqtt.msgtype == 2": "CONNACK",
        "mqtt.msgtype == 3 && mqtt.qos == 1": "PUBLISH QoS 1",
        "mqtt.msgtype == 4": "PUBACK",
        "mqtt.msgtype == 8": "SUBSCRIBE",
        "mqtt.msgtype == 12": "PINGREQ",
        "mqtt.msgtype == 13": "PINGRESP",
        "coap.type == 0 && coap.code == 1": "CoAP CON GET",
        "coap.type == 2 && coap.code == 69": "CoAP ACK 2.05",
        "coap.opt.observe": "CoAP observe",
        "dns.flags.response == 1 && dns.a": "DNS answers",
        "ntp.flags.mode == 4": "NTP server replies",
        'http.request.method == "GET"': "HTTP GET",
        "http.response.code == 200": "HTTP 200",
        'rtsp.method == "SETUP"': "RTSP SETUP",
        "rtp.p_type == 96 && rtp.marker == 1": "RTP H.264 frame ends",
        "rtcp.pt == 200": "RTCP sender reports",
        "tls.handshake.type == 1 && tls.handshake.extensions_server_name": "TLS ClientHello with SNI",
        "tls.handshake.type == 2": "TLS ServerHello",
        "tcp.options.mss_val && tcp.flags.syn == 1": "MSS option",
        "tcp.flags.reset == 1": "RST",
        "tcp.flags.fin == 1": "FIN",
        "tcp.analysis.retransmission": "retransmissions",
        "arp.opcode == 2 && !arp.duplicate-address-detected": "ARP replies",
        "vnc.auth_result == 1": "VNC logins refused (the password guessing)",
        "vnc.auth_result == 0": "VNC logins accepted (the operator)",
        "vnc.server_message_type == 0": "VNC framebuffer updates",
    }
    for expression, what in checks.items():
        out = tshark("-r", str(path), "-Y", expression, "-T", "fields", "-e", "frame.number")
        assert out.strip(), f"no {what} ({expression})"


def test_tcp_streams_reassemble(showcase):
    """Follow a few application streams: each reassembles into complete protocol messages."""
    _, path = showcase
    fields = tshark(
        "-r",
        str(path),
        "-Y",
        "http.request || rtsp.request || mqtt.msgtype == 1",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "_ws.col.Protocol",
    )
    streams = {}
    for line in fields.splitlines():
        stream, proto = line.split("\t")
        if stream:  # SSDP is HTTP over UDP
            streams.setdefault(proto, stream)
    assert {"HTTP", "RTSP", "MQTT"} <= set(streams)
    expected = {
        "HTTP": (b"GET ", b"HTTP/1.1 200 OK"),
        "RTSP": (b"DESCRIBE rtsp://", b"RTSP/1.0 200 OK"),
        "MQTT": (b"\x10", b"\x20\x02\x00\x00"),
    }
    for proto, stream in streams.items():
        out = tshark("-r", str(path), "-q", "-z", f"follow,tcp,raw,{stream}")
        lines = [x for x in out.splitlines() if x and not x.startswith(("=", "Follow", "Filter", "Node"))]
        client = bytes.fromhex("".join(x for x in lines if not x.startswith("\t")))
        server = bytes.fromhex("".join(x.strip() for x in lines if x.startswith("\t")))
        first, answer = expected[proto]
        assert first in client[:200] and answer in server, proto
