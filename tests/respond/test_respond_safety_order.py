"""The block cap applies in dry run too (a dry run shows what going live would do), and the docs say so."""

from __future__ import annotations

import re
import time
from pathlib import Path

from iotguard.core.records import Alert, Incident
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.policy import ActionItem, BlockAction, Policy, Rule

DOC = Path(__file__).resolve().parents[2] / "docs" / "response.md"


def _alert(src: str, n: int) -> tuple[Alert, Incident]:
    alert = Alert(
        timestamp=time.time(), src_ip=src, dest_ip="192.168.1.5", family="DDoS", severity=1, score=0.99,
        confidence=0.99, model="test", signature_id=9100002, signature="test", id=n, incident_id=n,
    )  # fmt: skip
    return alert, Incident(
        src_ip=src, family="DDoS", severity=1, first_seen=0, last_seen=0, id=n, src_ips=[src]
    )


def test_dry_run_counts_against_the_cap():
    policy = Policy(dry_run=True, rules=[Rule(name="b", actions=[ActionItem(block=BlockAction())])])
    policy.limits.max_blocks_per_minute = 3
    now = [1000.0]
    engine = ResponseEngine(policy, clock=lambda: now[0])
    try:
        records = [engine.handle(*_alert(f"10.9.0.{i}", i))[0] for i in range(1, 6)]
        assert [r.result for r in records] == ["dry-run"] * 3 + ["skipped"] * 2
        assert records[-1].error == "cap of 3 containments per minute"
        now[0] += 61
        assert engine.handle(*_alert("10.9.0.9", 9))[0].result == "dry-run"
    finally:
        engine.close()


def test_docs_list_the_cap_before_dry_run():
    """docs/response.md's Safety list is the order the engine checks: the cap comes before dry run."""
    safety = DOC.read_text().split("## Safety", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^\d+\. (?:.*?\*\*([a-z ]+)\*\*)?", safety, flags=re.M)
    assert steps.index("cap") < steps.index("dry run"), steps
    assert "cap counts in dry run" in " ".join(safety.split())
