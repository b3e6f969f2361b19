"""Containment never targets an address that names no single host, whatever the policy says."""

from __future__ import annotations

import time

import pytest

from iotguard.core.records import Alert, Incident
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.policy import ActionItem, BlockAction, Policy, QuarantineAction, Rule


def _alert(src: str, n: int) -> tuple[Alert, Incident]:
    alert = Alert(
        timestamp=time.time(), src_ip=src, dest_ip="10.0.0.9", family="DDoS", severity=1, score=0.99,
        confidence=0.99, model="test", signature_id=9000001, signature="test", id=n, incident_id=n,
    )  # fmt: skip
    return alert, Incident(
        src_ip=src, family="DDoS", severity=1, first_seen=0, last_seen=0, id=n, src_ips=[src]
    )


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "ff02::1", "239.255.255.250", "255.255.255.255"])
@pytest.mark.parametrize(
    "action",
    [ActionItem(block=BlockAction()), ActionItem(quarantine=QuarantineAction(management=["10.0.0.1"]))],
)
def test_no_containment_of_addresses_that_are_no_host(address, action):
    engine = ResponseEngine(Policy(rules=[Rule(name="contain", actions=[action])]))
    [rec] = engine.handle(*_alert(address, 1))
    assert rec.result == "skipped" and rec.error == "not a host address"
    [rec] = engine.handle(*_alert("10.0.0.66", 2))  # the same policy contains a host (dry run, the default)
    assert rec.result == "dry-run" and rec.target == "10.0.0.66"
    engine.close()
