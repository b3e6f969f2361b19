"""Reading dataset files: sniff the file type, parse with pandas' C parser, and turn every problem into a
:class:`~iotguard.core.errors.DataError` that names the file, the line and the column.

Line numbers are 1-based file lines, header and comment lines included, as an editor shows them. They are
exact unless a file holds blank lines (pandas skips those).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from iotguard.core.errors import DataError, location

_SNIFF_BYTES = 64 * 1024
_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (unzip it first)"),
    (b"\xd4\xc3\xb2\xa1", "a pcap capture"),
    (b"\xa1\xb2\xc3\xd4", "a pcap capture"),
    (b"\x4d\x3c\xb2\xa1", "a pcap capture"),
    (b"\xa1\xb2\x3c\x4d", "a pcap capture"),
    (b"\x0a\x0d\x0d\x0a", "a pcapng capture"),
    (b"PAR1", "a parquet file"),
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x7fELF", "an executable"),
)
_GZIP_MAGIC = b"\x1f\x8b"
_PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def sniff(path: Path, what: str = "a CSV text file") -> str | None:
    """Check that ``path`` holds (possibly gzipped) text; return pandas' ``compression`` for it.

    The compression is decided by the bytes, not the name, so a gzip file without ``.gz`` still reads.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", where=str(path), expected=what) from None
    if not head:
        raise DataError("empty file (0 bytes)", where=str(path), expected=what)
    compression = None
    if head.startswith(_GZIP_MAGIC):
        compression = "gzip"
        head = _gunzip_head(path)
        if not head:
            raise DataError("empty file (the gzip stream holds no data)", where=str(path), expected=what)
    elif str(path).endswith(".gz"):
        raise DataError("not a gzip file although its name ends in .gz", where=str(path), expected=what)
    for magic, kind in _BINARY_MAGIC:
        if head.startswith(magic):
            raise DataError(f"this is {kind}", where=str(path), expected=what)
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise DataError(f"binary data (a NUL byte at offset {offset})", where=str(path), expected=what)
    return compression


def _gunzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise _gzip_error(path, exc) from None


def _gzip_error(path: Path, exc: BaseException) -> DataError:
    """A truncated or corrupt gzip: say after which line the readable data ends."""
    lines = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
    except (OSError, EOFError, zlib.error):
        pass
    detail = str(exc) or type(exc).__name__
    return DataError(
        f"truncated or corrupt gzip data ({detail})",
        where=location(path, line=lines + 1),
        expected="a complete gzip file",
    )


