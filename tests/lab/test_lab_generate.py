"""``generate`` and ``iotguard lab``: output files, determinism, scenario sets, errors."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from iotguard.cli.main import app
from iotguard.core.episodes import read_episodes
from iotguard.core.errors import ConfigError
from iotguard.core.schema import BENIGN, FAMILIES
from iotguard.lab import ATTACKS, SCENARIOS, build, generate, get_scenario, unseen_families
from iotguard.lab.pcap import read_pcap


def test_generate_writes_capture_ground_truth_and_parameters(tmp_path):
    run = generate("showcase", duration=60, devices=8, seed=11, out_dir=tmp_path / "out", flows=False)
    assert run.capture == tmp_path / "out" / "capture.pcap" and run.capture.stat().st_size == run.bytes
    packets = read_pcap(run.capture)
    assert len(packets) == run.packets > 5000
    assert read_episodes(run.episodes_path) == run.episodes
    assert {e.category for e in run.episodes} <= set(FAMILIES) - {BENIGN}
    meta = json.loads(run.scenario_path.read_text())
    assert (meta["seed"], meta["duration"], meta["devices"]) == (11, 60.0, 8)
    assert meta["scenario"]["name"] == "showcase" and meta["scenario"]["attacks"]
    assert meta["capture_sha256"] == hashlib.sha256(run.capture.read_bytes()).hexdigest()
    assert sum(h["kind"] in ("mqtt-sensor", "plug", "camera", "coap") for h in meta["hosts"]) == 8
    assert all(packets.ts_us[0] / 1e6 <= e.start <= e.end <= packets.ts_us[-1] / 1e6 for e in run.episodes)
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = generate("showcase", duration=40, seed=5, out_dir=tmp_path / "a", flows=False)
    b = generate("showcase", duration=40, seed=5, out_dir=tmp_path / "b", flows=False)
    assert a.episodes == b.episodes
    c = generate("showcase", duration=40, seed=6, out_dir=tmp_path / "c", flows=False)
    for name in ("capture.pcap", "episodes.csv", "scenario.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert a.capture.read_bytes() != c.capture.read_bytes()
    assert a.episodes != c.episodes


def test_device_count_and_mix_follow_the_seed():
    kinds = [h.kind for h in build("benign", duration=30, devices=12, seed=1).world.devices]
    assert len(kinds) == 12 and {"mqtt-sensor", "plug", "camera", "coap"} <= set(kinds)
    other = [h.kind for h in build("benign", duration=30, devices=12, seed=2).world.devices]
    assert sorted(kinds) != sorted(other) or kinds != other


def test_scenario_sets():
    assert {s.role for s in SCENARIOS.values()} >= {"train", "test", "benign"}
    assert get_scenario("benign").attacks == ()
    train, test = get_scenario("train"), get_scenario("test")
    assert train.seed != test.seed and train.mix != test.mix and train.subnet != test.subnet
    assert set(unseen_families()) == {"DoS", "Exfiltration", "WebAttack"}
    assert set(test.families) - set(train.families) == set(unseen_families())
    for scenario in SCENARIOS.values():
        for plan in scenario.attacks:
            assert plan.kind in ATTACKS and 0 <= plan.start < plan.end <= 1
            assert set(ATTACKS[plan.kind].families) <= set(FAMILIES)


def test_benign_scenario_has_no_attack_traffic():
    built = build("benign", duration=60)
    assert built.episodes == [] and not built.packets.tags.any()


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"duration": 5}, "--duration"),
        ({"devices": 2}, "--devices"),
        ({"devices": 10_000}, "--devices"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_parameters_raise_config_errors(kwargs, where, tmp_path):
    with pytest.raises(ConfigError, match=where):
        generate("train", out_dir=tmp_path, flows=False, **kwargs)
    assert not list(tmp_path.iterdir())


def test_unknown_scenario():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'.*train"):
        get_scenario("nope")


def test_cli_generate_list_and_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "lab",
            "generate",
            "-s",
            "showcase",
            "--duration",
            "40",
            "--devices",
            "6",
            "--seed",
            "2",
            "-o",
            str(tmp_path / "g"),
            "--no-flows",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "packets" in result.output
        and "done in" in result.output
        and (tmp_path / "g" / "episodes.csv").exists()
    )
    listing = runner.invoke(app, ["lab", "list"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    for name in SCENARIOS:
        assert name in listing.output
    assert "DoS, Exfiltration, WebAttack" in listing.output


def test_cli_user_errors_exit_2(tmp_path):
    import subprocess
    import sys

    for args in (
        ["lab", "generate", "-s", "nope", "-o", str(tmp_path)],
        ["lab", "generate", "--duration", "1", "-o", str(tmp_path)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "iotguard", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error:") and "Traceback" not in done.stderr


def test_generate_writes_labelled_flows(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("iotguard.flows")
    run = generate("showcase", duration=60, out_dir=tmp_path, flows=True)
    assert run.flows_path == tmp_path / "flows.parquet"
    assert run.flows is not None and run.flows > 1000
    flows = pd.read_parquet(run.flows_path)
    assert {"label", "category", "is_attack", "src_ip", "dst_ip"} <= set(flows.columns)
    assert (flows["is_attack"] == (flows["category"] != BENIGN)).all()
    # every episode with IP traffic labels flows; ARP-only ones (spoofing, the ARP sweep) cannot
    arp_only = {"arp-spoofing", "host-discovery"}
    assert set(flows["label"]) - {BENIGN} == {e.label for e in run.episodes} - arp_only
    assert (flows["category"] == BENIGN).sum() > 100
