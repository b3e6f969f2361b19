"""Alert folding on flood scenarios: raw alerts vs incidents, and is every attacker still named?

    IOTGUARD_DATA_DIR=/work/shared/data PYTHONPATH=src python benchmarks/response_folding.py [--detector DIR]
        [--scenario test] [--duration S] [--out FILE.json]

Generates a lab scenario with floods (default ``test``: Mirai bots flooding with SYN, ACK and UDP floods, plus
the other attacks), runs the default detector over it with early records, and reports the alert volume
before folding (alerts) and after (incidents), overall and for the flood episodes, and whether every flood
attacker of the ground truth appears among the sources of some incident. Also runs the spoofed SYN flood
capture of the data directory (``pcaps/markofu_pcaps/dosattack.pcap``: 100 SYNs from random sources).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from response_captures import run_capture  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", type=Path)
    parser.add_argument("--scenario", default="test")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from iotguard.core.episodes import read_episodes
    from iotguard.core.paths import data_dir
    from iotguard.detect.detector import Detector
    from iotguard.evaluate.episodes import address_in
    from iotguard.lab import generate

    if args.detector:
        detector = Detector.load(args.detector)
    else:
        from iotguard.detect.default import default_detector

        detector = default_detector()
    out: dict = {"detector": detector.model_name, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="igr-fold-") as tmp:
        work = Path(tmp)
        run = generate(args.scenario, duration=args.duration, out_dir=work / "lab", flows=False)
        episodes = read_episodes(run.episodes_path)
        t0 = time.perf_counter()
        stats, incidents = run_capture(detector, run.capture, work)
        floods = [e for e in episodes if "flood" in e.label]
        flood_attackers = sorted({e.attacker for e in floods})
        named = {s for inc in incidents for s in (inc.src_ips or [inc.src_ip])}
        flood_incidents = [
            inc
            for inc in incidents
            if any(any(address_in(s, a) for a in flood_attackers) for s in (inc.src_ips or [inc.src_ip]))
            and any(inc.first_seen <= e.end + 5 and inc.last_seen >= e.start - 5 for e in floods)
        ]
        flood_alerts = sum(i.alert_count for i in flood_incidents)
        out["lab"] = {
            "scenario": args.scenario,
            "flows": stats.flows,
            "alerts": stats.alerts,
            "incidents": len(incidents),
            "alerts_per_incident": round(stats.alerts / max(len(incidents), 1), 1),
            "flood_episodes": len(floods),
            "flood_attackers": flood_attackers,
            "flood_alerts": flood_alerts,
            "flood_incidents": len(flood_incidents),
            "flood_alerts_per_incident": round(flood_alerts / max(len(flood_incidents), 1), 1),
            "flood_attackers_named": [a for a in flood_attackers if any(address_in(n, a) for n in named)],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        spoofed = data_dir() / "pcaps" / "markofu_pcaps" / "dosattack.pcap"
        if spoofed.exists():
            stats2, inc2 = run_capture(detector, spoofed, work)
            sources = {s for i in inc2 for s in (i.src_ips or [i.src_ip])}
            out["spoofed_syn_flood"] = {
                "flows": stats2.flows,
                "alerts": stats2.alerts,
                "incidents": len(inc2),
                "sources_named": len(sources),
            }
    lab = out["lab"]
    print(f"detector {out['detector']}, lab scenario {lab['scenario']}: {lab['flows']} flows")
    print(
        f"all attacks: {lab['alerts']} alerts -> {lab['incidents']} incidents ({lab['alerts_per_incident']}x)"
    )
    print(
        f"floods: {lab['flood_episodes']} episodes from {len(lab['flood_attackers'])} attacker(s):"
        f" {lab['flood_alerts']} alerts -> {lab['flood_incidents']} incidents"
        f" ({lab['flood_alerts_per_incident']}x); attackers named: {len(lab['flood_attackers_named'])}"
        f"/{len(lab['flood_attackers'])}"
    )
    if "spoofed_syn_flood" in out:
        s = out["spoofed_syn_flood"]
        print(
            f"spoofed SYN flood capture: {s['flows']} flows, {s['alerts']} alerts -> {s['incidents']} incidents,"
            f" {s['sources_named']} sources named"
        )
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
