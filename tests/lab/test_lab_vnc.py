"""The lab's VNC console (extra ``vnc``) and the password guessing against it (``vnc-bruteforce``): RFB 3.8 bytes as
RFC 6143 lays them out, ZRLE rectangles that inflate, and a capture whose failed passwords the flow meter
counts exactly (``rfb_auth_failures``), checked against the server's SecurityResult messages found in the raw
packets and against Wireshark's VNC dissector."""

from __future__ import annotations

import collections
import random
import struct
import zlib

import numpy as np
import pytest
from lab_helpers import built_capture, tshark

from iotguard.core.schema import RFB_FAILURES_COLUMN
from iotguard.flows import iter_flows
from iotguard.lab.attacks import vnc_bruteforce
from iotguard.lab.devices import vnc
from iotguard.lab.network import EMBEDDED_LINUX, Network
from iotguard.lab.pcap import Capture
from iotguard.lab.proto import rfb
from iotguard.lab.sim import Sim

# the attack's window (62-70 % of it) holds 12 connections: 5 passwords fail (SecurityResult "failed"),
# then the blacklist refuses 7 connections before any challenge
TEST_SECONDS = 120.0
FAILED = rfb.security_result(False)
REFUSED = rfb.security_refused(vnc_bruteforce.REFUSAL)


def test_rfb_messages_have_the_rfc_layout():
    assert rfb.VERSION_38 == b"RFB 003.008\n"
    assert rfb.security_types(rfb.VNC_AUTH) == b"\x01\x02"
    assert rfb.security_result(True) == b"\x00\x00\x00\x00"
    assert (
        rfb.security_result(False) == b"\x00\x00\x00\x01" + struct.pack("!I", 21) + b"Authentication failed"
    )
    assert (
        rfb.security_refused("Too many security failures")
        == b"\x00" + struct.pack("!I", 26) + b"Too many security failures"
    )
    challenge = bytes(range(16))
    answer = rfb.vnc_response(challenge, "Secret12")
    assert len(answer) == 16 and answer != rfb.vnc_response(challenge, "Secret13")
    assert answer == rfb.vnc_response(challenge, "Secret12xyz")  # VNC passwords are cut to 8 characters
    init = rfb.server_init(1280, 720, "nvr console")
    assert struct.unpack("!HH", init[:4]) == (1280, 720) and len(init) == 24 + len("nvr console")
    bpp, depth, big_endian, true_colour = init[4:8]
    assert (bpp, depth, big_endian, true_colour) == (32, 24, 0, 1)
    assert len(rfb.set_pixel_format()) == 20 and rfb.set_pixel_format()[0] == 0
    encodings = rfb.set_encodings()
    assert struct.unpack("!BxH", encodings[:4]) == (2, len(rfb.ENCODINGS)) and len(encodings) == 4 + 4 * 9
    assert rfb.update_request(True, 0, 0, 1280, 720) == struct.pack("!BBHHHH", 3, 1, 0, 0, 1280, 720)
    assert len(rfb.key_event(True, ord("5"))) == 8 and len(rfb.pointer_event(1, 10, 20)) == 6


