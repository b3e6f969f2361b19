"""The ``floods`` scenario (training only): Mirai bots taking many flood orders, every vector at varied rates,
lengths, payload sizes and crews, with exact labels; and the scenarios it must not disturb."""

from __future__ import annotations

import collections
import struct

import pandas as pd
import pytest

from iotguard.lab import SCENARIOS, build, generate
from iotguard.lab.attacks import mirai
from iotguard.lab.verify import label_problems

SECONDS = 120.0
FLOODS = ("udp-flood", "syn-flood", "ack-flood", "http-flood")


@pytest.fixture(scope="module")
def floods(tmp_path_factory):
    run = generate("floods", duration=SECONDS, devices=10, out_dir=tmp_path_factory.mktemp("floods"))
    return run, pd.read_parquet(run.flows_path)


def test_floods_is_a_training_scenario_apart_from_the_test_set():
    scenario = SCENARIOS["floods"]
    assert scenario.role == "train" and [a.kind for a in scenario.attacks] == ["mirai-floods"]
    assert scenario.seed not in {s.seed for n, s in SCENARIOS.items() if n != "floods"}
    assert scenario.subnet != SCENARIOS["test"].subnet
    assert all(a.kind != "mirai-floods" for n, s in SCENARIOS.items() if n != "floods" for a in s.attacks)


def test_labels_agree_with_the_traffic():
    built = build("floods", duration=60, devices=8)
    assert label_problems(built) == []


def test_every_vector_from_one_bot_or_several_each_against_its_own_target(floods):
    run, _ = floods
    flood_eps = [e for e in run.episodes if e.label in FLOODS]
    assert {e.label for e in flood_eps} == set(FLOODS)
    assert {e.category for e in flood_eps} == {"DDoS"}
    assert {e.category for e in run.episodes if e.label == "mirai-cnc"} == {"Botnet"}
    crews = collections.defaultdict(set)
    for e in flood_eps:
        crews[e.victim].add(e.attacker)
    assert len(crews) == mirai.CAMPAIGN["orders"]  # a new target per order
    sizes = collections.Counter(len(c) for c in crews.values())
    assert sizes[1] >= 3 and sum(v for k, v in sizes.items() if k >= 2) >= 10, sizes
    bots = set().union(*crews.values())
    assert len(bots) == mirai.CAMPAIGN["bots"]
    kinds = {h["ip"]: h["kind"] for h in run.hosts}
    assert {kinds[b] for b in bots} <= {"camera", "plug"}
    # each bot keeps a C&C session (it is told about its orders)
    assert {e.attacker for e in run.episodes if e.label == "mirai-cnc"} == bots


def test_udp_floods_vary_in_rate_and_payload_and_are_labelled(floods):
    _, flows = floods
    udp = flows[(flows["label"] == "udp-flood") & ~flows["partial"]]
    assert len(udp) >= 15 and set(udp["category"]) == {"DDoS"}
    assert (udp["protocol"] == 17).all() and (udp["bwd_packets"] == 0).all()  # udpplain: one-sided
    assert (udp["fwd_pkt_len_std"] == 0).all()  # one payload size per flood
    sizes = set(udp["fwd_pkt_len_mean"].round().astype(int))
    assert 512 in sizes and len(sizes) >= 4, sizes  # Mirai's default and the orders' own
    rates = udp.loc[udp["fwd_packets"] >= 20, "flow_packets_per_s"]
    assert rates.max() > 5 * rates.min(), rates.describe()
    for label in FLOODS:
        assert (flows["label"] == label).any(), label


def test_c2_commands_spell_out_custom_options():
    target = build("floods", duration=30, devices=6).world.devices[0]
    default = mirai._command("udp", 10, target)
    custom = mirai._command("udp", 10, target, {"payload_bytes": 1024})
    # length, duration, vector, 1 target, its address and netmask, then the option count and the options
    assert custom[:2] == struct.pack("!H", len(custom)) and custom.endswith(
        b"\x00\x041024"
    )  # ATK_OPT_PAYLOAD_SIZE
    assert custom[13] == default[13] + 1
