"""NSL-KDD (Tavallaee et al., 2009): KDD Cup 99 connection records without duplicates, with a difficulty level.

Headerless CSV, 43 fields: the 41 published features, the attack name and the difficulty (0-21, how many of
21 learners classified the record correctly; kept as a column, never a feature: it is derived from labels).
Every attack name, including the 17 that occur only in the test sets, maps to one of the published
categories DoS, Probe, R2L and U2R; ``normal`` becomes :data:`~iotguard.core.schema.BENIGN`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iotguard.core.errors import DataError, location
from iotguard.core.progress import Progress
from iotguard.core.schema import BENIGN
from iotguard.datasets.base import Dataset
from iotguard.datasets.locate import split_paths, split_spec
from iotguard.datasets.reading import concat, first, read_csv, require_known, require_numeric, sniff
from iotguard.datasets.spec import DataFile, DatasetSpec, Source, SplitSpec

FEATURES: tuple[str, ...] = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
CATEGORICAL: tuple[str, ...] = ("protocol_type", "service", "flag")
COLUMNS: tuple[str, ...] = (*FEATURES, "label", "difficulty")
CATEGORIES: tuple[str, ...] = (BENIGN, "DoS", "Probe", "R2L", "U2R")
HEADER_LINES = 0

# Attack name -> category. The 17 names marked "test only" never occur in KDDTrain+.
# httptunnel is U2R as in most NSL-KDD papers (a few put it under R2L).
CATEGORY: dict[str, str] = {
    "normal": BENIGN,
    # DoS
    "apache2": "DoS",  # test only
    "back": "DoS",
    "land": "DoS",
    "mailbomb": "DoS",  # test only
    "neptune": "DoS",
    "pod": "DoS",
    "processtable": "DoS",  # test only
    "smurf": "DoS",
    "teardrop": "DoS",
    "udpstorm": "DoS",  # test only
    # Probe
    "ipsweep": "Probe",
    "mscan": "Probe",  # test only
    "nmap": "Probe",
    "portsweep": "Probe",
    "saint": "Probe",  # test only
    "satan": "Probe",
    # R2L
    "ftp_write": "R2L",
    "guess_passwd": "R2L",
    "imap": "R2L",
    "multihop": "R2L",
    "named": "R2L",  # test only
    "phf": "R2L",
    "sendmail": "R2L",  # test only
    "snmpgetattack": "R2L",  # test only
    "snmpguess": "R2L",  # test only
    "spy": "R2L",
    "warezclient": "R2L",
    "warezmaster": "R2L",
    "worm": "R2L",  # test only
    "xlock": "R2L",  # test only
    "xsnoop": "R2L",  # test only
    # U2R
    "buffer_overflow": "U2R",
    "httptunnel": "U2R",  # test only
    "loadmodule": "U2R",
    "perl": "U2R",
    "ps": "U2R",  # test only
    "rootkit": "U2R",
    "sqlattack": "U2R",  # test only
    "xterm": "U2R",  # test only
}
TEST_ONLY: frozenset[str] = frozenset(
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

_REPO = "https://raw.githubusercontent.com/defcom17/NSL_KDD/27bbbdf5c5cccf9970b8b6037a0f19dc09c5a0a9"


def _file(name: str, rows: int, sha256: str, gz_sha256: str) -> DataFile:
    return DataFile(
        path=f"nsl-kdd/{name}.txt",
        rows=rows,
        sha256=sha256,
        gz_sha256=gz_sha256,
        source=Source(
            url=f"{_REPO}/{name.replace('+', '%2B')}.txt",
            sha256=sha256,
            note="defcom17/NSL_KDD mirror; same bytes as NSL_KDD.zip in mekkheir/Dataset",
        ),
    )


_TRAIN = _file(
    "KDDTrain+",
    125_973,
    "1b86d2f957b33082081bba410fe129b475efebcc13c9014c3f447c8271aadf95",
    "39e78eaceffb1a183af002b4994b100b69795895bfbf67cfc62dabd4c9b76d4e",
)
_TRAIN20 = _file(
    "KDDTrain+_20Percent",
    25_192,
    "7ea86479faab5ca2190b7f18b4982fb058ce5bf2b46e0e1017d0d9ef90f9c16e",
    "fc113da7acc7e3006f0c3bf00c9ba5c052be44b00af3b1951beff90694bf66ff",
)
_TEST = _file(
    "KDDTest+",
    22_544,
    "fa46b0935342616aa83b7c2578db355b6a7aaabbc492248172c7a1e8b7ab8f84",
    "1ebe1079af669e3c35ef7be25b5bafde1e47951244d1b4834682b14a22238da1",
)
_TEST21 = _file(
    "KDDTest-21",
    11_850,
    "746993ac9e25868827cacf09eab450050a2a1056e1ce48a1ad39f5dc801d531d",
    "cf79d2eab7d8cc749e7c088260c0297cbb26d95062d27d1f8c761f4eeac3327a",
)

SPEC = DatasetSpec(
    name="nsl-kdd",
    title="NSL-KDD",
    description="KDD Cup 99 connection records, de-duplicated, with difficulty levels; 41 features.",
    splits={
        "KDDTrain+": SplitSpec("KDDTrain+", "full training set", (_TRAIN,)),
        "KDDTrain+_20Percent": SplitSpec(
            "KDDTrain+_20Percent", "official 20% subset of KDDTrain+", (_TRAIN20,)
        ),
        "KDDTest+": SplitSpec("KDDTest+", "test set (17 attack types absent from training)", (_TEST,)),
        "KDDTest-21": SplitSpec(
            "KDDTest-21", "test records with difficulty < 21 (the hard ones)", (_TEST21,)
        ),
    },
    default_split="KDDTrain+",
    citation=(
        'M. Tavallaee, E. Bagheri, W. Lu, A. A. Ghorbani, "A Detailed Analysis of the KDD CUP 99 Data Set", '
        "Proc. IEEE Symposium on Computational Intelligence for Security and Defense Applications "
        "(CISDA), 2009."
    ),
    license=(
        "Owned by the Canadian Institute for Cybersecurity (UNB); free for research with the citation. "
        "The GitHub mirrors carry no license file."
    ),
    homepage="https://www.unb.ca/cic/datasets/nsl.html",
)


def split_files(root: Path, split: str) -> list[Path]:
    return [p for p, _ in split_paths(SPEC, split_spec(SPEC, split), root, suffixes=(".txt",))]


def load(root: Path, split: str, progress: Progress) -> Dataset:
    paths = split_files(root, split)
    frames = []
    with progress.task(f"reading nsl-kdd {split}", total=len(paths)) as task:
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
    """One NSL-KDD file as a frame: features, ``difficulty``, ``label``, ``category``, ``is_attack``."""
    compression = sniff(path)
    frame = read_csv(
        path,
        compression,
        header=None,
        names=list(COLUMNS),
        dtype={c: str for c in (*CATEGORICAL, "label")},
        encoding="latin-1",
    )
    missing = frame.isna().to_numpy()
    if missing.any():
        row, col = divmod(first(missing.ravel()), len(COLUMNS))
        raise DataError(
            "empty field, or fewer fields than a record has",
            where=location(path, line=row + 1, column=COLUMNS[col]),
            expected=f"{len(COLUMNS)} fields: 41 features, label, difficulty",
        )
    require_numeric(frame, [c for c in COLUMNS if c not in (*CATEGORICAL, "label")], path, first_line=1)
    labels = frame["label"].str.strip()
    require_known(labels, CATEGORY.keys(), path, 1, "label", "attack name")
    category = labels.map(CATEGORY)
    out = frame.loc[:, list(FEATURES)]
    out["difficulty"] = frame["difficulty"].astype("int64")
    out["label"] = labels.where(labels != "normal", BENIGN)
    out["category"] = category
    out["is_attack"] = (category != BENIGN).astype("int8")
    return out
