"""Writing ``results.json`` (a stable schema, documented in docs/models.md), ``report.md`` and plots.

Every file is written to a temporary name and renamed into place, so an interrupted run leaves either the
previous file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iotguard import __version__
from iotguard.preprocess.tables import atomic_output

SCHEMA = "iotguard-results"
SCHEMA_VERSION = 1

PAPER_TABLE_1 = [
    ("SVM", 0.915, 0.89, "~120 ms"),
    ("Random Forest", 0.947, 0.93, "~95 ms"),
    ("CNN", 0.963, 0.95, "~80 ms"),
    ("LSTM", 0.972, 0.96, "~100 ms"),
]
"""The paper's Table 1 (CICIDS2017, protocol not stated), for reference next to our numbers."""


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def atomic_write(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def results_document(
    results: Sequence[dict[str, Any]],
    *,
    skipped: Sequence[dict[str, Any]] = (),
    command: str = "",
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "iotguard_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "seed": seed,
        "machine": machine(),
        "results": list(results),
        "skipped": list(skipped),
        **(extra or {}),
    }


def _save_png(fig: Any, path: Path) -> None:
    """Lay out, write atomically and release a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def confusion_png(path: Path, confusion: dict[str, Any], title: str) -> None:
    """A labelled confusion-matrix heat map (counts, rows = truth), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = confusion["labels"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(3.5, 0.7 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shares[i, j] > 0.5 else "black",
            )
    _save_png(fig, path)


def timeline_png(
    path: Path,
    episodes: Sequence[Any],
    alerts: Sequence[tuple[float, str]],
    title: str,
    unseen: Sequence[str] = (),
) -> None:
    """Attack episodes as spans, one row per family, and the alerts raised (time, family) as ticks on the
    row of their family (telemetry and inventory families get their own rows), written atomically. ``episodes``
    are matched results (``.episode``, ``.detected``): caught spans are drawn solid, missed ones hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({r.episode.category for r in episodes} | {f for _, f in alerts})
    if not families:
        return
    t0 = min([r.episode.start for r in episodes] + [t for t, _ in alerts])
    row = {f: i for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(families) + 1.4))
    for r in episodes:
        ep = r.episode
        y = row[ep.category]
        ax.broken_barh(
            [(ep.start - t0, max(ep.end - ep.start, 0.5))], (y - 0.35, 0.7),
            facecolors="tab:red" if r.detected else "none", edgecolors="tab:red",
            hatch=None if r.detected else "///", alpha=0.35 if r.detected else 0.8, linewidth=0.6,
        )  # fmt: skip
    if alerts:
        ax.scatter(
            [t - t0 for t, _ in alerts],
            [row[f] for _, f in alerts],
            marker="|",
            s=60,
            color="black",
            linewidths=0.6,
        )
    ax.set_yticks(range(len(families)), [f + (" (unseen)" if f in unseen else "") for f in families])
    ax.set_xlabel("seconds into the capture (red: attack episodes, hatched: missed; ticks: alerts)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(-0.6, len(families) - 0.4)
    _save_png(fig, path)


def plot_name(row: dict[str, Any]) -> str:
    raw = f"cm-{row['dataset']}-{row['split']}-{row['task']}-{row['model']}.png"
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in raw)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _num(value: Any, fmt: str = "{:.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def _size(n: Any) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def report_markdown(document: dict[str, Any], plots: dict[int, str]) -> str:
    results = document["results"]
    main = [r for r in results if r.get("unseen_family") is None]
    lofo = [r for r in results if r.get("unseen_family") is not None]
    m = document["machine"]
    lines = [
        "# iotguard evaluation",
        "",
        f"- command: `{document['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}",
        f"- iotguard {document['iotguard_version']}, seed {document['seed']}, created {document['created']}",
        "- thresholds and hyper-parameters come from validation rows inside the training data only; latency is",
        "  one `predict_array` call per flow through the ONNX artifact (one onnxruntime thread), the sensor's path.",
        "",
    ]
    protocols: dict[tuple[str, str, str], Any] = {}
    for r in results:
        protocols.setdefault((r["dataset"], r["protocol"], r["train_split"]), r.get("protocol_notes", {}))
    lines += ["## Protocols", ""]
    for (dataset, protocol, train), notes in protocols.items():
        if protocol == "leave-one-family-out":
            continue
        lines.append(f"- **{dataset} / {protocol}** (train: {train}): {notes.get('description', '')}")
    if lofo:
        lines.append(
            f"- **{lofo[0]['dataset']} / leave-one-family-out**: each attack family in turn is removed "
            "from training; the table reports how much of it is still flagged."
        )
    lines.append("")
    if main:
        lines += [
            "## Comparison (the paper's Table 1, extended)",
            "",
            "Accuracy, precision, recall and F1 in %: attack vs benign for the binary task; over families (macro "
            "average) for the multiclass task. FPR: benign flows flagged. Latency in microseconds per flow.",
            "",
            "| dataset | test split | task | model | accuracy | precision | recall | F1 | FPR | ROC-AUC | p50 µs | p99 µs | flows/s | train s | size |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in main:
            lines.append(
                f"| {r['dataset']} | {r['split']} | {r['task']} | {r['model_title']} | {_pct(r['accuracy'])} | "
                f"{_pct(r['precision'])} | {_pct(r['recall'])} | {_pct(r['f1'])} | {_pct(r['fpr'])} | "
                f"{_num(r['roc_auc'], '{:.4f}')} | {_num(r['latency_p50_us'])} | {_num(r['latency_p99_us'])} | "
                f"{_num(r['throughput_per_s'], '{:,.0f}')} | {_num(r['train_seconds'], '{:.1f}')} | {_size(r['model_bytes'])} |"
            )
        lines += [
            "",
            "The paper (CICIDS2017, split and preprocessing not stated; latency end to end on a 2-vCPU VM):",
            "",
            "| model | accuracy | F1 | latency |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {100 * acc:.1f} | {100 * f1:.1f} | {lat} |" for name, acc, f1, lat in PAPER_TABLE_1
        ]
        lines.append("")
        lines += [
            "## Detection rate per category",
            "",
            "Share of each true category flagged as attack (for Benign: the FPR).",
            "",
        ]
        for r in main:
            cats = r.get("per_category") or []
            if not cats:
                continue
            lines.append(
                f"- {r['dataset']} {r['split']} {r['task']} **{r['model_title']}**: "
                + ", ".join(f"{c['category']} {_pct(c['flagged'])}% (n={c['rows']})" for c in cats)
            )
        lines.append("")
        multi = [r for r in main if r.get("per_class")]
        if multi:
            lines += ["## Per-class results (multiclass)", ""]
            for r in multi:
                lines += [
                    f"### {r['dataset']} {r['split']} — {r['model_title']} (macro-F1 {_pct(r['f1'])}%)",
                    "",
                    "| class | support | precision | recall | F1 |",
                    "|---|---:|---:|---:|---:|",
                ]
                lines += [
                    f"| {c['class']} | {c['support']} | {_pct(c['precision'])} | {_pct(c['recall'])} | {_pct(c['f1'])} |"
                    for c in r["per_class"]
                ]
                lines.append("")
    if lofo:
        families = sorted({r["unseen_family"] for r in lofo})
        models = list(dict.fromkeys(r["model_title"] for r in lofo))
        lines += [
            "## Unseen attack families (leave-one-family-out)",
            "",
            "Detection rate (%) of a family the model never saw in training, at the threshold set on benign "
            "validation rows; last row: FPR on the benign test rows (mean over folds).",
            "",
            "| family (rows) | " + " | ".join(models) + " |",
            "|---|" + "---:|" * len(models),
        ]
        by = {(r["unseen_family"], r["model_title"]): r for r in lofo}
        for fam in families:
            n = next(r["protocol_notes"].get("unseen_rows") for r in lofo if r["unseen_family"] == fam)
            lines.append(
                f"| {fam} ({n}) | "
                + " | ".join(
                    _pct(by[(fam, m)].get("unseen_detection_rate")) if (fam, m) in by else "–" for m in models
                )
                + " |"
            )
        fprs = []
        for mdl in models:
            values = [r["fpr"] for r in lofo if r["model_title"] == mdl and r["fpr"] is not None]
            fprs.append(_pct(sum(values) / len(values)) if values else "–")
        lines += ["| benign FPR | " + " | ".join(fprs) + " |", ""]
    if document.get("skipped"):
        lines += ["## Skipped", ""]
        lines += [f"- {s['dataset']} {s['model']} ({s['task']}): {s['reason']}" for s in document["skipped"]]
        lines.append("")
    if plots:
        lines += ["## Confusion matrices", ""]
        for index, name in plots.items():
            r = results[index]
            lines.append(f"![{r['dataset']} {r['split']} {r['task']} {r['model']}](plots/{name})")
        lines.append("")
    return "\n".join(lines)


def write_report(
    out_dir: str | os.PathLike[str],
    results: Sequence[dict[str, Any]],
    *,
    skipped: Sequence[dict[str, Any]] = (),
    command: str = "",
    seed: int = 0,
    plots: bool = True,
) -> dict[str, Any]:
    """Write ``results.json``, ``report.md`` and ``plots/cm-*.png`` into ``out_dir``; return the document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = results_document(results, skipped=skipped, command=command, seed=seed)
    written: dict[int, str] = {}
    if plots:
        (out / "plots").mkdir(exist_ok=True)
        for i, row in enumerate(results):
            if row.get("unseen_family") is None and row.get("confusion_matrix"):
                name = plot_name(row)
                confusion_png(
                    out / "plots" / name,
                    row["confusion_matrix"],
                    f"{row['dataset']} {row['split']} {row['task']} {row['model_title']}",
                )
                written[i] = name
    atomic_write(out / "results.json", (json.dumps(document, indent=2) + "\n").encode("utf-8"))
    atomic_write(out / "report.md", report_markdown(document, written).encode("utf-8"))
    return document
