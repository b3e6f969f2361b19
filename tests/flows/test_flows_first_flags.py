"""``tcp_first_flags``: the TCP flags of the first packet of a flow's connection that the meter saw (what
attribution needs to tell a flow opened by its source from one that starts with an answer)."""

from __future__ import annotations

from flows_testkit import CLIENT, SERVER, icmp, run, tcp, udp

from iotguard.core.schema import FIRST_FLAGS_COLUMN


def _first_flags(packets, times_us, **config) -> list[tuple[str, int]]:
    df = run(packets, times_us, **config)
    return list(zip(df["src_ip"], df[FIRST_FLAGS_COLUMN].astype(int), strict=True))


def test_a_flow_records_the_flags_of_its_first_packet():
    packets = [
        tcp(CLIENT, SERVER, 40000, 80, "S"),
        tcp(SERVER, CLIENT, 80, 40000, "SA"),
        tcp(CLIENT, SERVER, 40000, 80, "A"),
        tcp(SERVER, CLIENT, 443, 40001, "SA"),  # the client's SYN unseen: the flow starts at the server
        tcp(SERVER, CLIENT, 22, 40002, "RA"),
        udp(CLIENT, SERVER, 5000, 53, 20),
        icmp(CLIENT, SERVER),
    ]
    got = _first_flags(packets, [i * 1000 for i in range(len(packets))])
    assert sorted(got) == sorted([(CLIENT, 0x02), (SERVER, 0x12), (SERVER, 0x14), (CLIENT, -1), (CLIENT, -1)])


def test_a_connection_split_by_the_flow_timeout_keeps_the_flags_that_opened_it():
    # a SYN-ACK-first connection outlives the flow timeout; its next flow starts with the client's data, but
    # the connection was still opened by the client (the destination of both flows)
    packets = [
        tcp(SERVER, CLIENT, 443, 40001, "SA"),
        tcp(CLIENT, SERVER, 40001, 443, "A"),
        tcp(CLIENT, SERVER, 40001, 443, "PA", 100),
        tcp(CLIENT, SERVER, 40001, 443, "PA", 100),
    ]
    got = _first_flags(packets, [0, 1000, 2000, 5_000_000], flow_timeout=2.0, activity_timeout=1.0)
    assert got == [(SERVER, 0x12), (SERVER, 0x12)]
