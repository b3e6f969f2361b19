"""Serve the REST API, the dashboard and /metrics of a running :class:`~iotguard.service.sensor.Sensor`."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from iotguard.core.errors import ConfigError
from iotguard.service.api import ApiContext, create_app
from iotguard.service.auth import load_or_create_token
from iotguard.service.sensor import Sensor, check_port_free

log = logging.getLogger(__name__)


class ApiServer:
    """uvicorn in a thread of its own. The token comes from ``api.token`` or the token file (created on first
    start, mode 0600); it is never logged."""

    def __init__(self, sensor: Sensor) -> None:
        cfg = sensor.config.api
        self.token_path = sensor.config.token_path()
        token = cfg.token.get_secret_value() if cfg.token else load_or_create_token(self.token_path)
        self.context = ApiContext(
            config=cfg,
            token=token,
            store=sensor.store,
            stats=sensor.stats,
            inventory=sensor.inventory,
            responder=sensor.responder,
            model_info=sensor.model_info,
            telemetry=sensor.telemetry_info,
            health=sensor.health,
        )
        self.app = create_app(self.context)
        self.host, self.port = cfg.host, cfg.port
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=cfg.host,
                port=cfg.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                server_header=False,
                timeout_graceful_shutdown=2,
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 15.0) -> None:
        check_port_free(self.host, self.port)
        if self.host not in ("127.0.0.1", "::1"):
            log.warning("the API listens on %s: reachable from the network (token required)", self.host)
        self._thread = threading.Thread(target=self.server.run, name="iotguard-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the API did not start on {self.host}:{self.port}", where="api")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
