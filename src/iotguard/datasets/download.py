"""Fetch a dataset's files into the data directory, each checked against its pinned sha256.

Each file comes from its pinned upstream copy (:class:`~iotguard.datasets.spec.Source`), or, with a mirror
(``--mirror URL`` or ``$IOTGUARD_DATASET_MIRROR``), from ``URL/<path>.gz``: a mirror is laid out like the
data directory (``shared/data`` is one). A mirror may also be a local folder.

Bytes go to ``<file>.part`` next to the target; an interrupted download resumes from there (HTTP Range) on
the next run. Only a file whose sha256 matches is renamed into place (atomically); a mismatch deletes the
download and raises :class:`ChecksumError`. A zip archive is checked, then the member is extracted and
checked against its own hash.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx

from iotguard import __version__
from iotguard.core import paths
from iotguard.core.errors import DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.datasets.locate import split_spec
from iotguard.datasets.registry import spec as dataset_spec
from iotguard.datasets.spec import GZ, DataFile

log = logging.getLogger(__name__)

MIRROR_ENV = "IOTGUARD_DATASET_MIRROR"
_CHUNK = 1 << 16


class DownloadError(DataError):
    """A file could not be fetched (network, HTTP status, missing mirror file)."""


class ChecksumError(DataError):
    """Fetched bytes do not match the pinned sha256; nothing was kept."""


@dataclass(frozen=True)
class Fetched:
    """What ``download`` did with one file."""

    file: DataFile
    status: str
    """``downloaded``, ``present`` (already there, hash verified) or ``unavailable`` (no pinned source)."""
    path: Path | None
    url: str | None = None
    detail: str = ""


def mirror_from_env() -> str | None:
    return os.environ.get(MIRROR_ENV) or None


def files_to_fetch(name: str, split: str | None = None) -> list[DataFile]:
    spec = dataset_spec(name)
    if split is None:
        return spec.files()
    return list(split_spec(spec, split).files)


def download(
    name: str,
    split: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    progress: Progress = NO_PROGRESS,
    timeout: float = 60.0,
) -> list[Fetched]:
    """Fetch every file of dataset ``name`` (or of one split) that is not already present and intact."""
    root = paths.data_dir(data_dir)
    mirror = mirror or mirror_from_env()
    files = files_to_fetch(name, split)
    results = []
    with _client(timeout) as client:
        for f in files:
            results.append(fetch_file(f, root, mirror=mirror, progress=progress, client=client))
    return results


def _client(timeout: float) -> httpx.Client:
    headers = {"User-Agent": f"iotguard/{__version__}", "Accept-Encoding": "identity"}
    return httpx.Client(timeout=timeout, follow_redirects=True, headers=headers)


def verify(path: Path, f: DataFile) -> bool:
    """Whether ``path`` (plain, or gzip) holds exactly the bytes the spec pins for ``f``."""
    if path.name.endswith(GZ):
        if f.gz_sha256 and _sha256_file(path) == f.gz_sha256:
            return True
        if f.sha256 is None:
            return False
        try:
            with gzip.open(path, "rb") as fh:
                return _sha256_stream(fh) == f.sha256
        except (OSError, EOFError):
            return False
    return f.sha256 is not None and _sha256_file(path) == f.sha256


def fetch_file(
    f: DataFile,
    root: Path,
    *,
    mirror: str | None = None,
    progress: Progress = NO_PROGRESS,
    client: httpx.Client | None = None,
) -> Fetched:
    """Fetch one file into ``root`` unless an intact copy is there (see the module docstring)."""
    if client is None:
        with _client(60.0) as own:
            return fetch_file(f, root, mirror=mirror, progress=progress, client=own)
    existing = f.locate(root)
    if existing is not None:
        if verify(existing, f):
            return Fetched(f, "present", existing, detail="sha256 verified")
        if f.sha256 is None and f.gz_sha256 is None:
            return Fetched(f, "present", existing, detail="no pinned sha256 to verify against")
        log.warning("%s does not match its pinned sha256; fetching it again", existing)

    if mirror:
        relative, want = (f.path + GZ, f.gz_sha256) if f.gz_sha256 else (f.path, f.sha256)
        if want is None:
            return Fetched(f, "unavailable", None, detail="no pinned sha256 for a mirror copy")
        url = _join(mirror, relative)
        target = root / relative
        _get(client, url, target, want, progress)
    elif f.source is not None:
        url = f.source.url
        target = root / f.path
        if f.source.member:
            archive = target.with_name(target.name + ".zip")
            _get(client, url, archive, f.source.sha256, progress)
            try:
                _extract(archive, f.source.member, target, f.sha256 or "", url)
            finally:
                archive.unlink(missing_ok=True)
        else:
            _get(client, url, target, f.source.sha256, progress)
    else:
        return Fetched(f, "unavailable", None, detail="no public copy with known bytes: see docs/datasets.md")

    if existing is not None and existing != target:
        existing.unlink(missing_ok=True)  # the damaged copy would shadow the good one
    return Fetched(f, "downloaded", target, url=url, detail="sha256 verified")


def _join(mirror: str, relative: str) -> str:
    return mirror.rstrip("/") + "/" + quote(relative)


def _get(client: httpx.Client, url: str, target: Path, sha256: str, progress: Progress) -> None:
    """Download ``url`` to ``target`` through ``target.part``; resume a partial one; check, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with _source(client, url, part) as (stream, total, append):
        digest = hashlib.sha256()
        if append:
            with open(part, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        done = part.stat().st_size if append else 0
        with (
            progress.task(f"downloading {target.name}", total=total) as task,
            open(part, "ab" if append else "wb") as out,
        ):
            task.update(completed=done)
            for chunk in stream:
                out.write(chunk)
                digest.update(chunk)
                task.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    got = digest.hexdigest()
    if got != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"sha256 {got} does not match the pinned {sha256}; the download was deleted",
            where=url,
            expected="the exact bytes iotguard pins for this file (a tampered or different copy?)",
        )
    os.replace(part, target)


