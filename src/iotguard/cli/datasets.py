"""``iotguard datasets list | info NAME | download NAME``: the benchmark datasets and the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from iotguard.cli.main import app

datasets_app = typer.Typer(
    help="Benchmark datasets (NSL-KDD, CICIDS2017, UNSW-NB15, IoT-23): list, inspect, download.",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Dataset folder. Default: $IOTGUARD_DATA_DIR, else ~/.cache/iotguard/datasets.",
        show_default=False,
    ),
]
Name = Annotated[str, typer.Argument(help="Dataset name, as `iotguard datasets list` shows it.")]


@datasets_app.command("list")
def list_datasets(data_dir: DataDir = None) -> None:
    """Every dataset iotguard loads, its splits, and how many are ready in the data directory."""
    from rich.table import Table

    from iotguard.cli.console import out
    from iotguard.core.paths import data_dir as resolve
    from iotguard.datasets import specs
    from iotguard.datasets.catalog import inventory

    table = Table(title="iotguard datasets", title_justify="left")
    for column in ("name", "title", "splits (default first)", "ready"):
        table.add_column(column, overflow="fold")
    for name, spec in specs().items():
        inv = inventory(name, data_dir, count=False)
        ready = sum(s.ready for s in inv.splits)
        splits = [spec.default_split, *(s for s in spec.splits if s != spec.default_split)]
        colour = "green" if ready else "red"
        table.add_row(
            f"[bold]{name}[/]",
            spec.title,
            ", ".join(splits),
            f"[{colour}]{ready}/{len(inv.splits)}[/]",
        )
    out.print(table)
    out.print(f"data directory: {resolve(data_dir)}", highlight=False)
    out.print("details: iotguard datasets info NAME; fetch: iotguard datasets download NAME", highlight=False)


@datasets_app.command("info")
def info(
    name: Name,
    data_dir: DataDir = None,
    count: Annotated[
        bool, typer.Option("--count/--no-count", help="Count the records of every file (reads them once).")
    ] = True,
) -> None:
    """Splits, files present or missing, record counts, download sources and the required citation."""
    from rich.panel import Panel
    from rich.table import Table

    from iotguard.cli.console import out
    from iotguard.datasets.catalog import inventory
    from iotguard.datasets.registry import module_of

    spec = module_of(name).SPEC
    inv = inventory(name, data_dir, count=count)
    out.print(f"[bold]{spec.title}[/] ({spec.name}): {spec.description}", highlight=False)
    out.print(f"homepage: {spec.homepage}\ndata directory: {inv.root}", highlight=False)

    counted = {f.found: f.rows for f in inv.files if f.found is not None}
    splits = Table(title="splits", title_justify="left")
    for column in ("split", "status", "files", "records", "description"):
        splits.add_column(column, overflow="fold")
    for s in inv.splits:
        rows = [counted.get(p) for p in s.files]
        records = f"{sum(r for r in rows if r is not None):,}" if s.files and None not in rows else "-"
        name_cell = f"[bold]{s.name}[/] (default)" if s.default else s.name
        status = "[green]ready[/]" if s.ready else "[red]missing[/]"
        splits.add_row(name_cell, status, str(len(s.files)), records, s.description)
    out.print(splits)

    files = Table(title="files", title_justify="left")
    for column in ("file", "found", "records", "expected", "download from"):
        files.add_column(column, overflow="fold")
    for f in inv.files:
        found = "[red]missing[/]" if f.found is None else f.found.name
        if f.problem:
            records = f"[red]{f.problem}[/]"
        elif f.rows is None:
            records = "-"
        else:
            ok = f.expected_rows is None or f.rows == f.expected_rows
            records = f"[{'green' if ok else 'red'}]{f.rows:,}[/]"
        expected = f"{f.expected_rows:,}" if f.expected_rows is not None else "-"
        if f.source is not None:
            source = urlsplit(f.source.url).netloc + " (pinned sha256)"
        else:
            source = "manual (docs/datasets.md)" if f.known else "not in the spec"
        files.add_row(f.path, found, records, expected, source)
    out.print(files)
    out.print(Panel(spec.citation, title="cite", title_align="left"), highlight=False)
    out.print(f"license: {spec.license}", highlight=False)


@datasets_app.command("download")
def download(
    name: Name,
    split: Annotated[
        str | None, typer.Option("--split", help="Only this split's files (default: every split).")
    ] = None,
    data_dir: DataDir = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            "--mirror",
            help="Base URL (or local folder) laid out like the data directory; fetches <path>.gz from it "
            "instead of the pinned upstream copies. Default: $IOTGUARD_DATASET_MIRROR.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Fetch the dataset's files into the data directory, each checked against its pinned sha256."""
    from rich.table import Table

    from iotguard.cli.console import RichProgress, out
    from iotguard.core.paths import data_dir as resolve
    from iotguard.datasets.download import download as fetch

    results = fetch(name, split, data_dir=data_dir, mirror=mirror, progress=RichProgress())
    root = resolve(data_dir)
    table = Table(title=f"{name} in {root}", title_justify="left")
    for column in ("file", "status", "where", "from"):
        table.add_column(column, overflow="fold")
    colours = {"downloaded": "green", "present": "cyan", "unavailable": "yellow"}
    for r in results:
        where = r.path.relative_to(root).as_posix() if r.path else "-"
        status = f"[{colours[r.status]}]{r.status}[/]"
        table.add_row(r.file.path, status, where, r.url or r.detail)
    out.print(table)
    if any(r.status == "unavailable" for r in results):
        out.print(
            "[yellow]Files marked unavailable have no public copy with known bytes; docs/datasets.md says "
            "where to get them and where to put them.[/]",
            highlight=False,
        )
