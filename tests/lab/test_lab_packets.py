"""Frame builders, checksums and the pcap writer/reader, checked against scapy's independent implementation."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from iotguard.core.errors import CaptureError
from iotguard.lab import bulk
from iotguard.lab.packets import (
    ACK,
    PSH,
    SYN,
    arp_frame,
    checksum,
    icmp_port_unreachable,
    ip,
    mac,
    syn_options,
    tcp_frame,
    udp_frame,
)
from iotguard.lab.pcap import Capture, read_pcap, write_pcap

scapy = pytest.importorskip("scapy.all")

A, B = mac("24:0a:c4:01:02:03"), mac("dc:a6:32:0a:0b:0c")
S, D = ip("192.168.1.10"), ip("192.168.1.2")


def _checksums_ok(frame: bytes) -> None:
    """scapy recomputes every checksum from scratch; the frame must be byte-identical afterwards."""
    pkt = scapy.Ether(frame)
    for layer in (scapy.IP, scapy.TCP, scapy.UDP, scapy.ICMP):
        if pkt.haslayer(layer):
            del pkt[layer].chksum
    if pkt.haslayer(scapy.IP):
        del pkt[scapy.IP].len
    assert bytes(pkt) == frame


@pytest.mark.parametrize("size", [0, 1, 2, 7, 100, 1447, 1448])
def test_tcp_and_udp_checksums_match_scapy(size):
    rng = random.Random(size)
    payload = rng.randbytes(size)
    opts = syn_options(1460, True, 7, 123456)
    _checksums_ok(tcp_frame(A, B, S, D, 50000, 1883, 2**32 - 5, 7, SYN, 64240, b"", opts, ident=9, ttl=64))
    _checksums_ok(tcp_frame(A, B, S, D, 50000, 1883, 1, 2, ACK | PSH, 502, payload, ident=65535, ttl=255))
    _checksums_ok(udp_frame(A, B, S, D, 5683, 40000, payload, ident=3, ttl=1))
    probe = udp_frame(A, B, S, D, 5683, 40000, payload)
    _checksums_ok(icmp_port_unreachable(B, A, D, S, probe, ident=1, ttl=64))


def test_checksum_of_all_zero_and_all_ones():
    assert checksum(b"") == 0xFFFF
    assert checksum(b"\x00\x00") == 0xFFFF
    assert checksum(b"\xff\xff") == 0x0000
    assert checksum(b"\x45\x00\x00\x1c") == (~(0x4500 + 0x001C)) & 0xFFFF


def test_udp_checksum_zero_is_sent_as_ffff():
    # find a payload whose checksum computes to 0: the wire must carry 0xFFFF ("0" means "no checksum")
    rng = random.Random(1)
    for _ in range(200_000):
        payload = rng.randbytes(2)
        frame = udp_frame(A, B, S, D, 1, 2, payload)
        if frame[40:42] == b"\xff\xff":
            _checksums_ok(frame)
            break
    else:
        pytest.fail("no payload with a zero UDP checksum found")


def test_arp_frame_decodes():
    frame = arp_frame(A, b"\xff" * 6, 1, A, S, b"\x00" * 6, D)
    pkt = scapy.Ether(frame)
    assert len(frame) == 60 and pkt[scapy.ARP].op == 1 and pkt[scapy.ARP].pdst == "192.168.1.2"


def test_bulk_builders_equal_scalar_builders():
    rng = np.random.default_rng(5)
    n = 40
    lengths = rng.integers(0, 300, n)
    payload = rng.integers(0, 256, (n, 300), dtype=np.uint8)
    seq = rng.integers(0, 2**32, n)
    tcp = bulk.tcp_frames(
        src_mac=A,
        dst_mac=B,
        src=S,
        dst=D,
        sport=1234,
        dport=80,
        seq=seq,
        ack=77,
        flags=ACK | PSH,
        window=512,
        n=n,
        payload=payload,
        lengths=lengths,
        ident=np.arange(n),
        ttl=63,
    )
    dports = rng.integers(1, 65536, n)
    udp = bulk.udp_frames(
        src_mac=A,
        dst_mac=B,
        src=S,
        dst=D,
        sport=5004,
        dport=dports,
        payload=payload,
        lengths=lengths,
        ident=7,
        ttl=64,
    )
    for i in range(n):
        body = payload[i, : lengths[i]].tobytes()
        assert tcp.frame(i) == tcp_frame(
            A, B, S, D, 1234, 80, int(seq[i]), 77, ACK | PSH, 512, body, ident=i, ttl=63
        )
        assert udp.frame(i) == udp_frame(A, B, S, D, 5004, int(dports[i]), body, ident=7, ttl=64)


def test_pcap_round_trip_is_time_ordered(tmp_path):
    cap = Capture(base_us=1_700_000_000_000_000, duration_s=10)
    frames = [udp_frame(A, B, S, D, 1000 + i, 53, os.urandom(i)) for i in range(5)]
    for t, f in zip([3.0, 1.0, 2.0, 0.5, 11.0], frames, strict=True):  # the last one is past the end
        cap.add(t, f, tag=1)
    n = 20
    block = bulk.udp_frames(
        src_mac=A, dst_mac=B, src=S, dst=D, sport=7, dport=8, payload=np.zeros((n, 10), np.uint8)
    )
    cap.add_frames(np.linspace(0.25, 4.0, n), block)
    packets = cap.build()
    assert len(packets) == 24
    assert np.all(np.diff(packets.ts_us) >= 0)
    path = tmp_path / "x.pcap"
    size, digest = write_pcap(path, packets)
    assert size == path.stat().st_size and len(digest) == 64
    back = read_pcap(path)
    assert back.ts_us.tolist() == packets.ts_us.tolist()
    assert back.frames() == packets.frames()
    assert scapy.rdpcap(str(path))[0].time == pytest.approx(1_700_000_000.25)


def test_read_pcap_rejects_bad_files(tmp_path):
    path = tmp_path / "bad.pcap"
    path.write_bytes(b"not a pcap at all, clearly not")
    with pytest.raises(CaptureError, match="unknown magic"):
        read_pcap(path)
    cap = Capture(0, 10)
    cap.add(1.0, udp_frame(A, B, S, D, 1, 2, b"hello"))
    write_pcap(path, cap.build())
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CaptureError, match="truncated packet"):
        read_pcap(path)
    with pytest.raises(CaptureError, match="cannot read"):
        read_pcap(tmp_path / "missing.pcap")
