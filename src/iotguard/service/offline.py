"""Detection and response over a capture or flow table, start to end: what ``iotguard detect`` and the demo
run. The live sensor wires the same detection and response engines to a packet stream instead."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from iotguard.core.errors import DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.records import Incident
from iotguard.core.store import Store
from iotguard.detect.assets import Assets
from iotguard.detect.detector import Detector
from iotguard.detect.engine import DetectionConfig, DetectionEngine, DetectionStats
from iotguard.detect.eve import EveWriter
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.policy import Policy

FLOW_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def is_flow_table(path: Path) -> bool:
    return str(path).lower().endswith(FLOW_SUFFIXES)


def flow_batches(path: Path, early: int) -> Iterator[pd.DataFrame]:
    """Flow record batches of a capture (early records included) or the records of a saved flow table."""
    from iotguard.flows import iter_flows, read_flow_table

    if is_flow_table(path):
        yield read_flow_table(path)
    else:
        yield from iter_flows(path, early=early or None)


def capture_flows(path: Path, early: int) -> pd.DataFrame:
    """All flow records of a capture (early ones included, as detection sees them) or of a flow table."""
    from iotguard.flows import read_flows

    return read_flows(path, early=early or None)


@dataclass
class OfflineRun:
    stats: DetectionStats
    incidents: list[Incident]
    actions: Counter[str] = field(default_factory=Counter)
    """Action results by kind (``dry-run``, ``ok``, ``skipped`` ...)."""
    dry_run: bool = True


def detect_source(
    source: Path,
    detector: Detector,
    *,
    policy: Policy,
    config: DetectionConfig | None = None,
    assets: Assets | None = None,
    db: Path | None = None,
    eve: Path | None = None,
    apply: bool = False,
    early: int = 10,
    progress: Progress = NO_PROGRESS,
) -> OfflineRun:
    """Score every flow of ``source``, fold alerts into incidents, run ``policy`` (a dry run unless
    ``apply``), and record alerts, incidents and actions in ``db`` and ``eve`` when given. Returns every
    incident of the run, in order of first activity."""
    if not source.exists():
        raise DataError("no such file", where=str(source))
    # Incidents close as the capture's clock moves on, so the store is where all of them end up: without
    # a database of the caller's, one lives in a temporary folder for the run.
    scratch = tempfile.TemporaryDirectory(prefix="iotguard-detect-") if db is None else None
    store = Store(db if db is not None else Path(scratch.name) / "detect.db")
    writer = EveWriter(eve) if eve else None
    try:
        responder = ResponseEngine(policy, store, dry_run=False if apply else policy.dry_run, assets=assets)
        engine = DetectionEngine(
            detector, config=config, assets=assets, store=store, eve=writer, sinks=[responder.handle]
        )
        with progress.task(f"detecting in {source.name}") as task:
            for batch in flow_batches(source, early):
                engine.process(batch, where=str(source))
                task.advance(len(batch))
        engine.close()
        responder.close()
        incidents = sorted(store.incidents(limit=None), key=lambda i: (i.first_seen, i.id or 0))
    finally:
        if writer is not None:
            writer.close()
        store.close()
        if scratch is not None:
            scratch.cleanup()
    return OfflineRun(engine.stats, incidents, Counter(responder.results), responder.dry_run)
