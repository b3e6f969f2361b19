"""``iotguard baseline NORMAL --out DIR``: fit a detector to this site's normal traffic once and keep it.

The sensor (``iotguard run --model DIR`` or ``model.path: DIR``) and ``iotguard detect --model DIR`` then use
it; ``iotguard detect --baseline`` does the same fit for one run only.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import typer

from iotguard.cli.main import app


@app.command()
def baseline(
    source: Annotated[
        Path,
        typer.Argument(
            help="A capture (pcap, pcapng, .gz) or flow table (.parquet, .csv) of this site's normal traffic."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Detector directory to write (ONNX models, JSON manifests).")
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Detector to fit to the site. Default: the built-in lab detector."),
    ] = None,
    target_fpr: Annotated[
        float,
        typer.Option(
            "--target-fpr",
            help="Thresholds: at most this share of the baseline's held-out flows would alert.",
        ),
    ] = 1e-3,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The sensor's configuration: its flows: section meters the baseline as the sensor meters "
            "traffic. Default: the sensor's defaults.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fit/calibration split and the model.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace a detector already at --out.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary as JSON here.")] = None,
) -> None:
    """Fit a detector to this site's normal traffic and save it for `iotguard run` / `detect --model`."""
    from rich.table import Table

    from iotguard.cli.console import RichProgress, err
    from iotguard.cli.console import out as console
    from iotguard.core.config import load_config
    from iotguard.core.errors import DataError
    from iotguard.core.paths import check_writable
    from iotguard.detect.detector import Detector
    from iotguard.detect.site import (
        SITE_INFO,
        check_flows,
        check_output,
        check_target_fpr,
        fit_site_detector,
    )
    from iotguard.flows import read_flows
    from iotguard.preprocess.tables import atomic_output
    from iotguard.service.offline import is_flow_table, read_flow_file
    from iotguard.service.sensor import flow_config

    if not source.exists():
        raise DataError(
            "no such file", where=str(source), expected="a capture or flow table of normal traffic"
        )
    check_target_fpr(target_fpr)
    cfg = load_config(config)
    check_output(out, force=force)  # before the slow part: a refusal should not cost a fit
    check_writable(out, what="detector", directory=True)
    if json_out is not None:
        check_writable(json_out, what="JSON summary")
    progress = RichProgress()
    started = time.perf_counter()
    # the capture first: a bad or short one should fail before the default detector is built (a minute)
    with progress.task(f"reading flows of {source.name}"):
        # metered exactly as the sensor meters (early records included), so the thresholds hold for what it scores
        if is_flow_table(source):
            flows = read_flow_file(source)
        else:
            flows = read_flows(source, config=flow_config(cfg.flows))
    check_flows(flows, str(source))
    if model is not None:
        base = Detector.load(model)
    else:
        from iotguard.detect.default import default_detector

        base = default_detector(progress=progress)
    with progress.task(f"fitting {base.name} to {len(flows):,} flows of {source.name}"):
        detector = fit_site_detector(
            base,
            flows,
            out,
            target_fpr=target_fpr,
            source=str(source.resolve()),
            seed=seed,
            progress=progress,
        )
    seconds = time.perf_counter() - started

    site = detector.info[SITE_INFO]
    table = Table(title=f"iotguard baseline {source.name}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    span = site.get("seconds")
    table.add_row("flows", f"{site['flows']:,} ({site.get('early_records', 0):,} early records)")
    table.add_row("traffic covered", "-" if span is None else f"{span / 60:.1f} min")
    table.add_row("fitted from", base.name)
    for comp in detector.components:
        # the classifier's threshold is kept as log-odds; operators read it as P(attack)
        shown = f"P(attack) {1 / (1 + math.exp(-comp.threshold)):.6f}" if comp.role == "classifier" else ""
        table.add_row(
            f"{comp.role} threshold", f"{shown or f'{comp.threshold:.6g}'} (target FPR {comp.target_fpr:g})"
        )
    table.add_row("saved in", str(out))
    table.add_row("took", f"{seconds:.1f} s")
    console.print(table)
    cautions = detector.info.get("baseline_warnings", [])
    for line in cautions:
        err.print(f"[yellow]warning:[/] {line}", highlight=False)
    err.print(
        f"use it: iotguard run --model {out}   (or model.path: {out} in the sensor config)", highlight=False
    )
    if json_out:
        payload = {
            "source": str(source),
            "out": str(out),
            "detector": detector.name,
            "fitted_from": base.name,
            "baseline": site,
            "thresholds": {c.role: c.threshold for c in detector.components},
            "warnings": cautions,
            "seconds": seconds,
        }
        with atomic_output(json_out) as tmp:
            tmp.write_text(json.dumps(payload, indent=1) + "\n")
