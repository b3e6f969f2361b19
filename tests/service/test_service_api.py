"""The REST API over a real store: auth, filters, pagination, releases, metrics, hostile requests."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import warnings

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotguard.core.config import ApiConfig
from iotguard.core.records import ActionRecord, Alert
from iotguard.core.store import Store
from iotguard.detect.incidents import IncidentFolder
from iotguard.service.api import ApiContext, create_app
from iotguard.service.auth import load_or_create_token
from iotguard.service.stats import Stats

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = 1_700_000_000.0
TOKEN = "test-token-0123456789abcdef"


def make_alert(i: int, src: str, family: str, severity: int) -> Alert:
    return Alert(
        timestamp=T0 + i,
        src_ip=src,
        dest_ip="192.168.1.20",
        family=family,
        severity=severity,
        score=0.9,
        confidence=0.95,
        model="rf",
        signature_id=9_100_001,
        signature=f"IOTGUARD {family} <script>alert(1)</script>",
        src_port=40000 + i,
        dest_port=23,
        proto="TCP",
        top_features=[("syn_flag_count", 0.5)],
    )


class Releaser:
    """The response engine's release, on a real store (dry-run: nftables is exercised in the run tests)."""

    dry_run = True

    def __init__(self, store: Store) -> None:
        from iotguard.respond.engine import ResponseEngine
        from iotguard.respond.policy import default_policy

        self.engine = ResponseEngine(default_policy(), store, dry_run=True)

    def release(self, address: str, reason: str = "api"):
        return self.engine.release(address, reason=reason)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "iotguard.db")
    folder = IncidentFolder()
    alerts = [make_alert(i, "192.168.1.66", "BruteForce", 2) for i in range(30)]
    alerts += [make_alert(100 + i, "10.9.9.9", "PortScan", 3) for i in range(20)]
    incidents = [folder.fold(a)[0] for a in alerts]
    store.record({id(i): i for i in incidents}.values(), alerts, incidents)
    block = ActionRecord(time=time.time(), action="block", target="192.168.1.66", dry_run=True,
                         result="dry-run", expires=time.time() + 600)  # fmt: skip
    store.add_action(block)
    yield store
    store.close()


@pytest.fixture
def client(store):
    stats = Stats()
    stats.add("packets", 1234)
    stats.alert(2, "flow", 30)
    ctx = ApiContext(
        config=ApiConfig(max_page_size=100),
        token=TOKEN,
        store=store,
        stats=stats,
        responder=Releaser(store),
        model_info=lambda: {"name": "rf", "features": 78},
    )
    return TestClient(create_app(ctx))


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_requests_without_or_with_a_wrong_token_are_refused(client):
    for path in ("/api/alerts", "/api/stats", "/api/incidents", "/api/devices", "/api/blocks", "/metrics"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert client.get(f"{path}?token={TOKEN}").status_code == 401  # never in a query string
    assert client.post("/api/blocks/192.168.1.66/release").status_code == 401
    r = client.get("/api/alerts")
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/health").json()["status"] == "ok"  # liveness is public, and says nothing more


def test_alerts_filter_and_paginate(client):
    page = client.get("/api/alerts?limit=10", headers=AUTH).json()
    assert page["total"] == 50 and len(page["items"]) == 10
    assert page["items"][0]["alert"]["category"] == "PortScan"  # newest first
    ids = [a["iotguard"]["alert_id"] for a in page["items"]]
    second = client.get("/api/alerts?limit=10&offset=10", headers=AUTH).json()
    assert not set(ids) & {a["iotguard"]["alert_id"] for a in second["items"]}
    brute = client.get("/api/alerts?family=BruteForce&severity=2&limit=100", headers=AUTH).json()
    assert brute["total"] == 30 and {a["src_ip"] for a in brute["items"]} == {"192.168.1.66"}
    window = client.get(f"/api/alerts?since={T0 + 10}&until={T0 + 20}", headers=AUTH).json()
    assert window["total"] == 10
    one = client.get(f"/api/alerts/{ids[0]}", headers=AUTH).json()
    assert one["event_type"] == "alert" and one["iotguard"]["alert_id"] == ids[0]
    assert client.get("/api/alerts/999999", headers=AUTH).status_code == 404


def test_incidents_blocks_release_and_model(client, store):
    page = client.get("/api/incidents", headers=AUTH).json()
    assert page["total"] == 2 and {i["family"] for i in page["items"]} == {"BruteForce", "PortScan"}
    inc = page["items"][0]
    detail = client.get(f"/api/incidents/{inc['id']}", headers=AUTH).json()
    assert detail["alert_count"] == len(detail["alerts"]) == 20
    blocks = client.get("/api/blocks", headers=AUTH).json()
    assert blocks["total"] == 1 and blocks["items"][0]["target"] == "192.168.1.66"
    assert 0 < blocks["items"][0]["remaining_s"] <= 600
    r = client.post("/api/blocks/192.168.1.66/release", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["action"]["action"] == "release"
    assert client.get("/api/blocks", headers=AUTH).json()["total"] == 0
    assert client.post("/api/blocks/192.168.1.66/release", headers=AUTH).status_code == 404
    assert client.post("/api/blocks/not-an-ip/release", headers=AUTH).status_code == 422
    assert client.get("/api/model", headers=AUTH).json() == {"name": "rf", "features": 78}
    assert store.actions(action="release")[0].target == "192.168.1.66"


def test_metrics_stats_and_openapi(client):
    text = client.get("/metrics", headers=AUTH).text
    assert "iotguard_packets_total 1234.0" in text
    assert 'iotguard_alerts_total{severity="2",source="flow"} 30.0' in text
    assert "iotguard_inference_seconds_bucket" in text and "process_resident_memory_bytes" in text
    stats = client.get("/api/stats?history=true", headers=AUTH).json()
    assert stats["counters"]["packets"] == 1234 and stats["alerts"]["total"] == 30
    spec = client.get("/api/openapi.json").json()
    assert {"/api/alerts", "/api/incidents", "/api/devices", "/api/blocks", "/api/stats", "/metrics"} <= set(
        spec["paths"]
    )
    assert "HTTPBearer" in json.dumps(spec["components"]["securitySchemes"])


def test_dashboard_is_served_without_a_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    js = client.get("/static/app.js").text
    assert "innerHTML" not in js  # every API value goes in with textContent
    assert "default-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/alerts?limit=100000",
        "/api/alerts?limit=0",
        "/api/alerts?limit=-1",
        "/api/alerts?offset=-5",
        "/api/alerts?offset=99999999999999999999",
        "/api/alerts?since=nan",
        "/api/alerts?since=inf",
        "/api/alerts?since=abc",
        "/api/alerts?severity=0",
        "/api/alerts?severity=7",
        "/api/alerts?incident=0",
        "/api/alerts?family=" + "x" * 200,
        "/api/alerts?src=" + "1" * 500,
        "/api/alerts/abc",
        "/api/alerts/-1",
        "/api/alerts/99999999999999999999999",
        "/api/incidents?status=evil",
        "/api/incidents/0",
        "/api/devices?limit=5000",
        "/api/devices/" + "a" * 300,
        "/static/../api.py",
        "/static/%2e%2e/%2e%2e/core/store.py",
        "/static/..%2f..%2fapi.py",
        "/static//etc/passwd",
        "/api/../../etc/passwd",
        "/api/blocks/..%2f..%2fetc/release",
        "/nope",
    ],
)
def test_hostile_requests_get_4xx(client, path):
    r = client.get(path, headers=AUTH)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
    assert "root:" not in r.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.sampled_from(["/api/alerts", "/api/incidents", "/api/devices", "/api/actions"]),
    params=st.dictionaries(
        st.sampled_from(
            [
                "limit",
                "offset",
                "since",
                "until",
                "severity",
                "family",
                "src",
                "dest",
                "status",
                "q",
                "incident",
                "action",
                "target",
                "result",
            ]
        ),  # fmt: skip
        st.one_of(st.text(max_size=40), st.integers(-(2**70), 2**70).map(str), st.floats().map(str)),
        max_size=5,
    ),
)
def test_fuzzed_query_strings_never_cause_a_500(client, endpoint, params):
    r = client.get(endpoint, params=params, headers=AUTH)
    assert r.status_code < 500, (endpoint, params, r.text[:300])


