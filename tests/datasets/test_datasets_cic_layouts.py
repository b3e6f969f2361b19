"""The official CICIDS2017 layouts (not staged: files too large) as the CIC CSVs lay them out, byte for byte:
leading spaces in the header, the duplicated Fwd Header Length, cp1252 en dashes, Infinity/NaN in the rate
columns, CRLF line ends, and (TrafficLabelling) day-first 12-hour timestamps in local time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotguard.core.errors import DataError
from iotguard.core.schema import BENIGN, CIC_ORIGINAL_NAMES, FLOW_FEATURES
from iotguard.datasets import cicids2017, load

STATS = [n for n in CIC_ORIGINAL_NAMES if n not in ("Destination Port", "Protocol")]
# (raw label bytes as the CIC files hold them, fine label, family)
LABELS = [
    (b"BENIGN", BENIGN, BENIGN),
    (b"Web Attack \x96 Brute Force", "Web Attack - Brute Force", "WebAttack"),  # cp1252 en dash
    (b"Web Attack \xef\xbf\xbd XSS", "Web Attack - XSS", "WebAttack"),  # U+FFFD after a bad re-encode
    (b"Web Attack \xe2\x80\x93 Sql Injection", "Web Attack - SQL Injection", "WebAttack"),  # UTF-8 en dash
    (b"Bot", "Botnet", "Botnet"),
    (b"DoS slowloris", "DoS Slowloris", "DoS"),
    (b"PortScan", "PortScan", "PortScan"),
    (b"Infiltration", "Infiltration", "Infiltration"),
    (b"Heartbleed", "Heartbleed", "Heartbleed"),
]


def _header(identity: bool) -> list[str]:
    stats = list(STATS)
    stats.insert(stats.index("Avg Bwd Segment Size") + 1, "Fwd Header Length")  # the duplicate
    names = ["Destination Port", *stats, "Label"]
    if identity:
        names = ["Flow ID", "Source IP", "Source Port", "Destination IP", "Destination Port", "Protocol",
                 "Timestamp", *stats, "Label"]  # fmt: skip
    # Most names carry a leading space in the official files; a few do not.
    return [n if n in ("Flow ID", "Flow Bytes/s", "Fwd PSH Flags") else " " + n for n in names]


def _write(path: Path, identity: bool, times: list[str] | None = None, blank_tail: int = 0) -> list[str]:
    header = _header(identity)
    rng = np.random.default_rng(0)
    lines = [",".join(header).encode("ascii")]
    for i, (raw, _, _) in enumerate(LABELS):
        values = {name.strip(): str(int(rng.integers(0, 1000))) for name in header}
        values["Flow Bytes/s"] = "Infinity" if i == 1 else ("NaN" if i == 2 else "12.5")
        values["Flow Packets/s"] = "Infinity" if i == 1 else "3.0"
        if identity:
            values["Flow ID"] = f"192.168.10.{i}-10.0.0.1-{40000 + i}-80-6"
            values["Source IP"], values["Destination IP"] = f"192.168.10.{i}", "10.0.0.1"
            values["Protocol"], values["Source Port"] = "6", f"{40000 + i}.0"
            values["Timestamp"] = (times or ["5/7/2017 3:12"])[i % len(times or [1])]
        row = [values[n.strip()].encode("ascii") for n in header[:-1]] + [raw]
        lines.append(b",".join(row))
    lines += [b"," * (len(header) - 1)] * blank_tail
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return header


def test_machinelearningcve_layout(tmp_path):
    path = tmp_path / "cicids2017" / "MachineLearningCVE" / "Tuesday-WorkingHours.pcap_ISCX.csv"
    header = _write(path, identity=False)
    assert len(header) == 79 and header.count(" Fwd Header Length") == 2
    frame = cicids2017.read_file(path)
    assert len(frame) == len(LABELS)
    assert list(frame["label"]) == [fine for _, fine, _ in LABELS]
    assert list(frame["category"]) == [family for _, _, family in LABELS]
    assert list(frame["is_attack"]) == [int(f != BENIGN) for _, _, f in LABELS]
    assert math.isinf(frame["flow_bytes_per_s"][1]) and math.isnan(frame["flow_bytes_per_s"][2])
    assert math.isinf(frame["flow_packets_per_s"][1])
    assert "protocol" not in frame.columns and "src_ip" not in frame.columns  # MLCVE has neither
    ds = load("cicids2017", "original", data_dir=tmp_path)
    assert ds.features == [f for f in FLOW_FEATURES if f != "protocol"]
    assert ds.files == [path] and ds.time is None


def test_trafficlabelling_layout_and_local_times(tmp_path):
    path = tmp_path / "cicids2017" / "TrafficLabelling" / "Wednesday-workingHours.pcap_ISCX.csv"
    times = ["5/7/2017 3:12", "5/7/2017 9:05", "03/07/2017 08:55:58", "07/07/2017 12:30", "7/7/2017 5:02"]
    header = _write(path, identity=True, times=times, blank_tail=5)
    assert len(header) == 85
    frame = cicids2017.read_file(path)
    assert len(frame) == len(LABELS)  # the rows of bare commas are no records
    got = pd.to_datetime(frame["ts_first"], unit="s", utc=True)
    # local ADT (UTC-3), 12-hour clock without AM/PM: 3:12 is 15:12 local, 18:12 UTC
    want = [
        "2017-07-05 18:12",
        "2017-07-05 12:05",
        "2017-07-03 11:55:58",
        "2017-07-07 15:30",
        "2017-07-07 20:02",
    ]
    assert list(got[:5]) == [pd.Timestamp(w, tz="UTC") for w in want]
    assert frame["src_ip"][3] == "192.168.10.3" and frame["dst_ip"][0] == "10.0.0.1"
    assert frame["src_port"].dtype == np.int64 and frame["src_port"][2] == 40002
    assert frame["flow_id"][0] == "192.168.10.0-10.0.0.1-40000-80-6"
    ds = load("cicids2017", "original", data_dir=tmp_path)
    assert ds.features == list(FLOW_FEATURES)
    assert ds.host is not None and ds.time is not None


def test_both_official_layouts_in_one_folder(tmp_path):
    folder = tmp_path / "cicids2017" / "mixed"
    _write(folder / "a.csv", identity=True)
    _write(folder / "b.csv", identity=False)
    ds = load("cicids2017", "mixed", data_dir=tmp_path)
    assert len(ds) == 2 * len(LABELS)
    assert "protocol" not in ds.features  # only features every file has
    assert ds.frame["src_ip"].isna().sum() == len(LABELS)


def test_cns2022_attempted_labels(tmp_path, data_file):
    import gzip

    source = data_file("cicids2017/improved_cns2022_rnd5000/DoS_Hulk_5000.csv.gz")
    lines = gzip.decompress(source.read_bytes()).decode().splitlines()[:3]
    lines[2] = lines[2].replace(",DoS Hulk,-1", ",DoS Hulk - Attempted,2")
    path = tmp_path / "attempted.csv"
    path.write_text("\n".join(lines) + "\n")
    frame = cicids2017.read_file(path)
    assert list(frame["label"]) == ["DoS Hulk", "DoS Hulk - Attempted"]
    assert list(frame["category"]) == ["DoS", "DoS"]
    assert list(frame["attempted_category"]) == [-1, 2]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BENIGN", (BENIGN, BENIGN)),
        ("Portscan", ("PortScan", "PortScan")),
        ("Infiltration - Portscan", ("Infiltration - PortScan", "PortScan")),
        ("Botnet - Attempted", ("Botnet - Attempted", "Botnet")),
        ("Web Attack - Brute Force - Attempted", ("Web Attack - Brute Force - Attempted", "WebAttack")),
        ("  DDoS ", ("DDoS", "DDoS")),
        ("BENIGN - Attempted", None),
        ("DoS Teapot", None),
    ],
)
def test_label_spellings(raw, expected):
    assert cicids2017.canonical_label(raw) == expected


def test_unknown_label_in_official_layout(tmp_path):
    path = tmp_path / "x.csv"
    _write(path, identity=False)
    path.write_bytes(path.read_bytes().replace(b"Heartbleed", b"Heartburn"))
    with pytest.raises(DataError, match=r"x.csv:10 column 'Label': unknown label 'Heartburn'"):
        cicids2017.read_file(path)
