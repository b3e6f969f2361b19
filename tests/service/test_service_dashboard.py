"""The dashboard in headless Chromium over a real API and store: login, live alerts, incidents, devices,
blocks (release from the page), charts, and no script injection from attacker-controlled text."""

from __future__ import annotations

import threading
import time

import dashboard_driver
import pytest
import uvicorn
from playwright.sync_api import expect

from iotguard.core.config import ApiConfig
from iotguard.core.records import ActionRecord, Alert
from iotguard.core.store import Store
from iotguard.detect.incidents import IncidentFolder
from iotguard.service.api import ApiContext, create_app
from iotguard.service.inventory import Inventory
from iotguard.service.stats import Stats
from sensor_fixtures import free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        dashboard_driver.skip_reason() is not None, reason=dashboard_driver.skip_reason() or ""
    ),
]
TOKEN = "dashboard-test-token-0123456789"


def alert(i: int, src: str, signature: str, severity: int = 2) -> Alert:
    return Alert(
        timestamp=time.time() - 60 + i,
        src_ip=src,
        dest_ip="192.168.1.20",
        family="BruteForce",
        severity=severity,
        score=0.97,
        confidence=0.9,
        model="rf",
        signature_id=9_100_004,
        signature=signature,
        dest_port=23,
        proto="TCP",
    )


@pytest.fixture
def served(tmp_path):
    store = Store(tmp_path / "iotguard.db")
    stats = Stats()
    inventory = Inventory()

    from iotguard.respond.engine import ResponseEngine
    from iotguard.respond.policy import default_policy

    responder = ResponseEngine(default_policy(), store, dry_run=True)
    port = free_port()
    ctx = ApiContext(
        config=ApiConfig(port=port),
        token=TOKEN,
        store=store,
        stats=stats,
        inventory=inventory,
        responder=responder,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield ctx, f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
        responder.close()
        store.close()


def add(ctx, alerts):
    folder = IncidentFolder()
    incidents = [folder.fold(a)[0] for a in alerts]
    ctx.store.record({id(i): i for i in incidents}.values(), alerts, incidents)
    for a in alerts:
        ctx.stats.alert(a.severity, a.source)


def test_dashboard_logs_in_and_shows_live_alerts(served):
    ctx, url = served
    evil = '<img src=x onerror="window.pwned=1">'
    add(ctx, [alert(i, "192.168.1.66", f"IOTGUARD BruteForce {evil}") for i in range(3)])
    for i in range(30):
        ctx.stats.add("packets", 1000 * i)
        ctx.stats.sample()
    with dashboard_driver.browser_page() as page:
        page.goto(url)
        page.wait_for_selector("#login-form", state="visible")
        page.fill("#token", "wrong-token")
        page.click("#login-form button")
        expect(page.locator("#login-error")).to_contain_text("refused")
        page.fill("#token", TOKEN)
        page.click("#login-form button")
        page.wait_for_selector("#alerts tbody tr.alert")
        rows = page.locator("#alerts tbody tr")
        assert rows.count() == 3
        assert "192.168.1.66" in rows.first.inner_text()
        assert evil in rows.first.inner_text()  # shown as text ...
        assert page.evaluate("window.pwned") is None  # ... never run
        assert page.locator("#incidents tbody tr").count() == 1
        # a new alert appears without reloading the page
        add(ctx, [alert(10, "10.0.0.99", "IOTGUARD PortScan new", severity=1)])
        expect(page.locator("#alerts tbody tr")).to_have_count(4, timeout=10_000)
        assert "10.0.0.99" in page.locator("#alerts tbody tr").first.inner_text()
        expect(page.locator("#c-alerts")).to_have_text("4")
        # the charts drew something
        assert page.evaluate(
            "(() => { const c = document.getElementById('chart-traffic');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " return d.some((v, i) => i % 4 === 3 && v > 0); })()"
        )
        assert page.locator("#chart-severity rect").count() == 4
        # the only console error is the refused wrong token
        assert [e for e in page.js_errors if "401" not in e] == []


def test_blocks_are_released_from_the_page(served):
    ctx, url = served
    ctx.store.add_action(
        ActionRecord(
            time=time.time(),
            action="block",
            target="192.168.1.66",
            dry_run=True,
            result="dry-run",
            expires=time.time() + 300,
        )  # fmt: skip
    )
    with dashboard_driver.browser_page() as page:
        page.goto(f"{url}#token={TOKEN}")
        page.wait_for_selector("#blocks tbody tr.block")
        assert page.evaluate("location.hash") == ""  # the token left the address bar
        assert "192.168.1.66" in page.locator("#blocks tbody tr").first.inner_text()
        page.click("#blocks tbody tr.block button")
        expect(page.locator("#blocks tbody tr")).to_have_count(0, timeout=10_000)
        assert page.js_errors == []
    assert ctx.store.actions(action="release")[0].target == "192.168.1.66"
    assert ctx.store.active_containment() == []
