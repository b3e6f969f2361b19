"""Detection and response over a capture or flow table, start to end: what ``iotguard detect`` and the demo
run. The live sensor wires the same detection and response engines to a packet stream instead.

On a capture, the same detectors as the sensor's watch the packets, unless ``flows_only``: the flow detector,
the MQTT telemetry read off the wire (:class:`~iotguard.telemetry.MqttTap`, as with the sensor's
``telemetry.from_capture``) and the device inventory (ARP and MAC checks, behaviour drift). A flow table
carries flows only. Those two can start from what they learnt on a capture of the site's normal traffic
(:func:`learn_devices`, ``iotguard detect --baseline``)."""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from iotguard.core.config import DeviceConfig, InventoryConfig, TelemetryConfig
from iotguard.core.errors import DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.records import Alert, Incident
from iotguard.core.store import Store
from iotguard.detect.assets import Assets
from iotguard.detect.detector import Detector
from iotguard.detect.engine import DetectionConfig, DetectionEngine, DetectionStats
from iotguard.detect.eve import EveWriter
from iotguard.respond.engine import ResponseEngine
from iotguard.respond.policy import Policy

log = logging.getLogger(__name__)

FLOW_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def is_flow_table(path: Path) -> bool:
    return str(path).lower().endswith(FLOW_SUFFIXES)


def read_flow_file(path: Path) -> pd.DataFrame:
    """A saved flow table, read as ``predict`` and ``train`` read it: a short row or text in a feature column
    is an error naming the file and line (pandas alone pads the one and keeps the other as text)."""
    from iotguard.flows.api import require_flow_columns
    from iotguard.preprocess.tables import read_table

    frame, _ = read_table(path)
    require_flow_columns(frame, path)
    return frame


def flow_batches(path: Path, early: int) -> Iterator[pd.DataFrame]:
    """Flow record batches of a capture (early records included) or the records of a saved flow table."""
    from iotguard.flows import iter_flows

    if is_flow_table(path):
        yield read_flow_file(path)
    else:
        yield from iter_flows(path, early=early or None)


@dataclass
class DeviceBaseline:
    """What the sensor's device detectors learnt from a site's normal traffic, as their checkpoints: the MQTT
    telemetry's devices (each device's rate, payload size, topics and reading ranges, who publishes where,
    each publisher's usual rate, what is left of the global warm-up) and the device inventory (devices, their
    MACs and whose MAC each is, behaviour fingerprints). Detection that starts from it behaves like a sensor
    restarted from a checkpoint taken at the end of the baseline capture."""

    telemetry: dict[str, Any]
    """:meth:`TelemetryDetector.state`."""
    inventory: dict[str, Any]
    """:meth:`Inventory.state`."""
    messages: int = 0
    """MQTT messages read off the baseline capture."""

    @property
    def telemetry_devices(self) -> int:
        return len(self.telemetry["devices"])

    @property
    def inventory_devices(self) -> int:
        return len(self.inventory["devices"])


