"""Where iotguard finds datasets and keeps its own state."""

from __future__ import annotations

import os
from pathlib import Path

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
