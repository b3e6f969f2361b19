"""Hand-built packet sequences with hand-computed CICFlowMeter (CNS2022) feature values.

Expected values are written out from the packet list (sums, counts, timestamps) or computed with plain
two-pass numpy formulas, never with the extractor's own code.
"""

from __future__ import annotations

import numpy as np
import pytest
from flows_testkit import CLIENT, SERVER, T0, batch, icmp, run, tcp, udp

from iotguard.core.errors import ConfigError
from iotguard.core.schema import EXTRA_FEATURES, FLOW_FEATURES, IDENTITY_COLUMNS, PARTIAL_COLUMN
from iotguard.flows import FLOW_COLUMNS, FlowMeter

MSS = [("MSS", 1460)]  # a 4-byte TCP option: 24-byte header


def _conversation():
    """A full TCP connection: handshake, request, a bulk response with a retransmission, a 7 s idle gap,
    a second request, and a FIN/FIN/ACK teardown. Times in microseconds after T0."""
    C, S = CLIENT, SERVER
    rows = [
        (0, tcp(C, S, 40000, 80, "S", window=8192, options=MSS)),  # 1 fwd SYN, hdr 24
        (1_000, tcp(S, C, 80, 40000, "SA", window=65535, options=MSS)),  # 2 bwd SYN-ACK, hdr 24
        (2_000, tcp(C, S, 40000, 80, "A", window=8192)),  # 3 fwd
        (3_000, tcp(C, S, 40000, 80, "PA", 100, window=8192)),  # 4 fwd request
        (10_000, tcp(S, C, 80, 40000, "A", 1000, window=65535)),  # 5 bwd bulk starts
        (11_000, tcp(S, C, 80, 40000, "A", 1000, window=65535)),  # 6
        (12_000, tcp(S, C, 80, 40000, "A", 1000, window=65535)),  # 7
        (13_000, tcp(S, C, 80, 40000, "PA", 500, window=65535)),  # 8 4th bulk packet: a bulk
        (14_000, tcp(C, S, 40000, 80, "A", window=8192)),  # 9 fwd ack
        (20_000, tcp(S, C, 80, 40000, "A", 500, window=65535)),  # 10 retransmission of 8, bulk continues
        (7_020_000, tcp(C, S, 40000, 80, "PA", 200, window=8192)),  # 11 after a 7 s idle gap
        (7_021_000, tcp(S, C, 80, 40000, "A", window=65535)),  # 12
        (7_030_000, tcp(C, S, 40000, 80, "FA", window=8192)),  # 13 first FIN
        (7_031_000, tcp(S, C, 80, 40000, "FA", window=60000)),  # 14 second FIN (last bwd window 60000)
        (7_032_000, tcp(C, S, 40000, 80, "A", window=8192)),  # 15 final ACK: connection closed
    ]
    return [p for _, p in rows], [t for t, _ in rows]


