"""Find a split's files in the data directory, or say exactly which paths were expected."""

from __future__ import annotations

from pathlib import Path

from iotguard.core.errors import DatasetNotFoundError
from iotguard.datasets.spec import GZ, DataFile, DatasetSpec, SplitSpec


def split_spec(spec: DatasetSpec, split: str) -> SplitSpec:
    try:
        return spec.splits[split]
    except KeyError:
        raise DatasetNotFoundError(
            f"unknown split {split!r} of dataset {spec.name!r}",
            expected="one of " + ", ".join(spec.splits),
        ) from None


def data_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The data files of a folder (plain or gzipped), sorted by name."""
    if not folder.is_dir():
        return []
    wanted = suffixes + tuple(s + GZ for s in suffixes)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(wanted))


def split_paths(
    spec: DatasetSpec, split: SplitSpec, root: Path, suffixes: tuple[str, ...] = (".csv",)
) -> list[tuple[Path, DataFile | None]]:
    """Each file of ``split`` under ``root`` with its known description (None for an unknown extra file).

    Raises :class:`DatasetNotFoundError` naming the expected paths when files are missing.
    """
    hint = f"run `iotguard datasets download {spec.name}` or see docs/datasets.md"
    if split.folders:
        for folder in split.folders:
            paths = data_files(root / folder, suffixes)
            if paths:
                known = {f.path: f for f in split.files}
                return [(p, known.get(_plain(p, root))) for p in paths]
        looked = ", ".join(str(root / f) + "/" for f in split.folders)
        raise DatasetNotFoundError(
            f"no data files for {spec.name} split {split.name!r}",
            where=looked,
            expected=f"{'/'.join('*' + s for s in suffixes)} files in one of these folders; {hint}",
        )
    found: list[tuple[Path, DataFile | None]] = []
    missing: list[DataFile] = []
    for f in split.files:
        path = f.locate(root)
        if path is None:
            missing.append(f)
        else:
            found.append((path, f))
    if missing:
        expected = "; ".join(" or ".join(str(p) for p in f.candidates(root)) for f in missing)
        raise DatasetNotFoundError(
            f"{spec.name} split {split.name!r}: {len(missing)} of {len(split.files)} files missing",
            expected=f"{expected}; {hint}",
        )
    return found


def _plain(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel[: -len(GZ)] if rel.endswith(GZ) else rel
