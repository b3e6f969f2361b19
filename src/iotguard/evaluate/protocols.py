"""Evaluation protocols: which rows train a model and which test it, named in every result.

Each dataset has one documented protocol (``docs/models.md`` explains why):

``nsl-kdd``      official: train on KDDTrain+ (or KDDTrain+_20Percent), test on KDDTest+ and KDDTest-21.
``cicids2017``   dedup-stratified: exact duplicate rows (features and label) removed from the whole sample
                 before a stratified 70/30 split by fine label; plus leave-one-family-out: for each attack
                 family, train without any of its rows and test on all of them plus the benign test rows.
``unsw-nb15``    dedup-stratified, as above (the partitioned CSVs have no time column to order by).
``iot23``        time-ordered: in each scenario the first 70 % of flows (by start time) train, the rest test;
                 and cross-scenario: train on the largest scenario, test on the others (unseen devices).

Hyper-parameters and thresholds are then chosen inside the training rows by :func:`train_model`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iotguard.core.errors import ConfigError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.datasets.base import Dataset
from iotguard.preprocess.dedup import deduplicate

log = logging.getLogger(__name__)

TEST_FRACTION = 0.3


@dataclass
class Experiment:
    """One training set and the test sets its models are scored on."""

    dataset: str
    protocol: str
    train_split: str
    train: Dataset
    tests: list[tuple[str, Dataset]]
    notes: dict[str, Any] = field(default_factory=dict)
    unseen_family: str | None = None
    """Leave-one-family-out: the attack family absent from ``train``; tests measure it as unseen."""

    @property
    def binary_only(self) -> bool:
        return self.unseen_family is not None


Loader = Callable[..., Dataset]


def plan(
    dataset: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    train_split: str | None = None,
    lofo: bool = True,
    progress: Progress = NO_PROGRESS,
    loader: Loader | None = None,
) -> list[Experiment]:
    """The experiments of ``dataset``'s protocol, with the data loaded."""
    if loader is None:
        from iotguard.datasets import load as loader  # noqa: PLW0127
    load = lambda split: loader(dataset, split, data_dir=data_dir, progress=progress)  # noqa: E731
    if dataset == "nsl-kdd":
        split = train_split or "KDDTrain+"
        if split not in ("KDDTrain+", "KDDTrain+_20Percent"):
            raise ConfigError(
                f"NSL-KDD training split {split!r}", expected="KDDTrain+ or KDDTrain+_20Percent"
            )
        return [official(dataset, load(split), [load("KDDTest+"), load("KDDTest-21")])]
    if dataset == "cicids2017":
        data = load(train_split or "improved")
        experiments = [dedup_stratified(data, seed=seed)]
        if lofo:
            experiments += leave_one_family_out(experiments[0])
        return experiments
    if dataset == "unsw-nb15":
        return [dedup_stratified(load(train_split or "training-set"), seed=seed)]
    if dataset == "iot23":
        data = load(train_split or "all")
        return [time_ordered(data), cross_scenario(data)]
    raise ConfigError(
        f"no evaluation protocol for dataset {dataset!r}", expected="nsl-kdd, cicids2017, unsw-nb15 or iot23"
    )


def official(dataset: str, train: Dataset, tests: list[Dataset]) -> Experiment:
    """The dataset's own fixed train and test files."""
    return Experiment(
        dataset=dataset,
        protocol="official",
        train_split=train.split,
        train=train,
        tests=[(t.split, t) for t in tests],
        notes={"description": f"train on {train.split}, test on " + ", ".join(t.split for t in tests)},
    )


def dedup_stratified(data: Dataset, *, seed: int = 0, test_fraction: float = TEST_FRACTION) -> Experiment:
    """Duplicates removed from the whole table first (reported), then a stratified split by fine label."""
    result = deduplicate(data.frame, features=data.features, label="label")
    frame = result.frame
    train_idx, test_idx = _stratified(frame["label"].astype(str).to_numpy(), test_fraction, seed)
    clean = Dataset(
        data.name, data.split, frame, list(data.features), list(data.categorical), list(data.files)
    )
    return Experiment(
        dataset=data.name,
        protocol="dedup-stratified",
        train_split=f"{data.split}:train",
        train=clean.subset(train_idx, split=f"{data.split}:train"),
        tests=[(f"{data.split}:test", clean.subset(test_idx, split=f"{data.split}:test"))],
        notes={
            "rows_before_dedup": len(data),
            "duplicates_removed": result.removed,
            "conflicting_rows": result.conflicting,
            "test_fraction": test_fraction,
            "seed": seed,
            "description": (
                f"{result.removed} duplicate rows removed before a stratified {1 - test_fraction:.0%}/"
                f"{test_fraction:.0%} split by label ({result.conflicting} rows share features with a "
                "differently labelled row)"
            ),
        },
    )


