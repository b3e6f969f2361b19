"""The sensor's REST API, web dashboard and Prometheus endpoint (FastAPI).

Everything under ``/api`` (except ``/api/health``) and ``/metrics`` (unless ``api.metrics_public``) needs the
token: ``Authorization: Bearer <token>``. The token is never accepted in a query string, so it never lands
in an access log or a browser history. The dashboard page itself holds no data; its script asks for the
token once and keeps it in the browser's session storage.

Bad requests are answered with 4xx and a JSON ``detail``: out-of-range or malformed parameters (422), page
sizes beyond ``api.max_page_size`` (422), unknown ids (404), unknown paths and path tricks (404). A 500 is a
bug. The OpenAPI spec is served at ``/api/openapi.json``; there is no Swagger UI (it would load from a CDN).
"""

# No "from __future__ import annotations" here: FastAPI reads the parameter annotations at runtime, and the
# page-size types are built per app (from api.max_page_size) inside create_app.
import ipaddress
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from iotguard import __version__
from iotguard.core.config import ApiConfig
from iotguard.core.errors import IotguardError
from iotguard.core.store import Store
from iotguard.service.auth import token_matches
from iotguard.service.inventory import Inventory
from iotguard.service.stats import Stats, prometheus_registry

log = logging.getLogger(__name__)

DASHBOARD = resources.files("iotguard.service") / "dashboard"
MAX_OFFSET = 10_000_000
Epoch = Annotated[float, Query(ge=0, le=1e11, allow_inf_nan=False, description="Epoch seconds.")]
Text = Annotated[str, Query(min_length=1, max_length=128)]


@dataclass
class ApiContext:
    """What the API serves. The sensor fills it; tests may fill it with real parts of their own."""

    config: ApiConfig
    token: str
    store: Store
    stats: Stats = field(default_factory=Stats)
    inventory: Inventory | None = None
    responder: Any | None = None
    """A :class:`iotguard.respond.engine.ResponseEngine` (for releasing blocks)."""
    model_info: Callable[[], dict[str, Any]] = dict
    telemetry: Callable[[], dict[str, Any]] | None = None
    health: Callable[[], dict[str, Any]] | None = None
    """Extra health facts (threads alive, source finished); ``ok: False`` in it makes the sensor degraded."""
    registry: CollectorRegistry | None = None
    release_lock: threading.Lock = field(default_factory=threading.Lock)


