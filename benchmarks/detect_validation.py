"""The validation protocol of the default detector: lab scenarios that are neither its training data nor any
reported test, on which its choices (anomaly model, threshold floor, evidence rules) were made.

    IOTGUARD_DATA_DIR=/work/shared/data PYTHONPATH=src python benchmarks/detect_validation.py [--detector DIR]
        [--sweep] [--anomaly-models kmeans:64,kmeans:128,kmeans:256,iforest] [--out FILE.json] [--flows-dir DIR]

Validation scenarios (seeds and sizes distinct from training, seeds 1, 101-103, 201-203, and from everything
reported: ``test`` seed 2, ``benign`` seed 11, the demo's): ``test`` seeds 21 and 22, ``benign`` seeds 12 and 13
(300 s, 16 devices) and 14 (1800 s, 30 devices), ``site`` seeds 31 (600 s, 16 devices) and 32 (900 s, 24
devices). For each: attack episodes with an incident (matched as ``benchmarks/response_captures.py`` does),
false incidents (incidents that match no episode), incidents naming a host that is only ever a victim, and
alerts without an explanation.

``--sweep`` re-runs detection with each evidence rule loosened or tightened, with the gate off, with Botnet
verdicts against servers inside the site kept as Botnet (``DetectionConfig.external_families``), with the
download check off, with the auth check (failed VNC logins) off, and with other
classifier threshold floors; ``--anomaly-models`` trains other anomaly models on the default detector's
benign training flows and compares them at its target false-positive rate (benign flows of the validation
scenarios alerting, and the share of each attack family's flows flagged).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

VALIDATION: tuple[tuple[str, int, float | None, int | None], ...] = (
    ("test", 21, None, None),
    ("test", 22, None, None),
    ("benign", 12, None, None),
    ("benign", 13, None, None),
    ("benign", 14, 1800.0, 30),
    ("site", 31, None, None),
    ("site", 32, 900.0, 24),
)


def load_scenarios(work: Path, flows_dir: Path | None = None) -> list[dict]:
    """Generate each validation scenario once; keep its flow batches (as the sensor gets them) and episodes.
    With ``flows_dir``: read them from there when it holds them (``--flows-dir``, so that a version of iotguard
    without some scenario, such as main before a change, is measured on the same flows), else write them."""
    import pandas as pd

    from iotguard.core.episodes import read_episodes

    out = []
    for name, seed, duration, devices in VALIDATION:
        saved = flows_dir / f"{name}-{seed}" if flows_dir is not None else None
        if saved is not None and (saved / "batches.parquet").is_file():
            frame = pd.read_parquet(saved / "batches.parquet")
            batches = [b.drop(columns="_batch") for _, b in frame.groupby("_batch", sort=True)]
            episodes = read_episodes(saved / "episodes.csv")
        else:
            from iotguard.flows import iter_flows
            from iotguard.lab import generate

            run = generate(
                name,
                duration=duration,
                seed=seed,
                devices=devices,
                out_dir=work / f"{name}-{seed}",
                flows=False,
            )
            batches = [b for b in iter_flows(run.capture, early=10, labels=run.episodes_path) if len(b)]
            episodes = read_episodes(run.episodes_path)
            if saved is not None:
                saved.mkdir(parents=True, exist_ok=True)
                frame = pd.concat([b.assign(_batch=i) for i, b in enumerate(batches)], ignore_index=True)
                frame.to_parquet(saved / "batches.parquet")
                (saved / "episodes.csv").write_bytes(run.episodes_path.read_bytes())
            run.capture.unlink()
        out.append({"name": f"{name}:{seed}", "batches": batches, "episodes": episodes})
    return out


def evaluate(detector, scenario: dict, config=None) -> dict:
    from iotguard.detect.engine import DetectionEngine
    from iotguard.evaluate.episodes import address_in, match_episodes

    engine = DetectionEngine(detector, config=config)
    events = []
    for batch in scenario["batches"]:
        events += engine.process(batch)
    engine.close()
    incidents = list({id(e.incident): e.incident for e in events}.values())
    episodes = scenario["episodes"]
    results = match_episodes(episodes, incidents)

    def true_incident(inc) -> bool:  # it matches some episode, as an episode's detection is matched
        return any(r.detected for r in match_episodes(episodes, [inc]))

    # hosts that are only ever victims ("*", any host, is no victim to name)
    attackers = {e.attacker for e in episodes} - {"*"}  # an unknown (spoofed) attacker excuses no one
    victims = {e.victim for e in episodes} - {"*"}
    victim_named = sorted(
        {
            s
            for inc in incidents
            for s in (inc.src_ips or [inc.src_ip])
            if any(address_in(s, v) for v in victims) and not any(address_in(s, a) for a in attackers)
        }
    )
    false = [i for i in incidents if not true_incident(i)]
    return {
        "scenario": scenario["name"],
        "flows": engine.stats.flows,
        "alerts": engine.stats.alerts,
        "incidents": len(incidents),
        "episodes": len(episodes),
        "detected": sum(r.detected for r in results),
        "missed": dict(Counter(r.episode.label for r in results if not r.detected)),
        "false_incidents": len(false),
        "false_detail": [
            f"{i.family} {i.src_ip} -> {', '.join(i.dest_ips[:2])} ({i.alert_count})" for i in false
        ],
        "victims_named": victim_named,
        "unexplained_alerts": sum(1 for e in events if not e.alert.top_features),
        # 0 for an engine without the evidence gate (main before it, for a before/after comparison)
        "insufficient_evidence": getattr(engine.stats, "insufficient_evidence", 0),
    }


def summary(rows: list[dict]) -> dict:
    return {
        "episodes": sum(r["episodes"] for r in rows),
        "detected": sum(r["detected"] for r in rows),
        "false_incidents": sum(r["false_incidents"] for r in rows),
        "victims_named": sum(len(r["victims_named"]) for r in rows),
        "missed": dict(sum((Counter(r["missed"]) for r in rows), Counter())),
    }


def sweep(detector, scenarios: list[dict]) -> list[dict]:
    from iotguard.detect.detector import logit
    from iotguard.detect.engine import DetectionConfig
    from iotguard.detect.evidence import DEFAULT_RULES, EvidenceConfig, EvidenceRule

    variants: list[tuple[str, dict | str | DetectionConfig | None, float | None]] = [
        ("default", {}, None),
        ("evidence gate off", None, None),
        ("PortScan: 2 targets", {"PortScan": EvidenceRule(targets=2)}, None),
        ("PortScan: 10 targets", {"PortScan": EvidenceRule(targets=10)}, None),
        ("BruteForce: 2 conversations", {"BruteForce": EvidenceRule(conversations=2)}, None),
        ("BruteForce: 5 conversations", {"BruteForce": EvidenceRule(conversations=5)}, None),
        (
            "DDoS/DoS: 2 conversations",
            {f: DEFAULT_RULES[f].model_copy(update={"conversations": 2}) for f in ("DDoS", "DoS")},
            None,
        ),
        (
            "DDoS/DoS: 5 conversations",
            {f: DEFAULT_RULES[f].model_copy(update={"conversations": 5}) for f in ("DDoS", "DoS")},
            None,
        ),
        (
            "DDoS/DoS: 20 conversations",
            {f: DEFAULT_RULES[f].model_copy(update={"conversations": 20}) for f in ("DDoS", "DoS")},
            None,
        ),
        (
            "floods: no byte criterion",
            {
                f: DEFAULT_RULES[f].model_copy(update={"bytes": None, "byte_rate": None})
                for f in ("DDoS", "DoS", "MQTTAbuse")
            },
            None,
        ),
        ("evidence pooled across families", "pooled", None),
        ("fan-in and scatter for every family", "crowds", None),
        ("MQTTAbuse: no one-flow flood", {"MQTTAbuse": EvidenceRule(conversations=3)}, None),
        (
            "Anomaly: 2 conversations",
            {"Anomaly": DEFAULT_RULES["Anomaly"].model_copy(update={"conversations": 2})},
            None,
        ),
        (
            "Anomaly: 3 conversations",
            {"Anomaly": DEFAULT_RULES["Anomaly"].model_copy(update={"conversations": 3})},
            None,
        ),
        (
            "Anomaly: 5 conversations",
            {"Anomaly": DEFAULT_RULES["Anomaly"].model_copy(update={"conversations": 5})},
            None,
        ),
        (
            "Anomaly: no one-flow flood",
            {"Anomaly": EvidenceRule(conversations=DEFAULT_RULES["Anomaly"].conversations)},
            None,
        ),
        ("Botnet: first alert", {"Botnet": EvidenceRule()}, None),
        ("Botnet inside the site kept as Botnet", DetectionConfig(external_families=[]), None),
        (
            "evidence gate off, Botnet inside kept",
            DetectionConfig(evidence=EvidenceConfig(enabled=False), external_families=[]),
            None,
        ),
        ("download check off", DetectionConfig(elf_downloads=None), None),
        ("auth check off", DetectionConfig(rfb_auth_failures=None), None),
    ] + [(f"classifier floor P(attack) {p}", {}, p) for p in (0.0, 0.01, 0.05, 0.2, 0.3, 0.5)]
    out = []
    c = detector.classifier
    saved = (c.floor, c.threshold) if c is not None else None
    for name, change, floor in variants:
        if isinstance(change, DetectionConfig):
            config = change
        elif change is None:
            config = DetectionConfig(evidence=EvidenceConfig(enabled=False))
        elif change == "pooled":
            config = DetectionConfig(evidence=EvidenceConfig(pooled=True))
        elif change == "crowds":
            config = DetectionConfig(evidence=EvidenceConfig(distributed=sorted(DEFAULT_RULES)))
        else:
            config = DetectionConfig(evidence=EvidenceConfig(rules=DEFAULT_RULES | change))
        if c is not None and floor is not None:
            c.floor = logit(floor) if floor > 0 else None
            c.threshold = c.threshold_for(c.target_fpr)
        row = {"variant": name} | summary([evaluate(detector, s, config) for s in scenarios])
        if c is not None and saved is not None:
            c.floor, c.threshold = saved
        out.append(row)
        print(f"  {name:38s} episodes {row['detected']}/{row['episodes']}, false incidents {row['false_incidents']}, "
              f"victims named {row['victims_named']}", flush=True)  # fmt: skip
    return out


def compare_anomaly(detector, scenarios: list[dict], models: list[str]) -> list[dict]:
    """Anomaly models built as the default detector builds its own (``build_detector`` on the default's lab
    training flows: the same balancing, split, model options and calibration), each at the default's target
    FPR: the share of the validation scenarios' benign flows and of each attack family's flows it flags."""
    import numpy as np
    import pandas as pd

    from iotguard.core.schema import BENIGN
    from iotguard.detect.build import build_detector
    from iotguard.detect.default import DEFAULT_SCENARIOS, lab_flows

    target = detector.anomaly.target_fpr if detector.anomaly is not None else 1e-3
    with tempfile.TemporaryDirectory(prefix="igq-anomaly-") as tmp:
        flows = lab_flows(DEFAULT_SCENARIOS, workdir=Path(tmp))
        val = pd.concat([b for s in scenarios for b in s["batches"]], ignore_index=True)
        is_benign = val["category"].to_numpy() == BENIGN
        out = []
        for spec in models:
            name, _, k = spec.partition(":")
            t0 = time.perf_counter()
            candidate, _ = build_detector(
                flows, flows["category"], Path(tmp) / spec.replace(":", "-"), classifier=None, anomaly=name,
                anomaly_params={"clusters": int(k)} if k else None, target_fpr=target, seed=0,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            flagged = np.asarray(candidate.score_array(candidate.matrix(val)).is_alert, bool)
            recall = (
                pd.Series(flagged[~is_benign]).groupby(val["category"].to_numpy()[~is_benign]).mean().round(3)
            )
            row = {
                "model": spec,
                "fit_seconds": round(seconds, 1),
                "validation_benign_fpr": round(float(flagged[is_benign].mean()), 5),
                "attack_flows_flagged": recall.to_dict(),
            }
            out.append(row)
            print(
                f"  {spec:12s} benign FPR {row['validation_benign_fpr']:.4%}  flagged {row['attack_flows_flagged']}"
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", type=Path, help="detector directory (default: the built-in one)")
    parser.add_argument(
        "--sweep", action="store_true", help="also vary the evidence rules and threshold floor"
    )
    parser.add_argument("--anomaly-models", default="", help="comma-separated, e.g. kmeans:128,iforest")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--flows-dir", type=Path, help="read the scenarios' flows from here, or write them there"
    )
    args = parser.parse_args()

    from iotguard.detect.detector import Detector

    if args.detector:
        detector = Detector.load(args.detector)
    else:
        from iotguard.detect.default import default_detector

        detector = default_detector()
    result: dict = {"detector": detector.model_name}
    with tempfile.TemporaryDirectory(prefix="igq-validation-") as tmp:
        scenarios = load_scenarios(Path(tmp), args.flows_dir)
    rows = [evaluate(detector, s) for s in scenarios]
    result["scenarios"] = rows
    print(f"detector {detector.model_name}")
    print(
        "| scenario | flows | alerts | incidents | episodes detected | false incidents | victims named | unexplained alerts | missed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        eps = f"{r['detected']}/{r['episodes']}" if r["episodes"] else "-"
        missed = ", ".join(f"{k} {v}" for k, v in sorted(r["missed"].items()))
        print(f"| {r['scenario']} | {r['flows']} | {r['alerts']} | {r['incidents']} | {eps} | {r['false_incidents']} |"
              f" {len(r['victims_named'])} | {r['unexplained_alerts']} | {missed} |")  # fmt: skip
        for d in r["false_detail"]:
            print(f"    false incident: {d}")
    if args.sweep:
        print("sweep (all validation scenarios together):")
        result["sweep"] = sweep(detector, scenarios)
    models = [m.strip() for m in args.anomaly_models.split(",") if m.strip()]
    if models:
        print("anomaly models at the detector's target FPR:")
        result["anomaly_models"] = compare_anomaly(detector, scenarios, models)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
