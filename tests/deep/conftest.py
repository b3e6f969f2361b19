"""Small slices of real data for the deep-model tests (fast: a few thousand rows, a few epochs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import iotguard.models.deep  # noqa: E402,F401  (before torch: it sets passive OpenMP waiting for shared CPUs)

pytest.importorskip("torch")


@dataclass
class Table:
    train: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    categorical: list[str]


@pytest.fixture(scope="session")
def nsl_table(data_root, data_file) -> Table:
    """3,000 training and 1,500 test rows of KDDTrain+_20Percent (its rows are in random order)."""
    from iotguard.datasets import load

    data_file("nsl-kdd/KDDTrain+_20Percent.txt.gz")
    ds = load("nsl-kdd", "KDDTrain+_20Percent", data_dir=data_root)
    frame = ds.frame
    return Table(
        frame.iloc[:3000].reset_index(drop=True),
        frame.iloc[3000:4500].reset_index(drop=True),
        list(ds.features),
        list(ds.categorical),
    )


@pytest.fixture(scope="session")
def nsl_slice(nsl_table):
    """(X_train, y_train, X_test, y_test): the NSL-KDD slice preprocessed (fitted on its training rows)."""
    from iotguard.preprocess.table import TablePreprocessor

    t = nsl_table
    pre = TablePreprocessor(categorical=t.categorical).fit(t.train[t.features])
    return (
        pre.transform(t.train[t.features]),
        t.train["is_attack"].to_numpy(np.int64),
        pre.transform(t.test[t.features]),
        t.test["is_attack"].to_numpy(np.int64),
    )


@pytest.fixture(scope="session")
def cic_table(data_root, data_file):
    """About 4,300 random rows (10 %) of the CICIDS2017 corrected sample, with src_ip and ts_first."""
    from iotguard.datasets import load

    data_file("cicids2017/improved_cns2022_rnd5000/BENIGN_5000.csv.gz")
    ds = load("cicids2017", data_dir=data_root)
    return ds.subset(np.random.default_rng(0).random(len(ds)) < 0.1)


@pytest.fixture(scope="session")
def synthetic():
    """A separable synthetic problem: (X [2000, 24], y) with y depending on a non-linear mix of features."""
    rng = np.random.default_rng(3)
    X = rng.random((2000, 24), dtype=np.float32)
    y = ((X[:, 0] + X[:, 1] * X[:, 2] + 0.3 * X[:, 5]) > 1.0).astype(np.int64)
    return X, y
