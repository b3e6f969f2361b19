"""What a dataset is made of: splits, their files, where each file comes from and how to check it.

Paths are relative to the data directory (:func:`iotguard.core.paths.data_dir`). A file is named without a
compression suffix (``nsl-kdd/KDDTrain+.txt``); the loaders also read a gzip copy next to it
(``nsl-kdd/KDDTrain+.txt.gz``), which is how ``shared/data`` and the mirrors hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GZ = ".gz"


@dataclass(frozen=True)
class Source:
    """A pinned public upstream copy of one file.

    ``sha256`` is the hash of exactly the bytes at ``url``. When ``member`` is set the URL is a zip archive
    and the file is that member of it (the member's own hash is :attr:`DataFile.sha256`).
    """

    url: str
    sha256: str
    member: str | None = None
    note: str = ""


@dataclass(frozen=True)
class DataFile:
    """One file of a split, with what the project knows about its exact content."""

    path: str
    """Relative to the data directory, without a ``.gz`` suffix."""
    rows: int | None = None
    """Data rows (records), as verified in the dataset's SOURCE.md; None where unknown."""
    sha256: str | None = None
    """Hash of the uncompressed file."""
    gz_sha256: str | None = None
    """Hash of the ``gzip -9 -n`` copy a mirror (laid out like the data directory) serves at ``path + '.gz'``."""
    source: Source | None = None
    """The pinned upstream copy; None when no public copy with known bytes exists (the docs say how to get it)."""

    def candidates(self, root: Path) -> list[Path]:
        """The paths the loader accepts for this file, in the order it looks for them."""
        return [root / self.path, root / (self.path + GZ)]

    def locate(self, root: Path) -> Path | None:
        """The first existing candidate, or None."""
        return next((p for p in self.candidates(root) if p.is_file()), None)


@dataclass(frozen=True)
class SplitSpec:
    """One split: fixed ``files``, or every data file of the first existing folder in ``folders``.

    For a folder split, ``files`` lists the files whose content is known (downloadable, expected row counts);
    any other data file the folder holds is read too.
    """

    name: str
    description: str
    files: tuple[DataFile, ...] = ()
    folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as the registry describes it."""

    name: str
    title: str
    description: str
    splits: dict[str, SplitSpec]
    default_split: str
    citation: str
    license: str
    homepage: str

    def files(self) -> list[DataFile]:
        """Every known file of every split, once each, in split order."""
        seen: dict[str, DataFile] = {}
        for split in self.splits.values():
            for f in split.files:
                seen.setdefault(f.path, f)
        return list(seen.values())
