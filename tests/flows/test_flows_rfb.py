"""``rfb_auth_failures``: VNC (RFB, RFC 6143) logins a server refused, counted from the server's handshake: a
SecurityResult "failed" right after the 16-byte VNC-authentication challenge of a connection whose server
sent the RFB banner as its first bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from flows_testkit import CLIENT, SERVER, run, tcp

from iotguard.capture.batch import PacketBatch
from iotguard.core.schema import RFB_FAILURES_COLUMN
from iotguard.flows import FlowMeter
from iotguard.flows.parse import RFB_BANNER, RFB_FAILED, parse

CHALLENGE = bytes(range(16))
RESPONSE = bytes(range(16, 32))
FAILED = b"\x00\x00\x00\x01"
REASON = b"Authentication failed"
FAILED_38 = FAILED + struct.pack(">I", len(REASON)) + REASON  # RFB 3.8: the reason in the same segment
SERVER_INIT = struct.pack(">HHBBBBHHHBBB3xI", 1024, 768, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0, 4) + b"cam1"
# a FramebufferUpdate of one rectangle: type 0, padding, 1 rectangle (the same first 4 bytes as a failure)
FBU_HEAD = b"\x00\x00\x00\x01"
FBU_RECT = struct.pack(">HHHHi", 0, 0, 16, 16, 0) + bytes(16 * 16 * 4)
FBU_16 = FBU_HEAD + struct.pack(">HHHHi", 0, 0, 800, 600, -223)  # one DesktopSize rectangle: 16 bytes


def _c(flags: str, payload: bytes = b""):
    return tcp(CLIENT, SERVER, 40000, 5900, flags) / payload


def _s(flags: str, payload: bytes = b""):
    return tcp(SERVER, CLIENT, 5900, 40000, flags) / payload


HANDSHAKE = [_c("S"), _s("SA"), _c("A")]


def _failures(packets) -> list[int]:
    return run(packets, [k * 1000 for k in range(len(packets))])[RFB_FAILURES_COLUMN].tolist()


def _session_33(result: bytes) -> list:
    # RFB 3.3: the server picks the security type (a u32, 2 = VNC authentication)
    return [
        _s("PA", b"RFB 003.003\n"),
        _c("PA", b"RFB 003.003\n"),
        _s("PA", b"\x00\x00\x00\x02"),
        _s("PA", CHALLENGE),
        _c("PA", RESPONSE),
        _s("PA", result),
    ]


def _session_38(result: list[bytes], types: list[bytes] | None = None) -> list:
    return [
        _s("PA", b"RFB 003.008\n"),
        _c("PA", b"RFB 003.008\n"),
        *[_s("PA", t) for t in (types or [b"\x01\x02"])],
        _c("PA", b"\x02"),
        _s("PA", CHALLENGE),
        _c("PA", RESPONSE),
        *[_s("PA", r) for r in result],
    ]


CLOSE = [_s("FA"), _c("FA"), _s("A")]


def test_the_parser_marks_the_banner_and_the_failure_shapes():
    payloads = [
        b"RFB 003.008\n",
        b"RFB 003.889\n",
        FAILED,
        FAILED_38,
        FAILED + b"\x00\x00\x00\x00",  # 3.8, an empty reason
        b"RFB 003.008\nX",  # longer than the banner
        b"RFB 03.008\n",
        b"RFB 003.0a8\n",
        b"\x00\x00\x00\x00",  # a success
        FAILED + b"\x00\x00\x00\x05abcd",  # the reason's length and the payload's disagree
        FAILED + struct.pack(">I", 2000) + bytes(2000),  # a reason longer than looked for
        FBU_HEAD + FBU_RECT,  # a FramebufferUpdate with its rectangle
        b"\x00\x00\x01",
    ]
    frames = [bytes(_s("PA", p)) for p in payloads]
    b = PacketBatch.from_packets(frames, [k * 1000 for k in range(len(frames))], 1)
    marks = parse(b).rfb.tolist()
    assert marks == [RFB_BANNER, RFB_BANNER, RFB_FAILED, RFB_FAILED, RFB_FAILED] + [0] * 8


def test_a_failed_rfb_33_login_is_counted():
    assert _failures(HANDSHAKE + _session_33(FAILED) + CLOSE) == [1]


@pytest.mark.parametrize(
    "result",
    [
        [FAILED_38],  # result and reason in one segment
        [FAILED, struct.pack(">I", len(REASON)), REASON],  # in three (the reference capture's server)
    ],
)
def test_a_failed_rfb_38_login_is_counted(result):
    assert _failures(HANDSHAKE + _session_38(result) + CLOSE) == [1]


def test_security_types_written_one_byte_a_segment_still_leave_the_result_in_view():
    # the reference capture's server: count, then each type in its own segment
    types = [b"\x02", b"\x02", b"\x10"]
    assert _failures(HANDSHAKE + _session_38([FAILED_38], types) + CLOSE) == [1]


def test_a_successful_session_with_a_framebuffer_update_counts_nothing():
    # the update's header (00 00 00 01) in its own segment, and again with its rectangle
    tail = [_c("PA", b"\x01"), _s("PA", SERVER_INIT), _c("PA", b"\x03\x00" + bytes(8))]
    tail += [_s("PA", FBU_HEAD), _s("PA", FBU_RECT), _s("PA", FBU_16), _s("PA", FBU_HEAD)]
    assert _failures(HANDSHAKE + _session_38([b"\x00\x00\x00\x00"]) + tail + CLOSE) == [0]
    assert _failures(HANDSHAKE + _session_33(b"\x00\x00\x00\x00") + tail + CLOSE) == [0]


def test_rfb_33_without_authentication_counts_nothing():
    # security type 1 ("None") is the same 4 bytes as a failed result, and no challenge comes before it
    packets = [_s("PA", b"RFB 003.003\n"), _c("PA", b"RFB 003.003\n"), _s("PA", b"\x00\x00\x00\x01")]
    tail = [_c("PA", b"\x01"), _s("PA", SERVER_INIT), _s("PA", FBU_16), _s("PA", FBU_HEAD)]
    assert _failures(HANDSHAKE + packets + tail + CLOSE) == [0]
    # RFB 3.7 with "None": no SecurityResult at all, the ServerInit right after the types
    packets = [
        _s("PA", b"RFB 003.007\n"),
        _c("PA", b"RFB 003.007\n"),
        _s("PA", b"\x01\x01"),
        _c("PA", b"\x01"),
    ]
    assert _failures(HANDSHAKE + packets + tail + CLOSE) == [0]


@pytest.mark.parametrize(
    "first",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",  # another protocol: the failure's shape is just bytes there
        b"HTTP/1.1 200 OK\r\n\r\n",
    ],
)
def test_the_failure_shape_on_a_flow_that_is_not_rfb_counts_nothing(first):
    packets = HANDSHAKE + [_s("PA", first), _s("PA", CHALLENGE), _s("PA", FAILED), _s("PA", CHALLENGE)]
    assert _failures(packets + [_s("PA", FAILED_38)] + CLOSE) == [0]


def test_the_banner_from_the_client_does_not_make_the_flow_rfb():
    # the flow's source (the client) sends the banner-shaped bytes: the destination is no VNC server
    packets = HANDSHAKE + [_c("PA", b"RFB 003.008\n"), _s("PA", b"RFB 003.008\n"[:11] + b"x")]
    assert _failures(packets + [_s("PA", CHALLENGE), _s("PA", FAILED)] + CLOSE) == [0]


def test_a_connection_seen_from_its_servers_syn_ack_counts_nothing():
    # the client's SYN missed: the flow's source is the server, and the client's banner is no server's
    packets = [_s("SA"), _c("A"), _c("PA", b"RFB 003.008\n"), _s("PA", b"RFB 003.008\n")]
    packets += [_c("PA", CHALLENGE), _c("PA", FAILED)]
    assert _failures(packets) == [0]


def test_the_result_counts_once_per_connection_and_only_early_in_the_handshake():
    # a hostile server repeating challenge and failure: one result per connection
    repeat = [_s("PA", CHALLENGE), _s("PA", FAILED)] * 4
    assert _failures(HANDSHAKE + _session_38([FAILED_38]) + repeat + CLOSE) == [1]
    # a challenge and a failure far past the handshake's segments are not looked at
    late = [_s("PA", bytes(3))] * 8 + [_s("PA", CHALLENGE), _s("PA", FAILED)]
    assert _failures(HANDSHAKE + [_s("PA", b"RFB 003.008\n")] + late + CLOSE) == [0]


def test_truncated_and_hostile_payloads_never_crash():
    full = [bytes(p) for p in HANDSHAKE + _session_38([FAILED_38]) + _session_33(FAILED) + CLOSE]
    hostile = [
        bytes(_s("PA", FAILED + b"\xff\xff\xff\xff")),  # a reason length far past the packet
        bytes(_s("PA", b"R")),
        bytes(_s("PA", b"\x00")),
        bytes(_s("PA", FAILED[:3])),
    ]
    for seed in range(20):
        rng = np.random.default_rng(seed)
        frames = full + hostile + [bytes(rng.integers(0, 256, int(rng.integers(14, 90)), dtype=np.uint8))]
        data, offsets, caplens, wirelens, pos = [], [], [], [], 0
        for f in frames:
            cut = int(rng.integers(14, len(f) + 1))  # snapped anywhere past the Ethernet header
            data.append(f[:cut])
            offsets.append(pos)
            caplens.append(cut)
            wirelens.append(len(f))
            pos += cut
        n = len(frames)
        b = PacketBatch(
            ts_us=np.arange(n, dtype=np.int64) * 1000 + 1_500_000_000_000_000,
            data=np.frombuffer(b"".join(data), dtype=np.uint8),
            offset=np.asarray(offsets, dtype=np.int64),
            caplen=np.asarray(caplens, dtype=np.int32),
            wirelen=np.asarray(wirelens, dtype=np.int32),
            linktype=np.ones(n, dtype=np.int32),
        )
        meter = FlowMeter()
        meter.feed(b)
        out = meter.flush()
        assert set(out[RFB_FAILURES_COLUMN].tolist()) <= {0, 1}


def test_the_reference_capture_counts_its_one_failed_login(data_file):
    """Zeek's ``rfb_vnc-scanner.pcap``: one scanner connection, RFB 3.8, one password refused."""
    from iotguard.flows import read_flows

    flows = read_flows(data_file("pcaps/zeek/rfb_vnc-scanner.pcap"))
    assert flows[["src_ip", "dst_ip", RFB_FAILURES_COLUMN]].values.tolist() == [
        ["192.168.0.11", "10.0.0.149", 1]
    ]


def test_real_captures_without_vnc_count_nothing(data_file):
    from iotguard.flows import read_flows

    for name in (
        "pcaps/markofu_pcaps/http.cap",
        "pcaps/markofu_pcaps/ftp-crack.pcap",
        "pcaps/markofu_pcaps/telnet.pcap",
        "pcaps/chrissanders_packets/tcp_ports.pcapng",
    ):
        flows = read_flows(data_file(name))
        assert len(flows) and int(flows[RFB_FAILURES_COLUMN].sum()) == 0, name
