"""Small slices of real data for the deep-model tests (fast: a few thousand rows, a few epochs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

NSL_COLUMNS = [
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment", "urgent",
    "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted", "num_root",
    "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds", "is_host_login",
    "is_guest_login", "count", "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count", "dst_host_srv_count",
    "dst_host_same_srv_rate", "dst_host_diff_srv_rate", "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate", "dst_host_serror_rate", "dst_host_srv_serror_rate", "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate", "label", "difficulty",
]  # fmt: skip
CATEGORICAL = ["protocol_type", "service", "flag"]


def encode(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One-hot + log1p + min-max fitted on ``train`` only (a stand-in for the preprocessing stage)."""
    numeric = [c for c in NSL_COLUMNS[:-2] if c not in CATEGORICAL]
    levels = {c: sorted(train[c].unique()) for c in CATEGORICAL}

    def matrix(df: pd.DataFrame) -> np.ndarray:
        parts = [np.log1p(np.maximum(df[numeric].to_numpy(float), 0))]
        parts += [
            (df[c].to_numpy()[:, None] == np.array(levels[c])[None, :]).astype(float) for c in CATEGORICAL
        ]
        return np.hstack(parts)

    a, b = matrix(train), matrix(test)
    lo, hi = a.min(0), a.max(0)
    keep = hi > lo
    scale = np.where(keep, hi - lo, 1)
    return ((a - lo) / scale)[:, keep].astype(np.float32), ((b - lo) / scale)[:, keep].astype(np.float32)


@pytest.fixture(scope="session")
def nsl_slice(data_file):
    """(X_train, y_train, X_test, y_test): 3,000 + 1,500 random rows of KDDTrain+_20Percent, binary labels."""
    frame = pd.read_csv(data_file("nsl-kdd/KDDTrain+_20Percent.txt.gz"), header=None, names=NSL_COLUMNS)
    frame = frame.sample(n=4500, random_state=7).reset_index(drop=True)
    train, test = frame.iloc[:3000], frame.iloc[3000:]
    X_train, X_test = encode(train, test)
    y = (frame["label"] != "normal").to_numpy(np.int64)
    return X_train, y[:3000], X_test, y[3000:]


@pytest.fixture(scope="session")
def synthetic():
    """A separable synthetic problem: (X [2000, 24], y) with y depending on a non-linear mix of features."""
    rng = np.random.default_rng(3)
    X = rng.random((2000, 24), dtype=np.float32)
    y = ((X[:, 0] + X[:, 1] * X[:, 2] + 0.3 * X[:, 5]) > 1.0).astype(np.int64)
    return X, y
