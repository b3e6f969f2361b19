"""The default detector: built from iotguard's own lab traffic on first use, then cached.

``iotguard detect CAPTURE`` without ``--model`` uses it. It is built from the lab's ``train``, ``floods``,
``benign`` and ``site`` scenarios (``iotguard.lab``): their captures go through the flow extractor with early records, exactly
as the sensor sees traffic, get their labels from the lab's episodes, and train a classifier and an anomaly
model (:func:`iotguard.detect.build.build_detector`). It is cached in ``state_dir()/models/default`` and
rebuilt when asked (``--rebuild``), when it is missing, when it no longer loads, or when it was built by
another recipe (:data:`RECIPE`). See docs/detection.md for what it knows and does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from iotguard.core.errors import ArtifactError, ConfigError
from iotguard.core.paths import state_dir
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.detect.build import DEFAULT_TARGET_FPR, build_detector
from iotguard.detect.detector import Detector

log = logging.getLogger(__name__)

LabSpec = tuple[str, int | None, float | None, int | None]
"""(scenario, seed, duration, devices); None keeps the scenario's own."""
DEFAULT_SCENARIOS: tuple[LabSpec, ...] = (
    ("train", None, None, None),
    # recipe 4: floods of every Mirai vector at many rates, lengths and payload sizes, from one bot or several
    # (`train` alone has three UDP flood flows: too few to learn the vector)
    ("floods", None, None, None),
    # IoT devices keep long connections, so benign flows are few per minute: three longer, larger benign
    # networks (other seeds than the benign scenario's own 7) give the thresholds enough benign flows
    ("benign", 101, 1800.0, 40),
    ("benign", 102, 1800.0, 30),
    ("benign", 103, 1800.0, 50),
    # what real networks carry besides IoT devices: web browsing, SSH/telnet administration, pings, TCP
    # checks, Modbus polling, other MQTT clients (seeds 201-203; validation uses others, docs/detection.md)
    ("site", 201, 900.0, 16),
    ("site", 202, 900.0, 24),
    ("site", 203, 900.0, 32),
)
ATTACK_FLOWS_ONLY = frozenset({"floods"})
"""Scenarios that give the default detector their attack flows only: ``floods`` is there to teach floods, and
keeping its benign network out leaves the benign class (and with it the anomaly model, the thresholds and
their calibration) as the benign and site networks above make it. With its benign flows too, recipe 4 called
a validation SCADA host's Modbus polls (a connection per poll) MQTT abuse: 2 false incidents
(docs/benchmarks.md, validation)."""
EARLY_PACKETS = 10
RECIPE = 4
"""Version of the recipe (scenarios, models, thresholds); a cached detector built by another is rebuilt."""


TRAINING_MODULES = ("sklearn", "lightgbm", "onnx", "skl2onnx")
"""What building the detector imports from the ``train`` extra (a sensor's base install has none of it)."""


def require_training_modules() -> None:
    """Fail in one line, before any lab traffic is generated, where the ``train`` extra is not installed."""
    import importlib.util

    missing = [name for name in TRAINING_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"building the default detector needs {', '.join(missing)}, which this install lacks",
            expected="pip install 'iotguard[train]', or --model DIR: a prebuilt detector",
        )


def default_detector_path() -> Path:
    return state_dir() / "models" / "default"


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One builder at a time (two `iotguard detect` started together must not both build)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lab_flows(
    scenarios: Sequence[LabSpec] = DEFAULT_SCENARIOS,
    *,
    workdir: Path,
    early: int = EARLY_PACKETS,
    progress: Progress = NO_PROGRESS,
) -> pd.DataFrame:
    """Generate lab scenarios and extract their labelled flows (final and early records)."""
    from iotguard.flows import iter_flows
    from iotguard.lab import generate

    frames = []
    for i, (name, seed, duration, devices) in enumerate(scenarios):
        out = workdir / f"{i}-{name}"
        run = generate(
            name, duration=duration, seed=seed, devices=devices, out_dir=out, progress=progress, flows=False
        )
        flows = iter_flows(run.capture, early=early, labels=run.episodes_path, progress=progress).to_pandas()
        flows["scenario"] = f"{name}:{run.seed}"
        frames.append(flows)
    return pd.concat(frames, ignore_index=True)


def build_default(
    path: Path | None = None,
    *,
    scenarios: Sequence[LabSpec] = DEFAULT_SCENARIOS,
    seed: int = 0,
    target_fpr: float = DEFAULT_TARGET_FPR,
    progress: Progress = NO_PROGRESS,
) -> Path:
    """Build the default detector into ``path`` (default :func:`default_detector_path`)."""
    path = Path(path) if path is not None else default_detector_path()
    require_training_modules()
    with tempfile.TemporaryDirectory(prefix="iotguard-default-") as tmp:
        work = Path(tmp)
        with progress.task("building the default detector from lab traffic"):
            flows = lab_flows(scenarios, workdir=work, progress=progress)
            source = flows["scenario"].str.split(":").str[0]
            flows = flows[~(source.isin(ATTACK_FLOWS_ONLY) & (flows["category"] == BENIGN))]
            flows = flows.reset_index(drop=True)
            det, sources = build_detector(
                flows, flows["category"], work / "models", target_fpr=target_fpr, seed=seed, name="iotguard-lab",
                progress=progress, strata=flows["label"],
            )  # fmt: skip
            det.info["built_from"] = {
                "recipe": RECIPE,
                "scenarios": [list(s) for s in scenarios],
                "early_packets": EARLY_PACKETS,
                "flows": int(len(flows)),
                "early_records": int(flows["partial"].sum()) if "partial" in flows else 0,
            }
            det.save(path, sources=sources)
    log.info("default detector built in %s", path)
    return path


def default_detector(*, rebuild: bool = False, progress: Progress = NO_PROGRESS) -> Detector:
    """The cached default detector, built first when missing, broken or ``rebuild`` is asked for."""
    path = default_detector_path()
    with _lock(path):
        if not rebuild and (path / "detector.json").is_file():
            try:
                detector = Detector.load(path)
            except ArtifactError as exc:
                log.warning("default detector in %s does not load (%s); rebuilding it", path, exc)
            else:
                recipe = detector.info.get("built_from", {}).get("recipe", 1)
                if recipe == RECIPE:
                    return detector
                log.info(
                    "default detector in %s is of recipe %s, not %s; rebuilding it", path, recipe, RECIPE
                )
        build_default(path, progress=progress)
    return Detector.load(path)
