"""``iotguard run``: the long-running sensor (capture, flows, detection, response, telemetry, API, dashboard).

Also ``iotguard token``: print the API token (or the dashboard address with it) on request.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from iotguard.cli.main import app

GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(cfg: Any, verbose: int) -> None:
    """Apply the ``logging:`` section (a -v on the command line still wins for the level)."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else getattr(logging, cfg.level)
    logging.getLogger("iotguard").setLevel(level)
    root.setLevel(min(level, logging.WARNING))
    fmt: logging.Formatter = (
        _JsonFormatter()
        if cfg.format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    for handler in root.handlers:
        if cfg.format == "json" or not isinstance(handler, RichHandler):  # the console keeps rich's layout
            handler.setFormatter(fmt)
    if cfg.file is not None:
        handler = logging.FileHandler(cfg.file, encoding="utf-8")
        handler.setFormatter(fmt)
        root.addHandler(handler)


@app.command()
def run(
    ctx: typer.Context,
    interface: Annotated[
        str | None, typer.Option("--interface", "-i", help="Capture live from this interface.")
    ] = None,
    pcap: Annotated[
        Path | None, typer.Option("--pcap", help="Replay this capture file through the sensor.")
    ] = None,
    speed: Annotated[
        str | None, typer.Option("--speed", help="Replay speed of --pcap: realtime or max.")
    ] = None,
    mqtt: Annotated[
        str | None, typer.Option("--mqtt", help="Watch device telemetry on this broker: mqtt://host:1883.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Detector directory or model artifact.")
    ] = None,
    policy: Annotated[Path | None, typer.Option("--policy", help="Response policy (YAML).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Sensor configuration (YAML).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one configuration key: section.key=value.")
    ] = None,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="Stop when the capture file has been replayed.")
    ] = False,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the capture file from the start, not the checkpoint.")
    ] = False,
) -> None:
    """Run the sensor until SIGINT/SIGTERM: capture, flows, detection, response, telemetry, API and dashboard."""
    from iotguard.cli.console import err
    from iotguard.core.config import load_config, parse_set_option

    overrides: dict[str, Any] = dict(parse_set_option(item) for item in set_ or [])
    flags = {
        "capture.interface": ("--interface", interface),
        "capture.pcap": ("--pcap", str(pcap) if pcap else None),
        "capture.speed": ("--speed", speed),
        "model.path": ("--model", str(model) if model else None),
        "respond.policy": ("--policy", str(policy) if policy else None),
        "telemetry.url": ("--mqtt", mqtt),
        "telemetry.enabled": ("--mqtt", "true" if mqtt else None),
    }
    flag_names = {key: name for key, (name, _) in flags.items()}
    for key, (_, value) in flags.items():
        if value is not None:
            overrides[key] = value
    # A source on the command line replaces the configured one (instead of clashing with it).
    if interface is not None and pcap is None:
        overrides["capture.pcap"] = "null"
    if pcap is not None and interface is None:
        overrides["capture.interface"] = "null"
    cfg = load_config(config, overrides=overrides, flag_names=flag_names)
    setup_logging(cfg.logging, (ctx.find_root().params or {}).get("verbose", 0) or 0)

    from iotguard.cli.console import RichProgress
    from iotguard.service.sensor import Sensor

    # Several busy threads share one interpreter lock; a shorter switch interval (default 5 ms) keeps the API
    # answering within a few milliseconds while capture, flows and detection run flat out.
    sys.setswitchinterval(0.0005)
    sensor = Sensor(cfg, exit_when_done=exit_when_done, resume=not from_start, progress=RichProgress())
    server = None
    try:
        if cfg.api.enabled:
            from iotguard.service.server import ApiServer

            server = ApiServer(sensor)
            server.start()

        def _stop(signum: int, frame: Any) -> None:
            err.print(f"{signal.Signals(signum).name}: stopping (flushing flows and state)", highlight=False)
            sensor.stop()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        _settle_heap()
        sensor.start()
        what = sensor.source.spec if sensor.source else "telemetry only"
        err.print(f"iotguard sensor running on {what}; state in {sensor.state_dir}", highlight=False)
        if server is not None:
            err.print(
                f"dashboard and API: {server.url} (token: `iotguard token`, or the file {server.token_path})",
                highlight=False,
            )
        sensor.wait()
    finally:
        sensor.close()
        if server is not None:
            server.stop()
    s = sensor.stats.snapshot()
    c = s["counters"]
    drops = ", ".join(f"{where} {int(n):,}" for where, n in s["drops"].items() if n) or "none"
    err.print(
        f"stopped: {int(c.get('packets', 0)):,} packets, {int(c.get('flows_final', 0)):,} flows "
        f"({int(c.get('flows_early', 0)):,} early records), {s['alerts']['total']:,} alerts, drops: {drops}",
        highlight=False,
    )
    if sensor.errors:
        sys.exit(1)


@app.command()
def token(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Sensor configuration (YAML).")
    ] = None,
    url: Annotated[
        bool, typer.Option("--url", help="Print the dashboard address with the token in it.")
    ] = False,
) -> None:
    """Print the sensor's API token (created now if the sensor never ran), or the dashboard link with it."""
    from iotguard.core.config import load_config
    from iotguard.service.auth import load_or_create_token

    cfg = load_config(config)
    secret = cfg.api.token.get_secret_value() if cfg.api.token else load_or_create_token(cfg.token_path())
    if url:
        host = f"[{cfg.api.host}]" if ":" in cfg.api.host else cfg.api.host
        # The token rides in the fragment: the browser never sends it to the server or writes it to history.
        typer.echo(f"http://{host}:{cfg.api.port}/#token={secret}")
    else:
        typer.echo(secret)


def _settle_heap() -> None:
    """Garbage-collector settings for a long-running sensor. Full collections hold the interpreter lock for as
    long as they walk the heap, pausing the API with everything else."""
    # Everything loaded by now (modules, compiled parsers, the model, the API) lives as long as the process:
    # frozen, full collections stop walking it again and again.
    gc.collect()
    gc.freeze()
    # A batch of flows makes tens of thousands of objects (records, alerts, events) that die with the batch.
    # At the default young threshold (700) collections run in the middle of them and promote them, and the
    # promoted ones soon trigger a full pass. A larger threshold lets them die first.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
