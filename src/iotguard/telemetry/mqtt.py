"""Subscribe to device telemetry on an MQTT broker (paho-mqtt 2.x).

The subscriber runs paho's network loop in its own thread and hands every message to a bounded queue; when
the consumer falls behind, messages are dropped and counted rather than buffered without limit. It
reconnects by itself with exponential backoff (``reconnect_min`` doubling up to ``reconnect_max``) and
subscribes again after every reconnect. The password is never logged.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from iotguard.core.config import TelemetryConfig
from iotguard.core.errors import ConfigError
from iotguard.telemetry.detector import TelemetryMessage

log = logging.getLogger(__name__)


class MqttSubscriber:
    """Receives the configured topics into ``self.queue`` (a bounded :class:`queue.Queue`).

    ``start()`` returns at once; the connection is made in the background and retried forever, so a sensor
    started before its broker catches up when the broker comes. ``stop()`` disconnects and joins the thread.
    """

    def __init__(self, config: TelemetryConfig, out: queue.Queue[TelemetryMessage] | None = None) -> None:
        self.config = config
        self.queue: queue.Queue[TelemetryMessage] = out if out is not None else queue.Queue(config.queue_size)
        self.received = 0
        self.dropped = 0
        self.connects = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.last_error: str | None = None
        self._client = self._build_client()
        self._started = False

    def _build_client(self) -> paho.Client:
        cfg = self.config
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=paho.MQTTv311,
            reconnect_on_failure=True,
        )
        client.enable_logger(logging.getLogger("iotguard.telemetry.paho"))
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
        if cfg.tls:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(cfg, name)
                if path is not None and not path.is_file():
                    raise ConfigError(
                        "file not found", where=f"telemetry.{name}", expected=f"a file at {path}"
                    )
            try:
                client.tls_set(
                    ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                    certfile=str(cfg.cert_file) if cfg.cert_file else None,
                    keyfile=str(cfg.key_file) if cfg.key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise ConfigError(f"cannot set up TLS: {exc}", where="telemetry") from None
            client.tls_insecure_set(cfg.tls_insecure)
        client.reconnect_delay_set(
            min_delay=max(1, int(cfg.reconnect_min)), max_delay=max(1, int(cfg.reconnect_max))
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # -- paho callbacks (paho's thread) ----------------------------------------------------------------------
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"connection refused: {reason}"
            log.warning(
                "MQTT broker %s:%d refused the connection: %s", self.config.host, self.config.port, reason
            )
            return
        self.connects += 1
        self.connected.set()
        log.info("connected to MQTT broker %s:%d", self.config.host, self.config.port)
        client.subscribe([(topic, 0) for topic in self.config.topics])

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        self.subscribed.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if self._started:
            log.warning("MQTT connection lost (%s); reconnecting with backoff", reason)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self.received += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self.dropped += 1
            return
        item = TelemetryMessage(
            topic=topic, payload=bytes(msg.payload), timestamp=time.time(), retained=bool(msg.retain)
        )
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    # -- control ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._started = True
        # connect_async + loop_start: the first attempt, and every retry, happens in paho's thread with the
        # reconnect delays set above, so an absent broker never blocks or kills the sensor.
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected.is_set(),
            "received": self.received,
            "dropped": self.dropped,
            "connects": self.connects,
            "queued": self.queue.qsize(),
            "last_error": self.last_error,
            "broker": f"{self.config.host}:{self.config.port}",
        }