def test_token_file_is_created_once_with_mode_0600(tmp_path, caplog):
    caplog.set_level("DEBUG")
    path = tmp_path / "state" / "api-token"
    token = load_or_create_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32 and load_or_create_token(path) == token
    assert token not in caplog.text
    path.chmod(0o644)
    assert load_or_create_token(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    from iotguard.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no usable token"):
        load_or_create_token(path)


def test_served_by_uvicorn_on_loopback(store):
    import uvicorn

    from sensor_fixtures import free_port

    port = free_port()
    ctx = ApiContext(config=ApiConfig(port=port), token=TOKEN, store=store)
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host=ctx.config.host, port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        assert ctx.config.host == "127.0.0.1"
        assert httpx.get(f"http://127.0.0.1:{port}/api/alerts").status_code == 401
        r = httpx.get(f"http://127.0.0.1:{port}/api/alerts?limit=1", headers=AUTH)
        assert r.status_code == 200 and r.json()["total"] == 50
    finally:
        server.should_exit = True
        thread.join(10)
    assert os.environ.get("IOTGUARD_API__HOST") is None


def test_retention_purges_old_records_but_keeps_blocks_in_force(tmp_path):
    store = Store(tmp_path / "r.db")
    folder = IncidentFolder()
    old = [make_alert(i, "192.168.1.66", "BruteForce", 2) for i in range(5)]  # T0 + i
    new = [make_alert(10**6 + i, "10.9.9.9", "PortScan", 3) for i in range(3)]
    incidents = [folder.fold(a)[0] for a in old + new]
    for inc in incidents:
        inc.status = "closed"
    store.record({id(i): i for i in incidents}.values(), old + new, incidents)
    now = T0 + 2 * 10**6
    store.add_action(ActionRecord(time=T0, action="block", target="192.168.1.66", dry_run=False, result="ok",
                                  expires=now + 100))  # fmt: skip
    store.add_action(ActionRecord(time=T0, action="webhook", target="x", dry_run=False, result="ok"))
    assert store.purge(T0 + 1000, actions_before=T0 - 1, now=now) == {
        "alerts": 5,
        "incidents": 1,
        "actions": 0,
    }
    gone = store.purge(T0 + 1000, now=now)
    assert gone == {"alerts": 0, "incidents": 0, "actions": 1}
    assert store.count_alerts() == 3 and store.count_incidents() == 1
    assert [a.action for a in store.actions(limit=None)] == ["block"]
    store.close()
