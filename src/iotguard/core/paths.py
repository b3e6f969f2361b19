"""Where iotguard finds datasets and keeps its own state."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from iotguard.core.errors import ConfigError

DATA_DIR_ENV = "IOTGUARD_DATA_DIR"
HOME_ENV = "IOTGUARD_HOME"


def cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/iotguard`` or ``~/.cache/iotguard``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "iotguard"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Dataset root: ``--data-dir``, else ``$IOTGUARD_DATA_DIR``, else ``~/.cache/iotguard/datasets``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "datasets"


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Sensor state (SQLite store, API token, default models): ``$IOTGUARD_HOME`` or ``~/.local/share/iotguard``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "iotguard"


def unwritable(path: str | os.PathLike[str], exc: OSError, what: str = "output") -> ConfigError:
    """The one-line error for an output the OS refuses: the path and the OS's reason (exit status 2)."""
    reason = exc.strerror or str(exc)
    return ConfigError(f"cannot write {what}: {reason}", where=str(path), expected="a writable path")


def check_writable(path: str | os.PathLike[str], *, what: str = "output", directory: bool = False) -> None:
    """Fail early, with :func:`unwritable`'s error, where the output ``path`` could not be written.

    Call it before the slow work, so a typo in an output path does not cost a whole run. It probes the
    filesystem for real (permission bits say nothing under root, on read-only mounts or in /proc): a
    throw-away file goes where the output will be created (inside ``path`` for an existing ``directory``
    that receives files, else in its folder), or a throw-away folder in the nearest existing ancestor where
    the output's parents are still to be made. Nothing is left behind.
    """
    path = Path(path)
    if not directory and path.is_dir():
        raise unwritable(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), what)
    if directory and path.is_dir():
        folder = path
    else:
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if folder in (path, path.parent):
            fd, probe = tempfile.mkstemp(prefix=".iotguard-", suffix=".probe", dir=folder)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".iotguard-", suffix=".probe", dir=folder))
    except OSError as exc:
        raise unwritable(path, exc, what) from None
