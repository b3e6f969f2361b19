"""Rules match attacker and victim networks each on their own; the allowlist wins over every rule."""

from __future__ import annotations

import time

import pytest

from iotguard.core.errors import ConfigError
from iotguard.core.records import Alert, Incident
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.policy import ActionItem, BlockAction, LogAction, Match, Policy, Rule, load_policy


def _alert(src: str, dst: str | None, n: int) -> tuple[Alert, Incident]:
    alert = Alert(
        timestamp=time.time(), src_ip=src, dest_ip=dst, family="DoS", severity=1, score=0.99,
        confidence=0.99, model="test", signature_id=9000001, signature="test", id=n, incident_id=n,
    )  # fmt: skip
    return alert, Incident(
        src_ip=src, family="DoS", severity=1, first_seen=0, last_seen=0, id=n, src_ips=[src]
    )


def _log(name: str, **match: object) -> Rule:
    return Rule(name=name, match=Match(**match), actions=[ActionItem(log=LogAction())])


@pytest.fixture
def engine():
    policy = Policy(
        rules=[
            _log("from-lan", src=["192.168.1.0/24", "fd00::/8"]),
            _log("to-plc", dst="10.20.0.5"),
            _log("lan-to-plc", src="192.168.1.0/24", dst=["10.20.0.0/16"]),
            _log("anyone"),
        ],
        allowlist=["192.168.1.1"],
    )
    engine = ResponseEngine(policy)
    yield engine
    engine.close()


@pytest.mark.parametrize(
    ("src", "dst", "rules"),
    [
        ("192.168.1.66", "10.20.0.5", {"from-lan", "to-plc", "lan-to-plc", "anyone"}),
        ("192.168.1.66", "10.20.9.9", {"from-lan", "lan-to-plc", "anyone"}),
        ("192.168.2.66", "10.20.0.5", {"to-plc", "anyone"}),  # outside one rule's network, inside another's
        ("fd12::66", "10.20.0.5", {"from-lan", "to-plc", "anyone"}),
        ("::ffff:192.168.1.66", "10.20.0.5", {"to-plc", "anyone"}),  # an IPv6 address is not in an IPv4 net
        ("02:66:66:66:66:66", "10.20.0.5", {"to-plc", "anyone"}),  # a MAC (inventory) lies in no network
        ("192.168.1.66", None, {"from-lan", "anyone"}),  # no victim: no victim network matches
    ],
)
def test_each_rule_matches_its_own_networks(engine, src, dst, rules):
    records = engine.handle(*_alert(src, dst, 1))
    assert {r.params["rule"] for r in records} == rules


def test_the_allowlist_is_never_contained():
    policy = Policy(
        rules=[Rule(name="contain", actions=[ActionItem(block=BlockAction())])],
        allowlist=["192.168.1.1", "10.9.0.0/16"],
    )
    engine = ResponseEngine(policy)
    try:
        for n, address in enumerate(("192.168.1.1", "10.9.200.3"), 1):
            [rec] = engine.handle(*_alert(address, "192.168.1.20", n))
            assert rec.result == "skipped" and rec.error == "allowlisted"
        [rec] = engine.handle(*_alert("192.168.1.2", "192.168.1.20", 3))
        assert rec.result == "dry-run" and rec.target == "192.168.1.2"
        assert engine.allowlisted("10.9.0.1") and not engine.allowlisted("10.10.0.1")
    finally:
        engine.close()


def test_a_bad_rule_network_is_named_with_its_line(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        "rules:\n  - name: a\n    match:\n      src:\n        - 10.0.0.0/8\n        - 10.1.2.0/33\n    actions: [log]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    message = str(err.value)
    assert message.startswith(f"{path}:6") and "'10.1.2.0/33' is not an IP address or CIDR network" in message
