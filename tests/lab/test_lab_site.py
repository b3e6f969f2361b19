"""The ``site`` scenario (an office and building site, no attacks) and its extra behaviours: the capture decodes in
Wireshark as the protocols it claims, without malformed packets or warnings, and is byte-identical per seed.

One warning is Wireshark's, not the lab's: tshark 4.0's SSH dissector never advances over the data of a host
key signature (``ssh_tree_add_hostsignature``), so it reports "Decoded N bytes, but packet legnth is M bytes"
(sic) on the key exchange reply of every real SSH session, whatever the key type.
"""

from __future__ import annotations

import collections
import hashlib
import re
import struct

import pytest
from lab_helpers import built_capture, tshark

from iotguard.lab import SCENARIOS, build, generate
from iotguard.lab.scenarios import EXTRAS

SITE_SECONDS = 600.0
SITE_SEED = 10  # the admin's day is random: in this one it opens both SSH and telnet sessions
RST = "Connection reset (RST)"
SSH_SIGNATURE_BUG = re.compile(r"Decoded \d+ bytes, but packet legnth is \d+ bytes")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return built_capture(tmp_path_factory.mktemp("site"), "site", SITE_SECONDS, SITE_SEED)


def test_site_is_benign_with_every_extra(site):
    built, _ = site
    # every extra but the VNC console: site is the default detector's training data (docs/lab.md)
    assert set(SCENARIOS["site"].extras) == set(EXTRAS) - {"vnc"} and SCENARIOS["site"].role == "benign"
    assert built.episodes == [] and not built.packets.tags.any()
    kinds = collections.Counter(h.kind for h in built.hosts)
    for kind in ("pc", "admin", "monitor", "scada", "plc", "edge", "server"):  # office, modbus, mqtt-clients
        assert kinds[kind] >= 1, kind
    # and the home network's devices are still there
    assert {"mqtt-sensor", "camera", "hub", "gateway"} <= set(kinds)
    # extras are only where a scenario asks for them
    assert not {"pc", "plc", "edge", "workstation"} & {h.kind for h in build("benign", duration=60).hosts}
    assert "workstation" not in kinds and 5900 not in next(h for h in built.hosts if h.kind == "nvr").tcp_open


def test_no_malformed_packets_or_warnings(site):
    _, path = site
    out = tshark(
        "-r", str(path),
        "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
        "-Y", "_ws.malformed || _ws.expert.severity >= warning || _ws.expert.severity >= error",
        "-T", "fields", "-e", "_ws.col.Protocol", "-e", "_ws.expert.message", "-e", "_ws.expert.severity",
        "-E", "occurrence=a", "-E", "aggregator=|",
    )  # fmt: skip
    unexpected = collections.Counter()
    ssh_bug = 0
    for line in out.splitlines():
        proto, messages, severities = line.split("\t")
        for message, severity in zip(messages.split("|"), severities.split("|"), strict=True):
            if int(severity) < 0x600000 or message == RST:
                continue
            if proto.startswith("SSH") and SSH_SIGNATURE_BUG.fullmatch(message):
                ssh_bug += 1
                continue
            unexpected[(proto, message[:80])] += 1
    assert not unexpected, unexpected.most_common(10)
    bad = tshark(
        "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
        "-Y", 'tcp.checksum.status == "Bad" || udp.checksum.status == "Bad" || icmp.checksum.status == "Bad"',
        "-T", "fields", "-e", "frame.number",
    )  # fmt: skip
    assert bad.strip() == ""


def test_extras_decode_as_their_protocols(site):
    _, path = site
    hierarchy = tshark("-r", str(path), "-q", "-z", "io,phs")
    for proto in ("ssh", "telnet", "mbtcp", "modbus", "mqtt", "http", "tls", "icmp", "dns"):
        assert re.search(rf"^\s+{proto}\s", hierarchy, re.M), proto
    checks = {
        "ssh.protocol": "SSH version banners",
        "ssh.message_code == 20": "SSH KEXINIT",
        "ssh.message_code == 31": "SSH ECDH reply",
        "ssh && !ssh.message_code && !ssh.protocol && tcp.len > 0": "SSH encrypted packets",
        "modbus.func_code == 3": "Modbus read holding registers",
        "mbtcp.trans_id && modbus.func_code": "Modbus transactions",
        "mqtt.msgtype == 5": "MQTT PUBREC (QoS 2)",
        "mqtt.msgtype == 7": "MQTT PUBCOMP (QoS 2)",
        "http.response.code == 304": "HTTP 304 Not Modified",
        'http.request.method == "GET" && http.user_agent contains "Mozilla"': "browser GETs",
        "tls.handshake.extensions_server_name": "HTTPS with SNI",
        "icmp.type == 8": "pings",
        "icmp.type == 0": "ping replies",
        "tcp.flags.syn == 1 && tcp.flags.ack == 1": "TCP handshakes",
    }
    # one pass: a column of frame counts per filter
    stats = tshark("-r", str(path), "-q", "-z", "io,stat,0," + ",".join(checks))
    row = next(line for line in stats.splitlines() if "<>" in line)
    cells = [c.strip() for c in row.split("|")[2:] if c.strip()]
    frames = [int(x) for x in cells[0::2]]
    assert len(frames) == len(checks)
    for (expression, what), n in zip(checks.items(), frames, strict=True):
        assert n > 0, f"no {what} ({expression})"


