"""The auth check on the lab's VNC console, end to end on the demo's path: a detector built from a lab ``train``
capture exactly as ``iotguard demo`` builds its own (``build_detector`` with its defaults, early records), then
``iotguard detect``'s path over a lab ``test`` capture with the default detection settings. The password
guessing is an episode with an incident the auth check raised; the operator's VNC sessions raise nothing."""

from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from iotguard.core.store import Store  # noqa: E402
from iotguard.detect.build import build_detector  # noqa: E402
from iotguard.detect.engine import AUTH_MODEL  # noqa: E402
from iotguard.evaluate.episodes import match_episodes  # noqa: E402
from iotguard.flows import iter_flows  # noqa: E402
from iotguard.lab import generate  # noqa: E402
from iotguard.lab.attacks.vnc_bruteforce import BLACKLIST_THRESHOLD  # noqa: E402
from iotguard.respond.policy import default_policy  # noqa: E402
from iotguard.service.offline import detect_source  # noqa: E402

SECONDS = 120.0


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    work = tmp_path_factory.mktemp("vnc-e2e")
    train = generate("train", duration=SECONDS, out_dir=work / "train", flows=False)
    flows = iter_flows(train.capture, early=10, labels=train.episodes_path).to_pandas()
    detector, _ = build_detector(flows, flows["category"], work / "detector", seed=0)
    test = generate("test", duration=SECONDS, out_dir=work / "test", flows=False)
    db = work / "iotguard.db"
    run = detect_source(test.capture, detector, policy=default_policy(), db=db, early=10)
    with Store(db) as store:
        alerts = store.alerts(limit=None)
    return test, run, alerts


def test_password_guessing_is_an_incident_raised_by_the_auth_check(detected):
    test, run, alerts = detected
    [episode] = [e for e in test.episodes if e.label == "vnc-bruteforce"]
    macs = {h["mac"]: h["ip"] for h in test.hosts if h.get("mac")}
    [result] = [r for r in match_episodes(test.episodes, run.incidents, macs=macs) if r.episode is episode]
    assert result.detected
    checks = [a for a in alerts if a.model == AUTH_MODEL]
    assert {(a.src_ip, a.dest_ip, a.family, a.dest_port) for a in checks} == {
        (episode.attacker, episode.victim, "BruteForce", 5900)
    }
    # one alert per refused password: at least the guesses before the console's blacklist
    assert len(checks) >= BLACKLIST_THRESHOLD
    incidents = {i.id: i for i in run.incidents}
    assert {incidents[a.incident_id].family for a in checks} == {"BruteForce"}


def test_the_operators_vnc_sessions_raise_nothing(detected):
    test, run, alerts = detected
    operator = next(h["ip"] for h in test.hosts if h["kind"] == "workstation")
    nvr = next(h["ip"] for h in test.hosts if h["kind"] == "nvr")
    flows = iter_flows(test.capture).to_pandas()
    assert ((flows["src_ip"] == operator) & (flows["dst_ip"] == nvr) & (flows["dst_port"] == 5900)).any()
    sessions = [a for a in alerts if {a.src_ip, a.dest_ip} == {operator, nvr}]
    assert sessions == []
    # nor is the operator named as an attacker (it can be a victim: Mirai's scanner probes every address)
    assert not [i for i in run.incidents if operator in (*i.src_ips, i.src_ip)]
