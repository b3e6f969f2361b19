"""The EVE JSON alert log: one event per line, appended, safe under log rotation.

Suricata's contract: a reader (Filebeat, Logstash, ``tail -F``) sees only complete lines. Each batch of
lines goes out in one ``write`` + ``flush``, so a crash never leaves half a line. When logrotate moves or
deletes the file, the next write notices (the path no longer names the open file) and reopens it, so no
``copytruncate`` and no signal is needed; :meth:`EveWriter.reopen` is there for a SIGHUP handler too.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import IO

from iotguard.core.errors import ConfigError
from iotguard.core.paths import unwritable
from iotguard.core.records import Alert

log = logging.getLogger(__name__)


class EveWriter:
    """Append EVE lines to ``path`` (created with mode 0640 if absent). Thread-safe."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self._ino: tuple[int, int] | None = None
        self.lines_written = 0
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise unwritable(self.path, exc, "EVE log") from exc
        self._fh = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        st = os.fstat(fd)
        self._ino = (st.st_dev, st.st_ino)

    def _rotated(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._ino

    def reopen(self) -> None:
        """Close and reopen the path (call from a SIGHUP handler after external rotation)."""
        with self._lock:
            self._close()
            self._open()

    def write_lines(self, lines: Iterable[str]) -> int:
        """Append JSON lines (without their newline) in one write; returns how many."""
        lines = list(lines)
        if not lines:
            return 0
        text = "\n".join(lines) + "\n"
        with self._lock:
            if self._fh is None:
                raise ConfigError("EVE log is closed", where=str(self.path))
            if self._rotated():
                log.info("EVE log %s was rotated; reopening", self.path)
                self._close()
                self._open()
            assert self._fh is not None
            self._fh.write(text)
            self._fh.flush()
            self.lines_written += len(lines)
        return len(lines)

    def write(self, alerts: Iterable[Alert]) -> int:
        """Append alerts (their :meth:`~iotguard.core.records.Alert.to_eve` form)."""
        return self.write_lines(json.dumps(a.to_eve(), separators=(",", ":")) for a in alerts)

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> EveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
