"""The sensor runtime: capture, flows, detection, response and telemetry in threads joined by bounded queues.

::

    capture ──packets──> flow meter ──flow records──> detection ──alerts──> store, EVE, incidents, response
    (thread)   (queue)    (thread)       (queue)       (thread)      ^
                                                                     │ alerts (queue)
    MQTT broker ──messages──> telemetry baselines ───────────────────┘
    (paho thread)  (queue)       (thread)                  inventory (in the detection thread)

Every queue is bounded. A capture file is read only as fast as the pipeline goes (back-pressure); a live
interface cannot wait, so when the packet queue is full the batch is dropped and counted (``drops``), next
to the kernel's own drop counter. Nothing grows without bound: the flow table evicts (counted), the
inventory and the telemetry baselines forget the least recently seen device.

State survives restarts: alerts, incidents and actions are in SQLite before anything acts on them; blocks
in force are re-applied with their remaining TTL; the inventory, the telemetry baselines and the replay
position of a capture file are checkpointed every ``service.checkpoint_interval`` seconds and on a clean
shutdown (SIGINT/SIGTERM), which also flushes the flow table through detection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotguard import __version__
from iotguard.core.config import Config, FlowsConfig
from iotguard.core.errors import ConfigError, IotguardError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.records import Alert, Incident
from iotguard.core.store import Store
from iotguard.service.inventory import Inventory
from iotguard.service.stats import Stats

log = logging.getLogger(__name__)

CHECKPOINT = "sensor-state.json"
DETECT_BATCH = 4096  # most flow records scored in one step
BULK_NICE = 5  # scheduling priority of capture, flows and detection relative to the API thread
_END = object()  # end of stream marker on the queues


@dataclass
class _Source:
    spec: str
    live: bool
    path: Path | None = None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event, *, wait: bool = True) -> bool:
    """Put with back-pressure (``wait``) but wake up now and then to notice a stop."""
    while True:
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            if not wait or stop.is_set():
                return False


class Sensor:
    """The running sensor. ``start()``, then ``wait()`` or ``run()``; ``stop()`` (any thread) shuts down
    cleanly: capture stops, queued packets are metered, the flow table is flushed through detection, open
    incidents are closed, and state is checkpointed.

    ``detector``: an ``iotguard.detect.detector.Detector`` (default: ``model.path``, else the built-in
    default detector). ``exit_when_done``: a capture file's end stops the sensor (else it keeps serving the
    API and dashboard until stopped). ``resume``: continue a capture file from the checkpointed position.
    """

    def __init__(
        self,
        config: Config,
        *,
        detector: Any | None = None,
        exit_when_done: bool = False,
        resume: bool = True,
        progress: Progress = NO_PROGRESS,
    ) -> None:
        self.config = config
        self.exit_when_done = exit_when_done
        self.progress = progress
        self.stats = Stats(history=max(60, int(600 / config.service.stats_interval)))
        self.stop_event = threading.Event()
        self.done_event = threading.Event()
        self.metered = threading.Event()
        self.errors: list[str] = []
        self._threads: dict[str, threading.Thread] = {}
        self._started = False
        self._closed = False
        self.state_dir = config.state_path()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.source = self._source()
        self.checkpoint_path = self.state_dir / CHECKPOINT
        self._checkpoint = self._read_checkpoint()
        self._skip = self._resume_position() if resume else 0
        self.packets_done = self._skip

        # storage first: everything after it writes there
        self.store = Store(config.store_path())
        from iotguard.detect.eve import EveWriter

        self.eve = EveWriter(config.eve_path())
        try:
            self._build(detector)
        except BaseException:
            self.eve.close()
            self.store.close()
            raise
        self.packet_q: queue.Queue[Any] = queue.Queue(config.service.packet_queue)
        self.flow_q: queue.Queue[Any] = queue.Queue(config.service.flow_queue)
        self.alert_q: queue.Queue[Alert] = queue.Queue(config.service.alert_queue)
        self._gauges()

    # -- construction -----------------------------------------------------------------------------------
    def _source(self) -> _Source | None:
        cap = self.config.capture
        if cap.interface:
            return _Source(f"iface:{cap.interface}", live=True)
        if cap.pcap:
            path = Path(cap.pcap).expanduser()
            if not path.is_file():
                raise ConfigError("capture file not found", where=str(path))
            return _Source(str(path), live=False, path=path.resolve())
        if not self.config.telemetry.enabled:
            raise ConfigError(
                "nothing to watch", expected="--interface IF, --pcap FILE or telemetry (--mqtt URL)"
            )
        return None

    def _build(self, detector: Any | None) -> None:
        from iotguard.detect.assets import Assets
        from iotguard.detect.engine import DetectionEngine, detection_config
        from iotguard.respond.engine import ResponseEngine
        from iotguard.respond.policy import default_policy, load_policy

        cfg = self.config
        policy = load_policy(cfg.respond.policy) if cfg.respond.policy else default_policy()
        if cfg.respond.allowlist:
            policy = policy.model_copy(update={"allowlist": [*policy.allowlist, *cfg.respond.allowlist]})
        self.policy = policy
        self.assets = Assets([*policy.devices, *cfg.devices])
        dry_run = policy.dry_run if cfg.respond.dry_run is None else cfg.respond.dry_run
        self.responder = ResponseEngine(policy, self.store, dry_run=dry_run, assets=self.assets)
        self.inventory = Inventory(cfg.inventory, cfg.devices)
        # A LearningPeriod while model.learn_flows records and fits. Only the detection thread changes it: the
        # background fit hands its outcome over through _fitted (a detector, or the error that stopped it).
        self.learning: Any | None = None
        self._fitted: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # The evidence time (flow records' ts_last) up to which the base detector scored while learning in
        # `record` mode: flow alerts up to it are never acted on, whenever they reach the response policy
        # (the evidence gate may hold them past the end of learning; a late flow record may be scored after).
        self._record_until = float("-inf")
        self.detector = self._choose_detector(detector)
        self.stats.info["model"] = self.detector.model_name
        self.stats.info["source"] = self.source.spec if self.source else "telemetry only"
        self.engine = DetectionEngine(
            self.detector,
            config=detection_config(cfg),
            assets=self.assets,
            store=self.store,
            eve=self.eve,
            sinks=[self._count_alert, self._respond],
        )
        self.telemetry = None
        self.subscriber = None
        self.tap = None
        self.telemetry_q: queue.Queue[Any] | None = None
        wire = cfg.telemetry.from_capture and self.source is not None
        if cfg.telemetry.enabled or wire:
            from iotguard.telemetry import MqttSubscriber, MqttTap, TelemetryDetector

            self.telemetry = TelemetryDetector(cfg.telemetry, cfg.devices)
            self.telemetry_q = queue.Queue(cfg.telemetry.queue_size)
            if cfg.telemetry.enabled:
                self.subscriber = MqttSubscriber(cfg.telemetry, self.telemetry_q)
            if wire:
                self.tap = MqttTap(cfg.telemetry.capture_port)
        if self._checkpoint:
            self._restore("inventory", self.inventory)
            if self.telemetry is not None and self._checkpoint.get("telemetry"):
                self._restore("telemetry", self.telemetry)

    def _restore(self, part: str, component: Any) -> None:
        """Load one part of the checkpoint; a damaged part is ignored (the component starts fresh), said once,
        and never stops the sensor."""
        try:
            component.load_state(self._checkpoint[part])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            log.warning("ignoring the %s state in checkpoint %s: %s", part, self.checkpoint_path, exc)

    def _choose_detector(self, detector: Any | None) -> Any:
        """The given detector, else ``model.path`` or the default; with ``model.learn_flows``, the site
        detector a past learning period fitted, else that detector while a learning period starts."""
        learn = self.config.model.learn_flows
        if not learn:
            return detector if detector is not None else self._load_detector()
        from iotguard.service.learning import SITE_DETECTOR_DIR, LearningPeriod, learnt_detector

        try:
            learnt = learnt_detector(self.state_dir)
        except IotguardError as exc:
            # A damaged site-detector/ (a disk error, a hand edit) must not keep the sensor from watching: it
            # scores with the base detector and says so (log, health). No new learning period: its fit would
            # replace the folder, which is for the operator to look at and delete (then it learns again).
            message = (
                f"learning: cannot load the site baseline learnt earlier ({exc}); scoring with the base "
                f"detector; delete {self.state_dir / SITE_DETECTOR_DIR} to learn again"
            )
            log.error("%s", message)
            self.errors.append(message)
            return detector if detector is not None else self._load_detector()
        if learnt is not None:
            log.info("site baseline learnt earlier: %s (%s)", learnt.name, self.state_dir)
            return learnt
        base = detector if detector is not None else self._load_detector()
        mode = self.config.model.learn_alerts
        spec = self.source.spec if self.source else "telemetry only"
        self.learning = LearningPeriod(self.state_dir, learn, mode, base, spec)
        log.warning(
            "learning this site's traffic: %d of %d flow records so far; flow alerts meanwhile: %s",
            self.learning.recorder.recorded, learn, mode,
        )  # fmt: skip
        return base

    def _load_detector(self) -> Any:
        from iotguard.detect.detector import Detector

        path = self.config.model.path
        if path is not None:
            return Detector.load(path)
        from iotguard.detect.default import default_detector

        return default_detector(progress=self.progress)

    def _gauges(self) -> None:
        s = self.stats
        s.gauge("packet_queue", self.packet_q.qsize)
        s.gauge("flow_queue", self.flow_q.qsize)
        s.gauge("alert_queue", self.alert_q.qsize)
        s.gauge("devices", lambda: len(self.inventory))
        s.gauge("devices_flagged", self.inventory.flagged)
        s.gauge("open_incidents", lambda: len(self.engine.folder.open_incidents()))
        if self.telemetry_q is not None:
            s.gauge("telemetry_queue", self.telemetry_q.qsize)
        if self.subscriber is not None:
            s.gauge("mqtt_connected", lambda: float(self.subscriber.connected.is_set()))  # type: ignore[union-attr]

    def _count_alert(self, alert: Alert, incident: Incident) -> None:
        self.stats.alert(alert.severity, alert.source)
        if incident.alert_count == 1:
            self.stats.add("incidents")
        self.inventory.note_alert(alert)

    # -- checkpoints ------------------------------------------------------------------------------------
    def _read_checkpoint(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable checkpoint %s: %s", self.checkpoint_path, exc)
            return None
        return data if isinstance(data, dict) and data.get("version") == 1 else None

    def _resume_position(self) -> int:
        cp = self._checkpoint
        if not cp or self.source is None or self.source.live or self.source.path is None:
            return 0
        src = cp.get("source") or {}
        st = self.source.path.stat()
        if (
            src.get("path") == str(self.source.path)
            and src.get("size") == st.st_size
            and src.get("mtime") == st.st_mtime
        ):
            n = int(src.get("packets", 0))
            if n:
                log.info("resuming %s after packet %d", self.source.path, n)
            return n
        return 0

    def checkpoint(self) -> None:
        """Write inventory, telemetry baselines and the replay position (atomically)."""
        data: dict[str, Any] = {"version": 1, "time": time.time(), "iotguard": __version__}
        if self.source is not None and self.source.path is not None:
            st = self.source.path.stat()
            data["source"] = {
                "path": str(self.source.path),
                "size": st.st_size,
                "mtime": st.st_mtime,
                "packets": self.packets_done,
            }
        data["inventory"] = self.inventory.state()
        if self.telemetry is not None:
            data["telemetry"] = self.telemetry.state()
        try:
            _atomic_write(self.checkpoint_path, json.dumps(data, separators=(",", ":")))
        except OSError as exc:
            log.error("cannot write checkpoint %s: %s", self.checkpoint_path, exc)

    # -- threads ----------------------------------------------------------------------------------------
    def _thread(self, name: str, target: Callable[[], None], *, nice: int = 0) -> None:
        def guarded() -> None:
            if nice:
                # The bulk stages run a little below the API and housekeeping threads, so the scheduler lets
                # those in at once when they wake (the dashboard stays responsive under a flood).
                with contextlib.suppress(OSError, AttributeError):
                    os.setpriority(
                        os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice
                    )
            try:
                target()
            except Exception as exc:  # a bug: keep the sensor up, say so in health and logs
                log.exception("sensor thread %s died", name)
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=guarded, name=f"iotguard-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    def start(self) -> None:
        if self._started:
            return
        src = self._open_source() if self.source is not None else None
        self._started = True
        restored = self.responder.restore() if self.config.respond.restore else 0
        if restored:
            log.info("re-applied %d block(s) still in force", restored)
        self.stats.add("blocks_restored", restored)
        self.stats.sample()
        if src is not None:
            self._thread("capture", lambda: self._capture_loop(src), nice=BULK_NICE)
            self._thread("flows", self._flow_loop, nice=BULK_NICE)
        self._thread("detect", self._detect_loop, nice=BULK_NICE)
        if self.subscriber is not None:
            self.subscriber.start()
        if self.telemetry is not None:
            self._thread("telemetry", self._telemetry_loop)
        self._thread("housekeeping", self._housekeeping_loop)

    # capture -------------------------------------------------------------------------------------------
    def _open_source(self) -> Any:
        """Open the interface or capture file now, so a missing interface, missing rights or a file that is
        not a capture stop ``start()`` with a one-line error instead of a thread dying later."""
        from iotguard.capture import open_source

        cap = self.config.capture
        assert self.source is not None
        if self.source.live:
            from iotguard.capture.live import LiveCapture

            # the ring: capture.buffer_mb blocks of 1 MiB, so a burst waits in the kernel, not on the floor
            src = LiveCapture(
                cap.interface or "",
                bpf=cap.bpf,
                snaplen=cap.snaplen,
                promiscuous=cap.promiscuous,
                block_size=1 << 20,
                blocks=max(2, cap.buffer_mb),
            )
        else:
            src = open_source(
                self.source.spec, bpf=cap.bpf, batch_size=cap.batch_packets, snaplen=cap.snaplen
            )
        return src

    def _batches(self, src: Any) -> Iterator[Any]:
        cap = self.config.capture
        assert self.source is not None
        try:
            skip = self._skip
            realtime = cap.speed == "realtime" and not self.source.live
            clock: tuple[float, float] | None = None  # (first packet time, wall time it maps to)
            for batch in src:
                if self.stop_event.is_set():
                    break
                self.stats.set_drops("kernel", int(getattr(src.stats, "kernel_drops", 0)))
                if skip:
                    n = len(batch)
                    if n <= skip:
                        skip -= n
                        continue
                    batch = batch.select(np.arange(skip, n))
                    skip = 0
                if not len(batch):
                    if self.source.live:
                        yield batch  # lets the flow meter expire flows on a quiet interface
                    continue
                if not realtime:
                    yield batch
                    continue
                rel = (batch.ts_us - batch.ts_us[0]) / 1e6
                if clock is None:
                    clock = (float(batch.ts_us[0]) / 1e6, time.monotonic())
                base = float(batch.ts_us[0]) / 1e6 - clock[0]
                i = 0
                while i < len(batch) and not self.stop_event.is_set():
                    now = time.monotonic() - clock[1] - base
                    k = int(np.searchsorted(rel, now, side="right"))
                    if k > i:
                        yield batch.select(np.arange(i, k))
                        i = k
                    else:
                        time.sleep(min(0.05, max(0.0005, rel[i] - now)))
        finally:
            self.stats.set_drops("kernel", int(getattr(src.stats, "kernel_drops", 0)))
            for reason, n in getattr(src.stats, "damaged", {}).items():
                self.stats.skipped[f"damaged:{reason}"] = n
            src.close()

    def _capture_loop(self, src: Any) -> None:
        assert self.source is not None
        live = self.source.live
        try:
            for batch in self._batches(src):
                n = len(batch)
                if n:
                    self.stats.add("packets", n)
                    self.stats.add("bytes", batch.wire_bytes)
                if not _put(self.packet_q, batch, self.stop_event, wait=not live):
                    if self.stop_event.is_set():
                        break
                    self.stats.drop("packet_queue", n)
        except IotguardError as exc:
            log.error("capture stopped: %s", exc)
            self.errors.append(f"capture: {exc}")
        finally:
            _put(self.packet_q, _END, threading.Event())

    # flows ---------------------------------------------------------------------------------------------
    def _flow_config(self) -> Any:
        return flow_config(self.config.flows)

    def _flow_loop(self) -> None:
        from iotguard.flows import FlowMeter
        from iotguard.flows.parse import parse
        from iotguard.service.macs import mac_pairs

        meter = FlowMeter(self._flow_config())
        self.meter = meter
        self.stats.gauge("flow_table", lambda: meter.stats.active_flows)
        self.stats.gauge("flow_table_capacity", lambda: meter.capacity)
        live = self.source is not None and self.source.live
        last_expire = time.monotonic()
        skipped_seen: dict[str, int] = {}
        while True:
            try:
                item = self.packet_q.get(timeout=0.5)
            except queue.Empty:
                item = None
            if item is _END:
                break
            frames = []
            try:
                if item is not None and len(item):
                    packets = parse(item)  # once, for the flow meter and the MQTT tap
                    frames.append(meter.feed(item, packets))
                    self.packets_done += len(item)
                    pairs = mac_pairs(item)
                    if pairs:
                        self._submit(self.inventory.observe_macs(pairs))
                    if self.tap is not None:  # its own failures are its own: the batch's flows are metered
                        self._tap(item, packets)
                if live and time.monotonic() - last_expire >= 1.0:
                    frames.append(meter.expire(time.time()))
                    last_expire = time.monotonic()
            except Exception:
                log.exception("flow meter failed on a batch; batch dropped")
                self.stats.drop("flow_errors", len(item) if item is not None else 0)
            self._flow_stats(meter, skipped_seen)
            for frame in frames:
                self._put_flows(frame)
        self.metered.set()  # every packet is metered and its telemetry queued
        frame = meter.flush()  # shutdown or end of capture: every flow still open is scored
        self._flow_stats(meter, skipped_seen)
        self._put_flows(frame)
        _put(self.flow_q, _END, threading.Event())

    def _put_flows(self, frame: pd.DataFrame) -> None:
        # A flush or an expiry can hand over a whole flow table at once. Scored in one piece, its alerts make
        # single steps (joining the EVE text, one insert) that hold the GIL for a third of a second and stall
        # the API; in pieces, every step stays short.
        for start in range(0, len(frame), DETECT_BATCH):
            _put(self.flow_q, frame.iloc[start : start + DETECT_BATCH], threading.Event())

    def _tap(self, batch: Any, packets: Any) -> None:
        assert self.tap is not None and self.telemetry_q is not None
        try:
            messages = self.tap.messages(batch, packets)
        except Exception:
            log.exception(
                "reading MQTT off the wire failed on a batch of %d packets; its messages dropped", len(batch)
            )
            self.stats.drop("telemetry_errors", len(batch))
            return
        for message in messages:
            # A capture file waits for the telemetry thread as it waits for detection; a live interface
            # cannot, so there a full queue drops the message (counted).
            if not _put(self.telemetry_q, message, self.stop_event, wait=not self.source.live):  # type: ignore[union-attr]
                self.stats.drop("telemetry_queue")
        for reason, n in self.tap.skipped.items():
            self.stats.skipped[f"mqtt:{reason}"] = n

    def _flow_stats(self, meter: Any, seen: dict[str, int]) -> None:
        s = meter.stats
        self.stats.counters["flows_final"] = s.flows
        self.stats.counters["flows_early"] = s.early
        self.stats.set_drops("flow_table", s.evicted)
        for reason, n in s.skipped.items():
            if seen.get(reason) != n:
                self.stats.skipped[reason] = n
                seen[reason] = n

    # detection -----------------------------------------------------------------------------------------
    def _submit(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            try:
                self.alert_q.put_nowait(alert)
            except queue.Full:
                self.stats.drop("alert_queue")

    def _drain_alerts(self) -> None:
        pending: list[Alert] = []
        while True:
            try:
                pending.append(self.alert_q.get_nowait())
            except queue.Empty:
                break
        if pending:
            try:
                self.engine.submit(pending)
            except Exception:
                log.exception("could not record %d telemetry/inventory alert(s)", len(pending))
                self.stats.drop("alert_errors", len(pending))

    def _detect_loop(self) -> None:
        finished = self.source is None
        last_tick = last_flush = time.monotonic()
        if self.learning is not None and self.learning.recorder.full:  # restarted before the fit was done
            self._fit_site()
        while True:
            item = None
            if not finished:
                try:
                    item = self.flow_q.get(timeout=0.2)
                except queue.Empty:
                    item = None
            else:
                if self.stop_event.wait(0.2) and self.alert_q.empty():
                    break
            if item is _END:
                finished = True
                self.done_event.set()
                item = None
                if self.exit_when_done or self.stop_event.is_set():
                    self._drain_alerts()
                    break
            if isinstance(item, pd.DataFrame) and len(item):
                self._score(item)
            self._drain_alerts()
            self._use_learnt()
            if (
                self.learning is not None
                and time.monotonic() - last_flush >= self.config.service.checkpoint_interval
            ):
                last_flush = time.monotonic()
                self.learning.recorder.flush()
            if time.monotonic() - last_tick >= 5.0:
                last_tick = time.monotonic()
                now = self.engine.folder.now if self.engine.folder.now > 0 else time.time()
                self._submit(self.inventory.tick(now))
        telemetry = self._threads.get("telemetry")
        if telemetry is not None:  # its last alerts must go through before the incidents close
            telemetry.join(self.config.service.shutdown_timeout / 2)
        self._drain_alerts()
        if self.learning is not None:
            self.learning.recorder.flush()
        with contextlib.suppress(Exception):
            self.engine.close()

    def _score(self, flows: pd.DataFrame) -> None:
        # The inventory first, so the devices of this batch exist when its alerts are counted against them.
        try:
            self._submit(self.inventory.observe_flows(flows))
        except Exception:
            log.exception("inventory failed on a batch of %d flows", len(flows))
        learning = self.learning
        if learning is not None:
            if not learning.recorder.full:
                kept = learning.recorder.record(flows)
                self.stats.add("flows_learnt", kept)
                if kept and learning.mode == "record":
                    self._record_until = max(self._record_until, _newest(flows.iloc[:kept]))
                if learning.recorder.full:
                    self._fit_site()  # on a capture file the switch comes now, before this batch is scored
            learning = self.learning
            if learning is not None and not learning.scores:
                return  # suppress: as Kitsune's grace period, nothing is scored until learning ends
            if learning is not None and learning.mode == "record":  # the base detector scores these
                self._record_until = max(self._record_until, _newest(flows))
        before = self.engine.stats.score_seconds
        try:
            self.engine.process(flows, where=self.source.spec if self.source else None)
        except IotguardError as exc:
            log.error("cannot score %d flows: %s", len(flows), exc)
            self.stats.drop("detect_errors", len(flows))
        except Exception:
            log.exception("detection failed on a batch of %d flows; batch dropped", len(flows))
            self.stats.drop("detect_errors", len(flows))
        else:
            self.stats.observe_inference(self.engine.stats.score_seconds - before, len(flows))

    def _respond(self, alert: Alert, incident: Incident) -> Any:
        learning = self.learning
        if (learning is not None and learning.holds(alert)) or (
            alert.source == "flow" and alert.timestamp <= self._record_until
        ):
            # judged by the alert's own evidence time, not by whether learning is on when it gets here: the
            # evidence gate releases held alerts later, with the next alert of their attacker
            self.stats.add("responses_held_learning")
            return []
        return self.responder.handle(alert, incident)

    def _fit_site(self) -> None:
        """Fit the site detector on the learnt flows. A capture file waits for it (back-pressure, as it waits
        for detection: nothing is lost, and the switch falls at the same record every run); a live interface
        cannot wait, so there it fits in the background while the base detector goes on scoring."""
        learning = self.learning
        if learning is None or learning.fitting or learning.failed:
            return
        learning.recorder.flush()  # here, in the recording thread: the fit may run in another
        learning.fitting = True
        if self.source is not None and self.source.live:
            self._thread("learn", self._fit_and_hand_over, nice=BULK_NICE)
        else:
            self._fit_and_hand_over()
            self._use_learnt()

    def _fit_and_hand_over(self) -> None:
        learning = self.learning  # read once: this may run in the "learn" thread
        assert learning is not None
        learnt = learning.fit()
        # the detection thread takes it between two batches (_use_learnt): a detector, or why there is none
        self._fitted.put(learnt if learnt is not None else f"learning: {learning.failed}")

    def _use_learnt(self) -> None:
        """In the detection thread: end the learning period once its fit is done (or failed)."""
        try:
            outcome = self._fitted.get_nowait()
        except queue.Empty:
            return
        learning = self.learning
        if isinstance(outcome, str):  # the fit failed: act on alerts again; the flows stay for the next start
            self.errors.append(outcome)
            self.learning = None
            return
        # `record`: forget the evidence the base detector gathered while learning. Its held alerts were raised
        # while learning (never to be acted on), and its view of the site is what learning replaces: an
        # attacker named by an incident while learning, or a scan half-counted then, must show itself again
        # to the site detector before anything acts. `act` keeps it: there the base detector's alerts count.
        learnt = outcome
        self.engine.use_detector(learnt, fresh_evidence=learning is not None and learning.mode == "record")
        self.detector = learnt
        self.stats.info["model"] = learnt.model_name
        if learning is not None:
            learning.recorder.clear()  # here, in the recording thread, once nothing records any more
        self.learning = None

    # telemetry -----------------------------------------------------------------------------------------
    def _telemetry_loop(self) -> None:
        assert self.telemetry is not None and self.telemetry_q is not None
        while True:
            try:
                message = self.telemetry_q.get(timeout=0.2)
            except queue.Empty:
                if self.stop_event.is_set() or (self.subscriber is None and self.metered.is_set()):
                    break  # stopped (or the capture, its only source, is done) and the queue is judged
                continue
            self.stats.add("telemetry_messages")
            try:
                self._submit(self.telemetry.process(message))
            except Exception:
                log.exception("telemetry detector failed on a message from %r", message.topic[:100])
        if self.subscriber is not None:
            self.stats.set_drops("telemetry_queue", self.subscriber.dropped)

    # housekeeping --------------------------------------------------------------------------------------
    def _housekeeping_loop(self) -> None:
        cfg = self.config.service
        last_cp = last_expire = time.monotonic()
        last_retention = last_cp - 3600  # once at start, then hourly
        while not self.stop_event.wait(cfg.stats_interval):
            now = time.monotonic()
            self.stats.sample()
            if self.subscriber is not None:
                self.stats.set_drops("telemetry_queue", self.subscriber.dropped)
            if now - last_expire >= 5.0:
                last_expire = now
                with contextlib.suppress(Exception):
                    self.responder.expire()
            if now - last_cp >= cfg.checkpoint_interval:
                last_cp = now
                self.checkpoint()
            if now - last_retention >= 3600:
                last_retention = now
                self._retention()
            if self.done_event.is_set() and self.exit_when_done:
                self.stop_event.set()

    def _retention(self) -> None:
        days = self.config.store.retention_days
        if days:
            try:
                # Alerts are aged by their evidence time, counted back from the newest alert rather than the
                # clock: a replayed capture from 2019 keeps its alerts; actions are aged by the clock. With no
                # alert yet there is none to age: the clock must not stand in for the newest alert, or the
                # first alerts of an old capture, stored between this read and the purge, would go at once.
                newest = self.store.alerts(limit=1)
                alerts_before = min(time.time(), newest[0].timestamp) - days * 86400 if newest else 0.0
                gone = self.store.purge(alerts_before, actions_before=time.time() - days * 86400)
            except IotguardError as exc:
                log.error("retention: %s", exc)
                return
            if any(gone.values()):
                log.info("retention (%g days): deleted %s", days, gone)

    # -- control ----------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        alive = {name: t.is_alive() for name, t in self._threads.items()}
        expected_dead = {"capture", "flows"} if self.done_event.is_set() else set()
        expected_dead.add("learn")  # the learning period's fit ends when it is done
        ok = not self.errors and all(v for k, v in alive.items() if k not in expected_dead)
        out: dict[str, Any] = {"ok": ok, "threads": alive, "errors": self.errors[-5:]}
        out["source_finished"] = self.done_event.is_set()
        if self.subscriber is not None:
            out["mqtt"] = self.subscriber.stats()
        out["learning"] = self.learning_info()
        return out

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the sensor is stopped (or the capture file ends, with ``exit_when_done``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop_event.is_set():
            if self.exit_when_done and self.done_event.is_set() and not self._threads["detect"].is_alive():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self.stop_event.wait(0.2 if remaining is None else min(0.2, remaining))
        return True

    def stop(self) -> None:
        """Ask every thread to finish (safe from a signal handler)."""
        self.stop_event.set()

    def close(self) -> None:
        """Stop, drain, flush the flow table through detection, checkpoint, close the outputs."""
        if self._closed:
            return
        self._closed = True
        self.stop_event.set()
        if self.subscriber is not None:
            self.subscriber.stop()  # no new messages; the queued ones are still judged
        deadline = time.monotonic() + self.config.service.shutdown_timeout
        for name in ("capture", "flows", "detect", "telemetry", "housekeeping", "learn"):
            thread = self._threads.get(name)
            if thread is not None:
                thread.join(max(0.1, deadline - time.monotonic()))
                if thread.is_alive():
                    log.warning("sensor thread %s did not finish within the shutdown timeout", name)
        self.stats.sample()
        self.checkpoint()
        with contextlib.suppress(Exception):
            self.responder.close()
        self.eve.close()
        self.store.close()

    def run(self) -> None:
        self.start()
        try:
            self.wait()
        finally:
            self.close()

    # -- what the API shows -----------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        det = self.detector
        return {
            "name": det.model_name,
            "features": len(det.features),
            "components": [
                {
                    "role": c.role,
                    "name": c.name,
                    "threshold": c.threshold,
                    "target_fpr": c.target_fpr,
                    "features": len(c.features),
                    "classes": list(getattr(c.artifact, "classes", []) or []),
                    "created": getattr(c.artifact, "manifest", {}).get("created")
                    if isinstance(getattr(c.artifact, "manifest", None), dict)
                    else None,
                }
                for c in det.components
            ],
            "info": det.info,
            "detection": self.engine.stats.to_dict(),
            "learning": self.learning_info(),
        }

    def learning_info(self) -> dict[str, Any]:
        """The learning period: off, under way (flows so far, target, what happens to alerts), or done."""
        learning = self.learning
        if learning is not None:
            return learning.state()
        if self.config.model.learn_flows:
            from iotguard.detect.site import SITE_INFO

            return {"active": False, "site_baseline": self.detector.info.get(SITE_INFO)}
        return {"active": False}

    def telemetry_info(self) -> dict[str, Any]:
        if self.telemetry is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "broker": self.subscriber.stats() if self.subscriber is not None else None,
            "from_capture": self.tap.messages_seen if self.tap is not None else None,
            "messages": self.telemetry.messages,
            "anomalies": dict(self.telemetry.alert_counts),
            "devices": self.telemetry.devices()[:200],
        }


def _newest(flows: pd.DataFrame) -> float:
    """The newest evidence time (ts_last) among these flow records (-inf without any)."""
    if "ts_last" not in flows.columns or not len(flows):
        return float("-inf")
    newest = pd.to_numeric(flows["ts_last"], errors="coerce").max()
    return float(newest) if pd.notna(newest) else float("-inf")


def flow_config(f: FlowsConfig) -> Any:
    """The flow meter's settings from the ``flows:`` section: how the sensor meters packets into records (and
    so how a site baseline for it must be metered: ``iotguard baseline --config``)."""
    from iotguard.flows import FlowConfig

    # The meter's hash index needs a power-of-two table (another size never finds a free slot once the
    # table is full): round the bound down, so the table never exceeds what the operator allowed.
    max_flows = 1 << (f.max_flows.bit_length() - 1)
    if max_flows != f.max_flows:
        log.info("flows.max_flows %d rounded down to %d (a power of two)", f.max_flows, max_flows)
    return FlowConfig(
        flow_timeout=f.flow_timeout,
        activity_timeout=f.activity_timeout,
        close_grace=f.close_grace,
        early_packets=f.early_packets or None,
        early_seconds=f.early_seconds or None,
        early_again=f.early_again or None,
        max_flows=max_flows,
        scan_interval=f.scan_interval,
    )


def check_port_free(host: str, port: int) -> None:
    """Fail early, with a clear message, when the API address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                where="api.port",
                expected="a free port (set api.port or --set api.port=N)",
            ) from None