def test_ssh_and_modbus_streams_reassemble(site):
    _, path = site
    fields = tshark(
        "-r", str(path), "-Y", "ssh.protocol || modbus.func_code", "-T", "fields", "-e", "tcp.stream",
        "-e", "_ws.col.Protocol",
    )  # fmt: skip
    streams: dict[str, str] = {}
    for line in fields.splitlines():
        stream, proto = line.split("\t")
        streams.setdefault(proto.split("v")[0] if proto.startswith("SSH") else proto, stream)
    assert {"SSH", "Modbus/TCP"} <= set(streams), streams
    for proto, (client_starts, server_has) in {
        "SSH": (b"SSH-2.0-", b"SSH-2.0-"),
        "Modbus/TCP": (b"", b""),
    }.items():
        out = tshark("-r", str(path), "-q", "-z", f"follow,tcp,raw,{streams[proto]}")
        lines = [x for x in out.splitlines() if x and not x.startswith(("=", "Follow", "Filter", "Node"))]
        client = bytes.fromhex("".join(x for x in lines if not x.startswith("\t")))
        server = bytes.fromhex("".join(x.strip() for x in lines if x.startswith("\t")))
        assert client.startswith(client_starts) and server_has in server and server, proto
        if proto == "Modbus/TCP":  # MBAP header: protocol id 0, then the length of unit id and PDU
            assert client[2:4] == b"\x00\x00" and 2 <= int.from_bytes(client[4:6], "big") <= 254


def test_site_same_seed_same_bytes(tmp_path):
    a = generate("site", duration=120, seed=9, out_dir=tmp_path / "a", flows=False)
    b = generate("site", duration=120, seed=9, out_dir=tmp_path / "b", flows=False)
    c = generate("site", duration=120, seed=10, out_dir=tmp_path / "c", flows=False)
    for name in ("capture.pcap", "episodes.csv", "scenario.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert hashlib.sha256(a.capture.read_bytes()).digest() != hashlib.sha256(c.capture.read_bytes()).digest()
    assert a.packets == b.packets and c.packets != a.packets


def _echo_requests(path, tmp) -> list[tuple[str, float, bytes]]:
    """(source, capture time, ICMP data after identifier and sequence) of every echo request.

    tshark picks them out, scapy reads their data: Wireshark takes only 8 bytes of a 16-byte timeval as the
    time stamp and shows the rest as data.
    """
    from scapy.layers.inet import ICMP, IP
    from scapy.utils import rdpcap

    echo = tmp / f"echo-{path.stem}.pcap"
    tshark("-r", str(path), "-Y", "icmp.type == 8", "-w", str(echo), "-F", "pcap")
    return [(p[IP].src, float(p.time), bytes(p[ICMP].payload)) for p in rdpcap(str(echo))]


def test_linux_pings_carry_what_iputils_ping_sends(site, data_file, tmp_path):
    """Real iputils ping (zeek's icmp_5-pings.pcap): 56 data bytes, a 16-byte timeval of the send time, 0x10..0x37."""
    real = _echo_requests(data_file("pcaps/zeek/icmp_5-pings.pcap"), tmp_path)
    assert real and all(len(d) == 56 and d[16:] == bytes(range(0x10, 0x38)) for _, _, d in real)
    built, path = site
    linux = {h.ip for h in built.hosts if h.stack.name == "linux"}
    windows = {h.ip for h in built.hosts if h.stack.name == "windows"}
    lab = _echo_requests(path, tmp_path)
    ours = [(when, d) for src, when, d in lab if src in linux]
    assert ours, "the site scenario's admin and monitor (Linux) ping"
    for when, d in ours:
        assert len(d) == 56 and d[16:] == bytes(range(0x10, 0x38))
        sec, usec = struct.unpack("<qq", d[:16])
        assert 0 <= usec < 1_000_000 and abs(sec + usec / 1e6 - when) < 1e-3  # stamped when sent
    assert len({d[:16] for _, d in ours}) == len(ours)  # each request its own time stamp
    assert all(len(d) == 32 for src, _, d in lab if src in windows)