@contextmanager
def _source(client: httpx.Client, url: str, part: Path) -> Iterator[tuple[Iterator[bytes], int | None, bool]]:
    """(chunks, total size, whether they continue ``part``) from a URL or a local mirror folder."""
    scheme = urlsplit(url).scheme
    offset = part.stat().st_size if part.exists() else 0
    if scheme in ("", "file"):
        local = Path(unquote(urlsplit(url).path if scheme == "file" else url))
        if not local.is_file():
            raise DownloadError(
                "no such file in the mirror",
                where=str(local),
                expected="a mirror laid out like the data directory",
            )
        with open(local, "rb") as fh:
            yield iter(lambda: fh.read(_CHUNK), b""), local.stat().st_size, False
        return
    request_headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with client.stream("GET", url, headers=request_headers) as response:
            append = offset > 0 and response.status_code == 206
            if response.status_code == 416 and offset:
                # The part file is already complete: check it as it is.
                yield iter(()), offset, True
                return
            if response.status_code not in (200, 206) or (response.status_code == 206 and not append):
                raise DownloadError(
                    f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                    where=url,
                    expected="200 OK",
                )
            length = response.headers.get("Content-Length")
            total = int(length) + (offset if append else 0) if length and length.isdigit() else None
            if offset and not append:
                log.info("%s: the server does not resume; starting over", url)
            yield response.iter_raw(_CHUNK), total, append
    except httpx.HTTPError as exc:
        # The part file stays: the next run resumes from it, and the hash decides at the end.
        raise DownloadError(f"download failed: {exc}", where=url, expected="a reachable server") from None


def _extract(archive: Path, member: str, target: Path, sha256: str, url: str) -> None:
    part = target.with_name(target.name + ".part")
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    except KeyError:
        part.unlink(missing_ok=True)
        raise DownloadError(f"the archive has no member {member!r}", where=url) from None
    except (zipfile.BadZipFile, OSError) as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"cannot unzip: {exc}", where=url) from None
    got = _sha256_file(part)
    if got != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"member {member!r} has sha256 {got}, not the pinned {sha256}; deleted",
            where=url,
            expected="the exact bytes iotguard pins for this file",
        )
    os.replace(part, target)


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return _sha256_stream(fh)


def _sha256_stream(fh) -> str:  # noqa: ANN001 - any binary file object
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()
