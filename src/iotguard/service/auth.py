"""The API token: created on first start, kept in a file only its owner can read, never logged."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from iotguard.core.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_BYTES = 32


def load_or_create_token(path: Path) -> str:
    """The token in ``path``; on first start a new random one is written there with mode 0600.

    The file is created with ``O_EXCL`` and mode 0600 from the start (never world-readable, not even for an
    instant). An existing file that others can read is tightened to 0600 with a warning (the token itself is
    never logged).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the state directory: {exc.strerror}", where=str(path.parent)
        ) from None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the API token file: {exc.strerror}", where=str(path)) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.info("created a new API token in %s (read it there; it is not logged)", path)
    return token


def _read(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("API token file %s was readable by others (mode %o); setting it to 0600", path, mode)
            path.chmod(0o600)
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the API token file: {exc}", where=str(path)) from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise ConfigError(
            "the API token file holds no usable token",
            where=str(path),
            expected="one line of at least 16 characters (delete the file to get a new one)",
        )
    return token


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    return given is not None and secrets.compare_digest(given.encode(), token.encode())
