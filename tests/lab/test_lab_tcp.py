"""The TCP connection model: sequence and acknowledgement numbers, options, retransmissions, teardown, and
byte-exact stream reassembly by Wireshark."""

from __future__ import annotations

import random

import pytest
from lab_helpers import tshark

from iotguard.lab.network import LINUX, LWIP, Network
from iotguard.lab.pcap import Capture, write_pcap
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

scapy = pytest.importorskip("scapy.all")


def _sim(seed: int = 1) -> tuple[Sim, Network]:
    net = Network("192.168.7.0/24", random.Random(seed))
    sim = Sim(
        seed=seed,
        duration=100.0,
        base_unix=1_700_000_000.0,
        net=net,
        cap=Capture(1_700_000_000_000_000, 100.0),
    )
    return sim, net


def _conversation(sim: Sim, client, server, messages: list[tuple[bool, bytes]], loss: float = 0.0) -> TcpConn:
    conn = TcpConn(sim, client, server, 8080, loss=loss, rng=random.Random(3))
    t = conn.connect(1.0)
    for from_client, data in messages:
        t = conn.send(conn.reply_at(t, server if from_client else client, 0.01), from_client, data)
    conn.close(t + 0.01, from_client=True)
    return conn


def _segments(sim: Sim):
    return [scapy.Ether(f) for f in sim.cap.build().frames()]


@pytest.mark.parametrize("stacks", [(LINUX, LINUX), (LWIP, LINUX), (LINUX, LWIP)])
def test_sequence_numbers_windows_and_options(stacks):
    sim, net = _sim()
    client = net.add_local("c", "x", "intel", stacks[0])
    server = net.add_local("s", "y", "espressif", stacks[1])
    rng = random.Random(9)
    messages = [
        (True, rng.randbytes(300)),
        (False, rng.randbytes(5000)),
        (True, rng.randbytes(10)),
        (False, rng.randbytes(90_000)),
    ]
    _conversation(sim, client, server, messages)
    pkts = _segments(sim)
    syn, synack = pkts[0][scapy.TCP], pkts[1][scapy.TCP]
    assert syn.flags == "S" and synack.flags == "SA" and synack.ack == syn.seq + 1
    assert dict(syn.options)["MSS"] == stacks[0].mss
    scaled = stacks[0].wscale is not None and stacks[1].wscale is not None
    assert ("WScale" in dict(synack.options)) == scaled
    sent = {client.ip: bytearray(), server.ip: bytearray()}
    next_seq = {client.ip: syn.seq + 1, server.ip: synack.seq + 1}
    for p in pkts[2:]:
        tcp, src = p[scapy.TCP], p[scapy.IP].src
        dst = server.ip if src == client.ip else client.ip
        data = bytes(tcp.payload)
        assert tcp.seq == next_seq[src], "every segment continues its direction's byte stream"
        assert tcp.ack <= next_seq[dst], "nobody acknowledges bytes that were not sent"
        sent[src] += data
        next_seq[src] += len(data) + (1 if "F" in tcp.flags else 0)
        assert len(data) <= min(stacks[0].mss, stacks[1].mss)
    assert bytes(sent[client.ip]) == messages[0][1] + messages[2][1]
    assert bytes(sent[server.ip]) == messages[1][1] + messages[3][1]
    flags = [str(p[scapy.TCP].flags) for p in pkts[-4:]]
    assert any("F" in f for f in flags) and flags[-1] == "A"


def test_retransmission_repeats_the_segment_after_the_rto():
    sim, net = _sim()
    client = net.add_local("c", "x", "espressif", LWIP)
    server = net.add_local("s", "y", "intel", LINUX)
    conn = TcpConn(sim, client, server, 1883, rng=random.Random(1))
    t = conn.connect(1.0)
    conn.send(t + 0.001, True, b"hello broker", lose=True)
    conn.finish()
    packets = sim.cap.build()
    data = [(ts, scapy.Ether(f)) for ts, f in zip(packets.ts_us.tolist(), packets.frames(), strict=True)]
    data = [(ts, p) for ts, p in data if bytes(p[scapy.TCP].payload)]
    assert len(data) == 2 and data[0][1][scapy.TCP].seq == data[1][1][scapy.TCP].seq
    assert (data[1][0] - data[0][0]) / 1e6 == pytest.approx(LWIP.rto, abs=0.03)


def test_wireshark_reassembles_streams_byte_exact(tmp_path):
    sim, net = _sim(4)
    client = net.add_local("c", "x", "intel", LINUX)
    server = net.add_local("s", "y", "espressif", LWIP)
    rng = random.Random(2)
    messages = [
        (True, rng.randbytes(700)),
        (False, rng.randbytes(40_000)),
        (True, rng.randbytes(3000)),
        (False, rng.randbytes(12)),
    ]
    _conversation(sim, client, server, messages, loss=0.5)  # half the single-segment sends are retransmitted
    path = tmp_path / "tcp.pcap"
    write_pcap(path, sim.cap.build())
    out = tshark("-r", str(path), "-q", "-z", "follow,tcp,raw,0")
    lines = [
        line for line in out.splitlines() if line and not line.startswith(("=", "Follow", "Filter", "Node"))
    ]
    client_bytes = bytes.fromhex("".join(line for line in lines if not line.startswith("\t")))
    server_bytes = bytes.fromhex("".join(line.strip() for line in lines if line.startswith("\t")))
    assert client_bytes == messages[0][1] + messages[2][1]
    assert server_bytes == messages[1][1] + messages[3][1]
