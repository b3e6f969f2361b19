"""Reading and writing flow tables (CSV, gzipped CSV, Parquet) with errors that name the file and line."""

from __future__ import annotations

import io
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

        compression = sniff(path, "a CSV flow table")
        frame = read_csv(path, compression)
        first_line = 2
        if not frame.empty:
            _check_field_counts(path, compression, len(frame.columns))
    if frame.empty:
        raise DataError("no data rows", where=str(path), expected="at least one flow")
    frame.columns = [str(c).strip() for c in frame.columns]
    _require_numeric_features(frame, path, first_line)
    return frame, first_line


def _check_field_counts(path: Path, compression: str | None, n_fields: int) -> None:
    """Every row must have as many fields as the header: pandas pads a short row (a file cut mid-row, a
    hand-edited line) with empty values and reads on, so it is counted here, naming the first bad line.

    Counting separators is vectorised; a file with quotes (a quoted field may hold a comma or a newline)
    is counted by the csv module instead.
    """
    import csv
    import gzip

    import numpy as np

    with gzip.open(path, "rb") if compression == "gzip" else open(path, "rb") as fh:
        data = fh.read()
    if b'"' in data:
        with io.StringIO(data.decode("latin-1"), newline="") as text:
            reader = csv.reader(text)
            for row in reader:
                if row and len(row) != n_fields:
                    _short_row(path, reader.line_num, len(row), n_fields)
        return
    raw = np.frombuffer(data, dtype=np.uint8)
    if not len(raw):
        return
    newlines = np.flatnonzero(raw == ord("\n"))
    ends = newlines if raw[-1] == ord("\n") else np.append(newlines, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))
    # commas per line, summed segment by segment (no per-byte running total: memory stays near the file's)
    fields = np.add.reduceat(raw == ord(","), starts, dtype=np.int64) + 1
    carriage = raw[np.maximum(ends - 1, 0)] == ord("\r")
    blank = ends - starts <= carriage.astype(np.int64)
    bad = np.flatnonzero((fields != n_fields) & ~blank)
    if len(bad):
        _short_row(path, int(bad[0]) + 1, int(fields[bad[0]]), n_fields)


def _short_row(path: Path, line: int, fields: int, n_fields: int) -> None:
    from iotguard.core.errors import location

    what = f"{fields} fields" if fields > n_fields else f"only {fields} fields (a row cut short?)"
    raise DataError(
        what, where=location(path, line=line), expected=f"{n_fields} fields, as many as the header"
    )


def _require_numeric_features(frame: pd.DataFrame, path: Path, first_line: int | None) -> None:
    """Feature columns hold numbers: text in one is an error naming its file line (CSV) or row (Parquet),
    here where the file's line numbers are still known (training shuffles the rows later)."""
    from iotguard.core.schema import FLOW_FEATURES
    from iotguard.datasets.reading import require_numeric

    require_numeric(frame, [c for c in FLOW_FEATURES if c in frame.columns], path, first_line)


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
