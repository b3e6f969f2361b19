"""A site detector: a detector fitted once to a site's own normal traffic and kept as a detector directory.

``iotguard detect --baseline`` fits the site baseline (:func:`iotguard.detect.build.fit_baseline`) for one run
and throws it away; the sensor, which runs for months, needs it kept. :func:`fit_site_detector` fits it and
saves it with :meth:`Detector.save` (ONNX artifacts and JSON manifests, every file hashed; nothing pickled),
so ``iotguard run`` (``model.path``) and ``iotguard detect --model`` load it like any detector. The sensor's
learning period (``model.learn_flows``) calls the same function on the flows it recorded.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.detect.build import DEFAULT_TARGET_FPR, Workdir, fit_baseline
from iotguard.detect.detector import DETECTOR_FILE, Detector

log = logging.getLogger(__name__)

SITE_INFO = "site_baseline"
"""The key of ``Detector.info`` that describes the baseline a site detector was fitted on."""
MIN_FLOWS = 20
"""Fewer flows than this cannot both fit a model and calibrate its threshold (:func:`fit_baseline`)."""


def is_site_detector(detector: Detector) -> bool:
    return SITE_INFO in detector.info


def baseline_summary(flows: pd.DataFrame) -> dict[str, Any]:
    """What a baseline holds: flow records (early ones apart) and the time they cover."""
    out: dict[str, Any] = {"flows": int(len(flows))}
    if "partial" in flows:
        out["early_records"] = int(flows["partial"].astype(bool).sum())
    if len(flows) and "ts_first" in flows and "ts_last" in flows:
        first = float(np.nanmin(flows["ts_first"].to_numpy(dtype=np.float64)))
        last = float(np.nanmax(flows["ts_last"].to_numpy(dtype=np.float64)))
        out["first_seen"], out["last_seen"] = first, last
        out["seconds"] = max(0.0, last - first)
    return out


def check_target_fpr(target_fpr: float) -> None:
    if not 0.0 < target_fpr < 1.0:
        raise ConfigError(f"target FPR {target_fpr}", where="--target-fpr", expected="a fraction in (0, 1)")


def check_flows(flows: pd.DataFrame, where: str) -> None:
    """Enough flow records to fit a baseline on (checked before any model is loaded or built)."""
    if len(flows) < MIN_FLOWS:
        raise DataError(
            f"only {len(flows)} flow records of normal traffic",
            where=where,
            expected=f"at least {MIN_FLOWS}; better hours to days of the site's normal traffic",
        )


def fit_site_detector(
    base: Detector,
    flows: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    target_fpr: float = DEFAULT_TARGET_FPR,
    source: str | None = None,
    seed: int = 0,
    progress: Progress = NO_PROGRESS,
) -> Detector:
    """Fit ``base`` to a site's normal ``flows`` (a site anomaly model, thresholds from its held-out flows)
    and save the result as the detector directory ``out`` (replaced atomically if it exists). Returns the
    detector as loaded back from ``out``, so that what runs now is exactly what a restart will load.

    ``source`` (where the flows came from) is recorded with the detector. Refuses a ``base`` that is itself a
    site detector: fitting the baseline only ever raises the classifier's threshold, so refitting a fitted
    detector would ratchet it up each time; fit again from the detector it came from."""
    where = source or "the baseline flows"
    if is_site_detector(base):
        raise ConfigError(
            f"detector {base.name!r} is already fitted to a site baseline",
            where=where,
            expected="the detector it was fitted from (the default when --model is left out)",
        )
    check_flows(flows, where)
    check_target_fpr(target_fpr)
    out = Path(out)
    with Workdir(prefix="iotguard-site-") as work:
        detector, sources = fit_baseline(
            base, flows, work, target_fpr=target_fpr, seed=seed, progress=progress
        )
        detector.info[SITE_INFO] = baseline_summary(flows) | {
            "source": source,
            "fitted_from": base.name,
            "target_fpr": target_fpr,
            "seed": seed,
            "fitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        detector.save(out, sources=sources)
    log.info("site detector fitted on %d flows saved in %s", len(flows), out)
    return Detector.load(out)


def check_output(out: Path, *, force: bool) -> None:
    """Refuse to replace anything but a detector directory, and a detector directory without ``force``."""
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty folder: Detector.save renames its work into place
        return
    if not (out / DETECTOR_FILE).is_file():
        raise ConfigError(
            "exists and is not a detector directory", where=str(out), expected="a new path or a detector"
        )
    if not force:
        raise ConfigError("a detector is already there", where=str(out), expected="another path, or --force")
