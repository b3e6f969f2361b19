"""Real nftables between two network namespaces: the attacker's packets stop reaching the victim after a
block, and flow again after release and after the TTL. Root only (CI runs as root)."""

from __future__ import annotations

import time

import igr_netns
import pytest
from igr_netns import ATTACKER_IP, VICTIM_IP

from iotguard.core.records import Alert, Incident
from iotguard.core.store import Store
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.nft import Nftables
from iotguard.respond.policy import ActionItem, BlockAction, Policy, QuarantineAction, RateLimitAction, Rule

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(igr_netns.skip_reason() is not None, reason=igr_netns.skip_reason() or ""),
]


@pytest.fixture
def pair():
    p = igr_netns.create()
    try:
        assert p.reachable(), "namespaces are not connected"
        yield p
    finally:
        p.delete()


def _alert(
    src: str = ATTACKER_IP, dst: str = VICTIM_IP, family: str = "DoS", n: int = 1
) -> tuple[Alert, Incident]:
    alert = Alert(
        timestamp=time.time(), src_ip=src, dest_ip=dst, family=family, severity=1, score=0.99,
        confidence=0.99, model="test", signature_id=9000001, signature="test", id=n, incident_id=n,
    )  # fmt: skip
    incident = Incident(src_ip=src, family=family, severity=1, first_seen=0, last_seen=0, id=n, src_ips=[src])
    return alert, incident


def _policy(action: ActionItem, **kw) -> Policy:
    return Policy(dry_run=False, rules=[Rule(name="contain", actions=[action])], **kw)


def _fw(pair, table: str = "igrtest") -> Nftables:
    return Nftables(table, netns=pair.victim)


def test_block_release_and_ttl(pair, tmp_path):
    fw = _fw(pair)
    with Store(tmp_path / "s.db") as store:
        engine = ResponseEngine(_policy(ActionItem(block=BlockAction(ttl=600))), store, firewall=fw)
        [rec] = engine.handle(*_alert())
        assert rec.result == "ok", rec.error
        assert not pair.reachable(), "blocked attacker still reaches the victim"
        # the victim cannot reach the attacker either (drop to and from)
        assert not pair.reachable(pair.victim, ATTACKER_IP)
        [el] = fw.elements()
        assert el.kind == "block" and el.address == ATTACKER_IP and 590 <= el.expires <= 600
        assert [a.target for a in store.active_containment()] == [ATTACKER_IP]

        released = engine.release(ATTACKER_IP)
        assert released.result == "ok"
        assert pair.reachable(), "released attacker still blocked"
        assert fw.elements() == []
        assert store.active_containment() == []
        assert store.get_action(rec.id).result == "released"

        # a short TTL lifts the block in the kernel without iotguard doing anything
        fw.block(ATTACKER_IP, ttl=2)
        assert not pair.reachable()
        time.sleep(2.5)
        assert pair.reachable(), "block outlived its TTL"
        engine.close()


def test_block_is_idempotent_and_refreshes_ttl(pair):
    fw = _fw(pair)
    fw.block(ATTACKER_IP, ttl=30)
    fw.block(ATTACKER_IP, ttl=300)
    fw.ensure()
    [el] = fw.elements()
    assert el.expires > 200
    listing = pair.run(pair.victim, "nft", "list", "table", "inet", "igrtest").stdout
    assert listing.count("ip saddr @block4 drop") == 3  # one rule per hook, not one per block
    fw.release(ATTACKER_IP)
    fw.release(ATTACKER_IP)  # releasing twice is fine
    assert pair.reachable()


def test_allowlisted_host_never_blocked(pair, tmp_path):
    fw = _fw(pair)
    policy = _policy(ActionItem(block=BlockAction()), allowlist=["10.213.0.0/30"])
    with Store(tmp_path / "s.db") as store:
        engine = ResponseEngine(policy, store, firewall=fw)
        [rec] = engine.handle(*_alert())
        assert rec.result == "skipped" and rec.error == "allowlisted"
        assert pair.reachable()
        assert fw.elements() == []
        assert store.get_action(rec.id).result == "skipped"
        engine.close()


def test_dry_run_touches_nothing(pair):
    fw = _fw(pair)
    engine = ResponseEngine(
        Policy(rules=[Rule(name="b", actions=[ActionItem(block=BlockAction())])]), firewall=fw
    )
    assert engine.dry_run is True  # the default
    [rec] = engine.handle(*_alert())
    assert rec.result == "dry-run" and rec.expires is not None
    assert not fw.exists(), "dry run created an nftables table"
    assert pair.reachable()
    engine.close()


