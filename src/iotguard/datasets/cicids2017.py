"""CICIDS2017 (Sharafaldin et al., 2018) in its three CSV layouts, mapped to one naming and one vocabulary.

Layouts, told apart by the header of each file:

* ``machinelearningcve``: the official MachineLearningCVE CSVs. 79 columns, leading spaces in the header, a
  duplicated ``Fwd Header Length`` (the copy is dropped), no identity columns and no ``Protocol``.
* ``trafficlabelling``: the official GeneratedLabelledFlows/TrafficLabelling CSVs. Adds ``Flow ID``, source
  and destination address and port, ``Protocol`` and ``Timestamp`` (local time, day first, 12-hour clock
  without AM/PM).
* ``cns2022``: the corrected re-extraction by Engelen et al. (``CICIDS2017_improved``, CNS 2022 release).
  91 columns with other names, five extra features, a row ``id``, UTC timestamps and ``Attempted Category``.

Feature columns get the canonical names of :mod:`iotguard.core.schema`. Labels of every layout (``Bot`` or
``Botnet``, ``PortScan`` or ``Portscan``, the web attacks' en dash as UTF-8, cp1252 or a replacement
character) map to one fine-label vocabulary (:data:`LABELS`) and the families of
:data:`iotguard.core.schema.FAMILIES`. ``Infinity`` and ``NaN`` in the rate columns stay inf/NaN.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from iotguard.core.errors import DataError, DatasetNotFoundError, location
from iotguard.core.progress import Progress
from iotguard.core.schema import (
    BENIGN,
    CIC_CNS2022_NAMES,
    CIC_ORIGINAL_NAMES,
    EXTRA_FEATURES,
    FLOW_FEATURES,
)
from iotguard.datasets.base import Dataset
from iotguard.datasets.locate import data_files, split_paths
from iotguard.datasets.reading import (
    check_header,
    concat,
    first,
    line_of,
    open_text,
    read_csv,
    require_complete,
    require_numeric,
    require_rows,
    sniff,
)
from iotguard.datasets.spec import DataFile, DatasetSpec, Source, SplitSpec

log = logging.getLogger(__name__)
HEADER_LINES = 1

# -- label vocabulary -------------------------------------------------------------------------------------
LABELS: dict[str, str] = {
    BENIGN: BENIGN,
    "DoS Hulk": "DoS",
    "DoS GoldenEye": "DoS",
    "DoS Slowloris": "DoS",
    "DoS Slowhttptest": "DoS",
    "DDoS": "DDoS",
    "PortScan": "PortScan",
    # The nmap scan the infiltrated victim ran inside the network (label added by Engelen et al.). Its flows
    # are a port scan's, so it joins PortScan: a model can only learn it from scan features, and holding out
    # "Infiltration" in a leave-one-family-out run would otherwise hide mostly scan flows that the PortScan
    # family teaches. The fine label keeps it apart.
    "Infiltration - PortScan": "PortScan",
    "FTP-Patator": "BruteForce",
    "SSH-Patator": "BruteForce",
    "Web Attack - Brute Force": "WebAttack",
    "Web Attack - XSS": "WebAttack",
    "Web Attack - SQL Injection": "WebAttack",
    "Botnet": "Botnet",
    "Infiltration": "Infiltration",
    "Heartbleed": "Heartbleed",
}
"""Fine label -> family. CNS2022 "... - Attempted" labels keep the family with " - Attempted" appended."""

ATTEMPTED = " - Attempted"

# Spelling key (lower case, every run of other characters one space) -> fine label.
_SPELLINGS: dict[str, str] = {re.sub(r"[^0-9a-z]+", " ", k.lower()).strip(): k for k in LABELS} | {
    "bot": "Botnet",
}

# -- layouts ----------------------------------------------------------------------------------------------
_ORIGINAL_STATS = tuple(n for n in CIC_ORIGINAL_NAMES if n not in ("Destination Port", "Protocol"))
_ORIGINAL_DUPLICATE = "Fwd Header Length.1"
_TL_IDENTITY = (
    "Flow ID",
    "Source IP",
    "Source Port",
    "Destination IP",
    "Destination Port",
    "Protocol",
    "Timestamp",
)
MACHINELEARNINGCVE = ("Destination Port", *_ORIGINAL_STATS, "Label")
TRAFFICLABELLING = (*_TL_IDENTITY, *_ORIGINAL_STATS, "Label")
_CNS_IDENTITY = ("id", "Flow ID", "Src IP", "Src Port", "Dst IP", "Dst Port", "Protocol", "Timestamp")
CNS2022 = (
    *_CNS_IDENTITY,
    *(n for n in CIC_CNS2022_NAMES if n not in ("Dst Port", "Protocol")),
    "Label",
    "Attempted Category",
)
_IDENTITY_NAMES = {
    "Flow ID": "flow_id",
    "Source IP": "src_ip",
    "Src IP": "src_ip",
    "Source Port": "src_port",
    "Src Port": "src_port",
    "Destination IP": "dst_ip",
    "Dst IP": "dst_ip",
}
_ALL_FEATURES = (*FLOW_FEATURES, *EXTRA_FEATURES)
# The capture ran in New Brunswick in July (ADT, UTC-3).
_LOCAL_UTC_OFFSET_S = 3 * 3600

# -- files ------------------------------------------------------------------------------------------------
_FUH = (
    "https://raw.githubusercontent.com/ScubaInstructor/fuh/86d1bab5ca174da11e20bc54d9642ba6068f273a/"
    "nids-daten/sampled_CICIDS2017_improved_rnd_5000"
)
_SAMPLE = "cicids2017/improved_cns2022_rnd5000"
# (file stem, rows, sha256 of the CSV, sha256 of the gzip -9 -n copy)
_SAMPLE_FILES = (
    ("BENIGN_5000", 5000, "4eb03c14763fe5ff4f58e713e39ad930cfdec264e8d5262b4acd6df3227298ae", "c231cff0942c948c4b5566d9ce19ce71e4b5b8a42394082cebbc80e69cd27e11"),
    ("Botnet_736", 736, "55b49f70d1d7df13644a3d5f01abb742e35cda5d952ee43c737eaa38a1a6ea79", "a16f1a6a123ef816436ce5e47d5ebd3e9e6229611a6b26200b07f2ac185223df"),
    ("DDoS_5000", 5000, "36eb4d2851997237b4b13e9f4c8175563d5236c784dcf7247b7b46b08dc62815", "8ec1bf03faff3bda0e47e210f95176427b91174eedf81131ff01eed11e3480c1"),
    ("DoS_GoldenEye_5000", 5000, "cb6f7b734168b643153cd45ce7f552e8b073b5b8a744c1a2a02763212d2cec6c", "83191ea6de4044a28f8eaf266d4ed94f33cf4a29bc7cf3856483a6a5880b6b88"),
    ("DoS_Hulk_5000", 5000, "64789076d2559ce1e4bead0fcbe2b806de2b3c5cd97771705295cafd3ed0cfb7", "73a30b8df8bb074b45e090de8844a751724f0df6893b273739eb2acf8c2886d6"),
    ("DoS_Slowhttptest_1740", 1740, "4159ba005254aa8b0a0c04b47844f2221369279eedf19308fa9875cc075f3534", "72a67509e6a0e21934b16c6fe2f6de4cd56e4612e84ed16c16955ac57ba9ab95"),
    ("DoS_Slowloris_3859", 3859, "8114bfec656df7e8c4b9d539640ad3b01ad50794a2faa9fb0ccf5884ca03f157", "20e7fa0c9bd682c148dcaf37e0cee676f10d5242b04608386468eeb89c399746"),
    ("FTP-Patator_3972", 3972, "73355b1584316393ec7b367407db0e2914d18692eff3bd7b9cc91ed89daa8145", "65c5a40cd12b0056a8f35a586486fe6b97e6d19bc0cab3470bc4217b259a14ef"),
    ("Heartbleed_11", 11, "bf610cc626325778dda3e54b431cc60142f6b8bffedb1f9b8a7f9481a673ea55", "09290fa1b407cbfe08cec94e412d2ec4a9e985906094d8e33fc7a565efc2077b"),
    ("Infiltration_-_Portscan_5000", 5000, "1a7a6a0906995f2eb6f2ea951b3d4ee024010e9e15783efb0a19c3c04876308d", "f28099930764442b2dd7d51ebd243dfba8f7ada94b0ee0fe00839a7b55885e9d"),
    ("Infiltration_36", 36, "3cd57b9cd7a7a9f7fa98f2c4d2147febafe551cc9d9b86a949a6947cda576beb", "8c1d3ab3cef011739d15ddc0b9174c1dd263357667b07da2ef54796a649091f5"),
    ("Portscan_5000", 5000, "022a5885f6704f8c4ab0ef888b31e5ee1aef46b6c64fe6b3c039e51f93f31c96", "d1a520b515cbaff3f543c2f0eabdd10eeb9c066cc06db5e7aee00a9d13a4639c"),
    ("SSH-Patator_2961", 2961, "07319168e4435ea24439f64ece1dcf64ad1c2c58cce9e062e9cba757aea94709", "37c70532f7c000ac44b0d606a2e7f504ef8c680cb09c4ca4fdf09513c9fd6054"),
    ("Web_Attack_-_Brute_Force_73", 73, "d244df46f686a48ded36b0328ad14e80beee1c5560fede0e3f07cea02ee030d9", "a59e32582f150969f4940d67bb911f9febe596983b3edd512defb304fc6f1de3"),
    ("Web_Attack_-_SQL_Injection_13", 13, "aca6ed973bf1ace011a44ddfc3914393895828666314a018e7581e27343be1e0", "f58cbcd63aa8085dc91d7876423588d118f1d158ef8be607df013ff5f7d0de40"),
    ("Web_Attack_-_XSS_18", 18, "51ffc2d6d24497e11768b2b80beca3a15353d76c3e28f5c98affc24e8affb94e", "7edf861281106cbea779d0c47d9b7a661574cd97a8498ebbefffeef6314e8c50"),
)  # fmt: skip
_IMPROVED_FILES = tuple(
    DataFile(
        path=f"{_SAMPLE}/{stem}.csv",
        rows=rows,
        sha256=sha,
        gz_sha256=gz_sha,
        source=Source(url=f"{_FUH}/{stem}.csv", sha256=sha, note="ScubaInstructor/fuh sample of CNS2022"),
    )
    for stem, rows, sha, gz_sha in _SAMPLE_FILES
)
_WEB_ATTACKS = DataFile(
    path="cicids2017/original_trafficlabelling/web_attacks_balanced.csv",
    rows=7267,
    sha256="48b6136739e96199bf6ee0ec5419568d715dfb84157f36b913eff3bb53f6d928",
    gz_sha256="bd5a66f79ac66244a1ed46bfde7586d45e07b4b73ef96d4eb8f1a8a17465926b",
    source=Source(
        url=(
            "https://raw.githubusercontent.com/fisher85/ml-cybersecurity/af0eb89bd5751dec68cfffbb1bfa4f406315aa79/"
            "python-web-attack-detection/datasets/web_attacks_balanced.zip"
        ),
        sha256="5304907e0c7f70dc5a9ec8221927a13212802259dcbfb9b24a11e863aeed6ef1",
        member="web_attacks_balanced.csv",
        note="fisher85/ml-cybersecurity: all web attacks of Thursday's TrafficLabelling CSV plus random benign",
    ),
)

SPEC = DatasetSpec(
    name="cicids2017",
    title="CIC-IDS-2017",
    description=(
        "Five days of a small office network under 14 attacks, as CICFlowMeter flow records; "
        "official CSVs and the corrected CNS2022 re-extraction."
    ),
    splits={
        "improved": SplitSpec(
            "improved",
            "corrected CNS2022 re-extraction (Engelen et al.): every file of the first folder found",
            _IMPROVED_FILES,
            folders=("cicids2017/improved", _SAMPLE),
        ),
        "original": SplitSpec(
            "original",
            "official CIC CSVs (TrafficLabelling or MachineLearningCVE layout): every file of the first folder found",
            (_WEB_ATTACKS,),
            folders=(
                "cicids2017/TrafficLabelling",
                "cicids2017/MachineLearningCVE",
                "cicids2017/original_trafficlabelling",
            ),
        ),
    },
    default_split="improved",
    citation=(
        'I. Sharafaldin, A. H. Lashkari, A. A. Ghorbani, "Toward Generating a New Intrusion Detection Dataset '
        'and Intrusion Traffic Characterization", ICISSP 2018. For the improved (CNS2022) data also: '
        'G. Engelen, V. Rimmer, W. Joosen, "Troubleshooting an Intrusion Detection Dataset: the CICIDS2017 '
        'Case Study", IEEE S&P Workshops (WTMC) 2021; L. Liu, G. Engelen, T. Lynar, D. Essam, W. Joosen, '
        '"Error Prevalence in NIDS datasets: A Case Study on CIC-IDS-2017 and CSE-CIC-IDS-2018", IEEE CNS 2022.'
    ),
    license=(
        "CIC terms: free for research on condition that the ICISSP 2018 paper is cited. "
        "The GitHub sample copies carry no license file."
    ),
    homepage="https://www.unb.ca/cic/datasets/ids-2017.html",
)


def split_files(root: Path, split: str) -> list[Path]:
    return [p for p, _ in split_paths(SPEC, _split(root, split), root, suffixes=(".csv",))]


def extra_splits(root: Path) -> list[str]:
    """Folders under ``cicids2017/`` with CSV files that no named split reads (usable as split names)."""
    named = {f for s in SPEC.splits.values() for f in s.folders}
    base = root / "cicids2017"
    if not base.is_dir():
        return []
    return sorted(
        p.name
        for p in base.iterdir()
        if p.is_dir() and f"cicids2017/{p.name}" not in named and data_files(p, (".csv",))
    )


def load(root: Path, split: str, progress: Progress) -> Dataset:
    paths = split_files(root, split)
    frames = []
    with progress.task(f"reading cicids2017 {split}", total=len(paths)) as task:
        for path in paths:
            frames.append(read_file(path))
            task.advance()
    frame = concat(frames)
    features = [f for f in _ALL_FEATURES if all(f in fr.columns for fr in frames)]
    return Dataset(
        name=SPEC.name,
        split=split,
        frame=frame,
        features=features,
        categorical=[],
        files=paths,
    )


def _split(root: Path, split: str) -> SplitSpec:
    """A named split, or any folder under ``cicids2017/`` (``load("cicids2017", "improved_cns2022_rnd5000")``)."""
    if split in SPEC.splits:
        return SPEC.splits[split]
    if "/" not in split and (root / "cicids2017" / split).is_dir():
        known = tuple(f for s in SPEC.splits.values() for f in s.files)
        return SplitSpec(split, f"folder cicids2017/{split}", known, folders=(f"cicids2017/{split}",))
    raise DatasetNotFoundError(
        f"unknown split {split!r} of dataset 'cicids2017'",
        where=str(root / "cicids2017"),
        expected="improved, original, or the name of a folder under cicids2017/",
    )


def read_header(path: Path, compression: str | None) -> list[str]:
    """The header's column names, stripped of BOM and spaces; a second ``Fwd Header Length`` becomes ``.1``."""
    with open_text(path, compression) as fh:
        line = fh.readline()
    names = next(csv.reader([line]), [])
    names = [n.replace("\ufeff", "").replace("ï»¿", "").strip() for n in names]
    if len(names) > 1 and names.count("Fwd Header Length") == 2:
        names[len(names) - 1 - names[::-1].index("Fwd Header Length")] = _ORIGINAL_DUPLICATE
    return names


