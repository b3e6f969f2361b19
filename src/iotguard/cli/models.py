"""``iotguard evaluate | train | predict``: compare models on a benchmark, write a model artifact, score flows."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from iotguard.cli.main import app

DEFAULT_MODELS = "lr,svm,rbf-svm,rf,lgbm,kmeans-clf,kmeans,iforest,knn"
TASKS = ("binary", "multiclass")

FprConfidence = Annotated[
    float | None,
    typer.Option(
        "--fpr-confidence",
        help="Set the threshold so that its FPR on new benign flows stays within --target-fpr with this "
        "probability (e.g. 0.95; binomial bound over the benign validation scores). Default: the plain "
        "share of validation rows.",
    ),
]


def _task(value: str) -> str:
    from iotguard.core.errors import ConfigError

    if value not in TASKS:
        raise ConfigError(f"unknown task {value!r}", where="--task", expected="binary or multiclass")
    return value


def _model_names(value: str) -> list[str]:
    from iotguard.core.errors import ConfigError
    from iotguard.models.base import get

    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ConfigError("no model named", where="--models", expected="a comma-separated list such as lr,rf")
    for name in names:
        get(name)
    return names


def _command_line() -> str:
    return "iotguard " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command()
def evaluate(
    dataset: Annotated[str, typer.Option("--dataset", help="nsl-kdd, cicids2017, unsw-nb15 or iot23.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for results.json, report.md and plots/.")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Dataset root (default: $IOTGUARD_DATA_DIR, else the cache)."),
    ] = None,
    models: Annotated[str, typer.Option("--models", help="Comma-separated registry names.")] = DEFAULT_MODELS,
    task: Annotated[
        str, typer.Option("--task", help="binary (attack vs benign) or multiclass (family).")
    ] = "binary",
    seed: Annotated[int, typer.Option("--seed", help="Seed for splits and models.")] = 0,
    target_fpr: Annotated[
        float,
        typer.Option("--target-fpr", help="Alert threshold: this share of benign validation rows alert."),
    ] = 0.01,
    fpr_confidence: FprConfidence = None,
    train_split: Annotated[
        str | None,
        typer.Option(
            "--train-split", help="Training split instead of the protocol's (e.g. KDDTrain+_20Percent)."
        ),
    ] = None,
    lofo: Annotated[
        bool, typer.Option("--lofo/--no-lofo", help="Leave-one-family-out runs (CICIDS2017, binary).")
    ] = True,
    latency_calls: Annotated[
        int, typer.Option("--latency-calls", help="One-row calls timed per model.")
    ] = 1000,
    native: Annotated[
        bool, typer.Option("--native", help="Also time the model's own in-memory predict on one row.")
    ] = False,
    keep_models: Annotated[
        bool, typer.Option("--keep-models", help="Keep every trained artifact under OUT/models/.")
    ] = False,
) -> None:
    """Train and compare models on a benchmark under its documented protocol; write results.json and report.md."""
    from rich.table import Table

    from iotguard.cli.console import RichProgress
    from iotguard.cli.console import out as console
    from iotguard.core.errors import ConfigError
    from iotguard.core.paths import check_writable
    from iotguard.evaluate.harness import run_experiments
    from iotguard.evaluate.protocols import plan
    from iotguard.evaluate.report import write_report

    names = _model_names(models)
    _task(task)
    if latency_calls < 0:
        raise ConfigError(f"{latency_calls}", where="--latency-calls", expected="a count >= 0")
    if out.exists() and not out.is_dir():
        raise ConfigError("is a file", where=str(out), expected="a folder for the report")
    check_writable(out, what="report", directory=True)
    progress = RichProgress()
    with progress.task(f"loading {dataset}"):
        experiments = plan(
            dataset, data_dir=data_dir, seed=seed, train_split=train_split, lofo=lofo, progress=progress
        )
    staging = out / "models" if keep_models else None
    if staging is not None:
        staging.mkdir(parents=True, exist_ok=True)
    outcome = run_experiments(
        experiments,
        names,
        task=task,
        seed=seed,
        target_fpr=target_fpr,
        fpr_confidence=fpr_confidence,
        latency_calls=latency_calls,
        native=native,
        progress=progress,
        keep_models=staging,
    )
    with progress.task("writing report"):
        write_report(out, outcome.results, skipped=outcome.skipped, command=_command_line(), seed=seed)

    table = Table(title=f"{dataset} ({task})")
    for column in ("split", "model", "acc %", "F1 %", "FPR %", "p99 µs", "train s"):
        table.add_column(column, justify="right" if column not in ("split", "model") else "left")
    for r in outcome.results:
        if r.get("unseen_family"):
            continue
        table.add_row(
            r["split"],
            r["model"],
            f"{100 * r['accuracy']:.2f}",
            f"{100 * r['f1']:.2f}",
            f"{100 * r['fpr']:.2f}",
            f"{r['latency_p99_us']:.0f}" if r.get("latency_p99_us") is not None else "–",
            f"{r['train_seconds']:.1f}",
        )
    console.print(table)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.md'}")


@app.command()
def train(
    model: Annotated[
        str, typer.Option("--model", help="Registry name: lr, svm, rbf-svm, rf, lgbm, kmeans, ...")
    ],
    out: Annotated[Path, typer.Option("--out", help="Artifact folder to create (or a .zip file).")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Train on a benchmark's training split.")
    ] = None,
    flows: Annotated[
        Path | None,
        typer.Option(
            "--flows", help="Train on a flow table (.parquet/.csv) with is_attack or category columns."
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Dataset root.")] = None,
    train_split: Annotated[
        str | None, typer.Option("--train-split", help="Benchmark training split.")
    ] = None,
    task: Annotated[str, typer.Option("--task", help="binary or multiclass.")] = "binary",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    target_fpr: Annotated[
        float, typer.Option("--target-fpr", help="Share of benign validation rows that alert.")
    ] = 0.01,
    fpr_confidence: FprConfidence = None,
    test_fraction: Annotated[
        float,
        typer.Option(
            "--test-fraction", help="--flows: rows held out to measure the model (latest ones if timed)."
        ),
    ] = 0.2,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing artifact at --out.")] = False,
) -> None:
    """Train one model and write its artifact (ONNX + manifest with metrics on held-out data)."""
    from iotguard.cli.console import RichProgress
    from iotguard.cli.console import out as console
    from iotguard.core.errors import ArtifactError, ConfigError
    from iotguard.core.paths import check_writable
    from iotguard.evaluate.harness import evaluate_model
    from iotguard.models.artifact import save_artifact
    from iotguard.models.base import get
    from iotguard.models.pipeline import train_model

    get(model)
    _task(task)
    if (dataset is None) == (flows is None):
        raise ConfigError("give exactly one of --dataset and --flows", expected="a training source")
    if out.exists() and not force:
        raise ArtifactError("already exists", where=str(out), expected="a new path, or --force")
    check_writable(out, what="model artifact", directory=out.suffix != ".zip")
    progress = RichProgress()
    if dataset is not None:
        from iotguard.evaluate.protocols import plan

        with progress.task(f"loading {dataset}"):
            experiment = plan(
                dataset, data_dir=data_dir, seed=seed, train_split=train_split, lofo=False, progress=progress
            )[0]
        from iotguard.evaluate.harness import window_table

        window = get(model).input == "window"
        train_x, categorical = experiment.train.X, experiment.train.categorical
        keys = experiment.train.frame if window else None
        train_y = experiment.train.category if task == "multiclass" else experiment.train.y
        tests = [(name, window_table(t) if window else t.X, t.y, t.category) for name, t in experiment.tests]
        source = f"{dataset}:{experiment.train_split}"
    else:
        train_x, train_y, tests, categorical = _flow_split(flows, task, test_fraction, seed)  # type: ignore[arg-type]
        source, keys = str(flows), None
    pipeline = train_model(
        model,
        train_x,
        train_y,
        task=task,
        categorical=categorical,
        seed=seed,  # type: ignore[arg-type]
        progress=progress,
        target_fpr=target_fpr,
        fpr_confidence=fpr_confidence,
        dataset=source,
        keys=keys,
    )
    metrics: dict[str, Any] = {}
    for name, x, y, category in tests:
        result = evaluate_model(pipeline, x, is_attack=y, category=category, progress=progress)
        metrics[name] = {k: v for k, v in result.items() if k not in ("confusion_matrix",)}
    with progress.task("writing artifact"):
        path = save_artifact(pipeline, out, metrics=metrics, overwrite=force)
    console.print(f"wrote {path} ({pipeline.spec.title}, {task}, threshold {pipeline.threshold:.6g})")
    for name, m in metrics.items():
        console.print(
            f"  {name}: accuracy {100 * m['accuracy']:.2f}%  F1 {100 * m['f1']:.2f}%  FPR {100 * m['fpr']:.2f}%  "
            f"p99 {m.get('latency_p99_us', float('nan')):.0f} µs"
        )


def _flow_split(
    path: Path, task: str, test_fraction: float, seed: int
) -> tuple[Any, Any, list[Any], list[str] | None]:
    """A flow table's training rows, labels, and held-out test rows (the latest flows when timed)."""
    import numpy as np

    from iotguard.core.errors import ConfigError, DataError
    from iotguard.core.schema import BENIGN
    from iotguard.models.pipeline import stratified_split
    from iotguard.preprocess.tables import read_table

    frame, _ = read_table(path)
    if task == "multiclass" and "category" not in frame.columns:
        raise DataError(
            "no 'category' column", where=str(path), expected="a category column for --task multiclass"
        )
    if "is_attack" not in frame.columns and "category" not in frame.columns:
        raise DataError("no 'is_attack' or 'category' column", where=str(path), expected="labelled flows")
    if "category" in frame.columns:
        category = frame["category"].astype(str)
        is_attack = (category != BENIGN).astype(np.int8)
        if "is_attack" in frame.columns:
            is_attack = frame["is_attack"]
    else:
        is_attack = frame["is_attack"]
        category = None
    values = np.asarray(is_attack)
    if not np.isin(values, (0, 1, True, False)).all():
        raise DataError(
            "is_attack holds values other than 0/1", where=f"{path} column 'is_attack'", expected="0 or 1"
        )
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"{test_fraction}", where="--test-fraction", expected="a fraction in [0, 1)")
    labels = (category if task == "multiclass" else is_attack.astype(str)).to_numpy()
    n = len(frame)
    if test_fraction == 0.0:
        test_idx = np.zeros(0, dtype=np.int64)
    elif "ts_first" in frame.columns:
        order = np.argsort(frame["ts_first"].to_numpy(dtype=np.float64), kind="stable")
        test_idx = np.sort(order[int(np.ceil(n * (1 - test_fraction))) :])
    else:
        _, test_idx = stratified_split(labels, test_fraction, seed)
    is_test = np.zeros(n, dtype=bool)
    is_test[test_idx] = True
    train_rows, test_rows = frame.loc[~is_test], frame.loc[is_test]
    y_train = (category if task == "multiclass" else is_attack)[~is_test]
    tests = []
    if len(test_rows):
        tests.append(
            (
                "holdout",
                test_rows,
                np.asarray(is_attack)[is_test],
                None if category is None else category[is_test],
            )
        )
    return train_rows, y_train, tests, None