class CaptureWatch:
    """The sensor's detectors besides the flow detector, on a capture's packets: the MQTT telemetry read off
    the wire and the device inventory (ARP and MAC checks, behaviour drift), started from ``baseline`` when
    given."""

    def __init__(
        self,
        early: int,
        *,
        telemetry: TelemetryConfig | None = None,
        inventory: InventoryConfig | None = None,
        devices: Sequence[DeviceConfig] = (),
        baseline: DeviceBaseline | None = None,
    ) -> None:
        from iotguard.service.inventory import Inventory
        from iotguard.telemetry import MqttTap, TelemetryDetector

        telemetry = telemetry or TelemetryConfig()
        self.early = early
        self.tap = MqttTap(telemetry.capture_port)
        self.telemetry = TelemetryDetector(telemetry, list(devices))
        self.inventory = Inventory(inventory, list(devices))
        if baseline is not None:
            self.telemetry.load_state(baseline.telemetry)
            self.inventory.load_state(baseline.inventory)

    def records(self, path: Path) -> Iterator[tuple[pd.DataFrame, list[Alert]]]:
        """A capture's flow records batch by batch (early ones included), each with the alerts the other
        detectors raise on the same packets."""
        from iotguard.capture import open_source
        from iotguard.flows import FlowMeter
        from iotguard.flows.parse import parse
        from iotguard.service.macs import mac_pairs

        meter = FlowMeter(early_packets=self.early or None)
        now = 0.0  # the capture's clock: its newest packet so far
        source = open_source(path)
        try:
            for batch in source:
                packets = parse(batch)  # once, for the flow meter and the MQTT tap
                flows = meter.feed(batch, packets)
                if len(batch):
                    now = max(now, float(batch.ts_us.max()) / 1e6)
                alerts: list[Alert] = []
                # As in the sensor, a failure of one of these costs its own alerts of the batch, not the flows'.
                try:  # the inventory sees the batch's flows first, so their devices exist
                    alerts += self.inventory.observe_flows(flows) if len(flows) else []
                    alerts += self.inventory.observe_macs(mac_pairs(batch))
                    alerts += self.inventory.tick(now)
                except Exception:
                    log.exception("the device inventory failed on a batch of %s; its alerts dropped", path)
                try:
                    for message in self.tap.messages(batch, packets):
                        alerts += self.telemetry.process(message)
                except Exception:
                    log.exception(
                        "reading MQTT telemetry failed on a batch of %s; its messages dropped", path
                    )
                yield flows, alerts
        finally:
            source.close()
        flows = meter.flush()
        try:
            last = self.inventory.observe_flows(flows) if len(flows) else []
        except Exception:
            log.exception("the device inventory failed on the last flows of %s; its alerts dropped", path)
            last = []
        yield flows, last

    def baseline(self) -> DeviceBaseline:
        """What the detectors have learnt so far."""
        # through JSON, as a checkpoint would be: what goes on from it shares nothing with these detectors
        return DeviceBaseline(
            telemetry=json.loads(json.dumps(self.telemetry.state())),
            inventory=json.loads(json.dumps(self.inventory.state())),
            messages=self.tap.messages_seen,
        )


def learn_devices(
    path: Path,
    early: int,
    *,
    telemetry: TelemetryConfig | None = None,
    inventory: InventoryConfig | None = None,
    devices: Sequence[DeviceConfig] = (),
) -> DeviceBaseline:
    """Run the device detectors over a capture of a site's normal traffic and keep what they learnt (the
    alerts they raise on it are dropped: it is the baseline). A flow table has no packets to learn from."""
    if is_flow_table(path):
        raise DataError(
            "a flow table has no MQTT messages or MAC addresses to learn devices from",
            where=str(path),
            expected="a capture (pcap, pcapng, .gz)",
        )
    watch = CaptureWatch(early, telemetry=telemetry, inventory=inventory, devices=devices)
    for _ in watch.records(path):
        pass
    return watch.baseline()


def capture_flows(path: Path, early: int) -> pd.DataFrame:
    """All flow records of a capture (early ones included, as detection sees them) or of a flow table."""
    from iotguard.flows import read_flows

    if is_flow_table(path):
        return read_flow_file(path)
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
    flows_only: bool = False,
    telemetry: TelemetryConfig | None = None,
    inventory: InventoryConfig | None = None,
    devices: Sequence[DeviceConfig] = (),
    device_baseline: DeviceBaseline | None = None,
    progress: Progress = NO_PROGRESS,
) -> OfflineRun:
    """Score every flow of ``source``, fold alerts into incidents, run ``policy`` (a dry run unless
    ``apply``), and record alerts, incidents and actions in ``db`` and ``eve`` when given. On a capture, the
    MQTT telemetry and the device inventory watch its packets too (configured by ``telemetry``, ``inventory``
    and ``devices``, and started from ``device_baseline``: :func:`learn_devices`), unless ``flows_only``.
    Returns every incident of the run, in order of first activity."""
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
            if flows_only or is_flow_table(source):
                for batch in flow_batches(source, early):
                    engine.process(batch, where=str(source))
                    task.advance(len(batch))
            else:
                watch = CaptureWatch(
                    early, telemetry=telemetry, inventory=inventory, devices=devices, baseline=device_baseline
                )
                for batch, alerts in watch.records(source):
                    engine.submit(alerts)
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
