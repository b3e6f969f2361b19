"""Notifications against real receivers: a local HTTP server, a local syslog socket, a mosquitto broker."""

from __future__ import annotations

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from iotguard.core.errors import ResponseError
from iotguard.core.records import Alert, Incident
from iotguard.core.store import Store
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.notify import format_rfc5424, post_webhook
from iotguard.respond.policy import ActionItem, MqttAction, Policy, Rule, SyslogAction, WebhookAction


def _alert(n: int = 1) -> tuple[Alert, Incident]:
    alert = Alert(
        timestamp=1_700_000_000.0, src_ip="192.168.1.66", dest_ip="192.168.1.20", family="DoS", severity=1,
        score=0.99, confidence=0.97, model="test", signature_id=9000001, signature="iotguard DoS", id=n,
        incident_id=n,
    )  # fmt: skip
    inc = Incident(
        src_ip=alert.src_ip, family="DoS", severity=1, first_seen=0, last_seen=0, id=n, src_ips=[alert.src_ip]
    )
    return alert, inc


def _engine(action: ActionItem, store: Store | None = None, **kw) -> ResponseEngine:
    return ResponseEngine(Policy(dry_run=False, rules=[Rule(name="r", actions=[action])]), store, **kw)


# -- webhook ------------------------------------------------------------------------------------------
class _Hook:
    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.requests: list[tuple[dict, dict]] = []
        self.fail_first = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append((dict(self.headers), json.loads(body)))
                code = status if len(hook.requests) <= hook.fail_first else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    made: list[_Hook] = []

    def make(**kw) -> _Hook:
        made.append(_Hook(**kw))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_webhook_delivers_json_with_token_and_token_never_stored(hook, tmp_path, caplog):
    h = hook()
    with Store(tmp_path / "s.db") as store:
        engine = _engine(ActionItem(webhook=WebhookAction(url=h.url, token="sekr1t-token")), store)
        [rec] = engine.handle(*_alert())
        engine.close()
        assert store.get_action(rec.id).result == "ok"
        [(headers, body)] = h.requests
        assert headers["Authorization"] == "Bearer sekr1t-token"
        assert body["alert"]["alert"]["category"] == "DoS" and body["alert"]["src_ip"] == "192.168.1.66"
        assert body["incident"]["id"] == 1
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"sekr1t-token" not in raw
    assert "sekr1t-token" not in caplog.text


def test_webhook_retries_500_with_exponential_backoff(hook, tmp_path):
    h = hook(fail_first=2, status=500)
    delays: list[float] = []
    with Store(tmp_path / "s.db") as store:
        engine = _engine(
            ActionItem(webhook=WebhookAction(url=h.url, retries=3, backoff=0.5)), store, sleep=delays.append
        )
        [rec] = engine.handle(*_alert())
        engine.close()
        assert len(h.requests) == 3
        assert delays == [0.5, 1.0]
        assert store.get_action(rec.id).result == "ok"


def test_webhook_gives_up_and_records_failure(hook, tmp_path):
    h = hook(fail_first=100, status=503)
    delays: list[float] = []
    with Store(tmp_path / "s.db") as store:
        engine = _engine(
            ActionItem(webhook=WebhookAction(url=h.url, retries=2, backoff=0.1)), store, sleep=delays.append
        )
        [rec] = engine.handle(*_alert())
        engine.close()
        got = store.get_action(rec.id)
        assert got.result == "failed" and "HTTP 503" in got.error and "3 attempt" in got.error
        assert delays == [0.1, 0.2]


def test_webhook_does_not_retry_client_errors(hook):
    h = hook(fail_first=100, status=404)
    with pytest.raises(ResponseError, match="HTTP 404"):
        post_webhook(h.url, {}, retries=3, sleep=lambda s: None)
    assert len(h.requests) == 1


def test_webhook_unreachable_is_a_clean_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(ResponseError, match="ConnectError"):
        post_webhook(f"http://127.0.0.1:{port}/", {}, retries=1, sleep=lambda s: None)


# -- syslog -------------------------------------------------------------------------------------------
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>\S+) (?P<app>\S+)"
    r" (?P<proc>\S+) (?P<msgid>\S+) (?P<sd>-|\[.*\]) (?P<msg>.*)$"
)