def test_quarantine_allows_only_management(pair):
    fw = _fw(pair)
    # the victim's own address is management: the quarantined device may still talk to it
    fw.quarantine(ATTACKER_IP, ttl=60, management=[VICTIM_IP])
    assert pair.reachable()
    fw.release(ATTACKER_IP)
    fw2 = Nftables("igrtest2", netns=pair.victim)
    engine = ResponseEngine(
        _policy(ActionItem(quarantine=QuarantineAction(management=["10.213.0.200"]))), firewall=fw2
    )
    [rec] = engine.handle(*_alert())
    assert rec.result == "ok", rec.error
    assert not pair.reachable(), "quarantined device reached a non-management address"
    engine.release(ATTACKER_IP)
    assert pair.reachable()
    engine.close()


def test_ratelimit_drops_excess(pair):
    fw = _fw(pair)
    engine = ResponseEngine(
        _policy(ActionItem(ratelimit=RateLimitAction(rate="5/second", ttl=60))), firewall=fw
    )
    [rec] = engine.handle(*_alert())
    assert rec.result == "ok", rec.error
    # 100 echo requests in ~0.5 s: far above 5/s, so most are dropped (the limiter allows a small burst)
    out = pair.run(
        pair.attacker, "ping", "-c", "100", "-i", "0.005", "-W", "1", "-n", "-q", VICTIM_IP, check=False
    )
    received = int(out.stdout.split(" received")[0].rsplit(" ", 1)[-1])
    assert received < 30, out.stdout
    engine.release(ATTACKER_IP)
    assert pair.reachable()
    engine.close()


def test_block_cap_and_restore(pair, tmp_path):
    fw = _fw(pair)
    now = [1000.0]
    policy = _policy(ActionItem(block=BlockAction(ttl=600)))
    policy.limits.max_blocks_per_minute = 2
    with Store(tmp_path / "s.db") as store:
        engine = ResponseEngine(policy, store, firewall=fw, clock=lambda: now[0])
        results = [engine.handle(*_alert(src=f"10.213.0.{10 + i}", n=i))[0].result for i in range(4)]
        assert results == ["ok", "ok", "skipped", "skipped"]
        assert len(fw.elements()) == 2
        now[0] += 61
        assert engine.handle(*_alert(src="10.213.0.20", n=9))[0].result == "ok"
        engine.close()
        # a restart (new engine, same store) re-applies the blocks still in force after the table is gone
        fw.delete_table()
        now[0] = time.time()
        engine2 = ResponseEngine(policy, store, firewall=fw)
        # the records' expiry is on the fake clock (~1000 s), so nothing is still in force in real time
        assert engine2.restore() == 0
        engine2.close()


def test_cli_respond_list_and_release(pair, tmp_path):
    from typer.testing import CliRunner

    from iotguard.cli.main import app

    policy = tmp_path / "policy.yaml"
    policy.write_text(f"dry_run: false\nnftables: {{table: igrcli, netns: {pair.victim}}}\n")
    db = tmp_path / "s.db"
    from iotguard.respond.policy import load_policy

    pol = load_policy(policy)
    pol.rules = [Rule(name="contain", actions=[ActionItem(block=BlockAction(ttl=120))])]
    with Store(db) as store:
        engine = ResponseEngine(pol, store)
        assert engine.handle(*_alert())[0].result == "ok"
        engine.close()
    assert not pair.reachable()
    runner = CliRunner()
    listed = runner.invoke(
        app, ["respond", "list", "--db", str(db), "--policy", str(policy), "--history", "5"]
    )
    assert listed.exit_code == 0, listed.output
    assert ATTACKER_IP in listed.output and "applied" in listed.output and "yes" in listed.output
    released = runner.invoke(
        app, ["respond", "release", ATTACKER_IP, "--db", str(db), "--policy", str(policy)]
    )
    assert released.exit_code == 0, released.output
    assert pair.reachable()
    with Store(db) as store:
        assert store.active_containment() == []
        assert store.actions(action="release")[0].result == "ok"
    bad = runner.invoke(app, ["respond", "release", "not-an-ip", "--db", str(db), "--policy", str(policy)])
    assert bad.exit_code != 0