class _Counts:
    """Totals for paginated lists, remembered for a second per filter set: counting a million-row table on
    every dashboard poll costs more than the page itself, and a total a second old is still right enough."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[float, int]] = {}

    def get(self, key: tuple[Any, ...], count: Callable[[], int]) -> int:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        value = count()
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (now, value)
        return value


def _key(kind: str, filters: dict[str, Any]) -> tuple[Any, ...]:
    return (kind, *sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in filters.items()))


def _page(total: int, limit: int, offset: int, items: list[Any]) -> dict[str, Any]:
    return {"total": total, "limit": limit, "offset": offset, "items": items}


def _action(record: Any, now: float) -> dict[str, Any]:
    data = record.to_dict()
    data["remaining_s"] = max(0.0, record.expires - now) if record.expires is not None else None
    return data


def _clean(value: Any) -> Any:
    # JSON has no NaN or infinity: the store may hold NaN scores; send null instead of invalid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def create_app(ctx: ApiContext) -> FastAPI:
    """The FastAPI application over ``ctx``."""
    max_page = ctx.config.max_page_size
    Limit = Annotated[int, Query(ge=1, le=max_page, description=f"Page size (at most {max_page}).")]
    Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
    registry = ctx.registry or prometheus_registry(ctx.stats)
    counts = _Counts()

    app = FastAPI(
        title="iotguard sensor API",
        version=__version__,
        description="Alerts, incidents, devices, blocks and statistics of a running iotguard sensor. "
        "Send the token from the sensor's state directory as `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    bearer = HTTPBearer(auto_error=False, description="The token in the sensor's api-token file.")

    def require_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if creds is None or not token_matches(creds.credentials, ctx.token):
            raise HTTPException(401, "missing or wrong API token", headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )
        return response

    @app.exception_handler(IotguardError)
    async def _user_error(request: Request, exc: IotguardError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=400)

    # -- public -------------------------------------------------------------------------------------------
    @app.get("/api/health", tags=["sensor"], summary="Liveness: is the sensor running")
    def health() -> dict[str, Any]:
        extra = ctx.health() if ctx.health else {}
        ok = bool(extra.get("ok", True))
        return {"status": "ok" if ok else "degraded", "version": __version__}

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

    @api.get("/stats", tags=["sensor"], summary="Counters, drops, queue depths, throughput history")
    def stats(history: bool = Query(False, description="Include the throughput history.")) -> dict[str, Any]:
        snap = ctx.stats.snapshot()
        if history:
            snap["history"] = list(ctx.stats.history)
        if ctx.health:
            snap["health"] = ctx.health()
        return _clean(snap)

    @api.get("/alerts", tags=["alerts"], summary="Alerts, newest first")
    def alerts(
        limit: Limit = 50,
        offset: Offset = 0,
        since: Epoch | None = None,
        until: Epoch | None = None,
        severity: Annotated[list[int] | None, Query(max_length=4)] = None,
        family: Annotated[list[str] | None, Query(max_length=32)] = None,
        src: Text | None = None,
        dest: Text | None = None,
        incident: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    ) -> dict[str, Any]:
        if severity and any(not 1 <= s <= 4 for s in severity):
            raise HTTPException(422, "severity must be 1..4")
        if family and any(len(f) > 64 for f in family):
            raise HTTPException(422, "family names are at most 64 characters")
        filters = {
            "since": since,
            "until": until,
            "severity": severity or None,
            "family": family or None,
            "src": src,
            "dest": dest,
            "incident": incident,
        }
        filters = {k: v for k, v in filters.items() if v is not None}
        lines = ctx.store.alert_eve(limit=limit, offset=offset, **filters)
        total = counts.get(_key("alerts", filters), lambda: ctx.store.count_alerts(**filters))
        return _page(total, limit, offset, [json.loads(line) for line in lines])

    @api.get("/alerts/{alert_id}", tags=["alerts"], summary="One alert (EVE form)")
    def alert(alert_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
        found = ctx.store.get_alert(alert_id)
        if found is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return _clean(found.to_eve())

    @api.get("/incidents", tags=["alerts"], summary="Incidents, most recently active first")
    def incidents(
        limit: Limit = 50,
        offset: Offset = 0,
        since: Epoch | None = None,
        until: Epoch | None = None,
        severity: Annotated[list[int] | None, Query(max_length=4)] = None,
        family: Annotated[list[str] | None, Query(max_length=32)] = None,
        src: Text | None = None,
        status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
    ) -> dict[str, Any]:
        if severity and any(not 1 <= s <= 4 for s in severity):
            raise HTTPException(422, "severity must be 1..4")
        filters = {
            "since": since,
            "until": until,
            "severity": severity or None,
            "family": family or None,
            "src": src,
            "status": status,
        }
        filters = {k: v for k, v in filters.items() if v is not None}
        items = ctx.store.incidents(limit=limit, offset=offset, sources=100, **filters)
        total = counts.get(_key("incidents", filters), lambda: ctx.store.count_incidents(**filters))
        return _page(total, limit, offset, [_clean(_incident(i)) for i in items])

    @api.get("/incidents/{incident_id}", tags=["alerts"], summary="One incident and its latest alerts")
    def incident(incident_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
        found = ctx.store.get_incident(incident_id, sources=1000)
        if found is None:
            raise HTTPException(404, f"no incident {incident_id}")
        data = _incident(found)
        data["alerts"] = [json.loads(line) for line in ctx.store.alert_eve(limit=50, incident=incident_id)]
        data["actions"] = [a.to_dict() for a in ctx.store.actions(limit=50, incident=incident_id)]
        return _clean(data)

    @api.get("/devices", tags=["devices"], summary="The device inventory, most recently seen first")
    def devices(
        limit: Limit = 50,
        offset: Offset = 0,
        q: Annotated[
            str | None, Query(max_length=128, description="Match address, name, MAC or tag.")
        ] = None,
    ) -> dict[str, Any]:
        if ctx.inventory is None:
            return _page(0, limit, offset, [])
        total, items = ctx.inventory.devices(limit=limit, offset=offset, query=q)
        return _page(total, limit, offset, _clean(items))

    @api.get("/devices/{address}", tags=["devices"], summary="One device")
    def device(address: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
        found = ctx.inventory.get(address) if ctx.inventory else None
        if found is None:
            raise HTTPException(404, f"no device {address!r}")
        return _clean(found)

    @api.get("/blocks", tags=["response"], summary="Blocks, quarantines and rate limits in force")
    def blocks() -> dict[str, Any]:
        now = time.time()
        items = [_action(a, now) for a in ctx.store.active_containment(now)]
        return {"total": len(items), "items": items, "dry_run": getattr(ctx.responder, "dry_run", None)}

    @api.post("/blocks/{address}/release", tags=["response"], summary="Lift every containment on an address")
    def release(address: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
        try:
            ip = str(ipaddress.ip_address(address))
        except ValueError:
            raise HTTPException(422, f"{address!r} is not an IP address") from None
        if ctx.responder is None:
            raise HTTPException(409, "the response engine is not running")
        with ctx.release_lock:
            active = [a for a in ctx.store.active_containment() if a.target == ip]
            if not active:
                raise HTTPException(404, f"nothing is in force on {ip}")
            record = ctx.responder.release(ip, reason="api")
        ctx.stats.action("release", record.result)
        return {"released": [a.id for a in active], "action": record.to_dict()}

    @api.get("/actions", tags=["response"], summary="Response actions, newest first")
    def actions(
        limit: Limit = 50,
        offset: Offset = 0,
        action: Annotated[str | None, Query(max_length=32)] = None,
        target: Text | None = None,
        result: Annotated[str | None, Query(max_length=32)] = None,
    ) -> dict[str, Any]:
        filters = {
            k: v for k, v in {"action": action, "target": target, "result": result}.items() if v is not None
        }
        items = ctx.store.actions(limit=limit, offset=offset, **filters)
        total = counts.get(_key("actions", filters), lambda: ctx.store.count_actions(**filters))
        return _page(total, limit, offset, [a.to_dict() for a in items])

    @api.get("/model", tags=["sensor"], summary="The model the sensor scores flows with")
    def model() -> dict[str, Any]:
        return _clean(ctx.model_info())

    @api.get("/telemetry", tags=["devices"], summary="MQTT telemetry: broker connection and device baselines")
    def telemetry() -> dict[str, Any]:
        return _clean(ctx.telemetry() if ctx.telemetry else {"enabled": False})

    app.include_router(api)

    # -- metrics ------------------------------------------------------------------------------------------
    metrics_deps = [] if ctx.config.metrics_public else [Depends(require_token)]

    @app.get("/metrics", tags=["sensor"], summary="Prometheus metrics", dependencies=metrics_deps)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # -- dashboard ----------------------------------------------------------------------------------------
    if ctx.config.dashboard:
        static_dir = str(DASHBOARD)

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(f"{static_dir}/index.html", media_type="text/html")

        @app.get("/favicon.ico", include_in_schema=False)
        def favicon() -> FileResponse:
            return FileResponse(f"{static_dir}/favicon.svg", media_type="image/svg+xml")

        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    return app


def _incident(incident: Any) -> dict[str, Any]:
    data = incident.to_dict()
    data["src_ips"] = data.get("src_ips", [])[:100]
    return data
