"""``iotguard flows``: packets (capture files or a live interface) to a CICFlowMeter-compatible flow table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from iotguard.capture.sources import is_live
from iotguard.cli.console import RichProgress, err, out
from iotguard.cli.main import app
from iotguard.core.errors import ConfigError
from iotguard.core.paths import check_writable
from iotguard.flows.api import iter_flows, summarise
from iotguard.flows.meter import FlowConfig
from iotguard.flows.writers import FlowWriter, output_format


@app.command("flows")
def flows_command(
    captures: Annotated[
        list[str],
        typer.Argument(
            metavar="CAPTURE...",
            help="Capture files (pcap, pcapng, optionally .gz) or iface:NAME (live, root).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output flow table: .parquet, .csv or .csv.gz.")
    ],
    early: Annotated[
        int | None,
        typer.Option("--early", min=1, help="Also emit a partial record after a flow's first N packets."),
    ] = None,
    early_seconds: Annotated[
        float | None,
        typer.Option(
            "--early-seconds", min=0, help="Also emit a partial record once a flow is this many seconds old."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="Episodes CSV (start,end,attacker,victim,label,category) to label flows with."
        ),
    ] = None,
    bpf: Annotated[
        str | None, typer.Option("--filter", help="tcpdump-syntax capture filter, e.g. 'tcp port 1883'.")
    ] = None,
    flow_timeout: Annotated[
        float, typer.Option("--flow-timeout", help="Seconds after its first packet a flow ends.")
    ] = 120.0,
    activity_timeout: Annotated[
        float, typer.Option("--activity-timeout", help="Gap (s) separating active periods.")
    ] = 5.0,
    close_grace: Annotated[
        float,
        typer.Option(
            "--close-grace",
            help="Seconds a closed TCP connection waits for stray packets; negative: until the flow timeout.",
        ),
    ] = 5.0,
    max_flows: Annotated[
        int, typer.Option("--max-flows", help="Most flows held at once (then evict).")
    ] = 262_144,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Live capture: stop after this many seconds.")
    ] = None,
    max_packets: Annotated[
        int | None, typer.Option("--max-packets", help="Stop after this many packets.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Extract bidirectional flows with CICFlowMeter (CNS2022) features from captures or an interface."""
    output_format(output)
    check_writable(output, what="flow table")
    config = FlowConfig.build(
        flow_timeout=flow_timeout,
        activity_timeout=activity_timeout,
        close_grace=None if close_grace < 0 else close_grace,
        max_flows=max_flows,
    )
    if labels is not None and not labels.is_file():
        raise ConfigError("no such episodes file", where=str(labels))
    live = any(is_live(c) for c in captures)
    progress = RichProgress() if not quiet and not live else None
    stream = iter_flows(
        captures,
        config=config,
        early=early,
        early_seconds=early_seconds,
        bpf=bpf,
        labels=labels,
        duration=duration,
        max_packets=max_packets,
        **({"progress": progress} if progress else {}),
    )
    started = time.perf_counter()
    writer = FlowWriter(output)
    try:
        try:
            for frame in stream:
                writer.write(frame)
        except KeyboardInterrupt:
            if not live:
                raise
            # Ctrl-C is how a live capture ends: keep what the table holds.
            writer.write(stream.meter.flush())
        if writer.rows == 0:
            writer.write(stream.to_pandas())  # an empty table still gets its header / schema
        writer.close()
    except BaseException:
        writer.abort()
        raise
    summary = summarise(stream, time.perf_counter() - started)
    if not quiet:
        _print_summary(summary, output)


def _print_summary(summary: dict, output: Path) -> None:
    table = Table(title=f"flows -> {output}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("packets", f"{summary['packets']:,}")
    table.add_row("bytes", f"{summary['bytes']:,}")
    table.add_row("flow records", f"{summary['flows']:,}")
    if summary["early"]:
        table.add_row("early (partial) records", f"{summary['early']:,}")
    if summary["evicted"]:
        table.add_row("evicted (table full)", f"{summary['evicted']:,}")
    if summary["filtered"]:
        table.add_row("filtered out", f"{summary['filtered']:,}")
    if summary["kernel_drops"]:
        table.add_row("kernel drops", f"{summary['kernel_drops']:,}")
    for reason, count in summary["skipped"].items():
        table.add_row(f"skipped: {reason}", f"{count:,}")
    table.add_row("seconds", f"{summary['seconds']:.2f}")
    table.add_row("packets/s", f"{summary['packets_per_s']:,.0f}")
    (out if out.is_terminal else err).print(table)
