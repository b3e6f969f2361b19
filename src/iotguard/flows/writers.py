"""Write flow tables batch by batch to Parquet or CSV, atomically (temp file, then rename).

Memory stays bounded however many flows a capture yields: frames are appended and forgotten (Parquet gathers
them into row groups of about ``ROW_GROUP`` rows first, so a long run does not pile up row-group metadata).
Nothing half-written is left behind: the output appears under its name only when ``close()`` succeeds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.paths import unwritable

SUFFIXES = (".parquet", ".csv", ".csv.gz")
ROW_GROUP = 16384


def output_format(path: str | os.PathLike[str]) -> str:
    name = str(path).lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    raise ConfigError(
        f"cannot tell the output format of {str(path)!r}", where="--output", expected=" or ".join(SUFFIXES)
    )


def _arrow_type(series: pd.Series) -> pa.DataType:
    if series.dtype == np.bool_:
        return pa.bool_()
    if series.dtype.kind in "iu":
        return pa.from_numpy_dtype(series.dtype)
    if series.dtype.kind == "f":
        return pa.float64()
    return pa.string()


class FlowWriter:
    """``with FlowWriter("out.parquet") as w: w.write(frame)`` for each frame; renames into place on exit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        self.rows = 0
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise DataError("output folder does not exist", where=str(parent))
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=parent)
        except OSError as exc:
            raise unwritable(self.path, exc, "flow table") from None
        os.close(fd)
        self._tmp = Path(tmp)
        self._schema: pa.Schema | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._csv_started = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.format == "parquet":
            if self._schema is None:
                self._schema = pa.schema([(c, _arrow_type(frame[c])) for c in frame.columns])
                self._parquet = pq.ParquetWriter(self._tmp, self._schema, compression="zstd")
            if len(frame):
                self._pending.append(pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False))
                self._pending_rows += len(frame)
                if self._pending_rows >= ROW_GROUP:
                    self._write_pending()
        else:
            compression = "gzip" if str(self.path).lower().endswith(".gz") else None
            if not self._csv_started or len(frame):
                frame.to_csv(
                    self._tmp,
                    mode="a" if self._csv_started else "w",
                    header=not self._csv_started,
                    index=False,
                    compression=compression,
                )
                self._csv_started = True
        self.rows += len(frame)

    def _write_pending(self) -> None:
        if self._pending and self._parquet is not None:
            self._parquet.write_table(pa.concat_tables(self._pending))
        self._pending, self._pending_rows = [], 0

    def close(self) -> Path:
        """Finish the file and move it into place; returns the final path."""
        if self._parquet is not None:
            self._write_pending()
            self._parquet.close()
            self._parquet = None
        elif self.format == "parquet" and self._schema is None:
            raise DataError("nothing to write: no frame was given", where=str(self.path))
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        self._pending, self._pending_rows = [], 0
        if self._parquet is not None:
            with contextlib.suppress(Exception):  # already failing; the temp file goes anyway
                self._parquet.close()
            self._parquet = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> FlowWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