def open_text(path: Path, compression: str | None, encoding: str = "latin-1") -> IO[str]:
    """A text stream over the (decompressed) file, line ends as they are (``\\r\\n`` stays)."""
    raw: IO[bytes] = gzip.open(path, "rb") if compression == "gzip" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def read_csv(path: Path, compression: str | None, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv`` with the C parser; parse errors become a :class:`DataError` naming the line."""
    try:
        return pd.read_csv(path, compression=compression, engine="c", low_memory=False, **kwargs)
    except pd.errors.ParserError as exc:
        match = _PARSER_FIELDS.search(str(exc))
        if match:
            expected, line, saw = (int(g) for g in match.groups())
            raise DataError(
                f"{saw} fields",
                where=location(path, line=line),
                expected=f"{expected} fields, as many as the header names",
            ) from None
        raise DataError(f"cannot parse: {_one_line(exc)}", where=str(path), expected="CSV text") from None
    except pd.errors.EmptyDataError:
        raise DataError("no data rows", where=str(path), expected="at least one record") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _gzip_error(path, exc) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"bytes that are not {exc.encoding} text at byte offset {exc.start}",
            where=str(path),
            expected=f"{exc.encoding} text",
        ) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def first(mask: np.ndarray | pd.Series) -> int:
    """Position of the first true value of a boolean mask (which must have one)."""
    return int(np.argmax(np.asarray(mask)))


def line_of(frame: pd.DataFrame | pd.Series, position: int, first_line: int) -> int:
    """File line of the row at ``position``; the index still holds each row's number in the file."""
    return first_line + int(frame.index[position])


def require_rows(frame: pd.DataFrame, path: Path, first_line: int) -> None:
    if frame.empty:
        raise DataError("no data rows", where=location(path, line=first_line), expected="at least one record")


def require_complete(frame: pd.DataFrame, column: str, path: Path, first_line: int, n_fields: int) -> None:
    """A row whose last column is empty had fewer fields than the header (pandas pads those with NaN)."""
    missing = frame[column].isna().to_numpy()
    if missing.any():
        i = first(missing)
        raise DataError(
            "fewer fields than the header, or an empty last field",
            where=location(path, line=line_of(frame, i, first_line), column=column),
            expected=f"{n_fields} fields",
        )


def require_numeric(frame: pd.DataFrame, columns: Iterable[str], path: Path, first_line: int | None) -> None:
    """Make ``columns`` numeric in place; text that is not a number raises, naming line and column (the row
    when ``first_line`` is None: a Parquet file has no lines).

    ``Infinity``, ``-Infinity`` and ``NaN`` are numbers here (they stay inf/NaN: cleaning is preprocessing's
    job).
    """
    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            continue
        coerced = pd.to_numeric(values, errors="coerce")
        bad = (coerced.isna() & values.notna()).to_numpy()
        if bad.any():
            i = first(bad)
            where = (
                f"{path} row {i + 1} column {column!r}"
                if first_line is None
                else location(path, line=line_of(values, i, first_line), column=column)
            )
            raise DataError(f"text {values.iloc[i]!r} in a numeric column", where=where, expected="a number")
        frame[column] = coerced


def require_known(
    values: pd.Series, known: Sequence[str] | set[str], path: Path, first_line: int, column: str, what: str
) -> None:
    """Every value must be in ``known``; the first one that is not raises, naming its line."""
    unknown = ~values.isin(list(known)).to_numpy()
    if unknown.any():
        i = first(unknown)
        raise DataError(
            f"unknown {what} {values.iloc[i]!r}",
            where=location(path, line=line_of(values, i, first_line), column=column),
            expected=f"one of the dataset's {what}s (see docs/datasets.md)",
        )


def check_header(
    names: Sequence[str], expected: Sequence[str], path: Path, line: int = 1, optional: Iterable[str] = ()
) -> None:
    """The header must hold exactly ``expected`` (plus any of ``optional``), in any order."""
    have = set(names)
    for name in expected:
        if name not in have:
            raise DataError(
                f"missing column {name!r}",
                where=location(path, line=line),
                expected=f"the {len(expected)} columns of this layout",
            )
    allowed = set(expected) | set(optional)
    for index, name in enumerate(names, start=1):
        if name not in allowed:
            raise DataError(
                f"unexpected column {name!r}",
                where=location(path, line=line, column=index),
                expected=f"only the {len(expected)} columns of this layout",
            )
    seen: set[str] = set()
    for index, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"duplicate column {name!r}", where=location(path, line=line, column=index))
        seen.add(name)


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def count_records(path: Path, header_lines: int = 0) -> int:
    """Lines of a (possibly gzipped) text file that are records: not the header, not ``#`` comments, not empty.

    A quick count for ``iotguard datasets info``; it reads the bytes once and parses nothing.
    """
    compression = sniff(path)
    opener = gzip.open if compression == "gzip" else open
    lines = comments = empty = 0
    previous = b"\n"
    try:
        with opener(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
                comments += chunk.count(b"\n#") + (previous == b"\n" and chunk[:1] == b"#")
                empty += (
                    chunk.count(b"\n\n") + chunk.count(b"\n\r\n") + (previous == b"\n" and chunk[:1] == b"\n")
                )
                previous = chunk[-1:]
    except (OSError, EOFError, zlib.error) as exc:
        raise _gzip_error(path, exc) from None
    if previous not in (b"\n", b""):
        lines += 1  # a last line without a newline
    # A comment or empty line at a chunk boundary is counted once by the prefix test; "\n#" never spans two.
    return max(lines - comments - empty - header_lines, 0)
