"""``http_head_open``: how long the flow's client has left an HTTP request head unfinished (request line sent,
the blank line that ends its headers not yet, no answer from the server), what a slow-HTTP DoS does."""

from __future__ import annotations

import pytest
from flows_testkit import CLIENT, SERVER, run, tcp

from iotguard.core.schema import HEAD_OPEN_COLUMN

S = 1_000_000  # microseconds


def _head_open(packets, times_us) -> list[float]:
    return [round(float(v), 1) for v in run(packets, times_us)[HEAD_OPEN_COLUMN]]


def _c(flags: str, payload: bytes = b""):
    return tcp(CLIENT, SERVER, 40000, 80, flags) / payload


def _s(flags: str, payload: bytes = b""):
    return tcp(SERVER, CLIENT, 80, 40000, flags) / payload


HANDSHAKE = [_c("S"), _s("SA"), _c("A")]


def test_a_slowloris_connection_keeps_its_head_open():
    head = b"GET /?123 HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux)\r\nAccept-language: en-US\r\n"
    packets = HANDSHAKE + [_c("PA", head)] + [_c("PA", f"X-a: {k}\r\n".encode()) for k in range(4)]
    times = [0, 1000, 2000, 3000] + [3000 + (k + 1) * 15 * S for k in range(4)]
    assert _head_open(packets, times) == [60.0]


@pytest.mark.parametrize(
    ("requests", "expected"),
    [
        ([b"GET / HTTP/1.1\r\nHost: cam\r\n\r\n"], 0.0),  # the whole head at once
        ([b"GET / HTTP/1.1\r\nHost: cam\r\nCookie: " + b"x" * 1200, b"\r\n\r\n"], 0.0),  # split, then ended
        ([b"POST /a HTTP/1.1\r\nHost: cam\r\nContent-Length: 4\r\n\r\nabcd"], 0.0),  # head and body
        ([b"GET / HTTP/1.0\nHost: cam\n\n"], 0.0),  # bare line feeds
    ],
)
def test_ordinary_requests_leave_no_head_open(requests, expected):
    packets = HANDSHAKE + [_c("PA", r) for r in requests] + [_c("A")]
    times = [0, 1000, 2000] + [3000 + k * 1000 for k in range(len(requests))] + [30 * S]
    assert _head_open(packets, times) == [expected]


def test_the_servers_answer_closes_an_open_head():
    # a head split so that its last segment ends mid-line (no blank line seen at a segment's end): the
    # server answers once it has the head, and a keep-alive connection then idles
    packets = HANDSHAKE + [_c("PA", b"GET / HTTP/1.1\r\nHost: cam\r\n"), _c("PA", b"\r\n"[:1])]
    packets += [_s("PA", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), _c("A")]
    assert _head_open(packets, [0, 1000, 2000, 3000, 4000, 5000, 50 * S]) == [0.0]


def test_real_http_captures_leave_no_head_open(data_file):
    from iotguard.flows import read_flows

    for capture in (
        "pcaps/zeek/http_bro.org.pcap",
        "pcaps/markofu_pcaps/http.cap",
        "pcaps/chrissanders_packets/http_dvwa_clearlogin.pcapng",
        "pcaps/chrissanders_packets/http_google.pcapng",
        "pcaps/chrissanders_packets/tcp_ports.pcapng",
    ):
        assert read_flows(data_file(capture))[HEAD_OPEN_COLUMN].max() < 1.0, capture
