"""``iotguard demo``: the whole pipeline on data iotguard generates itself."""

from __future__ import annotations

from iotguard.cli.main import app


@app.command()
def demo() -> None:
    """Generate IoT traffic, extract flows, train and compare models, detect and respond (dry-run)."""
    from iotguard.cli.console import out

    out.print("iotguard demo: under construction")