def leave_one_family_out(base: Experiment, min_rows: int = 10) -> list[Experiment]:
    """For every attack family: train on ``base.train`` without that family; test on all of its rows
    (train and test side) plus ``base``'s benign test rows, so it is an attack the model never saw."""
    test = base.tests[0][1]
    benign_test = test.subset(test.category.astype(str).to_numpy() == BENIGN)
    families = pd.concat([base.train.category, test.category]).astype(str)
    out = []
    for family in sorted(set(families) - {BENIGN}):
        in_train = base.train.category.astype(str).to_numpy() == family
        in_test = test.category.astype(str).to_numpy() == family
        if in_train.sum() + in_test.sum() < min_rows:
            continue
        unseen = pd.concat(
            [base.train.frame.loc[in_train], test.frame.loc[in_test], benign_test.frame], ignore_index=True
        )
        name = f"unseen:{family}"
        out.append(
            Experiment(
                dataset=base.dataset,
                protocol="leave-one-family-out",
                train_split=f"{base.train_split}-without-{family}",
                train=base.train.subset(~in_train, split=f"{base.train_split}-without-{family}"),
                tests=[(name, Dataset(test.name, name, unseen, list(test.features), list(test.categorical)))],
                notes={
                    "unseen_rows": int(in_train.sum() + in_test.sum()),
                    "benign_test_rows": len(benign_test),
                    "description": f"{family} left out of training; test = all {family} rows + benign test rows",
                },
                unseen_family=family,
            )
        )
    return out


def time_ordered(data: Dataset, test_fraction: float = TEST_FRACTION) -> Experiment:
    """Within each scenario (or the whole table), the earliest flows train and the latest test."""
    if data.time is None:
        raise ConfigError(
            f"{data.name} has no time column", expected="a ts_first column for a time-ordered split"
        )
    frame = data.frame
    groups = frame["scenario"] if "scenario" in frame.columns else pd.Series(0, index=frame.index)
    is_test = np.zeros(len(frame), dtype=bool)
    for _, rows in frame.groupby(groups, sort=True).groups.items():
        order = frame.loc[rows, "ts_first"].sort_values(kind="stable").index
        n_train = int(np.ceil(len(order) * (1 - test_fraction)))
        is_test[frame.index.get_indexer(order[n_train:])] = True
    return Experiment(
        dataset=data.name,
        protocol="time-ordered",
        train_split=f"{data.split}:early",
        train=data.subset(~is_test, split=f"{data.split}:early"),
        tests=[(f"{data.split}:late", data.subset(is_test, split=f"{data.split}:late"))],
        notes={
            "test_fraction": test_fraction,
            "description": f"per scenario, the first {1 - test_fraction:.0%} of flows by start time train, the rest test",
        },
    )


def cross_scenario(data: Dataset) -> Experiment:
    """Train on the largest scenario, test on every other one (other devices, other malware)."""
    if "scenario" not in data.frame.columns:
        raise ConfigError(f"{data.name} has no scenario column", expected="several scenarios")
    sizes = data.frame["scenario"].value_counts()
    if len(sizes) < 2:
        raise ConfigError(
            "one scenario only", expected="two or more IoT-23 scenarios for a cross-scenario test"
        )
    train_scenario = str(sizes.index[0])
    is_train = data.frame["scenario"].astype(str).to_numpy() == train_scenario
    others = sorted(str(s) for s in sizes.index[1:])
    return Experiment(
        dataset=data.name,
        protocol="cross-scenario",
        train_split=train_scenario,
        train=data.subset(is_train, split=train_scenario),
        tests=[("+".join(others), data.subset(~is_train, split="+".join(others)))],
        notes={"description": f"train on scenario {train_scenario}, test on {', '.join(others)}"},
    )


def _stratified(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(rows) * test_fraction)) if len(rows) > 1 else 0
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
