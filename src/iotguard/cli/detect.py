"""``iotguard detect CAPTURE|FLOWS``: flows -> alerts -> incidents -> response, with a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from iotguard.cli.main import app


@app.command()
def detect(
    source: Annotated[
        Path, typer.Argument(help="A capture (pcap, pcapng, .gz) or a flow table (.parquet, .csv).")
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Detector directory or model artifact. Default: the built-in lab detector."
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="Capture or flow table of this site's normal traffic: fit the site's "
            "anomaly model on it and set thresholds from it first; a capture also teaches the MQTT "
            "telemetry and the device inventory the site's devices.",
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Response policy (YAML). Default: log only.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Sensor configuration (its detect:, telemetry:, inventory: and devices:)."
        ),
    ] = None,
    eve: Annotated[Path | None, typer.Option("--eve", help="Append alerts to this EVE JSON file.")] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="SQLite store for alerts, incidents and actions. Default: none, or the "
            "state directory's iotguard.db with --apply (so blocks can be listed and released).",
        ),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Really run the policy's actions (default: dry run).")
    ] = False,
    target_fpr: Annotated[
        float | None,
        typer.Option(
            "--target-fpr",
            help="Move thresholds to this false-positive rate on benign validation flows (e.g. 0.0001).",
        ),
    ] = None,
    early: Annotated[
        int, typer.Option("--early", help="Early record after N packets of a flow (0: off).")
    ] = 10,
    flows_only: Annotated[
        bool,
        typer.Option(
            "--flows-only",
            help="Score flows only: no MQTT telemetry read off the capture, no device inventory.",
        ),
    ] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the default detector first.")] = False,
    incidents_shown: Annotated[int, typer.Option("--show", help="Incidents listed in the summary.")] = 15,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary as JSON here.")] = None,
) -> None:
    """Detect attacks in a capture or flow table: alerts (EVE JSON), incidents, response actions."""
    from rich.table import Table

    from iotguard.cli.console import RichProgress, err, out
    from iotguard.core.errors import DataError
    from iotguard.core.paths import check_writable, state_dir
    from iotguard.detect.assets import Assets
    from iotguard.detect.build import Workdir, fit_baseline
    from iotguard.detect.detector import Detector
    from iotguard.detect.engine import DetectionConfig, detection_config
    from iotguard.preprocess.tables import atomic_output
    from iotguard.respond.policy import default_policy, load_policy
    from iotguard.service.offline import capture_flows, detect_source, is_flow_table, learn_devices

    if not source.exists():
        raise DataError("no such file", where=str(source))
    if json_out is not None:
        check_writable(json_out, what="JSON summary")  # now, not after the whole run
    progress = RichProgress()
    cfg = None
    if config is not None:
        from iotguard.core.config import load_config

        cfg = load_config(config)
    if model is not None:
        detector = Detector.load(model)
    else:
        from iotguard.detect.default import default_detector

        detector = default_detector(rebuild=rebuild, progress=progress)
    work = Workdir()
    learnt = None
    baseline_row = ""
    baseline_info: dict[str, object] | None = None
    try:
        if baseline is not None:
            with progress.task(f"fitting the site baseline on {baseline.name}"):
                benign = capture_flows(baseline, early)
                detector, _ = fit_baseline(
                    detector,
                    benign,
                    work.path,
                    target_fpr=1e-3 if target_fpr is None else target_fpr,
                    progress=progress,
                )
            baseline_info = {
                "source": str(baseline),
                "flows": len(benign),
                "warnings": detector.info.get("baseline_warnings", []),
            }
            baseline_row = f"{len(benign):,} flows"
            # The device detectors learn the site's devices from the same capture, so that a device it saw
            # is not "unknown" when it first publishes later (a flow table has no packets to learn from).
            if not (flows_only or is_flow_table(source) or is_flow_table(baseline)):
                with progress.task(f"learning the site's devices from {baseline.name}"):
                    learnt = learn_devices(
                        baseline, early,
                        telemetry=cfg.telemetry if cfg is not None else None,
                        inventory=cfg.inventory if cfg is not None else None,
                        devices=cfg.devices if cfg is not None else (),
                    )  # fmt: skip
                baseline_info |= {
                    "mqtt_devices": learnt.telemetry_devices,
                    "mqtt_messages": learnt.messages,
                    "inventory_devices": learnt.inventory_devices,
                }
                baseline_row += (
                    f", {learnt.telemetry_devices:,} MQTT devices ({learnt.messages:,} messages),"
                    f" {learnt.inventory_devices:,} inventory devices"
                )
            elif not (flows_only or is_flow_table(source)):
                baseline_row += " (a flow table: no MQTT devices or inventory learnt)"
        det_cfg = detection_config(cfg) if cfg is not None else DetectionConfig()
        if target_fpr is not None and baseline is None:
            det_cfg.target_fpr = target_fpr
        pol = load_policy(policy) if policy else default_policy()
        devices = list(pol.devices) + (list(cfg.devices) if cfg is not None else [])
        if db is None and apply:
            db = state_dir() / "iotguard.db"
        run = detect_source(
            source, detector, policy=pol, config=det_cfg, assets=Assets(devices), db=db, eve=eve,
            apply=apply, early=early, flows_only=flows_only, progress=progress,
            telemetry=cfg.telemetry if cfg is not None else None,
            inventory=cfg.inventory if cfg is not None else None,
            devices=cfg.devices if cfg is not None else (), device_baseline=learnt,
        )  # fmt: skip
    finally:
        work.close()
    incidents = run.incidents

    s = run.stats
    summary = Table(title=f"iotguard detect {source.name}", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    mode = "dry run" if run.dry_run else "applied"
    rows = [
        ("detector", detector.model_name),
        *([("site baseline", baseline_row)] if baseline is not None else []),
        ("flows scored", f"{s.flows:,} ({s.partial_flows:,} early records)"),
        ("flagged by a model", f"{s.flagged:,}"),
        (
            "suppressed / unconfirmed / low confidence",
            f"{s.suppressed:,} / {s.unconfirmed:,} / {s.low_confidence:,}",
        ),
        ("alerts", f"{s.alerts:,}"),
        (
            "incidents",
            f"{s.incidents:,}" + (f"  ({s.fold_ratio:.1f} alerts per incident)" if s.incidents else ""),
        ),
        (f"actions ({mode})", ", ".join(f"{k} {v}" for k, v in sorted(run.actions.items())) or "none"),
    ]
    for k, v in rows:
        summary.add_row(k, v)
    out.print(summary)
    for line in (baseline_info or {}).get("warnings", []):
        err.print(f"[yellow]warning (site baseline):[/] {line}", highlight=False)
    if incidents:
        t = Table(title=f"incidents (showing {min(incidents_shown, len(incidents))} of {len(incidents)})")
        for col in ("id", "sev", "family", "attacker(s)", "victims", "alerts", "summary"):
            t.add_column(col, overflow="fold")
        for inc in sorted(incidents, key=lambda i: (i.severity, -i.alert_count))[:incidents_shown]:
            attackers = inc.src_ip if len(inc.src_ips) <= 1 else f"{len(inc.src_ips)} sources"
            t.add_row(
                str(inc.id), str(inc.severity), inc.family, attackers, str(len(inc.dest_ips)),
                f"{inc.alert_count:,}", inc.summary,
            )  # fmt: skip
        out.print(t)
    if eve:
        err.print(f"alerts appended to {eve}", highlight=False)
    if json_out:
        payload = {
            "source": str(source),
            "detector": detector.model_name,
            "baseline": baseline_info,
            "stats": s.to_dict(),
            "actions": dict(run.actions),
            "incidents": [i.to_dict() for i in incidents],
        }
        with atomic_output(json_out) as tmp:
            tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
