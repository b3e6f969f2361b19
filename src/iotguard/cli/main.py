"""Entry point of the ``iotguard`` command. User errors print one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

import logging
import sys

import typer
from rich.markup import escape

from iotguard import __version__
from iotguard.cli.console import err
from iotguard.core.errors import IotguardError

app = typer.Typer(
    name="iotguard",
    help="Machine-learning intrusion detection and response for IoT networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iotguard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    from rich.logging import RichHandler

    level = logging.WARNING - 10 * min(verbose, 2)
    # Log records go through the same console as the progress bars, so they print above them cleanly.
    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(name)s: %(message)s", handlers=[handler])


def _register() -> None:
    # Each command group lives in its own module; importing it adds its commands to `app`.
    from iotguard.cli import (
        baseline,  # noqa: F401
        config,  # noqa: F401
        datasets,  # noqa: F401
        demo,  # noqa: F401
        detect,  # noqa: F401
        flows,  # noqa: F401
        lab,  # noqa: F401
        models,  # noqa: F401
        respond,  # noqa: F401
        run,  # noqa: F401
    )


_register()


def main() -> None:
    try:
        app()
    except IotguardError as exc:
        # escaped: a message may hold brackets (`iotguard[train]`, a regex) that rich would take for markup
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        sys.exit(2)
