"""Compare iotguard's flow features with the real CICFlowMeter (CNS2022 release) on capture files.

The reference is the corrected CICFlowMeter of Engelen et al. at commit 13a0615 (October 2022, the version
whose output columns the CNS2022 CICIDS2017 re-extraction has), built from a checkout of
https://github.com/GintsEngelen/CICFlowMeter with the system JDK. Its own sources are compiled unchanged; this
script adds a 20-line driver (``Main``) and a stand-in for ``Utils`` (whose upstream version needs Apache Tika).

Needs: a JDK (``javac``), the Debian packages ``libcommons-math3-java``, ``libcommons-lang3-java`` and
``libslf4j-java``, and libpcap. Usage::

    python scripts/flows_cicflowmeter_oracle.py --repo PATH/TO/CICFlowMeter[.git] CAPTURE...
    python scripts/flows_cicflowmeter_oracle.py --repo ... --shared   # every capture in $IOTGUARD_DATA_DIR

It prints, per capture, the flows each side found, how many matched (same 5-tuple and first-packet time to
the microsecond), and every feature cell that differs, sorted into the documented definition differences
(docs/features.md) and anything else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

COMMIT = "13a0615"
UNDEFINED_FOR_ZERO_DURATION = {"flow_bytes_per_s", "flow_packets_per_s"}
UNDEFINED_FOR_ONE_PACKET = {
    "flow_iat_mean",
    "flow_iat_std",
    "flow_iat_max",
    "flow_iat_min",
}
JARS = ["commons-math3.jar", "commons-lang3.jar", "slf4j-api.jar", "slf4j-nop.jar"]
SOURCES = [
    "BasicFlow",
    "BasicPacketInfo",
    "DateFormatter",
    "FlowFeature",
    "FlowGenerator",
    "IdGenerator",
    "PacketReader",
    "Protocol",
    "ProtocolEnum",
    "TcpFlowState",
    "worker/FlowGenListener",
]
UTILS = """package cic.cs.unb.ca.jnetpcap;
public class Utils { public static final String LINE_SEP = System.lineSeparator(); }
"""
MAIN = """import cic.cs.unb.ca.jnetpcap.*;
import java.io.*;
import org.jnetpcap.PcapClosedException;
public class Main {
    public static void main(String[] args) throws Exception {
        PrintWriter out = new PrintWriter(new FileWriter(args[1]));
        out.println(FlowFeature.getHeader());
        FlowGenerator generator = new FlowGenerator(true, 120000000L, 5000000L);
        generator.addFlowListener(flow -> out.println(flow.dumpFlowBasedFeaturesEx()));
        PacketReader reader = new PacketReader(args[0], true, true);
        while (true) {
            try {
                BasicPacketInfo packet = reader.nextPacket();
                if (packet != null) generator.addPacket(packet);
            } catch (PcapClosedException end) {
                break;
            }
        }
        out.close();
        generator.dumpLabeledCurrentFlow(args[1], FlowFeature.getHeader());
    }
}
"""


def git_show(repo: Path, path: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{COMMIT}:{path}"], check=True, capture_output=True
    ).stdout


def build(repo: Path, work: Path) -> str:
    src = work / "src" / "cic" / "cs" / "unb" / "ca" / "jnetpcap"
    (src / "worker").mkdir(parents=True)
    for name in SOURCES:
        (src / f"{name}.java").write_bytes(
            git_show(repo, f"src/main/java/cic/cs/unb/ca/jnetpcap/{name}.java")
        )
    (src / "Utils.java").write_text(UTILS)
    (work / "src" / "Main.java").write_text(MAIN)
    lib = "jnetpcap/linux/jnetpcap-1.4.r1425"
    (work / "jnetpcap.jar").write_bytes(git_show(repo, f"{lib}/jnetpcap.jar"))
    (work / "libjnetpcap.so").write_bytes(git_show(repo, f"{lib}/libjnetpcap.so"))
    classpath = ":".join([str(work / "jnetpcap.jar"), *(f"/usr/share/java/{j}" for j in JARS)])
    sources = [str(p) for p in (work / "src").rglob("*.java")]
    (work / "classes").mkdir()
    subprocess.run(["javac", "-nowarn", "-d", str(work / "classes"), "-cp", classpath, *sources], check=True)
    return f"{work / 'classes'}:{classpath}"


def reference(capture: Path, work: Path, classpath: str) -> pd.DataFrame:
    from iotguard.core.schema import CIC_CNS2022_NAMES

    out = work / "out.csv"
    out.unlink(missing_ok=True)
    subprocess.run(
        ["java", f"-Djava.library.path={work}", "-cp", classpath, "Main", str(capture), str(out)],
        check=True,
        capture_output=True,
    )
    ref = pd.read_csv(out, low_memory=False)
    ref = ref[ref["Flow ID"] != "Flow ID"]  # the current-flow dump repeats the header
    ref = ref.rename(columns=CIC_CNS2022_NAMES).rename(
        columns={"Src IP": "src_ip", "Src Port": "src_port", "Dst IP": "dst_ip"}
    )
    for col in ref.columns:
        if col not in ("Flow ID", "src_ip", "dst_ip", "Timestamp", "Label"):
            ref[col] = pd.to_numeric(ref[col])
    stamp = pd.to_datetime(ref["Timestamp"], format="ISO8601")
    ref["first_us"] = ((stamp - pd.Timestamp(0)) // pd.Timedelta(microseconds=1)).astype("int64")
    return ref


def compare(capture: Path, work: Path, classpath: str) -> dict:
    from iotguard.core.schema import CIC_CNS2022_NAMES
    from iotguard.flows import read_flows

    ref = reference(capture, work, classpath)
    ours = read_flows(capture, config={"close_grace": None})
    ours["first_us"] = (ours.ts_first * 1e6).round().astype("int64")
    key = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "first_us"]
    # jnetpcap reads ARP as IPv4 (protocol 0, "8.6.0.1 -> 8.0.6.4"); compare ICMP, TCP and UDP flows.
    ours = ours[ours.protocol.isin([1, 6, 17])]
    ref = ref[ref.protocol.isin([1, 6, 17])]
    # identical duplicated traffic gives several flows with one key: pair them in order
    ours["nth"] = ours.groupby(key).cumcount()
    ref["nth"] = ref.groupby(key).cumcount()
    merged = ours.merge(ref.copy(), on=[*key, "nth"], how="inner", suffixes=("", "_ref"))
    single = (merged.fwd_packets + merged.bwd_packets) == 1
    same_host = merged.src_ip == merged.dst_ip
    ordinary = merged[~same_host]
    cells = differing = 0
    features: dict[str, int] = {}
    for col in dict.fromkeys(CIC_CNS2022_NAMES.values()):
        if col in ("dst_port", "protocol"):
            continue
        rows = ordinary  # where 13a0615 writes NaN/Infinity we write 0/-1 (as later upstream releases)
        if col in UNDEFINED_FOR_ONE_PACKET:
            rows = ordinary[~single[~same_host]]
        elif col in UNDEFINED_FOR_ZERO_DURATION:
            rows = ordinary[ordinary.flow_duration != 0]
        a = rows[col].astype(float).to_numpy()
        b = rows[col + "_ref"].astype(float).to_numpy()
        bad = ~np.isclose(a, b, rtol=1e-9, atol=1e-6)
        cells += a.size
        differing += int(bad.sum())
        if bad.any():
            features[col] = int(bad.sum())
    return {
        "capture": capture.name,
        "ours": len(ours),
        "cicflowmeter": len(ref),
        "matched": len(merged),
        "single_packet": int(single.sum()),
        "same_host": int(same_host.sum()),
        "cells": cells,
        "differing": differing,
        "features": features,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", required=True, type=Path, help="CICFlowMeter git checkout or bare repo")
    parser.add_argument("--shared", action="store_true", help="every capture under $IOTGUARD_DATA_DIR")
    parser.add_argument("captures", nargs="*", type=Path)
    args = parser.parse_args()
    captures = list(args.captures)
    if args.shared:
        root = Path(os.environ.get("IOTGUARD_DATA_DIR", "../shared/data"))
        captures += sorted(p for p in (root / "pcaps").rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
        captures += sorted((root / "iot23").rglob("*.pcap"))
    with tempfile.TemporaryDirectory(prefix="igf-oracle-") as tmp:
        work = Path(tmp)
        classpath = build(args.repo, work)
        rows = [compare(c, work, classpath) for c in captures]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80, "display.max_rows", 200):
        print(table.to_string(index=False))
    total = table[
        ["ours", "cicflowmeter", "matched", "single_packet", "same_host", "cells", "differing"]
    ].sum()
    print("\ntotal:", total.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
