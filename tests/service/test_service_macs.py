"""MAC/IP pairs from Ethernet frames (IPv4 sources and ARP senders), for the inventory's spoofing check."""

from __future__ import annotations

from scapy.all import ARP, IP, TCP, UDP, Dot1Q, Ether, raw

from iotguard.capture.batch import LINKTYPE_ETHERNET, LINKTYPE_RAW, PacketBatch
from iotguard.service.macs import mac_pairs


def test_ipv4_sources_and_arp_senders_latest_sighting():
    frames = [
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="192.168.1.10", dst="192.168.1.1")
        / TCP(),
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="192.168.1.10", dst="192.168.1.1")
        / UDP(),
        Ether(src="02:66:00:00:00:66", dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=2, hwsrc="02:66:00:00:00:66", psrc="192.168.1.1", pdst="192.168.1.10"),
        Ether(src="02:00:00:00:00:03") / Dot1Q(vlan=5) / IP(src="192.168.1.30") / TCP(),  # tagged: ignored
        Ether(src="01:00:5e:00:00:01") / IP(src="192.168.1.40") / UDP(),  # multicast source MAC: ignored
    ]
    batch = PacketBatch.from_packets(
        [raw(f) for f in frames], [1_000_000 * (i + 1) for i in range(len(frames))]
    )
    pairs = sorted(mac_pairs(batch))
    assert pairs == [
        ("192.168.1.1", "02:66:00:00:00:66", 3.0, True),
        ("192.168.1.10", "02:00:00:00:00:01", 2.0, False),
    ]


def test_other_link_types_and_runts_give_nothing():
    ip = raw(IP(src="10.0.0.1", dst="10.0.0.2") / TCP())
    assert mac_pairs(PacketBatch.from_packets([ip], [1], linktype=LINKTYPE_RAW)) == []
    assert mac_pairs(PacketBatch.from_packets([b"\x00" * 20], [1], linktype=LINKTYPE_ETHERNET)) == []
    assert mac_pairs(PacketBatch.from_packets([], [])) == []
