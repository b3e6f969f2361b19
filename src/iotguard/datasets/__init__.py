"""Benchmark datasets (NSL-KDD, CICIDS2017, UNSW-NB15, IoT-23) behind one registry.

``load(name, split)`` returns a :class:`Dataset` whose feature columns use the canonical names of
:mod:`iotguard.core.schema` wherever the dataset has flow statistics; ``specs()`` describes every dataset
(splits, files, citation, license, download sources).
"""

from iotguard.datasets.base import Dataset
from iotguard.datasets.registry import load, specs
from iotguard.datasets.spec import DataFile, DatasetSpec, Source, SplitSpec

__all__ = ["DataFile", "Dataset", "DatasetSpec", "Source", "SplitSpec", "load", "specs"]