def _tiles(raw: bytes, width: int, height: int) -> int:
    """Walk ZRLE tiles (solid and packed-palette subencodings); returns the bytes they take."""
    at = 0
    for ty in range(0, height, rfb.TILE):
        for tx in range(0, width, rfb.TILE):
            w, h = min(rfb.TILE, width - tx), min(rfb.TILE, height - ty)
            sub = raw[at]
            at += 1
            if sub == 1:
                at += 3
            else:
                assert 2 <= sub <= 16, f"subencoding {sub}"
                bits = 1 if sub == 2 else 2 if sub <= 4 else 4
                at += 3 * sub + h * -(-w * bits // 8)
    return at


def test_zrle_rectangles_are_one_stream_that_also_inflates_rectangle_by_rectangle():
    npr = np.random.default_rng(4)
    encoder = rfb.ZrleEncoder()
    sizes = [(1280, 720), (200, 20), (300, 170)]
    rects = [encoder.rect(0, 0, w, h, 0.4, npr) for w, h in sizes]
    stream = zlib.decompressobj()  # the viewer's single inflater for the connection
    for i, ((w, h), rect) in enumerate(zip(sizes, rects, strict=True)):
        x, y, rw, rh, encoding, length = struct.unpack("!HHHHiI", rect[:16])
        assert (rw, rh, encoding, length) == (w, h, rfb.ZRLE, len(rect) - 16)
        data = rect[16:]
        raw = stream.decompress(data)
        assert _tiles(raw, w, h) == len(raw)
        if i:  # after a full flush a rectangle needs no earlier one (raw deflate, no zlib header)
            assert zlib.decompressobj(-15).decompress(data) == raw
    update = rfb.framebuffer_update(rects)
    assert update[:4] == struct.pack("!BxH", 0, 3) and len(update) == 4 + sum(map(len, rects))


def test_the_console_password_is_never_a_guess():
    net = Network("10.0.0.0/24", random.Random(0))
    console = net.add_local("nvr", "nvr", "hikvision", EMBEDDED_LINUX)
    passwords = set()
    for seed in range(200):
        sim = Sim(seed=seed, duration=60.0, base_unix=0.0, net=net, cap=Capture(0, 60.0))
        password = vnc.console_password(sim, console)
        assert len(password) == 8 and password == vnc.console_password(sim, console)  # one per seed
        assert all(guess[:8] != password for guess in vnc_bruteforce.PASSWORDS)
        passwords.add(password)
    assert len(passwords) == 200


@pytest.fixture(scope="module")
def test_capture(tmp_path_factory):
    return built_capture(tmp_path_factory.mktemp("vnc"), "test", TEST_SECONDS)


def _server_messages(built, server_ip: bytes) -> dict[int, list[bytes]]:
    """TCP payloads the server sent from port 5900, by client port, read straight from the frames."""
    out: dict[int, list[bytes]] = collections.defaultdict(list)
    for frame in built.packets.frames():
        if frame[12:14] != b"\x08\x00" or frame[23] != 6 or frame[26:30] != server_ip:
            continue
        ihl = (frame[14] & 0x0F) * 4
        tcp = 14 + ihl
        sport, dport = struct.unpack("!HH", frame[tcp : tcp + 4])
        total = struct.unpack("!H", frame[16:18])[0]
        payload = frame[tcp + (frame[tcp + 12] >> 4) * 4 : 14 + total]
        if sport == vnc.PORT and payload:
            out[dport].append(payload)
    return out


def test_meter_counts_each_failed_password_and_nothing_else(test_capture):
    built, path = test_capture
    hosts = {h.kind: h for h in built.hosts}
    nvr, operator = hosts["nvr"], hosts["workstation"]
    [episode] = [e for e in built.episodes if e.label == "vnc-bruteforce"]
    assert episode.category == "BruteForce" and episode.victim == nvr.ip

    # what the server said, connection by connection, from the raw packets
    said = _server_messages(built, nvr.ip_b)
    failed = {port: sum(m == FAILED for m in msgs) for port, msgs in said.items()}
    refused = {port for port, msgs in said.items() if REFUSED in msgs}
    # failed passwords, then connections the blacklist refused
    assert sum(failed.values()) >= vnc_bruteforce.BLACKLIST_THRESHOLD and refused

    flows = iter_flows(path).to_pandas()
    vnc_flows = flows[flows["dst_port"] == vnc.PORT]
    by_port = vnc_flows.groupby("src_port")[RFB_FAILURES_COLUMN].sum().to_dict()
    attack = vnc_flows[vnc_flows["src_ip"] == episode.attacker]
    assert {p: by_port[p] for p in attack["src_port"]} == {p: failed.get(p, 0) for p in attack["src_port"]}
    assert all(by_port[p] == 0 for p in refused)  # refused before any challenge: no password tried

    benign = vnc_flows[vnc_flows["src_ip"] == operator.ip]
    assert len(benign) >= 1 and (benign[RFB_FAILURES_COLUMN] == 0).all()
    # and the operator really logged in: SecurityResult OK right after the challenge, then a session (``said``
    # holds the whole connection's messages, however many flow records the flow timeout split it into)
    for port in benign["src_port"].unique():
        msgs = said[port]
        assert msgs[0] == rfb.VERSION_38 and len(msgs[2]) == 16
        assert msgs[3] == rfb.security_result(True) and len(msgs) > 10


def test_wireshark_reads_the_vnc_exchanges(test_capture):
    built, path = test_capture
    nvr = next(h for h in built.hosts if h.kind == "nvr")
    out = tshark(
        "-r", str(path), "-Y", f"vnc && ip.addr == {nvr.ip}", "-T", "fields",
        "-e", "vnc.auth_result", "-e", "vnc.auth_error", "-e", "vnc.server_proto_ver",
    )  # fmt: skip
    rows = [line.split("\t") for line in out.splitlines()]
    results = collections.Counter(r[0] for r in rows if r[0])
    said = _server_messages(built, nvr.ip_b)
    assert results["1"] == sum(m == FAILED for msgs in said.values() for m in msgs) > 0
    assert results["0"] >= 1  # the operator's logins
    assert any(r[1] == "Authentication failed" for r in rows)
    bad = tshark(
        "-r", str(path), "-Y", f"tcp.port == {vnc.PORT} && (_ws.malformed || _ws.expert.severity >= warning)"
        " && !(tcp.flags.reset == 1)", "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message",
    )  # fmt: skip
    assert bad.strip() == "", bad[:2000]
