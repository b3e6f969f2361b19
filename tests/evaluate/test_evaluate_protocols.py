"""Protocols: duplicates removed before splitting, families really left out, time order respected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iotguard.core.errors import ConfigError
from iotguard.datasets.base import Dataset
from iotguard.evaluate.protocols import (
    cross_scenario,
    dedup_stratified,
    leave_one_family_out,
    plan,
    time_ordered,
)


def dataset(n: int = 600, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    category = rng.choice(["Benign", "DoS", "PortScan", "Botnet"], n, p=[0.5, 0.2, 0.2, 0.1])
    frame = pd.DataFrame(
        {"a": rng.integers(0, 30, n).astype(float), "b": rng.integers(0, 3, n).astype(float)}
    )
    frame["label"] = category
    frame["category"] = category
    frame["is_attack"] = (category != "Benign").astype(np.int8)
    frame["ts_first"] = rng.permutation(n).astype(float)
    frame["scenario"] = rng.choice(["s1", "s1", "s2", "s3"], n)
    return Dataset("toy", "all", frame, ["a", "b"])


def keys(ds: Dataset) -> set[tuple]:
    return set(map(tuple, ds.frame[["a", "b", "label"]].to_numpy().tolist()))


def test_dedup_stratified_removes_duplicates_before_splitting():
    data = dataset()
    exp = dedup_stratified(data, seed=1)
    train, test = exp.train, exp.tests[0][1]
    duplicated = data.frame.duplicated(subset=["a", "b", "label"]).sum()
    assert exp.notes["duplicates_removed"] == duplicated > 0
    assert len(train) + len(test) == len(data) - duplicated
    assert not keys(train) & keys(test)  # no test row is a copy of a training row
    share = test.category.value_counts() / (train.category.value_counts() + test.category.value_counts())
    assert share.between(0.2, 0.4).all()  # stratified: about 30 % of every class
    assert exp.protocol == "dedup-stratified"


def test_leave_one_family_out_never_trains_on_the_family():
    base = dedup_stratified(dataset(), seed=0)
    folds = leave_one_family_out(base)
    assert [f.unseen_family for f in folds] == ["Botnet", "DoS", "PortScan"]
    for fold in folds:
        assert fold.unseen_family not in set(fold.train.category)
        test = fold.tests[0][1]
        assert set(test.category) == {"Benign", fold.unseen_family}
        everything = pd.concat([base.train.category, base.tests[0][1].category])
        assert (test.category == fold.unseen_family).sum() == (everything == fold.unseen_family).sum()
        assert fold.binary_only


def test_time_ordered_split_trains_on_the_past():
    data = dataset()
    exp = time_ordered(data)
    train, test = exp.train.frame, exp.tests[0][1].frame
    assert len(train) + len(test) == len(data)
    for scenario in ("s1", "s2", "s3"):
        assert (
            train.loc[train.scenario == scenario, "ts_first"].max()
            < test.loc[test.scenario == scenario, "ts_first"].min()
        )


def test_cross_scenario_tests_on_unseen_scenarios():
    exp = cross_scenario(dataset())
    assert set(exp.train.frame.scenario) == {"s1"}
    assert set(exp.tests[0][1].frame.scenario) == {"s2", "s3"}


def test_unknown_dataset_has_no_protocol():
    with pytest.raises(ConfigError, match="no evaluation protocol"):
        plan("kdd99")


def test_nsl_kdd_protocol_uses_the_official_files(data_file):
    data_file("nsl-kdd/KDDTest-21.txt.gz")
    [exp] = plan("nsl-kdd", train_split="KDDTrain+_20Percent")
    assert exp.train_split == "KDDTrain+_20Percent"
    assert [name for name, _ in exp.tests] == ["KDDTest+", "KDDTest-21"]
    assert [len(t) for _, t in exp.tests] == [22544, 11850]
