"""Every staged dataset file loads with exactly the rows and classes its SOURCE.md lists.

The expected numbers below are copied from the SOURCE.md files in shared/data, not from the loaders' specs,
so a wrong spec fails here too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotguard.core.schema import BENIGN, EXTRA_FEATURES, FAMILIES, FLOW_FEATURES
from iotguard.datasets import Dataset, cicids2017, iot23, load, nsl_kdd, specs, unsw_nb15

# -- NSL-KDD ---------------------------------------------------------------------------------------------
NSL_CATEGORIES = {
    "KDDTrain+": (67_343, 45_927, 11_656, 995, 52),
    "KDDTrain+_20Percent": (13_449, 9_234, 2_289, 209, 11),
    "KDDTest+": (9_711, 7_458, 2_421, 2_754, 200),
    "KDDTest-21": (2_152, 4_342, 2_402, 2_754, 200),
}
NSL_TRAIN_LABELS = dict(
    normal=67343, neptune=41214, satan=3633, ipsweep=3599, portsweep=2931, smurf=2646, nmap=1493, back=956,
    teardrop=892, warezclient=890, pod=201, guess_passwd=53, buffer_overflow=30, warezmaster=20, land=18,
    imap=11, rootkit=10, loadmodule=9, ftp_write=8, multihop=7, phf=4, perl=3, spy=2,
)  # fmt: skip
NSL_TEST_LABELS = dict(
    normal=9711, neptune=4657, guess_passwd=1231, mscan=996, warezmaster=944, apache2=737, satan=735,
    processtable=685, smurf=665, back=359, snmpguess=331, saint=319, mailbomb=293, snmpgetattack=178,
    portsweep=157, ipsweep=141, httptunnel=133, nmap=73, pod=41, buffer_overflow=20, multihop=18, named=17,
    ps=15, sendmail=14, xterm=13, rootkit=13, teardrop=12, xlock=9, land=7, xsnoop=4, ftp_write=3,
    loadmodule=2, worm=2, perl=2, sqlattack=2, udpstorm=2, phf=2, imap=1,
)  # fmt: skip
NSL_TEST_ONLY = set(
    [
        "apache2",
        "mailbomb",
        "processtable",
        "udpstorm",
        "mscan",
        "saint",
        "named",
        "sendmail",
        "snmpgetattack",
        "snmpguess",
        "worm",
        "xlock",
        "xsnoop",
        "httptunnel",
        "ps",
        "sqlattack",
        "xterm",
    ]
)


def _label_counts(ds: Dataset) -> dict[str, int]:
    return {str(k): int(v) for k, v in ds.label.value_counts().items()}


@pytest.mark.parametrize("split", list(NSL_CATEGORIES))
def test_nsl_kdd_rows_and_categories(data_root, data_file, split):
    data_file(f"nsl-kdd/{split}.txt.gz")
    ds = load("nsl-kdd", split, data_dir=data_root)
    counts = ds.category.value_counts()
    expected = dict(zip((BENIGN, "DoS", "Probe", "R2L", "U2R"), NSL_CATEGORIES[split], strict=True))
    assert {k: int(counts.get(k, 0)) for k in expected} == expected
    assert len(ds) == sum(expected.values())
    assert ds.split == split and ds.name == "nsl-kdd"
    assert len(ds.features) == 41 and ds.features[:4] == ["duration", "protocol_type", "service", "flag"]
    assert ds.categorical == ["protocol_type", "service", "flag"]
    assert "difficulty" in ds.frame.columns and "difficulty" not in ds.features
    assert ds.frame["difficulty"].between(0, 21).all()
    assert (ds.y == (ds.category != BENIGN).to_numpy()).all()
    assert all(pd.api.types.is_numeric_dtype(ds.X[c]) for c in ds.features if c not in ds.categorical)


def test_nsl_kdd_label_counts_and_test_only_attacks(data_root, data_file):
    data_file("nsl-kdd/KDDTrain+.txt.gz")
    data_file("nsl-kdd/KDDTest+.txt.gz")
    train, test = (
        load("nsl-kdd", "KDDTrain+", data_dir=data_root),
        load("nsl-kdd", "KDDTest+", data_dir=data_root),
    )
    rename = {"normal": BENIGN}
    assert _label_counts(train) == {rename.get(k, k): v for k, v in NSL_TRAIN_LABELS.items()}
    assert _label_counts(test) == {rename.get(k, k): v for k, v in NSL_TEST_LABELS.items()}
    only_in_test = set(test.label) - set(train.label)
    assert only_in_test == NSL_TEST_ONLY
    assert set(test.category) == {BENIGN, "DoS", "Probe", "R2L", "U2R"}


def test_nsl_kdd_default_split_and_explicit_data_dir(data_root, monkeypatch):
    monkeypatch.delenv("IOTGUARD_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-cache")
    ds = load("nsl-kdd", data_dir=data_root)
    assert ds.split == "KDDTrain+" and len(ds) == 125_973
    assert ds.files == [data_root / "nsl-kdd" / "KDDTrain+.txt.gz"]


def test_nsl_kdd_map_in_code_agrees_with_staged_reference(data_file):
    reference = pd.read_csv(data_file("nsl-kdd/attack_category_map.csv"))
    staged = {r.label: (BENIGN if r.category == "normal" else r.category) for r in reference.itertuples()}
    assert staged == nsl_kdd.CATEGORY


# -- CICIDS2017 ------------------------------------------------------------------------------------------
CNS_FILES = {
    "BENIGN_5000": ("Benign", 5000, BENIGN),
    "Botnet_736": ("Botnet", 736, "Botnet"),
    "DDoS_5000": ("DDoS", 5000, "DDoS"),
    "DoS_GoldenEye_5000": ("DoS GoldenEye", 5000, "DoS"),
    "DoS_Hulk_5000": ("DoS Hulk", 5000, "DoS"),
    "DoS_Slowhttptest_1740": ("DoS Slowhttptest", 1740, "DoS"),
    "DoS_Slowloris_3859": ("DoS Slowloris", 3859, "DoS"),
    "FTP-Patator_3972": ("FTP-Patator", 3972, "BruteForce"),
    "Heartbleed_11": ("Heartbleed", 11, "Heartbleed"),
    "Infiltration_-_Portscan_5000": ("Infiltration - PortScan", 5000, "PortScan"),
    "Infiltration_36": ("Infiltration", 36, "Infiltration"),
    "Portscan_5000": ("PortScan", 5000, "PortScan"),
    "SSH-Patator_2961": ("SSH-Patator", 2961, "BruteForce"),
    "Web_Attack_-_Brute_Force_73": ("Web Attack - Brute Force", 73, "WebAttack"),
    "Web_Attack_-_SQL_Injection_13": ("Web Attack - SQL Injection", 13, "WebAttack"),
    "Web_Attack_-_XSS_18": ("Web Attack - XSS", 18, "WebAttack"),
}


@pytest.mark.parametrize("stem", list(CNS_FILES))
def test_cicids2017_cns2022_file(data_file, stem):
    path = data_file(f"cicids2017/improved_cns2022_rnd5000/{stem}.csv.gz")
    label, rows, family = CNS_FILES[stem]
    frame = cicids2017.read_file(path)
    assert len(frame) == rows
    assert set(frame["label"]) == {label}
    assert set(frame["category"]) == {family}
    assert (frame["is_attack"] == int(family != BENIGN)).all()


def test_cicids2017_improved_split(data_root, data_file):
    data_file("cicids2017/improved_cns2022_rnd5000/BENIGN_5000.csv.gz")
    ds = load("cicids2017", data_dir=data_root)
    assert ds.split == "improved" and len(ds) == 43_419 and len(ds.files) == 16
    assert ds.features == [*FLOW_FEATURES, *EXTRA_FEATURES]
    assert set(ds.category) <= set(FAMILIES)
    assert set(ds.category) == {BENIGN, "DoS", "DDoS", "PortScan", "BruteForce", "WebAttack", "Botnet",
                                "Infiltration", "Heartbleed"}  # fmt: skip
    for column in ("flow_id", "src_ip", "src_port", "dst_ip", "ts_first", "record_id", "attempted_category"):
        assert column in ds.frame.columns and column not in ds.features
    assert (ds.frame["attempted_category"] == -1).all()
    # The capture ran 3-7 July 2017; CNS2022 times are UTC.
    start = pd.Timestamp("2017-07-03", tz="UTC").timestamp()
    assert ds.time.between(start, start + 5 * 86400).all()
    # CIC's schedule: Heartbleed on Wednesday 15:12-15:32 local (ADT, UTC-3).
    heartbleed = pd.to_datetime(ds.time[ds.label == "Heartbleed"], unit="s", utc=True)
    assert heartbleed.min() >= pd.Timestamp("2017-07-05 18:11", tz="UTC")
    assert heartbleed.max() <= pd.Timestamp("2017-07-05 18:33", tz="UTC")
    assert ds.host is not None and ds.host.str.match(r"^\d+\.\d+\.\d+\.\d+$").all()
    assert not np.isinf(ds.X.to_numpy(dtype=float)).any()  # SOURCE.md: no inf in this sample


def test_cicids2017_folder_name_is_a_split(data_root, data_file):
    data_file("cicids2017/improved_cns2022_rnd5000/BENIGN_5000.csv.gz")
    assert len(load("cicids2017", "improved_cns2022_rnd5000", data_dir=data_root)) == 43_419


def test_cicids2017_original_trafficlabelling_sample(data_root, data_file):
    data_file("cicids2017/original_trafficlabelling/web_attacks_balanced.csv.gz")
    ds = load("cicids2017", "original", data_dir=data_root)
    assert len(ds) == 7267
    assert _label_counts(ds) == {
        BENIGN: 5087,
        "Web Attack - Brute Force": 1507,
        "Web Attack - XSS": 652,
        "Web Attack - SQL Injection": 21,
    }
    assert set(ds.category) == {BENIGN, "WebAttack"}
    assert ds.features == list(FLOW_FEATURES)
    # This copy replaced addresses and times by integer codes: they are left out, ports and flow ids kept.
    assert "src_ip" not in ds.frame.columns and "ts_first" not in ds.frame.columns
    assert ds.time is None and ds.host is None
    assert ds.frame["src_port"].dtype == np.int64 and "flow_id" in ds.frame.columns


# -- UNSW-NB15 -------------------------------------------------------------------------------------------
UNSW_CATEGORIES = dict(
    Normal=37000, Generic=18871, Exploits=11132, Fuzzers=6062, DoS=4089, Reconnaissance=3496, Analysis=677,
    Backdoor=583, Shellcode=378, Worms=44,
)  # fmt: skip


def test_unsw_nb15_training_set(data_root, data_file):
    data_file("unsw-nb15/UNSW_NB15_training-set.csv.gz")
    ds = load("unsw-nb15", data_dir=data_root)
    assert ds.split == "training-set" and len(ds) == 82_332
    counts = {str(k): int(v) for k, v in ds.category.value_counts().items()}
    assert counts == {(BENIGN if k == "Normal" else k): v for k, v in UNSW_CATEGORIES.items()}
    assert int(ds.y.sum()) == 45_332
    assert ds.features == list(unsw_nb15.FEATURES) and len(ds.features) == 42
    assert ds.features[0] == "dur"  # the BOM did not glue itself to a column name
    assert ds.categorical == ["proto", "service", "state"]
    # Row order and ids are kept so that a documented split can be made.
    assert (ds.frame["id"].to_numpy() == np.arange(1, 82_333)).all()
    assert "-" in set(ds.frame["service"])


# -- IoT-23 ----------------------------------------------------------------------------------------------
IOT23 = {
    "CTU-IoT-Malware-Capture-34-1": {
        BENIGN: 1923,
        "C&C": 6706,
        "DDoS": 14394,
        "PartOfAHorizontalPortScan": 122,
    },
    "CTU-IoT-Malware-Capture-42-1": {BENIGN: 4420, "FileDownload": 3, "C&C-FileDownload": 3},
    "CTU-Honeypot-Capture-4-1": {BENIGN: 452},
}


@pytest.mark.parametrize("scenario", list(IOT23))
def test_iot23_scenario(data_root, data_file, scenario):
    data_file(f"iot23/{scenario}/conn.log.labeled.gz")
    ds = load("iot23", scenario, data_dir=data_root)
    assert _label_counts(ds) == IOT23[scenario]
    assert len(ds) == sum(IOT23[scenario].values())
    assert (ds.frame["scenario"] == scenario).all()
    assert ds.features == list(iot23.FEATURES)
    for column in ("flow_id", "ts_first", "src_ip", "src_port", "dst_ip", "dst_port", "protocol"):
        assert column in ds.frame.columns and column not in ds.features
    assert set(ds.frame["protocol"].dropna()) <= {1, 6, 17}
    assert ds.frame["label"].notna().all() and set(ds.category) <= set(FAMILIES)


def test_iot23_all_and_families(data_root, data_file):
    data_file("iot23/CTU-IoT-Malware-Capture-34-1/conn.log.labeled.gz")
    ds = load("iot23", data_dir=data_root)
    assert ds.split == "all" and len(ds) == 23_145 + 4_426 + 452
    mirai = ds.subset(ds.frame["scenario"] == "CTU-IoT-Malware-Capture-34-1")
    families = {str(k): int(v) for k, v in mirai.category.value_counts().items()}
    assert families == {BENIGN: 1923, "Botnet": 6706, "DDoS": 14394, "PortScan": 122}
    # Unset values ('-') are NaN, history letters are counted per direction.
    assert ds.frame["duration"].isna().any() and (ds.frame["duration"].dropna() >= 0).all()
    first = ds.frame.iloc[0]
    assert first["hist_orig_data"] + first["hist_resp_data"] >= 0
    tcp_sf = ds.frame[(ds.frame["proto"] == "tcp") & (ds.frame["conn_state"] == "SF")]
    assert (tcp_sf["hist_orig_syn"] >= 1).mean() > 0.9


# -- every staged file -----------------------------------------------------------------------------------
def _staged_data_files(root: Path) -> list[Path]:
    patterns = (
        "nsl-kdd/*.txt.gz",
        "cicids2017/*/*.csv.gz",
        "unsw-nb15/*.csv.gz",
        "iot23/*/conn.log.labeled.gz",
    )
    return sorted(p for pattern in patterns for p in root.glob(pattern))


def test_every_staged_file_is_known_and_loads_with_its_row_count(data_root):
    known = {f.path: (name, f) for name, spec in specs().items() for f in spec.files()}
    readers = {
        "nsl-kdd": nsl_kdd.read_file,
        "cicids2017": cicids2017.read_file,
        "unsw-nb15": unsw_nb15.read_file,
        "iot23": iot23.read_file,
    }
    files = _staged_data_files(data_root)
    assert len(files) == 4 + 17 + 1 + 3
    for path in files:
        relative = path.relative_to(data_root).as_posix().removesuffix(".gz")
        assert relative in known, f"{relative} is not described by any dataset spec"
        name, spec_file = known[relative]
        assert len(readers[name](path)) == spec_file.rows, relative
