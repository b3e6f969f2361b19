"""Malformed dataset files raise one DataError that names the file, the line and the column."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest

from iotguard.core.errors import DataError, DatasetNotFoundError
from iotguard.datasets import cicids2017, iot23, load, nsl_kdd, unsw_nb15

NSL_ROW = (
    "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,0.00,150,25,"
    "0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20"
)


def _nsl(tmp_path: Path, lines: list[str], name: str = "KDDTest+.txt") -> Path:
    folder = tmp_path / "nsl-kdd"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _raises(fn, *args, match: str, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(match, message), message
    return info.value


def test_nsl_kdd_good_rows_load(tmp_path):
    path = _nsl(tmp_path, [NSL_ROW] * 3)
    assert len(nsl_kdd.read_file(path)) == 3


def test_text_in_numeric_column(tmp_path):
    bad = NSL_ROW.replace(",491,", ",lots,")
    path = _nsl(tmp_path, [NSL_ROW, NSL_ROW, bad])
    _raises(
        nsl_kdd.read_file,
        path,
        match=rf"^{re.escape(str(path))}:3 column 'src_bytes': text 'lots'.*expected a number",
    )


def test_extra_field(tmp_path):
    path = _nsl(tmp_path, [NSL_ROW, NSL_ROW + ",7"])
    _raises(nsl_kdd.read_file, path, match=rf"{re.escape(str(path))}:2: 44 fields \(expected 43 fields")


def test_missing_field(tmp_path):
    short = NSL_ROW.rsplit(",", 1)[0]  # KDD'99 style: no difficulty
    path = _nsl(tmp_path, [NSL_ROW, NSL_ROW, NSL_ROW, short])
    _raises(nsl_kdd.read_file, path, match=r":4 column 'difficulty': empty field")


def test_unknown_label(tmp_path):
    path = _nsl(tmp_path, [NSL_ROW, NSL_ROW.replace("normal", "teleport")])
    _raises(nsl_kdd.read_file, path, match=r":2 column 'label': unknown attack name 'teleport'")


def test_empty_file_and_empty_gzip(tmp_path):
    path = _nsl(tmp_path, [])
    path.write_bytes(b"")
    _raises(nsl_kdd.read_file, path, match=r"empty file")
    gz = tmp_path / "nsl-kdd" / "KDDTrain+.txt.gz"
    gz.write_bytes(gzip.compress(b""))
    _raises(nsl_kdd.read_file, gz, match=r"empty file")


def test_truncated_gzip(tmp_path, data_file):
    source = data_file("nsl-kdd/KDDTest+.txt.gz")
    data = source.read_bytes()
    path = tmp_path / "nsl-kdd" / "KDDTest+.txt.gz"
    path.parent.mkdir()
    path.write_bytes(data[: len(data) // 2])
    err = _raises(nsl_kdd.read_file, path, match=r"KDDTest\+\.txt\.gz:\d+: truncated or corrupt gzip")
    line = int(re.search(r"\.gz:(\d+):", str(err)).group(1))
    assert 1000 < line < 22_544
    # Through the registry too: the missing tail is an error, never a silently shorter dataset.
    with pytest.raises(DataError, match="truncated"):
        load("nsl-kdd", "KDDTest+", data_dir=tmp_path)


def test_wrong_file_types(tmp_path, data_file):
    folder = tmp_path / "nsl-kdd"
    folder.mkdir()
    pcap = folder / "KDDTest+.txt"
    shutil.copy(data_file("pcaps/zeek/icmp_5-pings.pcap"), pcap)
    _raises(nsl_kdd.read_file, pcap, match=r"KDDTest\+\.txt: this is a pcap capture")
    fake_gz = folder / "KDDTest-21.txt.gz"
    fake_gz.write_text(NSL_ROW + "\n")
    _raises(nsl_kdd.read_file, fake_gz, match=r"not a gzip file")
    import zipfile

    archive = folder / "KDDTrain+.txt"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("KDDTrain+.txt", NSL_ROW)
    _raises(nsl_kdd.read_file, archive, match=r"zip archive")
    binary = folder / "KDDTrain+_20Percent.txt"
    binary.write_bytes(b"0,tcp\x00\x01\x02")
    _raises(nsl_kdd.read_file, binary, match=r"binary data \(a NUL byte at offset 5\)")


def test_gzip_without_gz_suffix_still_reads(tmp_path):
    path = _nsl(tmp_path, [])
    path.write_bytes(gzip.compress((NSL_ROW + "\n").encode()))
    assert len(nsl_kdd.read_file(path)) == 1


def test_missing_files_name_the_expected_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load("nsl-kdd", "KDDTest-21", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "nsl-kdd" / "KDDTest-21.txt") in message
    assert str(tmp_path / "nsl-kdd" / "KDDTest-21.txt.gz") in message
    assert "iotguard datasets download nsl-kdd" in message
    with pytest.raises(DatasetNotFoundError, match="cicids2017/improved/"):
        load("cicids2017", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no IoT-23 scenario"):
        load("iot23", data_dir=tmp_path)


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"unknown dataset 'kdd99' \(expected one of nsl-kdd"):
        load("kdd99", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"unknown split 'test'.*KDDTest\+"):
        load("nsl-kdd", "test", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"unknown split 'monday'"):
        load("cicids2017", "monday", data_dir=tmp_path)


# -- CICIDS2017 ------------------------------------------------------------------------------------------
def _cns_lines(data_file, n: int = 4) -> list[str]:
    path = data_file("cicids2017/improved_cns2022_rnd5000/Heartbleed_11.csv.gz")
    return gzip.decompress(path.read_bytes()).decode().splitlines()[: n + 1]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cicids2017_missing_and_extra_columns(tmp_path, data_file):
    lines = _cns_lines(data_file)
    header = lines[0].split(",")
    dropped = [",".join(v for i, v in enumerate(line.split(",")) if i != 8) for line in lines]
    path = _write(tmp_path / "missing.csv", dropped)
    _raises(cicids2017.read_file, path, match=r"missing.csv:1: missing column 'Flow Duration'")
    extra = [lines[0] + ",Comment"] + [line + ",x" for line in lines[1:]]
    path = _write(tmp_path / "extra.csv", extra)
    _raises(cicids2017.read_file, path, match=rf"extra.csv:1:{len(header) + 1}: unexpected column 'Comment'")
    path = _write(tmp_path / "other.csv", ["a,b,c", "1,2,3"])
    _raises(cicids2017.read_file, path, match=r"other.csv:1: header is not a CICIDS2017 one")


def test_cicids2017_row_errors(tmp_path, data_file):
    lines = _cns_lines(data_file)
    header = lines[0].split(",")
    col = header.index("Flow Bytes/s")
    row = lines[2].split(",")
    row[col] = "fast"
    path = _write(tmp_path / "text.csv", [lines[0], lines[1], ",".join(row)])
    _raises(cicids2017.read_file, path, match=r"text.csv:3 column 'Flow Bytes/s': text 'fast'")
    row = lines[1].split(",")
    row[header.index("Label")] = "DoS Teapot"
    path = _write(tmp_path / "label.csv", [lines[0], lines[1], ",".join(row)])
    _raises(cicids2017.read_file, path, match=r"label.csv:3 column 'Label': unknown label 'DoS Teapot'")
    row = lines[1].split(",")
    row[header.index("Timestamp")] = "yesterday"
    path = _write(tmp_path / "time.csv", [lines[0], ",".join(row)])
    _raises(
        cicids2017.read_file, path, match=r"time.csv:2 column 'Timestamp': cannot read 'yesterday' as a time"
    )
    path = _write(tmp_path / "short.csv", [lines[0], lines[1], ",".join(lines[2].split(",")[:50])])
    _raises(cicids2017.read_file, path, match=r"short.csv:3 column 'Attempted Category': fewer fields")
    path = _write(tmp_path / "header_only.csv", [lines[0]])
    _raises(cicids2017.read_file, path, match=r"header_only.csv.*no data rows")


# -- UNSW-NB15 -------------------------------------------------------------------------------------------
def _unsw_lines(data_file, n: int = 3) -> list[str]:
    path = data_file("unsw-nb15/UNSW_NB15_training-set.csv.gz")
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        return [next(fh).rstrip("\r\n") for _ in range(n + 1)]


def test_unsw_nb15_errors(tmp_path, data_file):
    lines = _unsw_lines(data_file)
    path = _write(tmp_path / "ok.csv", lines)
    assert len(unsw_nb15.read_file(path)) == 3
    no_label = [line.rsplit(",", 1)[0] for line in lines]
    path = _write(tmp_path / "nolabel.csv", no_label)
    _raises(unsw_nb15.read_file, path, match=r"nolabel.csv:1: missing column 'label'")
    path = _write(tmp_path / "cat.csv", [lines[0], lines[1], lines[2].replace(",Normal,", ",Alien,")])
    _raises(
        unsw_nb15.read_file, path, match=r"cat.csv:3 column 'attack_cat': unknown attack category 'Alien'"
    )
    path = _write(tmp_path / "flag.csv", [lines[0], lines[1][:-1] + "1"])
    _raises(
        unsw_nb15.read_file,
        path,
        match=r"flag.csv:2 column 'label': label 1 disagrees with attack_cat 'Normal'",
    )
    path = _write(tmp_path / "dur.csv", [lines[0], lines[1].replace("1,0.000011,", "1,soon,", 1)])
    _raises(unsw_nb15.read_file, path, match=r"dur.csv:2 column 'dur': text 'soon'")


# -- IoT-23 ----------------------------------------------------------------------------------------------
def _zeek_lines(data_file) -> list[str]:
    path = data_file("iot23/CTU-IoT-Malware-Capture-34-1/conn.log.labeled.gz")
    return gzip.decompress(path.read_bytes()).decode().split("\n")[:12]


def test_iot23_errors(tmp_path, data_file):
    lines = _zeek_lines(data_file)
    assert lines[8].startswith("1545403816")  # line 9 is the first record
    path = _write(tmp_path / "ok.log", lines)
    assert len(iot23.read_file(path)) == 4
    path = _write(tmp_path / "nofields.log", [x for x in lines if not x.startswith("#fields")])
    _raises(iot23.read_file, path, match=r"nofields.log:8: no '#fields' header line")
    bad = lines[:10] + [lines[10].replace("   Benign   -", "   Benign-")]
    path = _write(tmp_path / "tail.log", bad)
    _raises(iot23.read_file, path, match=r"tail.log:11 column 'tunnel_parents': .* three spaces")
    bad = lines[:9] + [lines[9].replace("   Benign   -", "   Malicious   Teleport")]
    path = _write(tmp_path / "label.log", bad)
    _raises(
        iot23.read_file,
        path,
        match=r"label.log:10 column 'detailed-label': unknown detailed label 'teleport'",
    )
    bad = lines[:8] + [lines[8].replace("\t3\t180\t", "\tthree\t180\t")] + lines[9:]
    path = _write(tmp_path / "num.log", bad)
    _raises(iot23.read_file, path, match=r"num.log:9 column 'orig_pkts': text 'three'")
    bad = lines[:9] + ["\t".join(lines[9].split("\t")[:10])]
    path = _write(tmp_path / "short.log", bad)
    _raises(
        iot23.read_file,
        path,
        match=r"short.log:10 column 'tunnel_parents   label   detailed-label': fewer fields",
    )
