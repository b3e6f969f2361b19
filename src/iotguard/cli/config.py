"""``iotguard config check FILE`` and ``iotguard config show``: validate and print the sensor configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from iotguard.cli.main import app
from iotguard.core.config import Config, load_config, parse_set_option, problems_of
from iotguard.core.errors import ConfigError

config_app = typer.Typer(help="Check and show the sensor configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def load_with_sets(path: Path | None, sets: list[str] | None) -> Config:
    """Load the configuration with ``--set section.key=value`` overrides (used by several commands)."""
    overrides = dict(parse_set_option(item) for item in sets or [])
    return load_config(path, overrides=overrides)


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="YAML configuration file to validate.")],
) -> None:
    """Validate FILE (plus IOTGUARD_* environment variables); list every problem with its line."""
    from iotguard.cli.console import err, out

    try:
        load_config(file)
    except ConfigError as exc:
        for problem in problems_of(exc):
            err.print(f"[bold red]error:[/] {problem.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"{file}: configuration is valid", highlight=False)


@config_app.command("show")
def show(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one key: section.key=value.")
    ] = None,
) -> None:
    """Print the effective configuration (file, then environment, then flags) with secrets redacted."""
    from iotguard.cli.console import out

    cfg = load_with_sets(config, set_)
    out.print(yaml.safe_dump(cfg.redacted(), sort_keys=False).rstrip(), highlight=False, markup=False)
