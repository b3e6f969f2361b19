"""Benchmark datasets (NSL-KDD, CICIDS2017, UNSW-NB15, IoT-23) behind one registry.

``load(name, split)`` returns a :class:`Dataset` whose feature columns use the canonical names of
:mod:`iotguard.core.schema` wherever the dataset has flow statistics.
"""

from iotguard.datasets.base import Dataset

__all__ = ["Dataset"]