def layout_of(names: list[str], path: Path) -> str:
    if "Total Fwd Packet" in names or "Attempted Category" in names:
        return "cns2022"
    if "Flow ID" in names or "Source IP" in names:
        return "trafficlabelling"
    if "Total Fwd Packets" in names or "Destination Port" in names:
        return "machinelearningcve"
    raise DataError(
        f"header is not a CICIDS2017 one (it starts {', '.join(names[:3])!r})",
        where=location(path, line=1),
        expected="the MachineLearningCVE, TrafficLabelling or CNS2022 header",
    )


def read_file(path: Path) -> pd.DataFrame:
    """One CICIDS2017 CSV of any layout, in canonical names with ``label``, ``category``, ``is_attack``."""
    compression = sniff(path)
    names = read_header(path, compression)
    layout = layout_of(names, path)
    expected = {"cns2022": CNS2022, "trafficlabelling": TRAFFICLABELLING}.get(layout, MACHINELEARNINGCVE)
    check_header(names, expected, path, optional=() if layout == "cns2022" else (_ORIGINAL_DUPLICATE,))
    text = [
        c
        for c in ("Flow ID", "Source IP", "Destination IP", "Src IP", "Dst IP", "Timestamp", "Label")
        if c in names
    ]
    frame = read_csv(
        path,
        compression,
        header=None,
        skiprows=1,
        names=names,
        dtype=dict.fromkeys(text, str),
        encoding="latin-1",
    )
    frame = _drop_empty_rows(frame, path)
    require_rows(frame, path, first_line=2)
    require_complete(frame, names[-1], path, 2, len(names))
    renames = CIC_CNS2022_NAMES if layout == "cns2022" else CIC_ORIGINAL_NAMES
    numeric = [
        c for c in names if c in renames or c in ("id", "Src Port", "Source Port", "Attempted Category")
    ]
    require_numeric(frame, numeric, path, first_line=2)

    out = pd.DataFrame({renames[c]: frame[c] for c in names if c in renames}, index=frame.index)
    out = out[[f for f in _ALL_FEATURES if f in out.columns]]
    encoded = []
    for column, canonical in _IDENTITY_NAMES.items():
        if column in frame.columns:
            values = _identity(frame[column], canonical)
            if values is None:
                encoded.append(column)
            else:
                out[canonical] = values
    if "src_port" in out.columns:
        out["src_port"] = _as_int(out["src_port"])
    if "Timestamp" in frame.columns:
        ts = _timestamps(frame["Timestamp"], layout, path)
        if ts is None:
            encoded.append("Timestamp")
        else:
            out["ts_first"] = ts
    if encoded:
        # Some public copies replaced addresses and times by integer codes; those are neither.
        log.warning("%s: %s hold integer codes, not addresses/times; left out", path, ", ".join(encoded))
    if layout == "cns2022":
        # The release's row id traces a record back to the full CNS2022 files. It is no feature: ids follow
        # capture order, so a model could read the label off them.
        out["record_id"] = frame["id"].astype("int64")
        out["attempted_category"] = frame["Attempted Category"].astype("int64")
    fine, family = _labels(frame["Label"], path)
    out["label"] = fine
    out["category"] = family
    out["is_attack"] = (family != BENIGN).to_numpy().astype("int8")
    return out.reset_index(drop=True)


