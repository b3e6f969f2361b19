"""The sensor's learning period (``model.learn_flows``): record the site's flow records in the state directory,
bounded, so that a site baseline can be fitted on them (``iotguard.detect.site``) without an operator
capturing and fitting by hand.

The records are kept as parquet chunks in ``learning/`` (each written to a temporary name and renamed, so a
crash leaves whole chunks only): a restart counts what is there and goes on from it. A crash loses at most
the records since the last flush (``service.checkpoint_interval``); learning then takes that much longer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from iotguard.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

LEARNING_DIR = "learning"
SITE_DETECTOR_DIR = "site-detector"
"""Where the sensor keeps the site detector it fitted (in its state directory)."""
KEPT_IDENTITY = ("ts_first", "ts_last", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "partial")
"""Identity columns kept besides the detector's features: the fit puts flows in a canonical order by them and
the summary reports the time they cover."""


class FlowRecorder:
    """Flow records of the site's traffic, up to ``target``, in ``folder`` (parquet chunks). Not thread-safe:
    one thread records and flushes (the sensor's detection thread)."""

    def __init__(self, folder: Path, target: int, columns: list[str]) -> None:
        self.folder = folder
        self.target = target
        self.columns = [*dict.fromkeys([*KEPT_IDENTITY, *columns])]
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in folder.glob(".*.tmp"):  # a chunk a crash left half-written
            stale.unlink(missing_ok=True)
        self._chunks: list[Path] = []
        self.saved = 0
        # The next chunk's number: one past the highest name ever used here (set aside ones included), never
        # the count of records: a damaged chunk set aside lowers the count, and a chunk named after it would
        # replace a good one (its records lost, the new ones read twice).
        self._next = 1 + max((_index(p) for p in folder.glob("flows-*.*")), default=-1)
        for path in sorted(folder.glob("flows-*.parquet")):
            rows = _rows(path)
            if rows is not None:
                self._chunks.append(path)
                self.saved += rows
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0

    @property
    def recorded(self) -> int:
        """Records kept so far (saved or waiting for the next flush)."""
        return self.saved + self._pending_rows

    @property
    def full(self) -> bool:
        return self.recorded >= self.target

    def record(self, flows: pd.DataFrame) -> int:
        """Keep ``flows`` (as many as are still wanted); returns how many were kept."""
        wanted = self.target - self.recorded
        if wanted <= 0 or not len(flows):
            return 0
        part = flows.iloc[:wanted].reindex(columns=[c for c in self.columns if c in flows.columns])
        self._pending.append(part.reset_index(drop=True))
        self._pending_rows += len(part)
        return len(part)

    def flush(self) -> None:
        """Write what is pending as one more chunk."""
        if not self._pending:
            return
        frame = pd.concat(self._pending, ignore_index=True)
        path = self.folder / f"flows-{self._next:09d}.parquet"
        tmp = self.folder / f".{path.name}.{os.getpid()}.tmp"
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.error("cannot save learnt flows to %s: %s (kept in memory)", path, exc)
            return
        self._chunks.append(path)
        self._next += 1
        self.saved += len(frame)
        self._pending, self._pending_rows = [], 0

    def flows(self) -> pd.DataFrame:
        """Every saved record (flush first)."""
        if not self._chunks:
            raise DataError("no flows recorded", where=str(self.folder), expected="a learning period's flows")
        try:
            frames = [pd.read_parquet(p) for p in self._chunks]
        except (OSError, ValueError) as exc:
            raise DataError(f"unreadable learnt flows ({exc})", where=str(self.folder)) from exc
        return pd.concat(frames, ignore_index=True).iloc[: self.target]

    def clear(self) -> None:
        """Delete the records (the site detector fitted on them is saved). The counts stay: a recorder that
        looked empty again would start recording again."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _index(path: Path) -> int:
    """The number in a chunk's name (``flows-000000042.parquet`` or, set aside, ``.bad``); -1 if none."""
    number = path.name.removeprefix("flows-").split(".", 1)[0]
    return int(number) if number.isdigit() else -1


def _rows(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(path).num_rows)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        # set aside rather than deleted, for a look; learning records that many more instead
        log.warning("ignoring unreadable learnt flows %s: %s", path, exc)
        with contextlib.suppress(OSError):
            path.rename(path.with_suffix(".bad"))
        return None


class LearningPeriod:
    """The sensor's learning period: records flows until ``target``, then fits the site detector on them
    (:func:`iotguard.detect.site.fit_site_detector`) into ``state_dir/site-detector``, from which a restart
    loads it (:func:`learnt_detector`). ``mode`` (``model.learn_alerts``) says what happens to flow alerts
    until then: ``record`` (stored and shown, not acted on), ``suppress`` (flows not scored), ``act``."""

    def __init__(self, state_dir: Path, target: int, mode: str, base: Any, source: str) -> None:
        from iotguard.detect.site import is_site_detector

        if is_site_detector(base):
            raise ConfigError(
                f"the detector {base.name!r} is already fitted to a site baseline",
                where="model.learn_flows",
                expected="0 with a fitted detector, or model.path set to the detector to fit (or left empty)",
            )
        _need_training()
        self.state_dir = state_dir
        self.mode = mode
        self.base = base
        self.source = source
        self.recorder = FlowRecorder(state_dir / LEARNING_DIR, target, base.features)
        self.failed: str | None = None
        self.fitting = False

    @property
    def target(self) -> int:
        return self.recorder.target

    def holds(self, alert: Any) -> bool:
        """Whether the response policy must leave ``alert`` alone: a flow alert while learning in ``record``
        mode (the telemetry and the inventory are not what is being learnt; they act as usual)."""
        return self.mode == "record" and getattr(alert, "source", None) == "flow"

    @property
    def scores(self) -> bool:
        """Whether flows are scored while learning (not in ``suppress`` mode)."""
        return self.mode != "suppress"

    def fit(self) -> Any | None:
        """Fit and save the site detector on the recorded flows (flushed by the recording thread first: this
        may run in another); None (logged, kept in :attr:`failed`) if that fails: the sensor goes on with the base detector, and a restart tries again (the flows stay)."""
        from iotguard.core.errors import IotguardError
        from iotguard.detect.site import fit_site_detector

        self.fitting = True
        started = time.perf_counter()
        try:
            flows = self.recorder.flows()
            detector = fit_site_detector(
                self.base,
                flows,
                self.state_dir / SITE_DETECTOR_DIR,
                source=f"the sensor's learning period (model.learn_flows), last on {self.source}",
            )
        except IotguardError as exc:
            self.failed = str(exc)
            log.error("cannot fit the site baseline: %s; %s goes on scoring", exc, self.base.name)
            return None
        except Exception as exc:  # a bug: keep the sensor up with the base detector, say so
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("fitting the site baseline failed; %s goes on scoring", self.base.name)
            return None
        finally:
            self.fitting = False
        log.warning(
            "learning done: site baseline fitted on %d flow records in %.1f s, saved in %s; scoring with it now",
            len(flows), time.perf_counter() - started, self.state_dir / SITE_DETECTOR_DIR,
        )  # fmt: skip
        return detector

    def state(self) -> dict[str, Any]:
        return {
            "active": True,
            "flows": self.recorder.recorded,
            "target": self.target,
            "alerts": self.mode,
            "fitting": self.fitting,
            "failed": self.failed,
        }


def learnt_detector(state_dir: Path) -> Any | None:
    """The site detector a past learning period left in ``state_dir``, if any. A damaged one raises (an
    :class:`~iotguard.core.errors.IotguardError` naming it); its learnt flows are then left alone."""
    from iotguard.detect.detector import DETECTOR_FILE, Detector

    path = state_dir / SITE_DETECTOR_DIR
    if not (path / DETECTOR_FILE).is_file():
        return None
    detector = Detector.load(path)
    # stopped between the fit and the switch: the records it was fitted on are left over
    shutil.rmtree(state_dir / LEARNING_DIR, ignore_errors=True)
    return detector


def _need_training() -> None:
    import importlib.util

    # skl2onnx: the site baseline's anomaly model (k-means) is exported to ONNX with it
    missing = [m for m in ("sklearn", "onnx", "skl2onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the learning period fits a model, which needs {', '.join(missing)}",
            where="model.learn_flows",
            expected="the train extra (pip install 'iotguard[train]'), or 0 and a baseline fitted elsewhere "
            "(iotguard baseline)",
        )
