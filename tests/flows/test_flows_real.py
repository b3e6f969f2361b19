"""Every shared real capture becomes flows: no crash, every parsed packet in exactly one record, and flow
counts that match what the datasets' SOURCE.md says the captures contain."""

from __future__ import annotations

import pytest

from iotguard.flows import iter_flows


def _captures(root):
    files = sorted(p for p in (root / "pcaps").rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    return files + sorted((root / "iot23").rglob("*.pcap"))


def test_every_shared_capture_extracts_consistently(data_root):
    files = _captures(data_root)
    assert len(files) >= 40
    for path in files:
        stream = iter_flows(path)
        flows = stream.to_pandas()
        stats = stream.stats
        parsed = stats.packets - sum(stats.skipped.values())
        assert int((flows.fwd_packets + flows.bwd_packets).sum()) == parsed, path.name
        assert stats.packets == stream.source_stats.packets and not stream.source_stats.damaged, path.name
        assert 0 < len(flows) <= max(parsed, 1), path.name
        assert (flows.flow_duration >= 0).all() and (flows.ts_last >= flows.ts_first).all(), path.name
        assert flows.flow_id.is_unique, path.name


@pytest.mark.parametrize(
    ("relative", "connections"),
    [
        ("pcaps/mqttset_reduced/bruteforce.pcapng", 1271),  # "1,271 TCP connections"
        ("pcaps/mqttset_reduced/slowite.pcap", 1024),  # "1,024 connections"
        ("pcaps/zeek/ssh_sshguess.pcap", 11),  # "11 connections to tcp/22"
        ("pcaps/zeek/ftp_bruteforce.pcap", 30),  # "30 connections to tcp/21"
        ("pcaps/mqttset_reduced/flood.pcap", 1),  # "one flow"
    ],
)
def test_flow_counts_match_documented_connections(data_file, relative, connections):
    flows = iter_flows(data_file(relative)).to_pandas()
    assert (flows.protocol == 6).sum() == connections


def test_syn_scan_is_one_flow_per_probed_port(data_file):
    flows = iter_flows(data_file("pcaps/chrissanders_packets/synscan.pcapng")).to_pandas()
    # ~1,000 ports probed: one flow per port, most of them 1-2 packets answered by a RST
    assert 990 <= flows.dst_port.nunique() <= len(flows)
    assert (flows.fwd_packets + flows.bwd_packets).median() <= 2
