"""Capture readers: pcap variants, pcapng sections/interfaces/blocks, gzip, damage, and link layers."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from flows_testkit import (
    CLIENT,
    SERVER,
    T0,
    pcap_bytes,
    pcapng_interface,
    pcapng_packet,
    pcapng_section,
    pcapng_unknown,
    tcp,
    udp,
    write,
)
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import CookedLinux, Dot1AD, Dot1Q, Ether

from iotguard.capture import CaptureFile, PacketBatch
from iotguard.core.errors import CaptureError
from iotguard.flows.parse import parse, reason_counts

IP_PACKET = bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=1000, dport=80, flags="PA") / (b"p" * 33))


def _read(path, **kwargs):
    with CaptureFile(path, **kwargs) as capture:
        batches = list(capture)
    return capture, batches


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_micro_nano_either_byte_order(tmp_path, nano, big_endian):
    packets = [bytes(tcp(CLIENT, SERVER, 1, 2, "S")), bytes(udp(CLIENT, SERVER, 3, 4, 9))]
    path = write(tmp_path / "t.pcap", pcap_bytes(packets, [5, 1_000_007], nano=nano, big_endian=big_endian))
    capture, batches = _read(path)
    (b,) = batches
    assert len(b) == 2 and b.packet(0) == packets[0] and b.packet(1) == packets[1]
    assert b.ts_us.tolist() == [T0 * 1_000_000 + 5, T0 * 1_000_000 + 1_000_007]
    assert capture.stats.packets == 2 and not capture.stats.damaged


def test_gzip_capture_and_small_batches(tmp_path):
    packets = [bytes(udp(CLIENT, SERVER, 3, 4, i)) for i in range(50)]
    raw = pcap_bytes(packets, list(range(50)))
    path = write(tmp_path / "t.pcap.gz", gzip.compress(raw))
    _, batches = _read(path, batch_size=16)
    assert [len(b) for b in batches] == [16, 16, 16, 2]
    assert [b.packet(i) for b in batches for i in range(len(b))] == packets


def test_pcapng_sections_interfaces_resolution_and_unknown_blocks(tmp_path):
    eth = bytes(tcp(CLIENT, SERVER, 1, 2, "S"))
    sll = bytes(CookedLinux(pkttype=0, proto=0x0800) / IP(src=CLIENT, dst=SERVER) / UDP(sport=5, dport=6))
    data = (
        pcapng_section()
        + pcapng_interface(1, comment="eth0")
        + pcapng_interface(113, tsresol=9)  # nanoseconds
        + pcapng_unknown()
        + pcapng_packet(0, eth, T0 * 1_000_000 + 1)
        + pcapng_packet(1, sll, T0 * 1_000_000_000 + 2_000)
        + pcapng_packet(7, eth, 0)  # names an interface that does not exist: counted, skipped
        # a second section, big-endian, with its own single raw-IP interface in 2^-10 s units
        + pcapng_section(">")
        + pcapng_interface(101, ">", tsresol=0x80 | 10)
        + pcapng_packet(0, IP_PACKET, (T0 + 3) * 1024, ">")
    )
    capture, batches = _read(write(tmp_path / "t.pcapng", data))
    packets = [(b.packet(i), int(b.linktype[i]), int(b.ts_us[i])) for b in batches for i in range(len(b))]
    assert packets == [
        (eth, 1, T0 * 1_000_000 + 1),
        (sll, 113, T0 * 1_000_000 + 2),
        (IP_PACKET, 101, (T0 + 3) * 1_000_000),
    ]
    assert capture.stats.damaged == {"unknown_interface": 1}
    assert capture.linktypes == {1, 113, 101}


def test_text_empty_and_cut_files_raise_capture_error(tmp_path):
    for name, content, message in [
        ("notes.pcap", b"hello, this is text\n", "not a capture file"),
        ("empty.pcap", b"", "empty file"),
        ("cut.pcap", struct.pack("<I", 0xA1B2C3D4) + b"\0" * 6, "cut short"),
        ("cut.pcapng", b"\x0a\x0d\x0d\x0a\x1c\0\0\0", "cut short"),
        ("text.gz", gzip.compress(b"just text inside"), "not a capture file"),
    ]:
        with pytest.raises(CaptureError, match=message):
            CaptureFile(write(tmp_path / name, content))


def test_absurd_snaplen_in_header_is_ignored(tmp_path):
    raw = bytearray(pcap_bytes([bytes(udp(CLIENT, SERVER, 1, 2, 5))], [0]))
    raw[16:20] = struct.pack("<I", 0xFFFFFFFF)
    capture, batches = _read(write(tmp_path / "snap.pcap", bytes(raw)))
    assert sum(len(b) for b in batches) == 1 and not capture.stats.damaged


def test_bogus_record_length_resynchronises_and_counts(tmp_path):
    packets = [bytes(udp(CLIENT, SERVER, 1, 2, 20 + i)) for i in range(20)]
    raw = bytearray(pcap_bytes(packets, [i * 1000 for i in range(20)]))
    # record 5's header: captured length 0x7fffffff
    pos = 24 + sum(16 + len(p) for p in packets[:5])
    raw[pos + 8 : pos + 12] = struct.pack("<I", 0x7FFFFFFF)
    capture, batches = _read(write(tmp_path / "bogus.pcap", bytes(raw)))
    got = [b.packet(i) for b in batches for i in range(len(b))]
    assert got == packets[:5] + packets[6:]
    assert capture.stats.damaged == {"corrupt_record": 1}


def test_file_ending_inside_a_record_counts_truncated(tmp_path):
    packets = [bytes(udp(CLIENT, SERVER, 1, 2, 30)) for _ in range(3)]
    raw = pcap_bytes(packets, [0, 1, 2])
    capture, batches = _read(write(tmp_path / "cut.pcap", raw[:-10]))
    assert sum(len(b) for b in batches) == 2 and capture.stats.damaged == {"truncated_record": 1}


def test_damaged_gzip_stream_keeps_what_was_decoded(tmp_path):
    packets = [bytes(udp(CLIENT, SERVER, 1, 2, 30)) for _ in range(2000)]
    data = gzip.compress(pcap_bytes(packets, list(range(2000))))
    capture, batches = _read(write(tmp_path / "cut.pcap.gz", data[: len(data) // 2]))
    n = sum(len(b) for b in batches)
    assert 0 < n < 2000
    assert capture.stats.damaged["compressed_stream_error"] == 1


# -- link layers and network headers ---------------------------------------------------------------------


def _parse_one(frame: bytes, linktype: int):
    p = parse(PacketBatch.from_packets([frame], [0], linktype))
    return {name: getattr(p, name)[0] for name in ("sport", "dport", "proto", "payload", "hdr", "reason")}


TCP_33 = {"sport": 1000, "dport": 80, "proto": 6, "payload": 33, "hdr": 20, "reason": 0}


@pytest.mark.parametrize(
    ("frame", "linktype"),
    [
        (bytes(Ether(type=0x0800) / IP_PACKET), 1),
        (bytes(Ether() / Dot1Q(vlan=5, type=0x0800) / IP_PACKET), 1),
        (bytes(Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=5, type=0x0800) / IP_PACKET), 1),  # QinQ
        (bytes(Ether(type=0x8864) / bytes.fromhex("1100000100250021")) + IP_PACKET, 1),  # PPPoE session
        (bytes(CookedLinux(pkttype=0, proto=0x0800) / IP_PACKET), 113),
        (struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\0" * 8) + IP_PACKET, 276),  # SLL2
        (IP_PACKET, 101),
        (IP_PACKET, 228),
        (struct.pack("<I", 2) + IP_PACKET, 0),  # BSD null, little-endian family
        (struct.pack(">I", 2) + IP_PACKET, 0),  # written by a big-endian host
        (struct.pack(">I", 2) + IP_PACKET, 108),  # OpenBSD loop
        (bytes(Ether(type=0x0800) / IP_PACKET) + b"\0" * 20, 1),  # Ethernet padding does not count
    ],
)
def test_link_layers(frame, linktype):
    assert _parse_one(frame, linktype) == TCP_33


def test_frame_shorter_than_its_ip_length_counts_what_the_wire_carried():
    frame = bytes(Ether(type=0x0800) / IP_PACKET)
    cut = frame[:-20]  # recorded with wire length = captured length, IP header still says 33 payload bytes
    batch = PacketBatch.from_packets([cut], [0])
    assert parse(batch).payload[0] == 13
    snapped = PacketBatch(
        batch.data, batch.offset, batch.caplen, np.array([len(frame)], np.int32), batch.ts_us, batch.linktype
    )
    assert parse(snapped).payload[0] == 33  # cut by a snap length: the wire length tells the truth


def test_ipv4_options_and_fragments():
    with_options = (
        IP(src=CLIENT, dst=SERVER, options=b"\x94\x04\x00\x00") / UDP(sport=7, dport=8) / (b"o" * 12)
    )
    assert _parse_one(bytes(Ether() / with_options), 1) == {
        "sport": 7,
        "dport": 8,
        "proto": 17,
        "payload": 12,
        "hdr": 8,
        "reason": 0,
    }
    first = (
        IP(src=CLIENT, dst=SERVER, flags="MF", frag=0, proto=17)
        / UDP(sport=7, dport=8, len=1008)
        / (b"f" * 100)
    )
    assert _parse_one(bytes(Ether() / first), 1)["payload"] == 100  # this fragment's share
    later = IP(src=CLIENT, dst=SERVER, frag=13, proto=17) / (b"f" * 100)
    assert _parse_one(bytes(Ether() / later), 1)["reason"] == 5


def test_ipv6_extension_headers_and_fragments():
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
    chained = (
        v6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(sport=1, dport=443, flags="S") / (b"6" * 10)
    )
    p = parse(PacketBatch.from_packets([bytes(Ether() / chained)], [0]))
    assert (p.proto[0], p.sport[0], p.dport[0], p.payload[0], p.flags[0], p.reason[0]) == (
        6,
        1,
        443,
        10,
        2,
        0,
    )
    assert (p.src_hi[0], p.src_lo[0]) == (0x20010DB800000000, 1)
    later = v6 / IPv6ExtHdrFragment(offset=10, nh=17) / (b"x" * 64)
    assert _parse_one(bytes(Ether() / later), 1)["reason"] == 5


def test_damaged_and_foreign_packets_are_counted_by_reason():
    good = bytes(Ether(type=0x0800) / IP_PACKET)
    frames = [
        good[:20],  # truncated inside IPv4
        bytes(Ether(type=0x0806) / (b"\0" * 28)),  # ARP
        good[:14] + b"\x45\x00\x00\x05" + good[18:],  # total length < header length
        good[:14] + b"\x65" + good[15:],  # IPv4 ethertype but version 6
        good[:46] + b"\x20" + good[47:],  # TCP data offset 2
        good[:40],  # TCP header cut
    ]
    p = parse(PacketBatch.from_packets(frames, np.zeros(len(frames), np.int64)))
    assert reason_counts(p.reason) == {
        "truncated": 2,
        "non_ip": 1,
        "malformed_ip": 2,
        "malformed_transport": 1,
    }
    odd = parse(PacketBatch.from_packets([good], [0], linktype=147))
    assert reason_counts(odd.reason) == {"unsupported_link_type": 1}


def test_every_shared_capture_reads_like_tcpdump(data_root):
    import shutil
    import subprocess

    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump is not installed")
    files = sorted(p for p in (data_root / "pcaps").rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    files += sorted((data_root / "iot23").rglob("*.pcap"))
    assert len(files) >= 40
    for path in files:
        capture, batches = _read(path)
        expected = subprocess.run(
            ["tcpdump", "-nn", "-r", str(path), "-q"], capture_output=True, text=True, timeout=120
        ).stdout.count("\n")
        assert capture.stats.packets == expected, path.name
        assert not capture.stats.damaged, path.name
