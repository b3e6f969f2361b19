"""What a data directory holds of each dataset: splits ready or missing, files present, record counts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from iotguard.core import paths
from iotguard.core.errors import DataError, DatasetNotFoundError
from iotguard.datasets.reading import count_records
from iotguard.datasets.registry import module_of
from iotguard.datasets.spec import GZ, DataFile, Source


@dataclass(frozen=True)
class SplitStatus:
    name: str
    description: str
    default: bool
    files: list[Path]
    problem: str = ""
    """Empty when the split can be loaded; else why not (missing files)."""

    @property
    def ready(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class FileStatus:
    path: str
    """Relative to the data directory, without ``.gz``."""
    found: Path | None
    expected_rows: int | None
    rows: int | None
    """Records counted in the file found (None when missing or unreadable)."""
    source: Source | None
    known: bool
    """Described by the dataset's spec (pinned hash, expected rows); False for an extra file found."""
    problem: str = ""


@dataclass(frozen=True)
class Inventory:
    name: str
    root: Path
    splits: list[SplitStatus]
    files: list[FileStatus]


def inventory(name: str, data_dir: str | os.PathLike[str] | None = None, *, count: bool = True) -> Inventory:
    """The state of dataset ``name`` in the data directory; ``count`` also counts the records of each file."""
    module = module_of(name)
    spec = module.SPEC
    root = paths.data_dir(data_dir)
    split_names = [*spec.splits, *getattr(module, "extra_splits", lambda _root: [])(root)]
    splits = []
    for split in split_names:
        description = (
            spec.splits[split].description if split in spec.splits else "folder found in the data dir"
        )
        try:
            found = module.split_files(root, split)
            problem = ""
        except DatasetNotFoundError as exc:
            found, problem = [], exc.what
        splits.append(SplitStatus(split, description, split == spec.default_split, found, problem))

    known = {f.path: f for f in spec.files()}
    rows: list[FileStatus] = [_status(f.path, f, f.locate(root), root, module, count) for f in known.values()]
    seen = {r.found for r in rows if r.found is not None}
    for split in splits:
        for path in split.files:
            if path not in seen:
                seen.add(path)
                relative = path.relative_to(root).as_posix().removesuffix(GZ)
                rows.append(_status(relative, known.get(relative), path, root, module, count))
    return Inventory(name, root, splits, rows)


def _status(
    relative: str, f: DataFile | None, found: Path | None, root: Path, module, count: bool
) -> FileStatus:  # noqa: ANN001
    rows = None
    problem = ""
    if found is not None and count:
        try:
            rows = count_records(found, module.HEADER_LINES)
        except DataError as exc:
            problem = exc.message
    return FileStatus(
        path=relative,
        found=found,
        expected_rows=f.rows if f else None,
        rows=rows,
        source=f.source if f else None,
        known=f is not None,
        problem=problem,
    )
