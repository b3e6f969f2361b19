"""``download`` against a real HTTP server on 127.0.0.1 serving shared/data (no test touches the internet)."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zipfile
from pathlib import Path

import pytest

from iotguard.datasets import load, specs
from iotguard.datasets.download import (
    MIRROR_ENV,
    ChecksumError,
    DownloadError,
    download,
    fetch_file,
    verify,
)
from iotguard.datasets.spec import DataFile, Source


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and (p.name.endswith((".part", ".zip")))]


def test_mirror_download_of_shared_data(data_root, tmp_path, serve):
    target = tmp_path / "cache"
    with serve(data_root) as (url, requests):
        results = download("nsl-kdd", data_dir=target, mirror=url)
        assert [r.status for r in results] == ["downloaded"] * 4
        assert {r.path.name for r in results} == {
            "KDDTrain+.txt.gz",
            "KDDTrain+_20Percent.txt.gz",
            "KDDTest+.txt.gz",
            "KDDTest-21.txt.gz",
        }
        assert all(r.url.startswith(url + "/nsl-kdd/KDD") for r in results)
        for r in results:
            assert r.path.read_bytes() == (data_root / r.path.relative_to(target)).read_bytes()
        n = len(requests)
        again = download("nsl-kdd", data_dir=target, mirror=url)
        assert [r.status for r in again] == ["present"] * 4 and len(requests) == n  # nothing fetched
    assert len(load("nsl-kdd", "KDDTest-21", data_dir=target)) == 11_850
    assert not _leftovers(target)


def test_tampered_mirror_file_is_refused_and_deleted(data_root, tmp_path, serve):
    mirror = tmp_path / "mirror" / "unsw-nb15"
    mirror.mkdir(parents=True)
    data = bytearray((data_root / "unsw-nb15" / "UNSW_NB15_training-set.csv.gz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (mirror / "UNSW_NB15_training-set.csv.gz").write_bytes(bytes(data))
    target = tmp_path / "cache"
    with serve(tmp_path / "mirror") as (url, _), pytest.raises(ChecksumError) as info:
        download("unsw-nb15", "training-set", data_dir=target, mirror=url)
    message = str(info.value)
    assert message.startswith(f"{url}/unsw-nb15/UNSW_NB15_training-set.csv.gz: sha256 ")
    assert "does not match the pinned 611e2b33" in message and "deleted" in message
    assert not [p for p in target.rglob("*") if p.is_file()]


def test_mirror_from_environment_and_missing_file(data_root, tmp_path, monkeypatch, serve):
    target = tmp_path / "cache"
    with serve(data_root) as (url, _):
        monkeypatch.setenv(MIRROR_ENV, url + "/")
        results = download("iot23", "CTU-Honeypot-Capture-4-1", data_dir=target)
        assert [r.status for r in results] == ["downloaded"]
        assert len(load("iot23", data_dir=target)) == 452
        with serve(tmp_path / "empty-mirror-that-does-not-exist") as (bad, _):
            monkeypatch.setenv(MIRROR_ENV, bad)
            with pytest.raises(DownloadError, match=r"HTTP 404"):
                download("nsl-kdd", "KDDTest+", data_dir=target)


def test_local_folder_mirror(data_root, tmp_path):
    results = download("cicids2017", "original", data_dir=tmp_path, mirror=str(data_root))
    assert [r.status for r in results] == ["downloaded"]
    assert len(load("cicids2017", "original", data_dir=tmp_path)) == 7267


def test_unavailable_file_is_reported_not_invented(data_root, tmp_path):
    results = download("unsw-nb15", "testing-set", data_dir=tmp_path, mirror=str(data_root))
    assert [r.status for r in results] == ["unavailable"]
    assert results[0].path is None and not list(tmp_path.iterdir())


def test_damaged_local_copy_is_replaced(data_root, tmp_path, serve):
    folder = tmp_path / "nsl-kdd"
    folder.mkdir()
    (folder / "KDDTest-21.txt").write_text("not the data\n")
    with serve(data_root) as (url, _):
        [result] = download("nsl-kdd", "KDDTest-21", data_dir=tmp_path, mirror=url)
    assert result.status == "downloaded" and result.path == folder / "KDDTest-21.txt.gz"
    assert not (folder / "KDDTest-21.txt").exists()  # it would have shadowed the good copy
    assert len(load("nsl-kdd", "KDDTest-21", data_dir=tmp_path)) == 11_850


# -- upstream sources: plain files, zip members, resuming ------------------------------------------------
def _plain_file(data_root: Path, tmp_path: Path) -> tuple[DataFile, bytes, Path]:
    content = gzip.decompress((data_root / "nsl-kdd" / "KDDTest-21.txt.gz").read_bytes())
    served = tmp_path / "upstream"
    served.mkdir()
    (served / "KDDTest-21.txt").write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    return DataFile("nsl-kdd/KDDTest-21.txt", 11_850, sha, None, Source("", sha)), content, served


def test_upstream_plain_file_resumes_a_partial_download(data_root, tmp_path, serve):
    f, content, served = _plain_file(data_root, tmp_path)
    root = tmp_path / "cache"
    part = root / "nsl-kdd" / "KDDTest-21.txt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(content[:700_000])
    with serve(served) as (url, requests):
        f = DataFile(f.path, f.rows, f.sha256, None, Source(url + "/KDDTest-21.txt", f.sha256))
        result = fetch_file(f, root)
    assert requests == [("/KDDTest-21.txt", "bytes=700000-")]
    assert result.status == "downloaded"
    assert (root / f.path).read_bytes() == content and not part.exists()


def test_upstream_zip_member_is_extracted_and_checked(data_root, tmp_path, serve):
    f, content, served = _plain_file(data_root, tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("KDDTest-21.txt", content)
    (served / "nsl.zip").write_bytes(buffer.getvalue())
    zip_sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    with serve(served) as (url, _):
        good = DataFile(
            f.path, f.rows, f.sha256, None, Source(url + "/nsl.zip", zip_sha, member="KDDTest-21.txt")
        )
        result = fetch_file(good, tmp_path / "a")
        assert result.status == "downloaded" and result.path.read_bytes() == content
        assert verify(result.path, good)
        wrong = DataFile(f.path, f.rows, "0" * 64, None, good.source)
        with pytest.raises(ChecksumError, match=r"member 'KDDTest-21.txt' has sha256 .* not the pinned 0000"):
            fetch_file(wrong, tmp_path / "b")
        missing = DataFile(f.path, f.rows, f.sha256, None, Source(url + "/nsl.zip", zip_sha, member="x.txt"))
        with pytest.raises(DownloadError, match=r"no member 'x.txt'"):
            fetch_file(missing, tmp_path / "c")
    for folder in ("b", "c"):
        assert not [p for p in (tmp_path / folder).rglob("*") if p.is_file()]


def test_unreachable_server_is_a_one_line_error(tmp_path):
    f = DataFile("x/y.csv", 1, "0" * 64, None, Source("http://127.0.0.1:9/y.csv", "0" * 64))
    with pytest.raises(DownloadError, match=r"^http://127.0.0.1:9/y.csv: download failed"):
        fetch_file(f, tmp_path)


# -- the pinned hashes ------------------------------------------------------------------------------------
def test_pinned_hashes_match_the_staged_files(data_root):
    checked = 0
    for spec in specs().values():
        for f in spec.files():
            staged = data_root / (f.path + ".gz")
            if not staged.exists():
                continue
            assert hashlib.sha256(staged.read_bytes()).hexdigest() == f.gz_sha256, f.path
            assert hashlib.sha256(gzip.decompress(staged.read_bytes())).hexdigest() == f.sha256, f.path
            checked += 1
    assert checked == 25


def test_every_source_is_pinned_to_a_commit():
    for spec in specs().values():
        for f in spec.files():
            if f.source is None:
                continue
            assert re.fullmatch(r"[0-9a-f]{64}", f.source.sha256)
            assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/", f.source.url), (
                f.source
            )
            if f.source.member is None:
                assert f.source.sha256 == f.sha256


def test_download_rejects_unknown_names(tmp_path):
    from iotguard.core.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="unknown dataset"):
        download("kdd99", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="unknown split"):
        download("nsl-kdd", "KDDTest", data_dir=tmp_path)
    assert not list(tmp_path.iterdir())
