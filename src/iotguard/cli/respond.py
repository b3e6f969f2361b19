"""``iotguard respond``: check a policy, list containment in force, release an address."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from iotguard.cli.main import app

respond_app = typer.Typer(help="Response policy, blocks in force, and releasing them.", no_args_is_help=True)
app.add_typer(respond_app, name="respond")

DbOption = Annotated[
    Path | None, typer.Option("--db", help="SQLite store. Default: iotguard.db in the state directory.")
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Response policy (for its nftables table and namespace). Default: built-in."
    ),
]


def _db(db: Path | None) -> Path:
    from iotguard.core.paths import state_dir

    return db or state_dir() / "iotguard.db"


def _engine(db: Path | None, policy: Path | None, *, must_exist: bool = True):
    from iotguard.core.errors import DataError
    from iotguard.core.store import Store
    from iotguard.respond.engine import ResponseEngine
    from iotguard.respond.policy import Policy, check_policy

    path = _db(db)
    if must_exist and not path.exists():
        raise DataError("no store here (nothing was ever recorded)", where=str(path), expected="--db FILE")
    # list and release read the policy for its nftables settings only, never notify: the secrets its
    # notifications take from the environment (set where the sensor runs) are not needed in an admin shell
    pol = check_policy(policy)[0] if policy else Policy()
    store = Store(path)
    return ResponseEngine(pol, store), store


@respond_app.command("check")
def check(policy: Annotated[Path, typer.Argument(help="Policy file (YAML).")]) -> None:
    """Validate a policy file; errors name the line. ${NAME} variables unset here are warnings (the sensor
    needs them at run time), so a policy can be checked where its secrets are not."""
    from iotguard.cli.console import err, out
    from iotguard.respond.policy import check_policy

    p, warnings = check_policy(policy)
    for warning in warnings:
        err.print(f"[bold yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)
    kinds = sorted({a.kind for r in p.rules for a in r.actions})
    out.print(
        f"{policy}: valid; {len(p.rules)} rule(s), actions: {', '.join(kinds) or 'none'};"
        f" {'dry run' if p.dry_run else 'ACTIVE (not a dry run)'}; {len(p.allowlist)} allowlisted",
        highlight=False,
    )


@respond_app.command("list")
def list_(
    db: DbOption = None,
    policy: PolicyOption = None,
    history: Annotated[int, typer.Option("--history", help="Also show the last N actions of any kind.")] = 0,
) -> None:
    """Blocks, quarantines and rate limits in force (from the store, checked against nftables)."""
    from rich.table import Table

    from iotguard.cli.console import out

    engine, store = _engine(db, policy)
    try:
        engine.expire()
        now = time.time()
        live: dict[tuple[str, str], float | None] = {}
        fw_note = ""
        if engine.firewall.available():
            for el in engine.firewall.elements():
                live[(el.kind, el.address)] = el.expires
        else:
            fw_note = " (nftables not readable here: kernel state not checked)"
        table = Table(title=f"containment in force{fw_note}")
        for col in (
            "id",
            "action",
            "target",
            "since",
            "expires in",
            "mode",
            "in nftables",
            "incident",
            "rule",
        ):
            table.add_column(col)
        for rec in store.active_containment(now):
            in_kernel = "-" if rec.dry_run else ("yes" if (rec.action, rec.target) in live else "NO")
            table.add_row(
                str(rec.id), rec.action, rec.target, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.time)),
                f"{(rec.expires or now) - now:.0f} s", "dry-run" if rec.dry_run else "applied", in_kernel,
                str(rec.incident_id or "-"), str(rec.params.get("rule", "-")),
            )  # fmt: skip
        out.print(table)
        if history:
            hist = Table(title=f"last {history} actions")
            for col in ("id", "time", "action", "target", "result", "error", "alert", "incident"):
                hist.add_column(col)
            for rec in store.actions(limit=history):
                hist.add_row(
                    str(rec.id), time.strftime("%H:%M:%S", time.localtime(rec.time)), rec.action, rec.target,
                    rec.result, rec.error or "", str(rec.alert_id or "-"), str(rec.incident_id or "-"),
                )  # fmt: skip
            out.print(hist)
    finally:
        engine.close()
        store.close()


@respond_app.command("release")
def release(
    address: Annotated[str, typer.Argument(help="IP address to unblock (block, quarantine and rate limit).")],
    db: DbOption = None,
    policy: PolicyOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Record the release without touching nftables.")
    ] = False,
) -> None:
    """Lift every containment on ADDRESS now, and record who asked."""
    from iotguard.cli.console import out

    engine, store = _engine(db, policy, must_exist=False)
    try:
        rec = engine.release(address, apply=not dry_run)
    finally:
        engine.close()
        store.close()
    if rec.result == "failed":
        from iotguard.core.errors import ResponseError

        raise ResponseError(f"release of {address} failed: {rec.error}")
    out.print(
        f"released {address} ({'dry run' if dry_run else 'nftables updated'}; action {rec.id})",
        highlight=False,
    )
