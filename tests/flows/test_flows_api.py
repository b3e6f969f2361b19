"""The public API and CLI: iter_flows, read_flows, labelling, writers, ``iotguard flows``."""

from __future__ import annotations

import pandas as pd
import pytest
from flows_testkit import CLIENT, SERVER, pcap_bytes, tcp, udp, write
from typer.testing import CliRunner

from iotguard.cli.main import app
from iotguard.core.episodes import Episode, write_episodes
from iotguard.core.errors import CaptureError, DataError
from iotguard.flows import FLOW_COLUMNS, FlowWriter, iter_flows, label_flows, read_flows


def _two_flows(tmp_path, name="two.pcap", offset_us=0):
    packets = [
        tcp(CLIENT, SERVER, 40000, 1883, "S"),
        tcp(SERVER, CLIENT, 1883, 40000, "SA"),
        udp("10.0.0.66", SERVER, 5555, 5683, 40),
    ]
    times = [offset_us, offset_us + 1000, offset_us + 2000]
    return write(tmp_path / name, pcap_bytes([bytes(p) for p in packets], times))


def test_read_flows_from_capture_and_from_saved_tables(tmp_path):
    flows = read_flows(_two_flows(tmp_path))
    assert len(flows) == 2 and list(flows.columns) == list(FLOW_COLUMNS)
    assert set(flows.app_proto) == {"mqtt", "coap"}
    for name in ("flows.parquet", "flows.csv", "flows.csv.gz"):
        with FlowWriter(tmp_path / name) as writer:
            writer.write(flows.iloc[:1])
            writer.write(flows.iloc[1:])
        back = read_flows(tmp_path / name)
        assert len(back) == 2 and list(back.columns) == list(FLOW_COLUMNS)
        assert back.fwd_packets.tolist() == flows.fwd_packets.tolist()


def test_read_flows_rejects_tables_without_flow_columns(tmp_path):
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a flow table"):
        read_flows(bad)


def test_iter_flows_yields_frames_and_keeps_stats(tmp_path):
    stream = iter_flows(_two_flows(tmp_path), early=1)
    frames = list(stream)
    total = pd.concat(frames, ignore_index=True)
    assert total.partial.sum() == 2 and (~total.partial).sum() == 2
    assert stream.stats.packets == 3 and stream.stats.flows == 2 and stream.stats.early == 2
    assert stream.source_stats.packets == 3


def test_consecutive_files_continue_flows_and_unrelated_files_do_not_merge(tmp_path):
    a = _two_flows(tmp_path, "a.pcap")
    later = _two_flows(tmp_path, "b.pcap", offset_us=5_000_000)  # the same conversations, 5 s later
    merged = read_flows([a, later])
    assert len(merged) == 2 and merged.fwd_packets.sum() + merged.bwd_packets.sum() == 6
    # b then a: a goes back in time, so the meter is flushed between the files
    separate = read_flows([later, a])
    assert len(separate) == 4


def test_errors_for_missing_files_and_non_captures(tmp_path):
    with pytest.raises(CaptureError, match="cannot open"):
        read_flows(tmp_path / "missing.pcap")
    text = tmp_path / "notes.pcap"
    text.write_text("this is not a capture\n")
    with pytest.raises(CaptureError, match="not a capture file"):
        read_flows(text)
    with pytest.raises(DataError, match="no packet source"):
        iter_flows([])


def test_labels_match_either_direction_and_time_window(tmp_path):
    flows = read_flows(_two_flows(tmp_path))
    t0 = flows.ts_first.min()
    episodes = [
        Episode(t0 - 1, t0 + 1, SERVER, CLIENT, "mqtt-probe", "PortScan"),  # reversed endpoints still match
        Episode(t0 + 100, t0 + 200, "10.0.0.66", "*", "coap-flood", "DoS"),  # outside the time window
    ]
    labelled = label_flows(flows, episodes).set_index("dst_port")
    assert labelled.loc[1883, "label"] == "mqtt-probe" and labelled.loc[1883, "category"] == "PortScan"
    assert labelled.loc[1883, "is_attack"] == 1
    assert labelled.loc[5683, "label"] == "Benign" and labelled.loc[5683, "is_attack"] == 0
    episodes_file = tmp_path / "episodes.csv"
    write_episodes(episodes_file, [Episode(t0 - 1, t0 + 1, "10.0.0.64/30", "*", "coap-flood", "DoS")])
    by_file = read_flows(_two_flows(tmp_path), labels=episodes_file).set_index("dst_port")
    assert by_file.loc[5683, "category"] == "DoS" and by_file.loc[1883, "category"] == "Benign"


def test_cli_writes_table_and_summary(tmp_path):
    capture = _two_flows(tmp_path)
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(app, ["flows", str(capture), "-o", str(out), "--early", "1"])
    assert result.exit_code == 0, result.output
    assert "flow records" in result.output and "packets/s" in result.output
    table = pd.read_parquet(out)
    assert len(table) == 4 and table.partial.sum() == 2
    assert not list(tmp_path.glob(".*.part"))


def test_cli_empty_capture_still_writes_a_header(tmp_path):
    capture = write(tmp_path / "empty.pcap", pcap_bytes([], []))
    out = tmp_path / "empty.csv"
    result = CliRunner().invoke(app, ["flows", str(capture), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out).columns.tolist() == list(FLOW_COLUMNS)


def test_cli_user_errors_exit_2_without_leftovers(tmp_path):
    import subprocess
    import sys

    text = tmp_path / "notes.pcap"
    text.write_text("hello\n")
    out = tmp_path / "x.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "iotguard", "flows", str(text), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "not a capture file" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_labels_match_ipv6_networks_and_never_cross_families(tmp_path):
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    packets = [
        Ether() / IPv6(src="2001:db8:1::66", dst="fd00::10") / TCP(sport=4444, dport=1883, flags="S"),
        Ether() / IPv6(src="2001:db9::1", dst="fd00::10") / TCP(sport=4445, dport=1883, flags="S"),
        tcp("10.0.0.66", SERVER, 4446, 1883, "S"),
    ]
    flows = read_flows(write(tmp_path / "v6.pcap", pcap_bytes([bytes(p) for p in packets], [0, 10, 20])))
    t0 = flows.ts_first.min()
    labelled = label_flows(
        flows,
        [
            Episode(t0 - 1, t0 + 1, "2001:db8::/32", "fd00::/8", "v6-scan", "PortScan"),
            Episode(t0 - 1, t0 + 1, "0.0.0.0/0", "*", "any-v4", "DoS"),
        ],
    ).set_index("src_port")
    assert labelled.loc[4444, "label"] == "v6-scan"
    assert labelled.loc[4445, "label"] == "Benign"  # 2001:db9:: is outside 2001:db8::/32
    assert labelled.loc[4446, "label"] == "any-v4"  # 0.0.0.0/0 matches IPv4 only
