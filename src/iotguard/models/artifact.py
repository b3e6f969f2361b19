"""Model artifacts: a directory (or one .zip of it) with ``manifest.json`` and ``model.onnx``.

``model.onnx`` holds the preprocessing fused in front of the model: raw features in (``x``: the numeric
features, float32 [N, n]; ``cat``: the categorical ones as strings [N, m]), ``score`` [N] and, for
classifiers, ``proba`` [N, n_classes] out. ``manifest.json`` says everything needed to use and audit it
(see ``docs/models.md``): the ordered input features, vocabularies, classes, threshold, preprocessing
parameters, a fingerprint of the training data, evaluation metrics, and the sha256 of every file; its own
digest (``manifest_sha256``) covers the rest of the manifest.

Loading never unpickles anything; it needs only numpy, onnxruntime and (for tables) pandas, so a gateway
sensor runs models without scikit-learn or torch. A hash mismatch, a missing file or an unknown format
version raises :class:`ArtifactError`; input with the wrong columns raises :class:`FeatureMismatchError`.
Integrity, not authenticity: anyone who can write the artifact can rewrite its hashes too.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from iotguard import __version__
from iotguard.core.errors import ArtifactError, FeatureMismatchError
from iotguard.models.prediction import Prediction, make_prediction

if TYPE_CHECKING:
    import pandas as pd

    from iotguard.models.pipeline import TrainedPipeline

FORMAT = "iotguard-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
BATCH_ROWS = 65_536


# -- writing --------------------------------------------------------------------------------------------------
def build_manifest(
    pipeline: TrainedPipeline, files: dict[str, bytes], metrics: dict[str, Any] | None
) -> dict:
    pre = pipeline.preprocessor
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "iotguard_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {
            "name": pipeline.spec.name,
            "title": pipeline.spec.title,
            "kind": pipeline.spec.kind,
            "family": pipeline.spec.family,
            "task": pipeline.task,
            "input": pipeline.spec.input,
            "hyperparameters": _jsonable(pipeline.training.get("hyperparameters", {})),
        },
        "inputs": {
            "features": pre.features_,
            "numeric": pre.numeric_,
            "categorical": pre.categorical_,
            "vocabularies": dict(zip(pre.categorical_, pre.onehot_.vocabularies_, strict=True)),
            "ignored": pre.ignored_columns,
        },
        "outputs": ["score", "proba"] if pipeline.kind == "classifier" else ["score"],
        "classes": pipeline.classes,
        "benign_class": "Benign",
        "threshold": _jsonable(pipeline.threshold_info),
        "preprocessing": pre.to_params(),
        "training": _jsonable(pipeline.training),
        "metrics": _jsonable(metrics if metrics is not None else pipeline.metrics),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    batch_rows = getattr(pipeline.model, "batch_rows", None)
    if batch_rows:  # models whose graph holds a per-row matrix (k-NN distances) bound the rows per call
        manifest["batch_rows"] = int(batch_rows)
    if pipeline.window:
        manifest["window"] = {
            "k": pipeline.window,
            "host": "src_ip",
            "order": "flow end time (ts_last, else ts_first + duration), then table order",
            "padding": "rows of NaN numeric values at the start of a host's first windows",
        }
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    return manifest


def save_artifact(
    pipeline: TrainedPipeline,
    path: str | os.PathLike[str],
    *,
    metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``pipeline`` as an artifact directory, or a zip when ``path`` ends in ``.zip``.

    Written to a temporary name and renamed into place, so a crash leaves no half-written artifact.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ArtifactError("already exists", where=str(path), expected="a new path, or overwrite=True")
    files = {ONNX_FILE: pipeline.to_onnx().SerializeToString()}
    manifest = build_manifest(pipeline, files, metrics)
    files[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    from iotguard.preprocess.tables import atomic_output

    if path.suffix == ".zip":
        with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return path
    with atomic_output(path, directory=True) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return path


# -- reading --------------------------------------------------------------------------------------------------
class Artifact:
    """A loaded, verified model. ``predict(frame)`` for tables; ``predict_array(x)`` for the sensor's rows."""

    def __init__(self, manifest: dict[str, Any], onnx_bytes: bytes, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.path = path
        inputs = manifest["inputs"]
        self.features: list[str] = list(inputs["features"])
        self.numeric: list[str] = list(inputs["numeric"])
        self.categorical: list[str] = list(inputs["categorical"])
        self.ignored: list[str] = list(inputs.get("ignored", []))
        self.classes: list[str] | None = manifest.get("classes")
        self.benign_class: str = manifest.get("benign_class", "Benign")
        self.benign_index = self.classes.index(self.benign_class) if self.classes else None
        self.threshold = float(manifest["threshold"]["value"])
        self.name: str = manifest["model"]["name"]
        self.kind: str = manifest["model"]["kind"]
        self.task: str = manifest["model"]["task"]
        self.window: int | None = (
            int(manifest["window"]["k"]) if manifest["model"].get("input") == "window" else None
        )
        """Window models: flows per window, k (inputs ``[N, k, n]``); None for record models."""
        self.batch_rows = int(manifest.get("batch_rows", BATCH_ROWS))
        """Most rows per onnxruntime call in :meth:`predict` (the manifest may lower it to bound memory)."""
        position = {name: i for i, name in enumerate(self.features)}
        self._num_idx = np.array([position[c] for c in self.numeric], dtype=np.intp)
        self._cat_idx = np.array([position[c] for c in self.categorical], dtype=np.intp)
        self._numeric_only = not self.categorical and self.numeric == self.features

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # one row at a time: threads only add hand-off latency
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
            raise ArtifactError(
                f"model.onnx cannot be loaded: {exc}".splitlines()[0], where=str(path)
            ) from exc
        self._outputs = ["score", "proba"] if self.kind == "classifier" else ["score"]
        names = {i.name for i in self._session.get_inputs()}
        expected = ({"x"} if self.numeric else set()) | ({"cat"} if self.categorical else set())
        if names != expected:
            raise ArtifactError(
                f"model.onnx inputs {sorted(names)} do not match the manifest",
                where=str(path),
                expected=str(sorted(expected)),
            )

    def __repr__(self) -> str:
        return f"<Artifact {self.name} {self.task} {len(self.features)} features at {self.path}>"

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    def _run(self, numeric: np.ndarray | None, categorical: np.ndarray | None) -> Prediction:
        feeds: dict[str, np.ndarray] = {}
        if self.numeric:
            feeds["x"] = numeric  # type: ignore[assignment]
        if self.categorical:
            feeds["cat"] = categorical  # type: ignore[assignment]
        outs = self._session.run(self._outputs, feeds)
        proba = outs[1] if len(outs) > 1 else None
        return make_prediction(
            outs[0], self.threshold, proba, self.classes, self.benign_index, self.task == "multiclass"
        )

    def predict_array(self, x: np.ndarray) -> Prediction:
        """Score rows given as an array in ``features`` order: shape [n_features] (one flow) or [N, n_features].

        The fast path of the sensor: no pandas. For models with categorical inputs pass an object array
        (numbers and strings); for numeric models any float array. Window models take windows instead:
        [k, n_features] (one flow and its host's k - 1 earlier flows) or [N, k, n_features], as
        :class:`iotguard.models.deep.windows.WindowBuffer` builds them.
        """
        x = np.asarray(x)
        if self.window:
            if x.ndim == 2:
                x = x[np.newaxis]
            if x.ndim != 3 or x.shape[1:] != (self.window, len(self.features)):
                raise FeatureMismatchError(
                    f"got an array of shape {x.shape}",
                    expected=f"windows [N, {self.window}, {len(self.features)}]: {self.window} flows of "
                    f"{len(self.features)} features in the artifact's order",
                )
        else:
            if x.ndim == 1:
                x = x.reshape(1, -1)
            if x.ndim != 2 or x.shape[1] != len(self.features):
                raise FeatureMismatchError(
                    f"got rows of {x.shape[-1] if x.ndim else 0} values",
                    expected=f"{len(self.features)} features in the artifact's order",
                )
        if self._numeric_only:
            return self._batched(x.astype(np.float32, copy=False), None)
        numeric = x[..., self._num_idx].astype(np.float32) if self.numeric else None
        categorical = None
        if self.categorical:
            from iotguard.preprocess.columns import as_strings

            cats = x[..., self._cat_idx]
            categorical = as_strings(cats.ravel()).reshape(cats.shape)
        return self._batched(numeric, categorical)

    def predict(
        self, frame: pd.DataFrame, *, where: str | None = None, first_line: int | None = None
    ) -> Prediction:
        """Score a table. ``where`` (a file name) and ``first_line`` make errors point into the file."""
        from iotguard.preprocess.columns import category_matrix, check_columns, numeric_matrix

        check_columns(frame.columns, self.features, allowed=self.ignored, where=where)
        numeric = numeric_matrix(frame, self.numeric, where=where, first_line=first_line)
        categorical = category_matrix(frame, self.categorical)
        batch = min(BATCH_ROWS, self.batch_rows)
        if self.window:
            from iotguard.models.deep.windows import RAW_PAD, gather_windows, window_index, window_keys

            index = window_index(*window_keys(frame, where=where), self.window)
            numeric = gather_windows(numeric, index, pad=RAW_PAD)
            categorical = np.where((index < 0)[..., None], "", categorical[np.clip(index, 0, None)])
            batch = max(1, batch // self.window)
        return self._batched(numeric, categorical, batch)

    def _batched(
        self, numeric: np.ndarray | None, categorical: np.ndarray | None, batch: int = 0
    ) -> Prediction:
        """Run the graph on at most ``batch`` rows at a time (default: ``batch_rows``, per window for window
        models) and join the parts."""
        if not batch:
            batch = max(1, self.batch_rows // self.window) if self.window else self.batch_rows
        n = len(numeric) if numeric is not None else len(categorical)  # type: ignore[arg-type]
        if n <= batch:
            return self._run(numeric, categorical)
        parts = [
            self._run(
                None if numeric is None else numeric[i : i + batch],
                None if categorical is None else categorical[i : i + batch],
            )
            for i in range(0, n, batch)
        ]
        if len(parts) == 1:
            return parts[0]
        return Prediction(
            score=np.concatenate([p.score for p in parts]),
            is_attack=np.concatenate([p.is_attack for p in parts]),
            family=None if parts[0].family is None else np.concatenate([p.family for p in parts]),
            proba=None if parts[0].proba is None else np.concatenate([p.proba for p in parts]),
            classes=self.classes,
        )


def load_artifact(path: str | os.PathLike[str], *, threads: int = 1) -> Artifact:
    """Load and verify an artifact directory or zip. ``threads``: onnxruntime intra-op threads."""
    path = Path(path)
    files = _read_files(path)
    if MANIFEST not in files:
        raise ArtifactError("no manifest.json", where=str(path), expected="an iotguard model artifact")
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"manifest.json is not valid JSON ({exc})", where=str(path)) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError("not an iotguard model manifest", where=str(path / MANIFEST))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"unknown format version {manifest.get('format_version')!r}",
            where=str(path / MANIFEST),
            expected=f"format version {FORMAT_VERSION}",
        )
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise ArtifactError(
            "manifest.json was modified after the artifact was written (digest mismatch)",
            where=str(path / MANIFEST),
        )
    listed = manifest.get("files") or {}
    if ONNX_FILE not in listed:
        raise ArtifactError("manifest lists no model.onnx", where=str(path / MANIFEST))
    for name, digest in listed.items():
        if name not in files:
            raise ArtifactError(
                f"file {name!r} is missing", where=str(path), expected="every file the manifest lists"
            )
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise ArtifactError(f"sha256 of {name!r} does not match the manifest", where=str(path))
    try:
        return Artifact(manifest, files[ONNX_FILE], path, threads=threads)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest.json is incomplete ({exc!r})", where=str(path / MANIFEST)) from exc


def _read_files(path: Path) -> dict[str, bytes]:
    wanted = (MANIFEST, ONNX_FILE)
    if path.is_dir():
        out = {}
        for name in wanted:
            file = path / name
            if file.is_file():
                out[name] = file.read_bytes()
        return out
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                return {name: zf.read(name) for name in wanted if name in names}
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArtifactError(
                f"not a model artifact ({exc})", where=str(path), expected="a directory or .zip"
            ) from exc
    raise ArtifactError(
        "no model artifact here", where=str(path), expected="a directory or .zip from iotguard train"
    )


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> Any:
    """Numbers and strings only: numpy scalars become Python ones, NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


__all__ = ["Artifact", "load_artifact", "save_artifact"]
