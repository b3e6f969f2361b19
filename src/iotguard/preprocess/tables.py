"""Reading and writing flow tables (CSV, gzipped CSV, Parquet) with errors that name the file and line."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from iotguard.core.errors import DataError
from iotguard.core.paths import unwritable

SUFFIXES = (".csv", ".csv.gz", ".parquet")


def table_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise DataError(
        f"unsupported file type {path.suffix or '(none)'!r}",
        where=str(path),
        expected="a flow table: " + ", ".join(SUFFIXES),
    )


def read_table(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, int | None]:
    """The table and the file line of its first data row (2 for CSV; None for Parquet)."""
    path = Path(path)
    kind = table_kind(path)
    if not path.is_file():
        raise DataError("no such file", where=str(path), expected="a flow table")
    if kind == "parquet":
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head != b"PAR1":
            raise DataError(
                "not a parquet file (no PAR1 magic)" if head else "empty file (0 bytes)",
                where=str(path),
                expected="a parquet flow table",
            )
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for corrupt files
            raise DataError(f"cannot read parquet: {str(exc).splitlines()[0]}", where=str(path)) from None
        first_line = None
    else:
        from iotguard.datasets.reading import read_csv, sniff

        frame = read_csv(path, sniff(path, "a CSV flow table"))
        first_line = 2
    if frame.empty:
        raise DataError("no data rows", where=str(path), expected="at least one flow")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, first_line


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write CSV (gzipped for ``.csv.gz``) or Parquet by suffix, atomically (temp file + rename)."""
    path = Path(path)
    kind = table_kind(path)
    with atomic_output(path) as tmp:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, compression="gzip" if path.name.lower().endswith(".gz") else None)
    return path


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it into place.

    A file replaces ``path`` atomically; a directory replaces an existing one by two renames. On failure the
    temporary path is removed, so a crash never leaves a half-written output under the final name. The
    result gets the permissions the umask gives new files (temp files are created private).
    """
    path = Path(path)
    umask = os.umask(0)
    os.umask(umask)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise unwritable(path, exc) from None
    try:
        yield tmp
        os.chmod(tmp, (0o777 if directory else 0o666) & ~umask)
        if directory and path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise
