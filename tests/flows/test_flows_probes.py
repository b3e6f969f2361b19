"""``probe_packets``: packets of the flow's source of a shape that no ordinary IP stack sends, only probing tools
(ICMP requests with undefined codes or of deprecated types; TCP segments without ACK that are neither SYN nor
RST; SYN with FIN or RST)."""

from __future__ import annotations

import pytest
from flows_testkit import CLIENT, SERVER, icmp, run, tcp, udp

from iotguard.core.schema import PROBES_COLUMN


def _probes(packets) -> int:
    """The probe packets of the one flow these packets make."""
    df = run(packets, [i * 1000 for i in range(len(packets))])
    assert len(df) == 1
    return int(df[PROBES_COLUMN].iloc[0])


@pytest.mark.parametrize(
    ("type_", "code", "probe"),
    [
        (8, 0, 0),  # an ordinary ping
        (8, 9, 1),  # nmap's OS-detection echo request (IE probe 1)
        (13, 0, 0),  # timestamp request
        (13, 1, 1),
        (15, 0, 1),  # information request (deprecated, RFC 6918)
        (17, 0, 1),  # address mask request (deprecated)
        (3, 3, 0),  # port unreachable: an answer
        (0, 9, 0),  # an echo reply that copies the request's odd code: an answer, not a probe
    ],
)
def test_icmp_requests_of_undefined_codes_and_deprecated_types_are_probes(type_, code, probe):
    assert _probes([icmp(CLIENT, SERVER, type_, code)]) == probe


@pytest.mark.parametrize(
    ("flags", "probe"),
    [
        ("S", 0),
        ("SA", 0),
        ("A", 0),  # an ACK scan's probe looks like any ACK
        ("PA", 0),
        ("FA", 0),
        ("R", 0),
        ("RA", 0),
        ("SE", 0),  # an ECN set-up SYN (ECE)
        ("F", 1),  # FIN scan
        ("", 1),  # NULL scan, nmap T2
        ("FPU", 1),  # XMAS scan, nmap T7
        ("P", 1),
        ("SF", 1),  # SYN+FIN
        ("SFPU", 1),  # nmap T3
        ("SR", 1),
    ],
)
def test_tcp_segments_without_ack_that_open_or_reset_nothing_are_probes(flags, probe):
    assert _probes([tcp(CLIENT, SERVER, 40000, 80, flags)]) == probe


def test_only_the_flows_source_is_counted_and_other_protocols_never():
    # the client opens the connection; the server's odd segment is not the source's probe
    assert _probes([tcp(CLIENT, SERVER, 40000, 80, "S"), tcp(SERVER, CLIENT, 80, 40000, "F")]) == 0
    assert _probes([tcp(CLIENT, SERVER, 40000, 80, "F"), tcp(CLIENT, SERVER, 40000, 80, "F")]) == 2
    assert _probes([udp(CLIENT, SERVER, 5000, 53, 20)]) == 0


def test_real_probing_tools_send_probes_and_benign_captures_none(data_file):
    from iotguard.flows import read_flows

    for benign in (
        "pcaps/zeek/http_bro.org.pcap",
        "pcaps/zeek/icmp_5-pings.pcap",
        "pcaps/zeek/mqtt.pcap",
        "pcaps/markofu_pcaps/http.cap",
        "pcaps/markofu_pcaps/telnet.pcap",
        "pcaps/chrissanders_packets/tcp_ports.pcapng",
        "pcaps/mqttset_reduced/benign.pcap",
    ):
        assert read_flows(data_file(benign))[PROBES_COLUMN].sum() == 0, benign
    # Xprobe-style ICMP fingerprinting: echo and timestamp requests with code 1, information and address mask
    xprobe = read_flows(data_file("pcaps/markofu_pcaps/osfingerprinting.pcap"))
    assert xprobe[PROBES_COLUMN].sum() == 8 and set(xprobe["src_ip"]) == {"10.0.0.29"}
    # nmap -O: the IE1 echo request (code 9), T2 (no flags), T3 (SYN+FIN+PSH+URG), T7 (FIN+PSH+URG)
    nmap = read_flows(data_file("pcaps/chrissanders_packets/activeosfingerprinting.pcapng"))
    probing = nmap[nmap[PROBES_COLUMN] > 0]
    assert set(probing["src_ip"]) == {"172.16.16.128"} and len(probing) >= 4
    xmas = read_flows(data_file("pcaps/markofu_pcaps/evilfingers_nmap/XMAS_TREE_SCAN.pcap"))
    assert (xmas[PROBES_COLUMN] > 0).mean() > 0.99
