"""``elf_downloads``: Linux executables (ELF headers) a flow's source received from its destination over TCP, at
the start of an HTTP response body or of the destination's stream (a device fetching a bot binary)."""

from __future__ import annotations

import numpy as np
import pytest
from flows_testkit import CLIENT, SERVER, batch, run, tcp

from iotguard.capture.batch import PacketBatch
from iotguard.core.schema import ELF_COLUMN
from iotguard.flows import FlowMeter
from iotguard.flows.parse import ELF_AT_START, ELF_IN_RESPONSE, RESPONSE_HEAD, parse

# a 32-bit little-endian ARM executable's identification, then the rest of a header
ELF = b"\x7fELF\x01\x01\x01\x61" + bytes(8) + b"\x02\x00\x28\x00" + bytes(range(180))
GET = b"GET /bins/mirai.arm7 HTTP/1.0\r\nHost: 203.0.113.9\r\nUser-Agent: Wget\r\nConnection: close\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.18 (Ubuntu)\r\nContent-Type: application/octet-stream\r\n"


def _c(flags: str, payload: bytes = b""):
    return tcp(CLIENT, SERVER, 40000, 80, flags) / payload


def _s(flags: str, payload: bytes = b""):
    return tcp(SERVER, CLIENT, 80, 40000, flags) / payload


HANDSHAKE = [_c("S"), _s("SA"), _c("A")]


def _downloads(packets) -> list[int]:
    return run(packets, [k * 1000 for k in range(len(packets))])[ELF_COLUMN].tolist()


@pytest.mark.parametrize(
    "answer",
    [
        [OK + b"Content-Length: 200\r\n\r\n" + ELF],  # head and the body's start in one segment (the lab's)
        [OK + b"Content-Length: 200\r\n\r\n", ELF],  # the head, then the file (Apache's sendfile)
        [OK + b"Transfer-Encoding: chunked\r\n\r\nc8\r\n" + ELF],  # a chunked body's first chunk
        [OK + b"Transfer-Encoding: chunked\r\n\r\nc8;x=1\r\n" + ELF],  # ... with an extension
        [b"HTTP/1.0 200 OK\n\n" + ELF[:5]],  # bare line feeds; the header's first five bytes are enough
    ],
)
def test_a_device_fetching_an_executable_over_http_is_counted(answer):
    packets = HANDSHAKE + [_c("PA", GET)] + [_s("PA", a) for a in answer] + [_c("A"), _s("FA"), _c("FA")]
    assert _downloads(packets) == [1]


def test_an_executable_pushed_as_the_servers_first_bytes_is_counted():
    # a raw loader (``nc``, ``/dev/tcp``, an FTP data connection): no protocol, the file is the stream
    packets = HANDSHAKE + [_s("PA", ELF), _s("PA", bytes(1400)), _c("A")]
    assert _downloads(packets) == [1]


@pytest.mark.parametrize(
    "answer",
    [
        [OK + b"\r\n<html><body>hello</body></html>"],  # a web page
        [
            OK + b"\r\n<html>",
            ELF,
        ],  # an ELF header mid-body (an archive member, a hex dump): not a file's start
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n",
            b"\r\n" + ELF,
        ],  # head over two segments: not followed
        [OK + b"\r\n" + b"\x7fELF\x03" + bytes(100)],  # no valid class: not an ELF header
        [OK + b"\r\n" + b"\x7fELF"],  # the magic alone (a 4-byte body)
        [OK + b"\r\n" + ELF[:3]],  # a body cut short
    ],
)
def test_other_bodies_and_mid_stream_headers_are_not_downloads(answer):
    packets = HANDSHAKE + [_c("PA", GET)] + [_s("PA", a) for a in answer] + [_c("A")]
    assert _downloads(packets) == [0]


def test_only_what_the_source_receives_counts():
    # the client uploads an executable (an HTTP PUT, then as the start of its stream): not a download
    put = b"PUT /upload HTTP/1.1\r\nHost: cam\r\nContent-Length: 200\r\n\r\n"
    assert _downloads(HANDSHAKE + [_c("PA", ELF)]) == [0]
    assert _downloads(
        HANDSHAKE + [_c("PA", put), _c("PA", ELF), _s("PA", b"HTTP/1.1 201 Created\r\n\r\n")]
    ) == [0]