def _sample_std(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def test_columns_are_the_canonical_schema():
    expected = list(dict.fromkeys([*IDENTITY_COLUMNS, *FLOW_FEATURES, *EXTRA_FEATURES]))
    assert list(FLOW_COLUMNS[: len(expected)]) == expected
    assert FLOW_COLUMNS[len(expected)] == PARTIAL_COLUMN
    packets, times = _conversation()
    df = run(packets, times)
    assert list(df.columns) == list(FLOW_COLUMNS)


def test_full_tcp_conversation_every_feature_family():
    packets, times = _conversation()
    df = run(packets, times)
    assert len(df) == 1
    r = df.iloc[0]
    fwd_pay = [0, 0, 100, 0, 200, 0, 0]
    bwd_pay = [0, 1000, 1000, 1000, 500, 500, 0, 0]
    all_pay = [0, 0, 0, 100, 1000, 1000, 1000, 500, 0, 500, 200, 0, 0, 0, 0]
    flow_iat = np.diff(times)
    fwd_iat = np.diff([0, 2_000, 3_000, 14_000, 7_020_000, 7_030_000, 7_032_000])
    bwd_iat = np.diff([1_000, 10_000, 11_000, 12_000, 13_000, 20_000, 7_021_000, 7_031_000])
    secs = 7.032

    # identity: direction from the first packet
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.protocol) == (CLIENT, 40000, SERVER, 80, 6)
    assert r.ts_first == pytest.approx(T0) and r.ts_last == pytest.approx(T0 + 7.032)
    assert not r.partial and r.end_reason == "fin" and r.app_proto == "http"
    # counts, lengths
    assert r.flow_duration == 7_032_000
    assert (r.fwd_packets, r.bwd_packets, r.fwd_bytes, r.bwd_bytes) == (7, 8, 300, 4000)
    assert (r.fwd_pkt_len_max, r.fwd_pkt_len_min) == (200, 0)
    assert r.fwd_pkt_len_mean == pytest.approx(300 / 7, rel=1e-12)
    assert r.fwd_pkt_len_std == pytest.approx(_sample_std(fwd_pay), rel=1e-12)
    assert (r.bwd_pkt_len_max, r.bwd_pkt_len_min, r.bwd_pkt_len_mean) == (1000, 0, 500)
    assert r.bwd_pkt_len_std == pytest.approx(_sample_std(bwd_pay), rel=1e-12)
    assert (r.pkt_len_min, r.pkt_len_max) == (0, 1000)
    assert r.pkt_len_mean == pytest.approx(4300 / 15, rel=1e-12)
    assert r.pkt_len_std == pytest.approx(_sample_std(all_pay), rel=1e-12)
    assert r.pkt_len_var == pytest.approx(np.var(all_pay, ddof=1), rel=1e-12)
    # rates (per second of flow duration)
    assert r.flow_bytes_per_s == pytest.approx(4300 / secs, rel=1e-12)
    assert r.flow_packets_per_s == pytest.approx(15 / secs, rel=1e-12)
    assert r.fwd_packets_per_s == pytest.approx(7 / secs, rel=1e-12)
    assert r.bwd_packets_per_s == pytest.approx(8 / secs, rel=1e-12)
    # inter-arrival times (microseconds)
    assert r.flow_iat_mean == pytest.approx(flow_iat.mean(), rel=1e-12)
    assert r.flow_iat_std == pytest.approx(_sample_std(flow_iat), rel=1e-12)
    assert (r.flow_iat_max, r.flow_iat_min) == (7_000_000, 1_000)
    assert (r.fwd_iat_total, r.fwd_iat_max, r.fwd_iat_min) == (7_032_000, 7_006_000, 1_000)
    assert r.fwd_iat_mean == pytest.approx(fwd_iat.mean(), rel=1e-12)
    assert r.fwd_iat_std == pytest.approx(_sample_std(fwd_iat), rel=1e-12)
    assert (r.bwd_iat_total, r.bwd_iat_max, r.bwd_iat_min) == (7_030_000, 7_001_000, 1_000)
    assert r.bwd_iat_mean == pytest.approx(bwd_iat.mean(), rel=1e-12)
    assert r.bwd_iat_std == pytest.approx(_sample_std(bwd_iat), rel=1e-12)
    # flags
    assert (r.fin_flag_count, r.syn_flag_count, r.rst_flag_count, r.psh_flag_count) == (2, 2, 0, 3)
    assert (r.ack_flag_count, r.urg_flag_count, r.cwr_flag_count, r.ece_flag_count) == (14, 0, 0, 0)
    assert (r.fwd_psh_flags, r.bwd_psh_flags, r.fwd_urg_flags, r.bwd_urg_flags) == (2, 1, 0, 0)
    assert (r.fwd_rst_flags, r.bwd_rst_flags) == (0, 0)
    # header bytes: transport headers only (SYN and SYN-ACK carry a 4-byte MSS option)
    assert (r.fwd_header_bytes, r.bwd_header_bytes) == (24 + 6 * 20, 24 + 7 * 20)
    assert r.fwd_seg_size_min == 20
    # ratios and averages
    assert r.down_up_ratio == pytest.approx(8 / 7, rel=1e-12)
    assert r.avg_packet_size == pytest.approx(4300 / 15, rel=1e-12)
    assert r.fwd_segment_size_avg == pytest.approx(300 / 7, rel=1e-12)
    assert r.bwd_segment_size_avg == 500
    # bulk: the server sends 4 payload packets within 1 s (a bulk of 3500 B in 3 ms), then the
    # retransmission 7 ms later continues it: 5 packets, 4000 B, 10 ms. The client never bulks.
    assert (r.bwd_bulk_bytes_avg, r.bwd_bulk_packets_avg, r.bwd_bulk_rate_avg) == (4000, 5, 400_000)
    assert (r.fwd_bulk_bytes_avg, r.fwd_bulk_packets_avg, r.fwd_bulk_rate_avg) == (0, 0, 0)
    # subflows: the CNS2022 release counts one subflow per packet -> totals // 15 packets
    assert (r.subflow_fwd_packets, r.subflow_fwd_bytes) == (0, 300 // 15)
    assert (r.subflow_bwd_packets, r.subflow_bwd_bytes) == (0, 4000 // 15)
    # windows: forward = the first packet's; backward = the last backward packet's (CNS2022 quirk)
    assert (r.fwd_init_win_bytes, r.bwd_init_win_bytes) == (8192, 60000)
    # data packets forward, not counting the flow's first packet (CNS2022 quirk): packets 4 and 11
    assert r.fwd_act_data_packets == 2
    # active/idle: one active period 0..20 ms ended by the 7 s gap; the last period is not counted
    assert (r.active_mean, r.active_std, r.active_max, r.active_min) == (20_000, 0, 20_000, 20_000)
    assert (r.idle_mean, r.idle_std, r.idle_max, r.idle_min) == (7_000_000, 0, 7_000_000, 7_000_000)
    # CNS2022 extras
    assert (r.icmp_code, r.icmp_type) == (-1, -1)
    assert r.tcp_flow_time == 7_032_000


def test_closed_connection_is_emitted_after_close_grace():
    packets, times = _conversation()
    meter = FlowMeter(close_grace=2.0)
    assert len(meter.feed(batch(packets, times))) == 0
    assert len(meter.expire(T0 + 7.032 + 1.9)) == 0
    done = meter.expire(T0 + 7.032 + 2.1)
    assert len(done) == 1 and done.end_reason.iloc[0] == "fin"
    assert meter.stats.active_flows == 0


def test_rst_ends_connection_and_a_new_syn_starts_the_next_flow():
    C, S = CLIENT, SERVER
    packets = [
        tcp(C, S, 40001, 22, "S"),
        tcp(S, C, 22, 40001, "RA"),  # refused: ready for termination
        tcp(C, S, 40001, 22, "S"),  # the client retries on the same port: a new flow
        tcp(S, C, 22, 40001, "RA"),
    ]
    df = run(packets, [0, 500, 3_000_000, 3_000_400], close_grace=None)
    assert list(df.end_reason) == ["rst", "rst"]
    first, second = df.iloc[0], df.iloc[1]
    assert (first.fwd_packets, first.bwd_packets, first.flow_duration) == (1, 1, 500)
    assert (first.rst_flag_count, first.bwd_rst_flags, first.fwd_rst_flags) == (1, 1, 0)
    assert second.ts_first == pytest.approx(T0 + 3.0) and second.src_ip == C
    assert second.tcp_flow_time == 400  # a new connection: no time carried over
    assert first.flow_id != second.flow_id


def test_flow_starting_with_rst_does_not_count_it_per_direction():
    # CNS2022 quirk: the first packet's FIN/RST is in the totals but not in the per-direction counts
    df = run([tcp(CLIENT, SERVER, 5555, 80, "R")], [0])
    r = df.iloc[0]
    assert (r.rst_flag_count, r.fwd_rst_flags, r.bwd_rst_flags) == (1, 0, 0)
    assert r.flow_bytes_per_s == -1 and r.flow_packets_per_s == -1  # zero duration
    assert r.flow_iat_mean == 0 and r.fwd_iat_total == 0


def _timeout_scenario(extra_clock_packet: bool):
    C, S = CLIENT, SERVER
    packets = [
        tcp(C, S, 40002, 80, "S"),
        tcp(S, C, 80, 40002, "SA"),
        tcp(C, S, 40002, 80, "A"),
    ]
    times = [0, 1_000, 2_000]
    if extra_clock_packet:  # another flow's packet moves the clock: the periodic scan ends the flow first
        packets.append(udp("10.9.9.9", "10.9.9.8", 1, 2, 10))
        times.append(11_000_000)
    packets += [tcp(S, C, 80, 40002, "PA", 50), tcp(C, S, 40002, 80, "A")]
    times += [12_000_000, 12_001_000]
    df = run(packets, times, flow_timeout=10.0)
    return df[df.protocol == 6].sort_values("ts_first").reset_index(drop=True)


@pytest.mark.parametrize("scan_first", [False, True])
def test_flow_timeout_splits_and_the_connection_continues(scan_first):
    df = _timeout_scenario(scan_first)
    assert len(df) == 2
    first, second = df.iloc[0], df.iloc[1]
    assert first.end_reason == "timeout" and (first.fwd_packets, first.bwd_packets) == (2, 1)
    assert first.tcp_flow_time == 2_000
    # the continuation keeps the connection's direction although its first packet is backward
    assert (second.src_ip, second.src_port) == (CLIENT, 40002)
    assert (second.fwd_packets, second.bwd_packets, second.bwd_bytes) == (1, 1, 50)
    assert (
        second.fwd_init_win_bytes == 0 and second.fwd_seg_size_min == 0
    )  # CNS2022: set by a fwd first packet
    # Total TCP Flow Time: 2 ms (first flow) + 11.998 s gap + 1 ms (this flow)
    assert second.tcp_flow_time == 12_001_000


def test_timeout_split_identical_whether_scan_or_packet_ends_the_flow():
    a = _timeout_scenario(False).drop(columns=["flow_id"])
    b = _timeout_scenario(True).drop(columns=["flow_id"])
    assert a.drop(columns="end_reason").equals(b.drop(columns="end_reason"))


def test_udp_direction_lengths_and_timeout():
    C, S = CLIENT, SERVER
    packets = [
        udp(S, C, 53, 33333, 120),  # the response is seen first: it sets the direction
        udp(C, S, 33333, 53, 30),
        udp(S, C, 53, 33333, 80),
        udp(C, S, 33333, 53, 30),  # 130 s later: past the flow timeout, a new flow in its own direction
    ]
    df = run(packets, [0, 100, 300, 130_000_000])
    assert len(df) == 2
    first, second = df.iloc[0], df.iloc[1]
    assert (first.src_ip, first.src_port, first.dst_port) == (S, 53, 33333)
    assert (first.fwd_packets, first.bwd_packets, first.fwd_bytes, first.bwd_bytes) == (2, 1, 200, 30)
    assert (first.fwd_header_bytes, first.bwd_header_bytes, first.fwd_seg_size_min) == (16, 8, 8)
    assert first.fwd_act_data_packets == 1  # the first packet is not counted (CNS2022)
    assert first.end_reason == "timeout" and first.tcp_flow_time == 0
    assert (second.src_ip, second.src_port, second.fwd_packets) == (C, 33333, 1)


def test_icmp_echo_is_one_flow_and_a_type_and_code_change_splits():
    C, S = CLIENT, SERVER
    packets = [
        icmp(C, S, 8, 0, 56),
        icmp(S, C, 0, 0, 56),  # reply: type differs, code same -> same flow
        icmp(C, S, 8, 0, 56),
        icmp(S, C, 3, 3, 28),  # unreachable: type and code both differ -> new flow
    ]
    df = run(packets, [0, 10_000, 1_000_000, 1_010_000])
    assert list(df.end_reason) == ["icmp_change", "end"]
    echo, unreach = df.iloc[0], df.iloc[1]
    assert (echo.protocol, echo.src_port, echo.dst_port) == (1, 0, 0)
    assert (echo.fwd_packets, echo.bwd_packets) == (2, 1)
    assert (echo.icmp_type, echo.icmp_code) == (8, 0)
    assert (echo.fwd_bytes, echo.fwd_header_bytes) == (0, 0)  # ICMP lengths are 0 in the CNS2022 release
    assert (unreach.src_ip, unreach.icmp_type, unreach.icmp_code) == (S, 3, 3)


def test_early_record_after_n_packets_shares_the_flow_id():
    C, S = CLIENT, SERVER
    packets = [
        tcp(C, S, 40003, 1883, "PA", 10) if i % 2 == 0 else tcp(S, C, 1883, 40003, "A") for i in range(12)
    ]
    df = run(packets, [i * 1000 for i in range(12)], early_packets=10)
    assert list(df.partial) == [True, False]
    early, final = df.iloc[0], df.iloc[1]
    assert early.fwd_packets + early.bwd_packets == 10 and early.end_reason == "active"
    assert final.fwd_packets + final.bwd_packets == 12
    assert early.flow_id == final.flow_id and early.app_proto == "mqtt"


def test_a_second_early_record_when_the_flow_keeps_going():
    C, S = CLIENT, SERVER
    packets = [tcp(C, S, 40005, 1883, "PA", 10) for _ in range(130)]
    times = [i * 5000 for i in range(130)]
    df = run(packets, times, early_packets=10, early_again=100)
    assert list(df.partial) == [True, True, False]
    first, second, final = df.iloc[0], df.iloc[1], df.iloc[2]
    assert (first.fwd_packets, second.fwd_packets, final.fwd_packets) == (10, 100, 130)
    assert first.flow_id == second.flow_id == final.flow_id
    # a short flow has only the first; without early_again, only the first as before
    assert list(run(packets[:50], times[:50], early_packets=10, early_again=100).partial) == [True, False]
    assert list(run(packets, times, early_packets=10).partial) == [True, False]
    with pytest.raises(ConfigError):
        FlowMeter(early_packets=10, early_again=10)


def test_early_record_by_age_needs_no_new_packet():
    meter = FlowMeter(early_seconds=1.0)
    assert len(meter.feed(batch([tcp(CLIENT, SERVER, 40004, 80, "S")], [0]))) == 0
    assert len(meter.expire(T0 + 0.5)) == 0
    early = meter.expire(T0 + 1.0)
    assert len(early) == 1 and bool(early.partial.iloc[0]) and early.fwd_packets.iloc[0] == 1
    assert meter.stats.early == 1 and meter.stats.flows == 0
    assert len(meter.expire(T0 + 5.0)) == 0  # one early record per flow