@app.command()
def predict(
    table: Annotated[Path, typer.Argument(help="Flow table to score: .csv, .csv.gz or .parquet.")],
    model: Annotated[
        Path, typer.Option("--model", help="Model artifact folder or .zip (from iotguard train).")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Write predictions here (.csv, .csv.gz, .parquet); default stdout CSV."
        ),
    ] = None,
) -> None:
    """Score a flow table with a model artifact: score, is_attack, family and class probabilities per flow."""
    import pandas as pd

    from iotguard.cli.console import RichProgress, err
    from iotguard.core.paths import check_writable
    from iotguard.core.schema import IDENTITY_COLUMNS
    from iotguard.models.artifact import load_artifact
    from iotguard.preprocess.columns import names, unknown_columns
    from iotguard.preprocess.tables import read_table, table_kind, write_table

    if output is not None:
        table_kind(output)  # refuse an unknown output type before any work
        check_writable(output, what="predictions")
    artifact = load_artifact(model)
    frame, first_line = read_table(table)
    # Columns the model does not read (a flow exporter's extras: end_reason, app_proto ...) are dropped and
    # named in the summary; missing feature columns stay an error (artifact.predict says which).
    ignored = unknown_columns(frame.columns, artifact.features, allowed=artifact.ignored)
    if ignored:
        frame = frame.drop(columns=ignored)
    if len(frame) > 200_000:  # a bar only where scoring takes more than a moment
        with RichProgress(console=err).task(f"scoring {len(frame):,} flows with {artifact.name}"):
            prediction = artifact.predict(frame, where=str(table), first_line=first_line)
    else:
        prediction = artifact.predict(frame, where=str(table), first_line=first_line)
    keep = [c for c in IDENTITY_COLUMNS if c in frame.columns]
    result = pd.concat([frame[keep].reset_index(drop=True), prediction.to_frame()], axis=1)
    if output is None:
        result.to_csv(sys.stdout, index=False)
    else:
        write_table(result, output)
    flagged = int(prediction.is_attack.sum())
    summary = f"scored {len(frame):,} flows with {artifact.name}: {flagged:,} flagged as attack ({100 * flagged / len(frame):.2f}%)"
    if "is_attack" in frame.columns:
        truth = pd.to_numeric(frame["is_attack"], errors="coerce").fillna(-1).to_numpy() == 1
        summary += f"; agreement with is_attack {100 * float((truth == prediction.is_attack).mean()):.2f}%"
    if ignored:
        summary += f"; ignored {len(ignored)} column(s) that are not the model's features: {names(ignored)}"
    err.print(summary + (f"; wrote {output}" if output else ""), highlight=False, soft_wrap=True)
