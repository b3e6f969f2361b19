"""``iotguard demo``: the whole pipeline on IoT traffic iotguard generates itself, nothing downloaded.

1. the lab generates a training network and a *different* test network (other devices, rates and subnet,
   and attack families the training capture never shows);
2. the flow extractor turns both captures into CICFlowMeter-style flows, labelled from the lab's episodes;
3. the model zoo (classical, anomaly and deep models) trains on the training flows only and is scored on
   the test flows through the ONNX artifacts the sensor would load;
4. a detector (classifier + anomaly model, thresholds for a 1% false-positive rate on held-out benign
   training flows) is built, and the sensor runs it over the test capture: alerts from flows, from the device
   inventory (ARP spoofing) and from MQTT telemetry read off the wire, incidents, response actions in dry-run;
5. a site baseline: the detector fitted to the test network's traffic before its first attack (as
   ``iotguard baseline`` and the sensor's learning period fit one), and what it changes on the rest;
6. everything lands in a report, with the command that starts the sensor and its dashboard on it.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from iotguard.cli.main import app

DEFAULT_MODELS = (
    "lr",
    "svm",
    "rf",
    "lgbm",
    "kmeans",
    "iforest",
    "knn",
    "mlp",
    "cnn",
    "lstm",
    "lstm-window",
    "knn-window",
    "autoencoder",
)
EARLY_PACKETS = 10


@dataclass
class _Lab:
    train: Any
    test: Any
    unseen: tuple[str, ...]


def _generate(out: Path, seed: int, scale: float, progress: Any) -> _Lab:
    from iotguard.lab import generate, get_scenario, unseen_families

    runs = {}
    for name in ("train", "test"):
        scenario = get_scenario(name)
        runs[name] = generate(
            scenario,
            duration=scenario.duration * scale,
            seed=scenario.seed + seed,
            out_dir=out / "lab" / name,
            progress=progress,
        )
    return _Lab(runs["train"], runs["test"], unseen_families("train", "test"))


def _flow_dataset(run: Any, split: str) -> Any:
    from iotguard.core.schema import EXTRA_FEATURES, FLOW_FEATURES
    from iotguard.datasets.base import Dataset
    from iotguard.flows import read_flow_table

    frame = read_flow_table(run.flows_path)
    features = [c for c in (*FLOW_FEATURES, *EXTRA_FEATURES) if c in frame]
    return Dataset("lab", split, frame, features, files=[run.capture])


def _compare_models(lab: _Lab, models: list[str], out: Path, seed: int, progress: Any) -> list[dict]:
    from iotguard.evaluate.harness import run_experiments
    from iotguard.evaluate.protocols import official
    from iotguard.evaluate.report import write_report

    experiment = official("lab", _flow_dataset(lab.train, "train"), [_flow_dataset(lab.test, "test")])
    experiment.protocol = "lab train scenario -> lab test scenario (other network, unseen families)"
    outcome = run_experiments([experiment], models, seed=seed, progress=progress)
    command = "iotguard demo " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "iotguard demo"
    write_report(out / "models", outcome.results, skipped=outcome.skipped, command=command, seed=seed)
    for row in outcome.results:
        unseen = [c for c in row["per_category"] if c["category"] in lab.unseen]
        rows = sum(c["rows"] for c in unseen)
        row["unseen_recall"] = sum(c["flagged"] * c["rows"] for c in unseen) / rows if rows else None
    return outcome.results


def _write_policy(test_run: Any, path: Path) -> Path:
    """The demo's response policy, as a file an operator could start from: log everything, block confident
    attacks of severity 1-2 for ten minutes, never the lab's gateway or MQTT broker; dry run."""
    infrastructure = [h["ip"] for h in test_run.hosts if h["kind"] in ("gateway", "hub")]
    lines = [
        "# Written by iotguard demo. Dry run: actions are decided, audited and shown, nothing is touched.",
        "dry_run: true",
        "# Infrastructure that is never blocked, whatever an alert says (the lab's gateway and MQTT broker).",
        "allowlist: [" + ", ".join(infrastructure) + "]",
        "limits: {max_blocks_per_minute: 10, default_ttl: 600}",
        "rules:",
        "  - name: log-everything",
        "    actions: [{log: {level: info}}]",
        "  - name: contain-confident-attacks",
        "    match: {severity: 2, min_confidence: 0.9}",
        "    actions: [{block: {ttl: 600}}]",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _detect(lab: _Lab, out: Path, seed: int, progress: Any) -> dict[str, Any]:
    """Build a detector from the training capture, then run the sensor itself over the test capture: flows
    and early records, detection, device inventory (MAC spoofing, behaviour drift), MQTT telemetry read off
    the wire, incidents and the dry-run response."""
    from iotguard.core.config import Config
    from iotguard.core.store import Store
    from iotguard.detect.build import build_detector
    from iotguard.evaluate.episodes import match_episodes
    from iotguard.evaluate.report import timeline_png
    from iotguard.flows import iter_flows
    from iotguard.service.offline import OfflineRun
    from iotguard.service.sensor import Sensor

    with progress.task("detector: flows of the training capture, with early records"):
        flows = iter_flows(
            lab.train.capture, early=EARLY_PACKETS, labels=lab.train.episodes_path, progress=progress
        ).to_pandas()
    detector, sources = build_detector(
        flows, flows["category"], out / "detector-work", seed=seed, name="iotguard-demo", progress=progress
    )
    detector.save(out / "detector", sources=sources)
    db, eve, state = out / "iotguard.db", out / "eve.json", out / "sensor"
    for stale in (db, eve, Path(f"{db}-wal"), Path(f"{db}-shm"), state / "sensor-state.json"):
        stale.unlink(missing_ok=True)
    policy = _write_policy(lab.test, out / "policy.yaml")
    config = Config.model_validate(
        {
            "capture": {"pcap": str(lab.test.capture), "speed": "max"},
            "flows": {"early_packets": EARLY_PACKETS},
            "respond": {"policy": str(policy)},
            "telemetry": {"from_capture": True},
            "api": {"enabled": False},
            "store": {"path": str(db)},
            "detect": {"eve_path": str(eve)},
            "service": {"state_dir": str(state)},
        }
    )
    sensor = Sensor(config, detector=detector, exit_when_done=True, resume=False, progress=progress)
    with progress.task(f"sensor: {lab.test.capture.name} at full speed"):
        sensor.run()
    if sensor.errors:
        raise RuntimeError("the sensor failed: " + "; ".join(sensor.errors))
    with Store(db) as store:
        incidents = sorted(store.incidents(limit=None), key=lambda i: (i.first_seen, i.id or 0))
        alerts = store.alerts(limit=None)
        actions = store.actions(limit=10)
    owner = {h["mac"]: h["ip"] for h in lab.test.hosts if h.get("mac")}
    episodes = match_episodes(lab.test.episodes, incidents, alerts=alerts, macs=owner)
    timeline = out / "timeline.png"
    timeline_png(
        timeline,
        episodes,
        [(a.timestamp, a.family) for a in alerts],
        f"test capture ({lab.test.scenario}, seed {lab.test.seed}): attack episodes and the sensor's alerts",
        unseen=lab.unseen,
    )
    run = OfflineRun(
        sensor.engine.stats, incidents, Counter(sensor.responder.results), sensor.responder.dry_run
    )
    _total, devices = sensor.inventory.devices(limit=10_000)
    by_source: Counter[str] = Counter()
    for (_severity, source), n in sensor.stats.alerts.items():
        by_source[source] += n
    return {
        "run": run,
        "episodes": episodes,
        "timeline": timeline,
        "actions": actions,
        "db": db,
        "eve": eve,
        "policy": policy,
        "devices": devices,
        "telemetry": {
            "messages": sensor.telemetry.messages if sensor.telemetry else 0,
            "anomalies": {
                k: v for k, v in (sensor.telemetry.alert_counts if sensor.telemetry else {}).items() if v
            },
        },
        "by_source": dict(sorted(by_source.items())),
        "checks": _check_counts(alerts),
    }


def _site_baseline(lab: _Lab, out: Path, progress: Any) -> dict[str, Any] | None:
    """What a site baseline changes: the detector fitted to the test network's traffic before its first attack
    (by the lab's ground truth, as an operator's normal capture would be) and saved as ``iotguard baseline``
    saves it, then both detectors scored on the rest of the test capture's flows. None when too little comes
    before the first attack to fit on (a short ``--scale``)."""
    from iotguard.core.config import FlowsConfig
    from iotguard.detect.detector import Detector
    from iotguard.detect.site import MIN_FLOWS, fit_site_detector
    from iotguard.flows import read_flows
    from iotguard.service.sensor import flow_config

    with progress.task("site baseline: the test network before its first attack"):
        flows = read_flows(
            lab.test.capture,
            config=flow_config(FlowsConfig(early_packets=EARLY_PACKETS)),
            labels=lab.test.episodes_path,
        )
        first_attack = min(e.start for e in lab.test.episodes)
        normal = flows[flows["ts_last"] < first_attack]
        if len(normal) < MIN_FLOWS:
            return None
        built = Detector.load(out / "detector")
        site = fit_site_detector(
            built, normal, out / "site-detector", source=f"{lab.test.capture} before {first_attack:.0f}"
        )
    later = flows[flows["ts_first"] >= first_attack]
    benign = later["category"].to_numpy() == "Benign"
    flagged = {}
    for name, detector in (("built", built), ("site", site)):
        alert = detector.score_array(detector.matrix(later)).is_alert
        flagged[name] = {"benign": int(alert[benign].sum()), "attack": int(alert[~benign].sum())}
    return {
        "normal_flows": int(len(normal)),
        "normal_seconds": float(first_attack - flows["ts_first"].min()),
        "benign_flows": int(benign.sum()),
        "attack_flows": int((~benign).sum()),
        "flagged": flagged,
        "warnings": list(site.info.get("baseline_warnings", [])),
        "path": out / "site-detector",
    }


def _check_counts(alerts: list[Any]) -> dict[str, dict[str, Any]]:
    """Per fixed-rule check: its alerts, the incidents they went to, and the sources it named."""
    from iotguard.detect.engine import FIXED_CHECKS

    out = {}
    for name in (check.model for check in FIXED_CHECKS):
        mine = [a for a in alerts if a.model == name]
        out[name] = {
            "alerts": len(mine),
            "incidents": len({a.incident_id for a in mine}),
            "sources": sorted({a.src_ip for a in mine}),
        }
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _us(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _model_table(rows: list[dict]) -> Any:
    from rich.table import Table

    t = Table(title="models: trained on the lab training network, tested on the other network")
    for col in (
        "model",
        "kind",
        "acc",
        "prec",
        "recall",
        "F1",
        "FPR",
        "unseen",
        "p50 µs",
        "p99 µs",
        "train s",
    ):
        t.add_column(col, justify="left" if col in ("model", "kind") else "right")
    for r in rows:
        t.add_row(
            r["model"], "anomaly" if r["kind"] == "anomaly" else "", _pct(r["accuracy"]), _pct(r["precision"]),
            _pct(r["recall"]), _pct(r["f1"]), _pct(r["fpr"]), _pct(r["unseen_recall"]),
            _us(r["latency_p50_us"]), _us(r["latency_p99_us"]), f"{r['train_seconds']:.1f}",
        )  # fmt: skip
    return t


def _family_rows(episodes: list[Any]) -> list[tuple[str, int, int, float | None]]:
    """(family, episodes, detected, median delay of the detected ones)."""
    import numpy as np

    by: dict[str, list[Any]] = {}
    for r in episodes:
        by.setdefault(r.episode.category, []).append(r)
    rows = []
    for family, rs in sorted(by.items()):
        delays = [max(r.delay, 0.0) for r in rs if r.detected]  # an alert within the slack before: 0
        rows.append((family, len(rs), len(delays), float(np.median(delays)) if delays else None))
    return rows


def _report(out: Path, lab: _Lab, models: list[dict], det: dict[str, Any], seconds: float) -> Path:
    run = det["run"]
    s = run.stats
    lines = [
        "# iotguard demo report",
        "",
        f"Generated by `iotguard demo` in {seconds:.0f} s on {platform.node()} "
        f"({platform.machine()}, Python {platform.python_version()}). Everything below is reproducible: "
        "the same command and seed give the same captures and numbers.",
        "",
        "## 1. Traffic (iotguard lab)",
        "",
        "| capture | scenario | devices | packets | flows | attack episodes | families |",
        "|---|---|---|---|---|---|---|",
    ]
    for role, r in (("training", lab.train), ("test", lab.test)):
        fams = ", ".join(sorted({e.category for e in r.episodes}))
        lines.append(
            f"| {role} | `{r.scenario}` (seed {r.seed}) | {r.devices} | {r.packets:,} | {r.flows:,} "
            f"| {len(r.episodes)} | {fams} |"
        )
    lines += [
        "",
        f"Families in the test capture that training never saw: **{', '.join(lab.unseen)}**.",
        "",
        "## 2. Models (flows from the training capture -> flows from the test capture)",
        "",
        "Every model is scored through its ONNX artifact, the path the sensor uses. Thresholds come from",
        "training data only (anomaly models: 1% false-positive rate on held-out benign training flows).",
        "`unseen` is the share of test flows of the unseen families flagged as attacks. Latency is one flow",
        "per call; the full table with confusion matrices is in [models/report.md](models/report.md).",
        "",
        "| model | kind | accuracy | precision | recall | F1 | FPR | unseen | p50 µs | p99 µs | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in models:
        lines.append(
            f"| {r['model_title']} | {r['kind']} | {_pct(r['accuracy'])} | {_pct(r['precision'])} "
            f"| {_pct(r['recall'])} | {_pct(r['f1'])} | {_pct(r['fpr'])} | {_pct(r['unseen_recall'])} "
            f"| {_us(r['latency_p50_us'])} | {_us(r['latency_p99_us'])} | {r['train_seconds']:.1f} |"
        )
    lines += [
        "",
        "## 3. The sensor on the test capture: detection, inventory, telemetry, response",
        "",
        "The sensor (`iotguard run`) replayed the test capture at full speed with the detector built from the",
        f"training capture and the response policy [{det['policy'].name}]({det['policy'].name}) (dry run).",
        "",
        f"- Flows: {s.flows:,} flow records scored ({s.partial_flows:,} of them early records, after "
        f"{EARLY_PACKETS} packets or a few seconds).",
        f"- Alerts: {s.alerts:,} ({_by_source(det)}), folded into {s.incidents:,} incidents.",
        f"- Device inventory: {len(det['devices'])} devices, "
        f"{sum(1 for d in det['devices'] if d.get('flagged'))} flagged as behaving unlike themselves; "
        "a MAC address answering for another device's address raises Spoofing.",
        f"- MQTT telemetry read off the wire: {det['telemetry']['messages']:,} PUBLISH messages; anomalies: "
        + (", ".join(f"{k} {v}" for k, v in det["telemetry"]["anomalies"].items()) or "none")
        + ".",
        "- Response actions (dry run, nothing touched): "
        + (", ".join(f"{k} {v}" for k, v in sorted(run.actions.items())) or "none")
        + ".",
        "",
        "| family | episodes | detected | median delay (s) |",
        "|---|---|---|---|",
    ]
    for family, n, hit, delay in _family_rows(det["episodes"]):
        unseen = " (unseen)" if family in lab.unseen else ""
        lines.append(f"| {family}{unseen} | {n} | {hit} | {'n/a' if delay is None else f'{delay:.1f}'} |")
    lines += [
        "",
        "Fixed-rule checks (what the packets themselves say; a match is its own evidence, whatever the models",
        "say):",
        "",
        "| check | looks for | alerts | incidents | sources named |",
        "|---|---|---|---|---|",
    ]
    from iotguard.detect.engine import FIXED_CHECKS

    for check in FIXED_CHECKS:
        name, what = check.model, check.looks_for
        c = det["checks"][name]
        named = ", ".join(c["sources"][:3]) + (
            f" and {len(c['sources']) - 3} more" if len(c["sources"]) > 3 else ""
        )
        lines.append(f"| `{name}` | {what} | {c['alerts']:,} | {c['incidents']} | {named} |")
    lines += [
        "",
        f"![attack episodes and alerts over time]({det['timeline'].name})",
        "",
        "Red spans: attack episodes (hatched: missed). Ticks: alerts, on the row of the family the detector",
        "named; an attack of a family it never saw is named after the nearest family it knows, or Anomaly.",
        "",
        "Delay: from the episode's first packet to the first alert naming its hosts within its window (an",
        "alert up to 5 s early, clock granularity, counts as 0). An episode counts when an incident names its attacker (or, for a",
        "reply scored as the attack, its victim as the source) within its time window; an ARP spoofer that",
        "never sends an IP packet is named by its MAC, which the lab's host table maps to the attacker.",
        "",
        "Incidents (most severe first):",
        "",
        "| id | severity | family | attacker(s) | victims | alerts | summary |",
        "|---|---|---|---|---|---|---|",
    ]
    for inc in sorted(run.incidents, key=lambda i: (i.severity, -i.alert_count))[:15]:
        attackers = inc.src_ip if len(inc.src_ips) <= 1 else f"{len(inc.src_ips)} sources"
        lines.append(
            f"| {inc.id} | {inc.severity} | {inc.family} | {attackers} | {len(inc.dest_ips)} "
            f"| {inc.alert_count:,} | {inc.summary} |"
        )
    lines += ["", "Last response actions recorded (all dry-run):", ""]
    lines += [
        f"- `{a.action}` {a.target} -> {a.result}"
        + (f" (ttl {a.params.get('ttl')} s)" if a.params.get("ttl") else "")
        for a in det["actions"]
    ]
    site = det["site"]
    lines += (
        []
        if site is None
        else [
            "",
            "### Site baseline",
            "",
            f"The detector fitted to the test network's first {site['normal_seconds']:.0f} s ({site['normal_flows']:,} "
            "flow records, before its first attack), as `iotguard baseline` fits one and the sensor's learning "
            f"period (`model.learn_flows`) does, saved in `{site['path'].name}/`. On the rest of the test capture:",
            "",
            "| detector | benign flow records flagged | attack flow records flagged |",
            "|---|---|---|",
            *(
                f"| {name} | {f['benign']:,} of {site['benign_flows']:,} | {f['attack']:,} of {site['attack_flows']:,} |"
                for name, f in (
                    ("built from the training capture", site["flagged"]["built"]),
                    ("fitted to the site", site["flagged"]["site"]),
                )
            ),
            "",
            f"{site['normal_seconds']:.0f} s is all the test network has before its first attack: this shows the "
            "mechanism, not a site model to trust. A real baseline is minutes to hours of normal traffic "
            '(docs/detection.md, "Site baseline"), and the fit says when it is too short:',
            "",
            *(f"- warning: {line}" for line in site["warnings"] or ["(none)"]),
        ]
    )
    lines += [
        "",
        "## 4. Files",
        "",
        "- `lab/train`, `lab/test`: captures (`capture.pcap`), ground truth (`episodes.csv`), labelled flows",
        "- `models/`: results.json, report.md, confusion matrices",
        f"- `detector/`: the detector (ONNX artifacts + detector.json); `site-detector/`: the same fitted to the test "
        f"network before its first attack; `{det['eve'].name}`: alerts as Suricata EVE "
        f"JSON; `{det['db'].name}`: alerts, incidents and actions (SQLite); `{det['policy'].name}`: the response "
        "policy; `sensor/`: the sensor's checkpoint (inventory, telemetry baselines)",
        "",
        "## 5. Next: the live sensor",
        "",
        "```",
        *_next_steps(out, lab),
        "```",
    ]
    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _by_source(det: dict[str, Any]) -> str:
    names = {
        "flow": "from flows",
        "inventory": "from the device inventory",
        "telemetry": "from MQTT telemetry",
    }
    return ", ".join(f"{n:,} {names.get(k, k)}" for k, n in det["by_source"].items()) or "none"


def _summary(out: Path, lab: _Lab, models: list[dict], det: dict[str, Any], seconds: float) -> None:
    """``summary.json``: the demo's numbers for scripts and tests."""
    keys = (
        "model",
        "kind",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "fpr",
        "unseen_recall",
        "latency_p99_us",
    )
    doc = {
        "seconds": round(seconds, 1),
        "lab": {
            role: {
                "packets": r.packets,
                "flows": r.flows,
                "episodes": len(r.episodes),
                "capture": str(r.capture),
            }
            for role, r in (("train", lab.train), ("test", lab.test))
        },
        "unseen_families": list(lab.unseen),
        "models": [{k: r.get(k) for k in keys} for r in models],
        "detection": det["run"].stats.to_dict(),
        "incidents": len(det["run"].incidents),
        "alerts_by_source": det["by_source"],
        "checks": det["checks"],
        "devices": len(det["devices"]),
        "telemetry": det["telemetry"],
        "actions": dict(det["run"].actions),
        "site_baseline": None
        if det["site"] is None
        else {k: v for k, v in det["site"].items() if k != "path"},
        "episodes": [
            {
                "label": r.episode.label,
                "family": r.episode.category,
                "attacker": r.episode.attacker,
                "detected": r.detected,
                "delay": r.delay,
            }
            for r in det["episodes"]
        ],  # fmt: skip
    }
    (out / "summary.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def _next_steps(out: Path, lab: _Lab) -> list[str]:
    return [
        f"iotguard run --pcap {lab.test.capture} --speed realtime --model {out / 'detector'} "
        f"--policy {out / 'policy.yaml'} --set telemetry.from_capture=true",
        "# then, in another terminal, open the address this prints (the dashboard, token included):",
        "iotguard token --url",
    ]


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write everything.")] = Path(
        "iotguard-demo"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Shifts every lab and model seed.")] = 0,
    models: Annotated[
        str,
        typer.Option("--models", help="Comma-separated models to compare (see iotguard evaluate --help)."),
    ] = ",".join(DEFAULT_MODELS),
    scale: Annotated[
        float,
        typer.Option(
            "--scale", min=0.05, max=10.0, help="Scale the lab scenarios' duration (1: 10 minutes each)."
        ),
    ] = 1.0,
) -> None:
    """Generate IoT traffic, extract flows, train and compare models, detect and respond (dry-run), report."""
    from iotguard.cli.console import RichProgress, err
    from iotguard.cli.console import out as console

    started = time.perf_counter()
    names = [m.strip() for m in models.split(",") if m.strip()]
    from iotguard.models.base import get

    for name in names:
        get(name)  # unknown names fail before anything runs
    out.mkdir(parents=True, exist_ok=True)
    progress = RichProgress()
    console.rule("[bold]1. lab: generating a training network and a different test network")
    lab = _generate(out, seed, scale, progress)
    console.print(
        f"training capture {lab.train.packets:,} packets, {lab.train.flows:,} flows, {len(lab.train.episodes)} "
        f"attack episodes; test capture {lab.test.packets:,} packets, {lab.test.flows:,} flows, "
        f"{len(lab.test.episodes)} episodes; unseen families in test: {', '.join(lab.unseen)}",
        highlight=False,
    )
    console.rule("[bold]2. models: train on the training flows, score the test flows through ONNX")
    results = _compare_models(lab, names, out, seed, progress)
    console.print(_model_table(results))
    console.rule(
        "[bold]3. the sensor on the test capture: detection, inventory, telemetry, response (dry run)"
    )
    det = _detect(lab, out, seed, progress)
    run = det["run"]
    caught = sum(r.detected for r in det["episodes"])
    console.print(
        f"{run.stats.flows:,} flow records ({run.stats.partial_flows:,} early) -> {run.stats.alerts:,} alerts "
        f"({_by_source(det)}) -> {run.stats.incidents:,} incidents; {caught} of {len(det['episodes'])} attack "
        f"episodes raised an incident; {len(det['devices'])} devices in the inventory; "
        f"{det['telemetry']['messages']:,} MQTT messages read off the wire; actions (dry run): "
        + (", ".join(f"{k} {v}" for k, v in sorted(run.actions.items())) or "none"),
        highlight=False,
    )
    from rich.table import Table

    t = Table(title="attack episodes in the test capture")
    for col in ("family", "episodes", "detected", "median delay s"):
        t.add_column(col, justify="left" if col == "family" else "right")
    for family, n, hit, delay in _family_rows(det["episodes"]):
        t.add_row(
            family + (" (unseen)" if family in lab.unseen else ""),
            str(n),
            str(hit),
            "n/a" if delay is None else f"{delay:.1f}",
        )
    console.print(t)
    console.print(
        "fixed-rule checks (alerts/incidents): "
        + ", ".join(f"{name} {c['alerts']}/{c['incidents']}" for name, c in det["checks"].items()),
        highlight=False,
    )
    det["site"] = site = _site_baseline(lab, out, progress)
    if site is None:
        console.print("site baseline: skipped, too few flows before the first attack at this --scale")
    else:
        built, fitted = site["flagged"]["built"], site["flagged"]["site"]
        console.print(
            f"site baseline: fitted to the test network's first {site['normal_seconds']:.0f} s "
            f"({site['normal_flows']:,} flow records, no attack yet) -> {site['path']}; on the rest, benign records "
            f"flagged {built['benign']:,} -> {fitted['benign']:,} of {site['benign_flows']:,}, attack records "
            f"{built['attack']:,} -> {fitted['attack']:,} of {site['attack_flows']:,}",
            highlight=False,
        )
    report = _report(out, lab, results, det, time.perf_counter() - started)
    console.rule("[bold]4. report")
    console.print(f"report: {report}  (models: {out / 'models' / 'report.md'})", highlight=False)
    console.print("next, the live sensor on the test capture:", highlight=False)
    for line in _next_steps(out, lab):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    _summary(out, lab, results, det, time.perf_counter() - started)
    err.print(f"demo finished in {time.perf_counter() - started:.0f} s", highlight=False)
