"""IoT-23 (Garcia, Parmisano and Erquiaga, 2020): labelled Zeek ``conn.log.labeled`` files, one per scenario.

Zeek TSV: ``#`` header lines (``#fields`` names the columns), ``-`` for unset values. The IoT-23 quirk: the
last three fields (``tunnel_parents``, ``label``, ``detailed-label``) are separated by three spaces, not a
tab, in the ``#fields`` line and in every record; files with proper tabs read too. A split is a scenario
folder (``iot23/CTU-IoT-Malware-Capture-34-1/``) holding ``conn.log.labeled`` (or ``bro/conn.log.labeled``,
as upstream lays it out), plain or gzipped; ``all`` (the default) is every scenario folder found.

Features are the conn log's own statistics under Zeek's names (their meaning differs from CICFlowMeter's:
``duration`` is in seconds, ``orig_bytes`` counts payload by TCP sequence numbers), plus letter counts of
the ``history`` string. Identity columns: ``flow_id`` (Zeek's uid), ``ts_first``, ``src_ip``, ``src_port``,
``dst_ip``, ``dst_port``, ``protocol`` (IANA number), and ``scenario``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from iotguard.core.errors import DataError, DatasetNotFoundError, location
from iotguard.core.progress import Progress
from iotguard.core.schema import BENIGN
from iotguard.datasets.base import Dataset
from iotguard.datasets.reading import (
    concat,
    first,
    line_of,
    open_text,
    read_csv,
    require_complete,
    require_known,
    require_numeric,
    require_rows,
    sniff,
)
from iotguard.datasets.spec import GZ, DataFile, DatasetSpec, Source, SplitSpec

LOG_NAME = "conn.log.labeled"
HEADER_LINES = 0  # the '#' lines are not counted as records anyway
ALL = "all"

# Zeek history letters; upper case is the originator, lower case the responder.
_HISTORY = {
    "S": "syn",
    "H": "synack",
    "A": "ack",
    "D": "data",
    "F": "fin",
    "R": "rst",
    "C": "badsum",
    "G": "gap",
    "T": "retrans",
    "W": "zerowin",
    "I": "inconsistent",
    "Q": "multiflag",
}
HISTORY_FEATURES: tuple[str, ...] = (
    *(f"hist_orig_{n}" for n in _HISTORY.values()),
    *(f"hist_resp_{n}" for n in _HISTORY.values()),
    "hist_flipped",
)
NUMERIC_FEATURES: tuple[str, ...] = (
    "duration",
    "orig_bytes",
    "resp_bytes",
    "missed_bytes",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
)
CATEGORICAL: tuple[str, ...] = ("proto", "service", "conn_state")
FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL, *HISTORY_FEATURES)
REQUIRED_FIELDS: tuple[str, ...] = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "label",
    "detailed-label",
)
_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}

# detailed-label of a malicious flow -> family (IoT-23's label glossary; see docs/datasets.md for why).
FAMILY: dict[str, str] = {
    "PartOfAHorizontalPortScan": "PortScan",
    "PartOfAHorizontalPortScan-Attack": "PortScan",
    "DDoS": "DDoS",
    # Flows to or from the command-and-control server, whatever else the label adds.
    "C&C": "Botnet",
    "C&C-HeartBeat": "Botnet",
    "C&C-HeartBeat-Attack": "Botnet",
    "C&C-HeartBeat-FileDownload": "Botnet",
    "C&C-FileDownload": "Botnet",
    "C&C-Torii": "Botnet",
    "C&C-Mirai": "Botnet",
    "C&C-PartOfAHorizontalPortScan": "Botnet",
    # Traffic identified as the Okiru (Mirai variant) bot's own activity.
    "Okiru": "Botnet",
    "Okiru-Attack": "Botnet",
    # The infected device fetching further malware or updates from the botnet's servers.
    "FileDownload": "Botnet",
    # Exploitation attempts from the infected device, mostly telnet password guessing.
    "Attack": "BruteForce",
}
_FAMILY_BY_KEY = {k.lower(): (k, v) for k, v in FAMILY.items()}

_STRATOSPHERE = "https://mcfp.felk.cvut.cz/publicDatasets/IoT-23-Dataset/IndividualScenarios"
_DEVARSHIP = (
    "https://raw.githubusercontent.com/devarship97/PracticeIDS/39531d3dffa2f7008eef1d46cb97ea0d04015d11"
)
_ALEJANDRO = (
    "https://raw.githubusercontent.com/alejandro945/ul-feature-selection-for-botnet-detection/"
    "0c4939b31f98cc2ba9534388c964fe34f0ebb052"
)


def _scenario(name: str, rows: int, sha: str, gz_sha: str, url: str, note: str) -> DataFile:
    return DataFile(
        path=f"iot23/{name}/{LOG_NAME}",
        rows=rows,
        sha256=sha,
        gz_sha256=gz_sha,
        source=Source(url=url, sha256=sha, note=f"{note}; original: {_STRATOSPHERE}/{name}/bro/{LOG_NAME}"),
    )


_MIRAI = _scenario(
    "CTU-IoT-Malware-Capture-34-1",
    23_145,
    "1c9fbd8a90bde2606e928beb9957a97f615179e8b1ba65bba0cf594d0395e1f1",
    "b3afd0c19f59541d822722d67e75bc21c5df3b1dbdc3d6485016471628410297",
    f"{_ALEJANDRO}/data/conn.log.labeled",
    "copy in alejandro945/ul-feature-selection-for-botnet-detection",
)
_TROJAN = _scenario(
    "CTU-IoT-Malware-Capture-42-1",
    4_426,
    "e49c276579ae4d08d2e52c97c9a98eccb4567574a4a7a19eb835dded6e6f2e04",
    "980d656923dc9a76e5dd55af521eb689a509132d68debdc69fe53d0736d89bd1",
    f"{_DEVARSHIP}/CTU-IoT-Malware-Capture-42-1/bro/conn.log.labeled",
    "copy in devarship97/PracticeIDS (CRLF line ends)",
)
_HONEYPOT = _scenario(
    "CTU-Honeypot-Capture-4-1",
    452,
    "a206bb599a21a6fc8190466644479c27e9534b34e17b63009d7861edc0977e80",
    "2c34c7fe9dd39b5b950f14d5ea359c103497c811b79047b4e125d3d80ea47a82",
    f"{_DEVARSHIP}/CTU-Honeypot-Capture-4-1/bro/conn.log.labeled",
    "copy in devarship97/PracticeIDS (CRLF line ends)",
)
_KNOWN = (_MIRAI, _TROJAN, _HONEYPOT)
_NOTES = {
    "CTU-IoT-Malware-Capture-34-1": "Mirai: C&C, DDoS and horizontal port scan flows, 2018-12-21/22",
    "CTU-IoT-Malware-Capture-42-1": "Trojan: mostly benign, 6 file-download flows, 2019-01-10",
    "CTU-Honeypot-Capture-4-1": "benign honeypot device, 2018-10-25",
}

SPEC = DatasetSpec(
    name="iot23",
    title="IoT-23",
    description=(
        "Labelled Zeek conn logs of real IoT devices infected with malware (Mirai, Torii, Okiru, ...) and of "
        "benign honeypot devices; one split per scenario folder."
    ),
    splits={
        ALL: SplitSpec(ALL, "every scenario folder found under iot23/", _KNOWN),
        **{
            f.path.split("/")[1]: SplitSpec(f.path.split("/")[1], _NOTES[f.path.split("/")[1]], (f,))
            for f in _KNOWN
        },
    },
    default_split=ALL,
    citation=(
        'S. Garcia, A. Parmisano, M. J. Erquiaga, "IoT-23: A labeled dataset with malicious and benign IoT '
        'network traffic" (Version 1.0.0), Stratosphere Laboratory, CTU Prague, 2020, '
        "Zenodo, doi:10.5281/zenodo.4743746."
    ),
    license=(
        "Stratosphere Laboratory; believed CC BY 4.0 upstream (check the Zenodo record). "
        "The GitHub copies carry no license file. Real malware traces: handle as untrusted input."
    ),
    homepage="https://www.stratosphereips.org/datasets-iot23",
)


def log_candidates(root: Path, scenario: str) -> list[Path]:
    base = root / "iot23" / scenario
    return [base / LOG_NAME, base / (LOG_NAME + GZ), base / "bro" / LOG_NAME, base / "bro" / (LOG_NAME + GZ)]


def scenarios(root: Path) -> list[str]:
    """Scenario folders under ``iot23/`` that hold a conn log, sorted."""
    folder = root / "iot23"
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and any(c.is_file() for c in log_candidates(root, p.name))
    )


def extra_splits(root: Path) -> list[str]:
    """Scenario folders found that the spec does not list (each is a split)."""
    return [s for s in scenarios(root) if s not in SPEC.splits]


def split_files(root: Path, split: str) -> list[Path]:
    return [p for _, p in _scenario_paths(root, split)]


def _scenario_paths(root: Path, split: str) -> list[tuple[str, Path]]:
    if split == ALL:
        names = scenarios(root)
        if not names:
            raise DatasetNotFoundError(
                "no IoT-23 scenario found",
                where=str(root / "iot23"),
                expected=f"iot23/<scenario>/{LOG_NAME}[.gz]; run `iotguard datasets download iot23`",
            )
    else:
        names = [split]
    paths = []
    for name in names:
        candidates = log_candidates(root, name)
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise DatasetNotFoundError(
                f"no conn log for IoT-23 scenario {name!r}",
                expected=" or ".join(str(c) for c in candidates)
                + (f" (scenarios found: {', '.join(scenarios(root)) or 'none'})"),
            )
        paths.append((name, path))
    return paths


def load(root: Path, split: str, progress: Progress) -> Dataset:
    paths = _scenario_paths(root, split)
    frames = []
    with progress.task(f"reading iot23 {split}", total=len(paths)) as task:
        for name, path in paths:
            frames.append(read_file(path, scenario=name))
            task.advance()
    return Dataset(
        name=SPEC.name,
        split=split,
        frame=concat(frames),
        features=list(FEATURES),
        categorical=list(CATEGORICAL),
        files=[p for _, p in paths],
    )


def read_header(path: Path, compression: str | None) -> tuple[int, list[str], list[str]]:
    """(number of leading ``#`` lines, tab-separated column names, all field names)."""
    count = 0
    tab_names: list[str] | None = None
    with open_text(path, compression) as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            count += 1
            if line.startswith("#fields"):
                tab_names = line.rstrip("\r\n").split("\t")[1:]
    if tab_names is None:
        raise DataError(
            "no '#fields' header line",
            where=location(path, line=count + 1),
            expected="a Zeek conn.log.labeled (TSV with '#fields' and '#types' lines)",
        )
    fields = [name for tab in tab_names for name in re.split(r"\s{3}", tab.strip())]
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise DataError(
                f"missing field {name!r} in the '#fields' line",
                where=location(path, line=count),
                expected="the fields of a labelled Zeek conn log: " + " ".join(REQUIRED_FIELDS),
            )
    return count, tab_names, fields


def read_file(path: Path, scenario: str | None = None) -> pd.DataFrame:
    """One ``conn.log.labeled``: features, identity columns, ``label``, ``category``, ``is_attack``."""
    compression = sniff(path, what="a Zeek conn.log.labeled")
    header_lines, tab_names, fields = read_header(path, compression)
    first_line = header_lines + 1
    quirk = len(tab_names) != len(fields)
    if quirk and any(re.search(r"\s{3}", n) for n in tab_names[:-1]):
        raise DataError(
            "space-separated names before the last field of the '#fields' line",
            where=location(path, line=header_lines),
            expected="tab-separated names (IoT-23 puts three spaces only between the last three)",
        )
    columns = tab_names if quirk else fields
    text = {
        "uid",
        "id.orig_h",
        "id.resp_h",
        "proto",
        "service",
        "conn_state",
        "history",
        "label",
        "detailed-label",
    }
    frame = read_csv(
        path,
        compression,
        sep="\t",
        header=None,
        names=columns,
        comment="#",
        quoting=csv.QUOTE_NONE,
        dtype={c: str for c in columns if c in text or c == tab_names[-1]},
        keep_default_na=False,
        na_values=["-", ""],
        encoding="latin-1",
    )
    require_rows(frame, path, first_line)
    require_complete(frame, columns[-1], path, first_line, len(tab_names))
    if quirk:
        frame = _split_tail(frame, tab_names[-1], fields[len(tab_names) - 1 :], path, first_line)
    numeric = ["ts", "id.orig_p", "id.resp_p", *NUMERIC_FEATURES]
    require_numeric(frame, numeric, path, first_line)
    for column in ("id.orig_p", "id.resp_p"):
        require_complete(frame, column, path, first_line, len(tab_names))

    status = frame["label"].str.strip().str.lower()
    require_known(status, ("benign", "malicious"), path, first_line, "label", "label")
    malicious = (status == "malicious").to_numpy()
    fine = pd.Series(BENIGN, index=frame.index, dtype="str")
    family = pd.Series(BENIGN, index=frame.index, dtype="str")
    if malicious.any():
        keys = frame["detailed-label"][malicious].str.strip().str.lower().fillna("-")
        require_known(keys, _FAMILY_BY_KEY.keys(), path, first_line, "detailed-label", "detailed label")
        fine[malicious] = keys.map({k: v[0] for k, v in _FAMILY_BY_KEY.items()})
        family[malicious] = keys.map({k: v[1] for k, v in _FAMILY_BY_KEY.items()})

    out = pd.DataFrame({column: frame[column] for column in NUMERIC_FEATURES}, index=frame.index)
    for column in CATEGORICAL:
        out[column] = frame[column].fillna("-")
    out = pd.concat([out, _history_counts(frame["history"])], axis=1)
    out["flow_id"] = frame["uid"]
    out["ts_first"] = frame["ts"].astype("float64")
    out["src_ip"] = frame["id.orig_h"]
    out["src_port"] = frame["id.orig_p"].astype("int64")
    out["dst_ip"] = frame["id.resp_h"]
    out["dst_port"] = frame["id.resp_p"].astype("int64")
    out["protocol"] = out["proto"].map(_PROTOCOLS).astype("Int64")
    if scenario is not None:
        out["scenario"] = scenario
    out["label"] = fine
    out["category"] = family
    out["is_attack"] = malicious.astype("int8")
    return out.reset_index(drop=True)


def _split_tail(
    frame: pd.DataFrame, tail: str, names: list[str], path: Path, first_line: int
) -> pd.DataFrame:
    """Split the three-space separated last field; the work is done once per distinct value (there are few)."""
    codes, uniques = pd.factorize(frame[tail])
    parts = [re.split(r"\s{3}", value.strip("\r"), maxsplit=len(names) - 1) for value in uniques]
    bad = [i for i, p in enumerate(parts) if len(p) != len(names)]
    if bad:
        i = first(np.isin(codes, bad))
        raise DataError(
            f"{frame[tail].iloc[i]!r} is not {len(names)} values separated by three spaces",
            where=location(path, line=line_of(frame, i, first_line), column=names[0]),
            expected=" / ".join(names),
        )
    frame = frame.drop(columns=tail)
    for j, name in enumerate(names):
        values = np.array([None if p[j] == "-" else p[j] for p in parts], dtype=object)
        frame[name] = pd.Series(values[codes], index=frame.index, dtype="str")
    return frame


def _history_counts(history: pd.Series) -> pd.DataFrame:
    """Letter counts of Zeek's history string, computed once per distinct history (there are few)."""
    codes, uniques = pd.factorize(history.fillna(""))
    columns = {}
    for letter, name in _HISTORY.items():
        columns[f"hist_orig_{name}"] = np.array([u.count(letter) for u in uniques], dtype=np.int16)[codes]
        columns[f"hist_resp_{name}"] = np.array([u.count(letter.lower()) for u in uniques], dtype=np.int16)[
            codes
        ]
    columns["hist_flipped"] = np.array([int("^" in u) for u in uniques], dtype=np.int8)[codes]
    return pd.DataFrame({n: columns[n] for n in HISTORY_FEATURES}, index=history.index)