def test_each_download_on_a_keep_alive_connection_counts():
    answer = [OK + b"Content-Length: 200\r\n\r\n", ELF]
    packets = HANDSHAKE
    for _ in range(2):
        packets = packets + [_c("PA", GET)] + [_s("PA", a) for a in answer] + [_c("A")]
    assert _downloads(packets) == [2]


def test_a_continuation_after_the_flow_timeout_starts_mid_stream():
    # a download that outlives the flow timeout: the next record's first server segment is no stream start
    packets = HANDSHAKE + [_c("PA", GET), _s("PA", OK + b"\r\n"), _s("PA", ELF), _s("PA", ELF), _c("A")]
    times = [0, 1000, 2000, 3000, 4000, 5000, 200_000_000, 200_001_000]
    assert run(packets, times, flow_timeout=120.0)[ELF_COLUMN].tolist() == [1, 0]


def test_parse_marks_where_an_executable_starts():
    packets = [
        _s("PA", ELF),
        _s("PA", OK + b"\r\n" + ELF),
        _s("PA", OK + b"\r\n"),
        _s("PA", OK + b"\r"),  # ends inside the line ending: not known to be the head's end
        _s("PA", b"<html>"),
        tcp(SERVER, CLIENT, 80, 40000, "PA") / b"\x7fELF\x01",  # five bytes are a header's start
    ]
    assert parse(batch(packets, list(range(len(packets))))).exe.tolist() == [
        ELF_AT_START,
        ELF_IN_RESPONSE,
        RESPONSE_HEAD,
        0,
        0,
        ELF_AT_START,
    ]


def test_truncated_and_hostile_payloads_never_crash_the_meter():
    rng = np.random.default_rng(7)
    frames = [bytes(p) for p in HANDSHAKE]
    for body in (
        OK + b"\r\n" + ELF,
        b"HTTP/1.",
        b"HTTP/1.1 200 OK\n",
        b"HTTP/1.1 200 OK\r\n\r",
        OK + b"\r\n" + b"f" * 40 + b"\r\n" + ELF,  # a "chunk size" of 40 hex digits
        OK + b"\r\n" + b"1;" + b"x" * 300 + b"\n" + ELF,  # a chunk extension longer than read
        OK + b"\r\n" + b"1;",  # a chunk line cut short
        b"\x7f",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 3000 + b"\r\n" + ELF,  # a head beyond the bytes looked through
    ):
        frames.append(bytes(_s("PA", body)))
    frames += [bytes(_s("PA", rng.bytes(int(rng.integers(1, 200))))) for _ in range(200)]
    full = list(frames)
    # every frame also cut short at random (the capture's snap length), payload length still as on the wire
    data, offsets, caplens, wirelens = [], [], [], []
    pos = 0
    for f in full + full:
        cut = len(f) if len(data) < len(full) else int(rng.integers(14, len(f) + 1))
        data.append(f[:cut])
        offsets.append(pos)
        caplens.append(cut)
        wirelens.append(len(f))
        pos += cut
    n = len(data)
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
    assert len(out) == 1 and out[ELF_COLUMN].iloc[0] >= 1


def test_real_captures_carry_no_executable(data_file):
    """HTTP downloads, browsing, FTP, telnet and an IRC botnet channel: no ELF file in any of them."""
    from iotguard.flows import read_flows

    for name in (
        "pcaps/markofu_pcaps/http.cap",
        "pcaps/zeek/http_bro.org.pcap",
        "pcaps/chrissanders_packets/tcp_ports.pcapng",
        "pcaps/markofu_pcaps/ftp-crack.pcap",
        "pcaps/markofu_pcaps/telnet.pcap",
    ):
        flows = read_flows(data_file(name))
        assert len(flows) and int(flows[ELF_COLUMN].sum()) == 0, name
