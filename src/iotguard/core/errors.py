"""The one error type users can cause, and its subclasses.

Every error a user can trigger (a bad file, a bad config, a missing dataset, a tampered artifact) raises a
subclass of :class:`IotguardError`. Its message says what went wrong, where (file, line, column, field) and
what was expected. The CLI prints that single line and exits with status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from os import PathLike


def location(
    path: str | PathLike[str] | None = None,
    *,
    line: int | None = None,
    column: int | str | None = None,
    field: str | None = None,
) -> str:
    """Format a place in a file the way compilers do: ``path:line:column`` plus an optional field."""
    parts = [str(path) if path is not None else ""]
    if line is not None:
        parts.append(str(line))
        if isinstance(column, int):
            parts.append(str(column))
    where = ":".join(p for p in parts if p)
    if isinstance(column, str):
        where = f"{where} column {column!r}" if where else f"column {column!r}"
    if field is not None:
        where = f"{where} field {field!r}" if where else f"field {field!r}"
    return where


class IotguardError(Exception):
    """An error caused by input the user controls. The message is one line: where: what (expected ...)."""

    def __init__(self, what: str, *, where: str | None = None, expected: str | None = None) -> None:
        self.what = what
        self.where = where
        self.expected = expected
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.expected:
            text = f"{text} (expected {self.expected})"
        return text

    def __str__(self) -> str:
        return self.message


class DataError(IotguardError):
    """A data file (dataset CSV, flow table, capture) is malformed or does not fit what was asked."""


class DatasetNotFoundError(DataError):
    """A dataset's files are not in the data directory."""


class CaptureError(DataError):
    """A capture file or interface cannot be read as packets."""


class FeatureMismatchError(DataError):
    """The columns given to a model are not the ones it was trained on."""


class ConfigError(IotguardError):
    """A configuration or policy file, environment variable or flag is invalid."""


class ArtifactError(IotguardError):
    """A model artifact is missing, of an unknown format, or fails its integrity check."""


class ResponseError(IotguardError):
    """A response action cannot be carried out (bad target, missing tool, refused by safety rules)."""
