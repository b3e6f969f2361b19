"""Notification channels: webhook (HTTP POST), syslog (RFC 5424) and MQTT publish.

Each sender raises :class:`~iotguard.core.errors.ResponseError` on failure with a message that never holds a
secret (tokens travel only in headers; URL credentials are masked).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from iotguard.core.errors import ResponseError
from iotguard.core.store import redact

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def post_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    retries: int = 3,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, int]:
    """POST ``payload`` as JSON; retry on connection errors and 408/425/429/5xx with exponential backoff
    (``backoff``, ``2*backoff``, ... capped at ``max_backoff``). Returns ``(status, attempts)``."""
    send_headers = {"User-Agent": "iotguard", **(headers or {})}
    if token:
        send_headers["Authorization"] = f"Bearer {token}"
    attempts = 0
    last = "no attempt"
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for attempt in range(retries + 1):
            attempts += 1
            try:
                resp = client.post(url, json=payload, headers=send_headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                if resp.status_code < 400:
                    return resp.status_code, attempts
                last = f"HTTP {resp.status_code}"
                if resp.status_code not in RETRY_STATUS:
                    break
            if attempt < retries:
                sleep(min(max_backoff, backoff * (2**attempt)))
    raise ResponseError(f"webhook {redact(url)} failed after {attempts} attempt(s): {last}")


# -- syslog ---------------------------------------------------------------------------------------------
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip
ALERT_TO_SYSLOG = {1: 2, 2: 3, 3: 4, 4: 5}
"""iotguard severity (1 most severe) -> syslog severity: critical, error, warning, notice."""
SD_ID = "iotguard@32473"
"""Structured-data id; 32473 is the private enterprise number RFC 5612 reserves for examples."""


def _sd_value(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_name(key: Any) -> str:
    return "".join(c for c in str(key) if 33 <= ord(c) <= 126 and c not in '=]" ')[:32] or "x"


def _header_field(value: str | None, max_len: int) -> str:
    if not value:
        return "-"
    text = "".join(c for c in value if 33 <= ord(c) <= 126)
    return text[:max_len] or "-"


def format_rfc5424(
    message: str,
    *,
    severity: int,
    facility: str = "local0",
    app_name: str = "iotguard",
    msgid: str = "alert",
    hostname: str | None = None,
    data: dict[str, Any] | None = None,
    timestamp: float | None = None,
    procid: int | None = None,
) -> str:
    """One RFC 5424 syslog message: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``."""
    if facility not in FACILITIES:
        raise ResponseError(f"unknown syslog facility {facility!r}", expected=", ".join(FACILITIES))
    pri = FACILITIES[facility] * 8 + ALERT_TO_SYSLOG.get(int(severity), 5)
    ts = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, tz=UTC)
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    host = _header_field(hostname or socket.gethostname(), 255)
    sd = "-"
    if data:
        params = " ".join(f'{_sd_name(k)}="{_sd_value(v)}"' for k, v in data.items() if v is not None)
        sd = f"[{SD_ID} {params}]" if params else "-"
    proc = str(procid) if procid is not None else str(os.getpid())
    return (
        f"<{pri}>1 {stamp} {host} {_header_field(app_name, 48)} {_header_field(proc, 128)}"
        f" {_header_field(msgid, 32)} {sd} {message}"
    )


def send_syslog(
    message: str, *, host: str, port: int = 514, protocol: str = "udp", timeout: float = 5.0
) -> None:
    """Send one message over UDP (one datagram) or TCP (RFC 6587 octet counting: ``LEN SP MSG``)."""
    data = message.encode("utf-8")
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        )
        family, socktype, proto, _, addr = infos[0]
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(timeout)
            if protocol == "udp":
                sock.sendto(data, addr)
            else:
                sock.connect(addr)
                sock.sendall(str(len(data)).encode() + b" " + data)
    except OSError as exc:
        raise ResponseError(f"syslog to {host}:{port}/{protocol} failed: {exc.strerror or exc}") from exc


# -- MQTT -----------------------------------------------------------------------------------------------
class MqttPublisher:
    """Publishes over long-lived connections, one per (broker, credentials); thread-safe."""

    def __init__(self) -> None:
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def _client(
        self, host: str, port: int, username: str | None, password: str | None, tls: bool, timeout: float
    ) -> Any:
        import paho.mqtt.client as mqtt

        key = (host, port, username, password, tls)
        with self._lock:
            client = self._clients.get(key)
            if client is not None and client.is_connected():
                return client
            if client is not None:
                client.loop_stop()
                self._clients.pop(key, None)
            connected = threading.Event()
            result: dict[str, Any] = {}
            client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="")

            def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
                result["reason"] = reason
                connected.set()

            client.on_connect = on_connect
            if username:
                client.username_pw_set(username, password)
            if tls:
                client.tls_set()
            try:
                client.connect(host, port, keepalive=60)
            except OSError as exc:
                raise ResponseError(f"MQTT broker {host}:{port} unreachable: {exc.strerror or exc}") from exc
            client.loop_start()
            if not connected.wait(timeout) or getattr(result.get("reason"), "is_failure", True):
                client.loop_stop()
                client.disconnect()
                reason = result.get("reason", "no CONNACK")
                raise ResponseError(f"MQTT broker {host}:{port} refused the connection: {reason}")
            self._clients[key] = client
            return client

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        host: str,
        port: int = 1883,
        qos: int = 1,
        retain: bool = False,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        timeout: float = 5.0,
    ) -> None:
        client = self._client(host, port, username, password, tls, timeout)
        info = client.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise ResponseError(f"MQTT publish to {topic!r} failed: {exc}") from exc
        if not info.is_published():
            raise ResponseError(f"MQTT publish to {topic!r} not acknowledged within {timeout} s")

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.disconnect()
                client.loop_stop()
            self._clients.clear()


def to_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)
