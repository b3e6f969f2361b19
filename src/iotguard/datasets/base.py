"""The typed dataset every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Dataset:
    """One split of one dataset.

    ``frame`` holds the feature columns (``features``, in order), the label columns ``label`` (fine label),
    ``category`` (attack family; benign rows are ``"Benign"``) and ``is_attack`` (0/1), and, where the dataset
    has them, identity columns such as ``ts_first`` (epoch seconds) and ``src_ip``.
    """

    name: str
    split: str
    frame: pd.DataFrame
    features: list[str]
    categorical: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.features]

    @property
    def y(self) -> np.ndarray:
        return self.frame["is_attack"].to_numpy(dtype=np.int8)

    @property
    def category(self) -> pd.Series:
        return self.frame["category"]

    @property
    def label(self) -> pd.Series:
        return self.frame["label"]

    @property
    def time(self) -> pd.Series | None:
        return self.frame.get("ts_first", None)

    @property
    def host(self) -> pd.Series | None:
        return self.frame.get("src_ip", None)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, mask: np.ndarray | pd.Series, split: str | None = None) -> Dataset:
        """Rows where ``mask`` is true, as a new dataset (index reset)."""
        return Dataset(
            name=self.name,
            split=split or self.split,
            frame=self.frame.loc[np.asarray(mask)].reset_index(drop=True),
            features=list(self.features),
            categorical=list(self.categorical),
            files=list(self.files),
        )
