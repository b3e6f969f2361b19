"""Safety on the lab's ``test`` scenario: the response engine never targets a victim.

The scenario's UDP and version scans make the probed devices answer with ICMP port unreachable; those ICMP
flows start at the victims. A detector trained on the lab's ``train`` scenario (as the demo builds it) runs
over the whole ``test`` capture with a block policy (dry run): no incident may name a victim as its attacker,
so no block may target one, while the scanners themselves are still named and blocked. Both with the evidence
gate (the default) and without it (an operator may turn it off: attribution alone must keep victims safe)."""

from __future__ import annotations

import ipaddress

import pytest

pytest.importorskip("iotguard.models.artifact", reason="model artifacts not on this branch")

from iotguard.core.episodes import read_episodes  # noqa: E402
from iotguard.core.store import Store  # noqa: E402
from iotguard.detect.build import build_detector  # noqa: E402
from iotguard.detect.engine import DetectionConfig, is_address  # noqa: E402
from iotguard.detect.evidence import EvidenceConfig  # noqa: E402
from iotguard.flows import read_flows  # noqa: E402
from iotguard.lab import generate  # noqa: E402
from iotguard.respond.policy import ActionItem, BlockAction, Policy, Rule  # noqa: E402
from iotguard.service.offline import detect_source  # noqa: E402


def _in(address: str, spec: str) -> bool:
    return spec != "*" and ipaddress.ip_address(address) in ipaddress.ip_network(spec, strict=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("safety")
    train = generate("train", out_dir=work / "train", flows=False)
    flows = read_flows(train.capture, early=10, labels=train.episodes_path)
    detector, _ = build_detector(flows, flows["category"], work / "models", seed=0)
    test = generate("test", out_dir=work / "test", flows=False)
    return work, detector, test


def _detect(lab, gate: bool):
    work, detector, test = lab
    db = work / f"alerts-{gate}.db"
    policy = Policy(rules=[Rule(name="contain", actions=[ActionItem(block=BlockAction(ttl=60))])])
    config = DetectionConfig(evidence=EvidenceConfig(enabled=gate))
    result = detect_source(test.capture, detector, policy=policy, config=config, db=db)
    with Store(db) as store:
        blocks = store.actions(action="block", limit=None)
        icmp = [a for a in store.alerts(limit=None) if a.proto == "ICMP"]
    return read_episodes(test.episodes_path), result, blocks, icmp


@pytest.fixture(scope="module")
def default_run(lab):
    return _detect(lab, gate=True)


@pytest.fixture(scope="module")
def ungated_run(lab):
    return _detect(lab, gate=False)


def _victim_only(episodes):
    attackers = {e.attacker for e in episodes}
    victims = {e.victim for e in episodes} - {"*"}

    def check(address: str) -> bool:  # a bot is a victim first and an attacker after: it may be named
        return any(_in(address, v) for v in victims) and not any(_in(address, a) for a in attackers)

    return check


def test_no_victim_is_named_or_blocked(default_run):
    episodes, result, blocks, _ = default_run
    victim_only = _victim_only(episodes)
    # an ARP impostor the inventory knows by its MAC only is named by it, and no block can take a MAC
    by_mac = [b for b in blocks if not is_address(b.target)]
    assert all(b.result == "skipped" for b in by_mac)
    blocks = [b for b in blocks if is_address(b.target)]
    assert blocks and all(b.dry_run and b.result == "dry-run" for b in blocks)
    assert [b.target for b in blocks if victim_only(b.target)] == []
    named = {s for inc in result.incidents for s in (inc.src_ips or [inc.src_ip])}
    assert [s for s in named if is_address(s) and victim_only(s)] == []


@pytest.mark.parametrize("which", ["default_run", "ungated_run"])
def test_icmp_answers_name_the_scanner_never_the_victim(which, request):
    # with or without the evidence gate (without it, lone false positives of this train-only detector may still
    # name a device: that is what the gate is for; the attribution of reply flows must not depend on it)
    episodes, result, blocks, icmp = request.getfixturevalue(which)
    victim_only = _victim_only(episodes)
    scanners = {e.attacker for e in episodes if e.label in ("udp-scan", "version-scan")}
    assert scanners and icmp and result.stats.reply_flows > 0
    # alerts on the victims' ICMP port unreachable flows: the scanner is the attacker, the victim the victim
    assert [a.src_ip for a in icmp if victim_only(a.src_ip)] == []
    assert {a.src_ip for a in icmp} <= scanners | {e.attacker for e in episodes}
    assert scanners <= {b.target for b in blocks}
