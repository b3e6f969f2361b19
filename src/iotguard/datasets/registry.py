"""The dataset registry: one module per dataset.

Each module has ``SPEC`` (a :class:`DatasetSpec`), ``HEADER_LINES``, ``split_files(root, split)`` (the paths a
split reads, or :class:`DatasetNotFoundError`), ``load(root, split, progress)`` and optionally
``extra_splits(root)`` (splits found in the data directory beyond the spec's: folders, scenarios).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from iotguard.core import paths
from iotguard.core.errors import DatasetNotFoundError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.datasets import cicids2017, iot23, nsl_kdd, unsw_nb15
from iotguard.datasets.base import Dataset
from iotguard.datasets.spec import DatasetSpec

_MODULES: dict[str, ModuleType] = {m.SPEC.name: m for m in (nsl_kdd, cicids2017, unsw_nb15, iot23)}


def specs() -> dict[str, DatasetSpec]:
    """Every dataset iotguard can load, by name."""
    return {name: module.SPEC for name, module in _MODULES.items()}


def spec(name: str) -> DatasetSpec:
    return module_of(name).SPEC


def module_of(name: str) -> ModuleType:
    try:
        return _MODULES[name]
    except KeyError:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}", expected="one of " + ", ".join(_MODULES)
        ) from None


def load(
    name: str,
    split: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    progress: Progress = NO_PROGRESS,
) -> Dataset:
    """Load one split of a dataset (``split=None``: the dataset's default split).

    Files are looked up in ``data_dir``, else ``$IOTGUARD_DATA_DIR``, else ``~/.cache/iotguard/datasets``.
    Raises :class:`~iotguard.core.errors.DatasetNotFoundError` naming the expected paths when files are
    missing and :class:`~iotguard.core.errors.DataError` naming file, line and column when one is malformed.
    """
    module = module_of(name)
    root: Path = paths.data_dir(data_dir)
    return module.load(root, split or module.SPEC.default_split, progress)
