"""A small NSL-KDD slice, and trained pipelines shared by the model tests (trained once per session)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from iotguard.models.pipeline import TrainedPipeline, train_model


@dataclass
class Slice:
    train: pd.DataFrame
    test: pd.DataFrame
    categorical: list[str]
    features: list[str]


@pytest.fixture(scope="session")
def nsl_slice(data_root, data_file) -> Slice:
    """4,000 training and 2,000 test rows of KDDTrain+_20Percent (its rows are in random order)."""
    from iotguard.datasets import load

    data_file("nsl-kdd/KDDTrain+_20Percent.txt.gz")
    ds = load("nsl-kdd", "KDDTrain+_20Percent", data_dir=data_root)
    frame = ds.frame
    return Slice(
        frame.iloc[:4000].reset_index(drop=True),
        frame.iloc[4000:6000].reset_index(drop=True),
        list(ds.categorical),
        list(ds.features),
    )


@pytest.fixture(scope="session")
def trained(nsl_slice: Slice):
    cache: dict[tuple[str, str], TrainedPipeline] = {}

    def get(name: str, task: str = "binary") -> TrainedPipeline:
        if (name, task) not in cache:
            s = nsl_slice
            y = s.train["category"] if task == "multiclass" else s.train["is_attack"]
            cache[(name, task)] = train_model(
                name, s.train[s.features], y, task=task, categorical=s.categorical, seed=0
            )
        return cache[(name, task)]

    return get
