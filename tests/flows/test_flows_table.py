"""Flow table behaviour: bounded memory under a flood, growth, batch-size invariance, config errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from flows_testkit import SERVER, T0, batch, tcp

from iotguard.capture import CaptureFile
from iotguard.core.errors import ConfigError
from iotguard.flows import FlowConfig, FlowMeter


def _syn_flood(n: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    sources = rng.integers(0x0B000000, 0x0BFFFFFF, size=n)
    ports = rng.integers(1024, 65535, size=n)
    packets = [
        tcp(f"{s >> 24}.{(s >> 16) & 255}.{(s >> 8) & 255}.{s & 255}", SERVER, int(p), 80, "S")
        for s, p in zip(sources, ports, strict=True)
    ]
    return packets, [i * 10 for i in range(n)]


def test_syn_flood_from_random_sources_stays_within_max_flows_and_loses_nothing():
    packets, times = _syn_flood(5000)
    meter = FlowMeter(max_flows=256)
    frames = []
    for start in range(0, len(packets), 1000):
        frames.append(meter.feed(batch(packets[start : start + 1000], times[start : start + 1000])))
        assert meter.capacity <= 256
        assert meter.stats.active_flows <= 256
    frames.append(meter.flush())
    df = pd.concat(frames, ignore_index=True)
    assert meter.stats.evicted >= 5000 - 256
    assert (df.end_reason == "evicted").sum() == meter.stats.evicted
    # every packet is in exactly one record
    assert len(df) == 5000 and int(df.fwd_packets.sum()) == 5000 and meter.stats.flows == 5000


def test_table_bound_that_is_not_a_power_of_two():
    # The table grows 4096 -> 5000 here; the hash index must stay a power of two or the flood hangs.
    packets, times = _syn_flood(12000, seed=5)
    meter = FlowMeter(max_flows=5000)
    df = pd.concat([meter.feed(batch(packets, times)), meter.flush()], ignore_index=True)
    assert meter.capacity == 5000
    assert len(df) == 12000 and meter.stats.evicted >= 12000 - 5000


def test_eviction_prefers_flows_not_seen_recently():
    # A long-lived conversation keeps talking during a flood; it must survive the evictions.
    flood, times = _syn_flood(3000, seed=3)
    talk = [tcp("192.168.7.7", SERVER, 50000, 443, "A", 10) for _ in range(300)]
    packets, stamps = [], []
    for i, p in enumerate(flood):
        packets.append(p)
        stamps.append(times[i])
        if i % 10 == 0:
            packets.append(talk[i // 10])
            stamps.append(times[i] + 1)
    meter = FlowMeter(max_flows=128)
    df = pd.concat([meter.feed(batch(packets, stamps)), meter.flush()], ignore_index=True)
    talker = df[df.src_ip == "192.168.7.7"]
    assert len(talker) == 1 and talker.fwd_packets.iloc[0] == 300 and talker.end_reason.iloc[0] == "end"


def test_table_grows_on_demand_then_keeps_every_flow():
    packets, times = _syn_flood(20000, seed=11)
    meter = FlowMeter()
    out = meter.feed(batch(packets, times))
    assert len(out) == 0 and meter.stats.active_flows == 20000
    assert meter.capacity >= 20000
    assert len(meter.flush()) == 20000 and meter.stats.active_flows == 0


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_records_do_not_depend_on_batch_size(data_file, batch_size):
    path = data_file("pcaps/zeek/ssh_sshguess.pcap")

    def extract(size: int) -> pd.DataFrame:
        meter = FlowMeter(early_packets=5)
        frames = [meter.feed(b) for b in CaptureFile(path, batch_size=size)]
        frames.append(meter.flush())
        df = pd.concat(frames, ignore_index=True)
        return df.sort_values(["flow_id", "partial"]).reset_index(drop=True)

    reference = extract(65536)
    assert len(reference) > 11
    pd.testing.assert_frame_equal(extract(batch_size), reference)


def test_expire_without_packets_uses_the_given_clock():
    meter = FlowMeter()
    meter.feed(batch([tcp("10.1.1.1", SERVER, 1234, 80, "S")], [0]))
    assert len(meter.expire(T0 + 100)) == 0
    done = meter.expire(T0 + 121)
    assert len(done) == 1 and done.end_reason.iloc[0] == "timeout"
    # A TCP flow that timed out leaves a dormant entry (forgotten after tcp_memory); it emits nothing.
    assert meter.stats.active_flows == 0
    meter.expire(T0 + 400)
    assert len(meter.flush()) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"flow_timeout": 0}, "flow_timeout"),
        ({"max_flows": 3}, "max_flows"),
        ({"early_packets": 0}, "early_packets"),
        ({"activity_timeout": 500}, "flow config"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_config_is_a_config_error_naming_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        FlowMeter(**overrides)


def test_config_round_trip_and_cicflowmeter_defaults():
    cfg = FlowConfig()
    assert (cfg.flow_timeout, cfg.activity_timeout) == (120.0, 5.0)
    assert FlowConfig.build(cfg.model_dump()) == cfg


def test_feed_rejects_non_batches():
    with pytest.raises(TypeError):
        FlowMeter().feed([b"not a batch"])  # type: ignore[arg-type]


@pytest.mark.parametrize("scan_interval", [0.05, 7.0])
def test_records_do_not_depend_on_the_wheel_granularity(data_file, scan_interval):
    # A day of C&C traffic: flows end by timeout, connections go dormant and come back hours later.
    path = data_file("iot23/CTU-IoT-Malware-Capture-34-1/2018-12-21-15-50-14-192.168.1.195.irc.pcap")

    def extract(**config) -> pd.DataFrame:
        meter = FlowMeter(early_packets=3, **config)
        frames = [meter.feed(b) for b in CaptureFile(path)]
        frames.append(meter.flush())
        df = pd.concat(frames, ignore_index=True).drop(columns=["end_reason"])
        return df.sort_values(["flow_id", "partial"]).reset_index(drop=True)

    reference = extract()
    assert (reference.tcp_flow_time > reference.flow_duration).sum() > 100  # continued connections
    pd.testing.assert_frame_equal(extract(scan_interval=scan_interval), reference)
