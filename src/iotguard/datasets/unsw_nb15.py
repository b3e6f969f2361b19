"""UNSW-NB15 (Moustafa and Slay, 2015): the partitioned training/testing-set CSVs (45 columns).

The files start with a UTF-8 byte-order mark. ``attack_cat`` is the published family (``Normal`` becomes
:data:`~iotguard.core.schema.BENIGN`) and ``label`` the 0/1 attack flag; the two must agree. ``proto``,
``service`` (``-`` means none) and ``state`` are categorical. ``id`` and the row order are kept so that a
documented split can be made; the data has no timestamps.

Naming swap: the circulating ``UNSW_NB15_training-set.csv`` holds 82,332 records with 37,000 Normal, which is
the size and mix the authors give for their *testing* partition (and ``UNSW_NB15_testing-set.csv``, 175,341
records, is their training partition). The split names here follow the file names; see docs/datasets.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iotguard.core.errors import DataError, location
from iotguard.core.progress import Progress
from iotguard.core.schema import BENIGN
from iotguard.datasets.base import Dataset
from iotguard.datasets.locate import split_paths, split_spec
from iotguard.datasets.reading import (
    check_header,
    concat,
    first,
    line_of,
    open_text,
    read_csv,
    require_known,
    require_numeric,
    require_rows,
    sniff,
)
from iotguard.datasets.spec import DataFile, DatasetSpec, Source, SplitSpec

FEATURES: tuple[str, ...] = tuple(
    [
        "dur",
        "proto",
        "service",
        "state",
        "spkts",
        "dpkts",
        "sbytes",
        "dbytes",
        "rate",
        "sttl",
        "dttl",
        "sload",
        "dload",
        "sloss",
        "dloss",
        "sinpkt",
        "dinpkt",
        "sjit",
        "djit",
        "swin",
        "stcpb",
        "dtcpb",
        "dwin",
        "tcprtt",
        "synack",
        "ackdat",
        "smean",
        "dmean",
        "trans_depth",
        "response_body_len",
        "ct_srv_src",
        "ct_state_ttl",
        "ct_dst_ltm",
        "ct_src_dport_ltm",
        "ct_dst_sport_ltm",
        "ct_dst_src_ltm",
        "is_ftp_login",
        "ct_ftp_cmd",
        "ct_flw_http_mthd",
        "ct_src_ltm",
        "ct_srv_dst",
        "is_sm_ips_ports",
    ]
)
CATEGORICAL: tuple[str, ...] = ("proto", "service", "state")
COLUMNS: tuple[str, ...] = ("id", *FEATURES, "attack_cat", "label")
HEADER_LINES = 1
CATEGORIES: tuple[str, ...] = (
    BENIGN,
    "Generic",
    "Exploits",
    "Fuzzers",
    "DoS",
    "Reconnaissance",
    "Analysis",
    "Backdoor",
    "Shellcode",
    "Worms",
)
# Spellings seen in the raw UNSW-NB15_1..4 files ("Backdoors", padded names) map to the partitioned ones.
_ALIASES = {"Normal": BENIGN, "Backdoors": "Backdoor"}

_TRAINING = DataFile(
    path="unsw-nb15/UNSW_NB15_training-set.csv",
    rows=82_332,
    sha256="734fe6642edf758f7c94d7d9149426b49d202fe8e7bf0bef47392489c3c0a559",
    gz_sha256="611e2b334b3980ce1a7208a5ca55f751472b9dc47b8382e19b6bf89701ca31f7",
    source=Source(
        url=(
            "https://raw.githubusercontent.com/akritiupadhyay-au/Cyber-Attack-Detection-with-Random-Forest/"
            "f666564e36db598d9e667bab58f97f955f095d99/UNSW_NB15_training-set.csv.zip"
        ),
        sha256="5ec6c31706a68cf4e2ec2602eb99db23c85cbe085a135160c182b3e07336f55c",
        member="UNSW_NB15_training-set.csv",
        note="same CSV bytes as the copies in vincentlemaire-labs/CAID2025 and Moe433/Assignment_1",
    ),
)
# No public copy with known bytes could be pinned: get it from the UNSW page (docs/datasets.md).
_TESTING = DataFile(path="unsw-nb15/UNSW_NB15_testing-set.csv", rows=175_341)

SPEC = DatasetSpec(
    name="unsw-nb15",
    title="UNSW-NB15",
    description=(
        "Argus/Bro flow features of a testbed with modern normal traffic and nine attack families "
        "(partitioned CSVs)."
    ),
    splits={
        "training-set": SplitSpec(
            "training-set",
            "UNSW_NB15_training-set.csv: 82,332 records, by size and mix the authors' TEST partition",
            (_TRAINING,),
        ),
        "testing-set": SplitSpec(
            "testing-set",
            "UNSW_NB15_testing-set.csv: 175,341 records, by size and mix the authors' TRAINING partition",
            (_TESTING,),
        ),
    },
    default_split="training-set",
    citation=(
        'N. Moustafa, J. Slay, "UNSW-NB15: a comprehensive data set for network intrusion detection systems '
        '(UNSW-NB15 network data set)", MilCIS 2015; N. Moustafa, J. Slay, "The evaluation of Network Anomaly '
        "Detection Systems: Statistical analysis of the UNSW-NB15 data set and the comparison with the KDD99 "
        'data set", Information Security Journal: A Global Perspective, 2016.'
    ),
    license="UNSW Canberra Cyber Range Lab: freely available for academic research with the citations.",
    homepage="https://research.unsw.edu.au/projects/unsw-nb15-dataset",
)


def split_files(root: Path, split: str) -> list[Path]:
    return [p for p, _ in split_paths(SPEC, split_spec(SPEC, split), root)]


def load(root: Path, split: str, progress: Progress) -> Dataset:
    paths = split_files(root, split)
    frames = []
    with progress.task(f"reading unsw-nb15 {split}", total=len(paths)) as task:
        for path in paths:
            frames.append(read_file(path))
            task.advance()
    return Dataset(
        name=SPEC.name,
        split=split,
        frame=concat(frames),
        features=list(FEATURES),
        categorical=list(CATEGORICAL),
        files=paths,
    )


def read_file(path: Path) -> pd.DataFrame:
    """One partitioned UNSW-NB15 CSV: ``id``, features, ``label``, ``category``, ``is_attack``."""
    compression = sniff(path)
    with open_text(path, compression, encoding="utf-8-sig") as fh:
        header = fh.readline()
    names = [n.strip() for n in header.strip("\r\n").split(",")]
    check_header(names, COLUMNS, path)
    frame = read_csv(
        path,
        compression,
        header=None,
        skiprows=1,
        names=names,
        dtype={c: str for c in (*CATEGORICAL, "attack_cat")},
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8-sig",
    )
    require_rows(frame, path, first_line=2)
    missing = frame[list(COLUMNS)].isna().to_numpy()
    if missing.any():
        row, col = divmod(first(missing.ravel()), len(COLUMNS))
        raise DataError(
            "empty field, or fewer fields than the header",
            where=location(path, line=row + 2, column=COLUMNS[col]),
            expected=f"{len(COLUMNS)} fields",
        )
    require_numeric(frame, [c for c in COLUMNS if c not in (*CATEGORICAL, "attack_cat")], path, first_line=2)
    category = frame["attack_cat"].str.strip().replace(_ALIASES)
    require_known(category, CATEGORIES, path, 2, "attack_cat", "attack category")
    flag = frame["label"]
    require_known(flag.astype("str"), ("0", "1"), path, 2, "label", "label value")
    disagree = (flag.to_numpy() == 1) != (category != BENIGN).to_numpy()
    if disagree.any():
        i = first(disagree)
        raise DataError(
            f"label {int(flag.iloc[i])} disagrees with attack_cat {frame['attack_cat'].iloc[i]!r}",
            where=location(path, line=line_of(frame, i, 2), column="label"),
            expected="label 0 exactly for Normal records",
        )
    out = frame.loc[:, ["id", *FEATURES]]
    for column in CATEGORICAL:
        out[column] = frame[column].str.strip()
    out["label"] = category
    out["category"] = category
    out["is_attack"] = flag.astype("int8")
    return out