def test_syslog_udp_rfc5424(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        engine = _engine(ActionItem(syslog=SyslogAction(host="127.0.0.1", port=port, facility="local3")))
        engine.handle(*_alert())
        data, _ = sock.recvfrom(65535)
        engine.close()
    text = data.decode()
    m = RFC5424.match(text)
    assert m, text
    assert int(m["pri"]) == 19 * 8 + 2  # local3, critical (iotguard severity 1)
    assert m["app"] == "iotguard" and m["msgid"] == "alert"
    assert (
        m["sd"].startswith("[iotguard@32473 ")
        and 'family="DoS"' in m["sd"]
        and 'src="192.168.1.66"' in m["sd"]
    )
    assert "DoS from 192.168.1.66 to 192.168.1.20" in m["msg"]


def test_syslog_tcp_octet_counting():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(5)
        port = srv.getsockname()[1]
        engine = _engine(ActionItem(syslog=SyslogAction(host="127.0.0.1", port=port, protocol="tcp")))
        engine.handle(*_alert())
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while (
                b" " not in data or len(data) < int(data.split(b" ", 1)[0]) + len(data.split(b" ", 1)[0]) + 1
            ):
                chunk = conn.recv(65535)
                if not chunk:
                    break
                data += chunk
        engine.close()
    length, message = data.split(b" ", 1)
    assert int(length) == len(message)
    assert RFC5424.match(message.decode())


def test_sd_values_escaped():
    line = format_rfc5424("m", severity=2, data={"sig": 'a"b]c\\d'}, hostname="h", procid=1, timestamp=0)
    assert '[iotguard@32473 sig="a\\"b\\]c\\\\d"]' in line
    assert line.startswith("<131>1 1970-01-01T00:00:00.000000Z h iotguard 1 alert ")


# -- MQTT ---------------------------------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path):
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"mosquitto exited: {proc.stderr.read().decode()}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.broker
def test_mqtt_quarantine_command_reaches_subscriber(broker, tmp_path):
    import paho.mqtt.client as mqtt

    got: list[tuple[str, bytes]] = []
    ready = threading.Event()
    received = threading.Event()
    sub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, r, p=None: (c.subscribe("devices/#", qos=1), None)[1]
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_message = lambda c, u, m: (got.append((m.topic, m.payload)), received.set())
    sub.connect("127.0.0.1", broker)
    sub.loop_start()
    try:
        assert ready.wait(5)
        action = MqttAction(
            host="127.0.0.1", port=broker, topic="devices/{src_ip}/cmd",
            payload='{{"command": "quarantine", "incident": "{incident_id}"}}', username="iot", password="hunter2",
        )  # fmt: skip
        with Store(tmp_path / "s.db") as store:
            engine = _engine(ActionItem(mqtt=action), store)
            [rec] = engine.handle(*_alert(7))
            engine.close()
            assert received.wait(5)
            assert store.get_action(rec.id).result == "ok"
            assert store.get_action(rec.id).target == "devices/192.168.1.66/cmd"
            assert store.get_action(rec.id).params["password"] == "***"
        assert got == [("devices/192.168.1.66/cmd", b'{"command": "quarantine", "incident": "7"}')]
    finally:
        sub.loop_stop()
        sub.disconnect()


@pytest.mark.broker
def test_mqtt_default_payload_is_the_alert(broker):
    import paho.mqtt.client as mqtt

    received = threading.Event()
    got: list[bytes] = []
    sub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, r, p=None: (c.subscribe("ops/alerts", qos=1), None)[1]
    ready = threading.Event()
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_message = lambda c, u, m: (got.append(m.payload), received.set())
    sub.connect("127.0.0.1", broker)
    sub.loop_start()
    try:
        assert ready.wait(5)
        engine = _engine(ActionItem(mqtt=MqttAction(host="127.0.0.1", port=broker, topic="ops/alerts")))
        engine.handle(*_alert())
        engine.close()
        assert received.wait(5)
        body = json.loads(got[0])
        assert body["alert"]["event_type"] == "alert" and body["incident"]["family"] == "DoS"
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_mqtt_unreachable_broker_recorded_as_failed(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Store(tmp_path / "s.db") as store:
        engine = _engine(ActionItem(mqtt=MqttAction(host="127.0.0.1", port=port, topic="x")), store)
        [rec] = engine.handle(*_alert())
        engine.close()
        got = store.get_action(rec.id)
        assert got.result == "failed" and "unreachable" in got.error


# -- crash safety -------------------------------------------------------------------------------------
CRASH_SCRIPT = r"""
import sys, time
from iotguard.core.records import Alert, Incident
from iotguard.core.store import Store
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.policy import ActionItem, Policy, Rule, WebhookAction
store = Store(sys.argv[1])
inc = Incident(src_ip="192.168.1.66", family="DoS", severity=1, first_seen=0, last_seen=0, src_ips=["192.168.1.66"])
alert = Alert(timestamp=1.0, src_ip="192.168.1.66", dest_ip="192.168.1.20", family="DoS", severity=1, score=0.9,
              confidence=0.9, model="t", signature_id=1, signature="t")
store.record([inc], [alert])
alert.incident_id = inc.id
engine = ResponseEngine(Policy(dry_run=False, rules=[Rule(name="r", actions=[ActionItem(
    webhook=WebhookAction(url=sys.argv[2], timeout=60, retries=0))])]), store)
engine.handle(alert, inc)
print("handled", flush=True)
time.sleep(60)
"""


def test_store_survives_crash_mid_action(tmp_path):
    import os
    import signal
    import sys

    # a receiver that accepts the connection and never answers: the webhook is in flight when we kill -9
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/hang"
        db = tmp_path / "s.db"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen(
            [sys.executable, "-c", CRASH_SCRIPT, str(db), url], stdout=subprocess.PIPE, env=env, text=True
        )
        try:
            assert proc.stdout.readline().strip() == "handled"
            srv.settimeout(10)
            conn, _ = srv.accept()  # the request is on its way
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # the database is intact and holds what was decided: the alert, the incident and the pending action
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(db) as store:
        assert store.count_alerts() == 1 and store.count_incidents() == 1
        [action] = store.actions()
        assert action.action == "webhook" and action.result == "pending"
        assert action.alert_id == 1 and action.incident_id == 1