def _drop_empty_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    # The official Thursday WebAttacks TrafficLabelling CSV ends in hundreds of thousands of rows of bare
    # commas; they are no records.
    empty = frame.isna().all(axis=1).to_numpy()
    if empty.any():
        log.info("%s: skipped %d empty rows (only separators)", path, int(empty.sum()))
        frame = frame.loc[~empty]
    return frame


def _identity(values: pd.Series, canonical: str) -> pd.Series | None:
    if canonical in ("src_ip", "dst_ip"):
        text = values.astype("str")
        return text if text.str.contains(r"[.:]", regex=True).any() else None
    if canonical == "flow_id":
        return values.astype("str")
    return values


def _as_int(values: pd.Series) -> pd.Series:
    if values.isna().any():
        return values.astype("Int64")
    return values.astype("int64")


def _timestamps(raw: pd.Series, layout: str, path: Path) -> pd.Series | None:
    """Flow start as float epoch seconds (UTC), or None when the column holds no times (label-encoded)."""
    text = raw.str.strip()
    present = text.notna() & (text != "")
    if not present.any():
        return None
    if text[present].str.fullmatch(r"\d+").all():
        return None
    if layout == "cns2022":
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        _require_parsed(parsed, present, text, path, "YYYY-MM-DD HH:MM:SS[.ffffff]")
        return (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    # Official files: day first, 12-hour clock with no AM/PM in most files, local time (ADT).
    parsed = pd.to_datetime(text, format="%d/%m/%Y %H:%M:%S", errors="coerce")
    pm_marked = pd.Series(False, index=text.index)
    for fmt in ("%d/%m/%Y %H:%M", "%d/%m/%Y %I:%M:%S %p", "%d/%m/%Y %I:%M %p"):
        todo = parsed.isna() & present
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        if "%p" in fmt:
            pm_marked |= todo & parsed.notna()
    _require_parsed(parsed, present, text, path, "D/M/YYYY H:MM[:SS]")
    # The capture days ran from about 08:30 to 18:00, so an unmarked hour 1-7 is in the afternoon.
    afternoon = (parsed.dt.hour < 8) & ~pm_marked
    parsed = parsed + pd.to_timedelta(np.where(afternoon.to_numpy(), 12, 0), unit="h")
    return (parsed - pd.Timestamp(0)) / pd.Timedelta(seconds=1) + _LOCAL_UTC_OFFSET_S


def _require_parsed(parsed: pd.Series, present: pd.Series, text: pd.Series, path: Path, fmt: str) -> None:
    bad = (parsed.isna() & present).to_numpy()
    if bad.any():
        i = first(bad)
        raise DataError(
            f"cannot read {text.iloc[i]!r} as a time",
            where=location(path, line=line_of(text, i, 2), column="Timestamp"),
            expected=f"a time like {fmt}",
        )


def canonical_label(raw: str) -> tuple[str, str] | None:
    """``(fine label, family)`` for any spelling of a CICIDS2017 label, or None when unknown."""
    key = re.sub(r"[^0-9a-z]+", " ", str(raw).lower()).strip()
    attempted = key.endswith(" attempted")
    if attempted:
        key = key[: -len(" attempted")]
    fine = _SPELLINGS.get(key)
    if fine is None:
        return None
    if attempted:
        return (fine + ATTEMPTED, LABELS[fine]) if fine != BENIGN else None
    return fine, LABELS[fine]


def _labels(raw: pd.Series, path: Path) -> tuple[pd.Series, pd.Series]:
    mapping: dict[str, tuple[str, str]] = {}
    for value in raw.unique():
        canon = canonical_label(value)
        if canon is None:
            i = first((raw == value).to_numpy())
            raise DataError(
                f"unknown label {value!r}",
                where=location(path, line=line_of(raw, i, 2), column="Label"),
                expected="a CICIDS2017 label such as BENIGN, DoS Hulk, PortScan, Bot (see docs/datasets.md)",
            )
        mapping[value] = canon
    fine = raw.map({k: v[0] for k, v in mapping.items()})
    family = raw.map({k: v[1] for k, v in mapping.items()})
    return fine, family
