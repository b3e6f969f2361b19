"""The classical models: linear, kernel, tree ensembles, clustering and isolation.

Each class follows the Model contract of :mod:`iotguard.models.base`: ``fit(X, y, validation=..., progress=...)``
on the float32 matrix from preprocessing with string labels (``"Benign"`` is the benign class),
``attack_score``, and ``to_onnx``. Classifiers add ``classes_``, ``predict_proba`` and ``predict``.

Hyper-parameters are fixed defaults, or chosen on the validation rows that :func:`train_model` holds out of
the training set (never on a test set). Every random choice takes ``seed``.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import numpy as np

from iotguard.core.errors import ConfigError, DataError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.core.schema import BENIGN
from iotguard.models.base import ModelSpec, TaskName, register
from iotguard.models.onnx_export import (
    classifier_outputs,
    forest_graph,
    isolation_forest_graph,
    lightgbm_graph,
    sklearn_graph,
)

log = logging.getLogger(__name__)

Validation = tuple[np.ndarray, np.ndarray] | None


def _threads() -> int:
    return max(1, os.cpu_count() or 1)


def _one_thread() -> Any:
    """K-Means' OpenMP loops busy-wait when the machine's cores are shared; one thread is steadier."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _labels(y: Any) -> np.ndarray:
    if y is None:
        raise ConfigError("a classifier needs labels", expected="y with one label per row")
    return np.asarray(y).astype(str)


def benign_rows(X: np.ndarray, y: Any, dtype: type) -> np.ndarray:
    """The rows an anomaly model learns normal traffic from: the benign ones (all of them when ``y`` is None)."""
    X = np.asarray(X, dtype=dtype)
    if y is not None:
        X = X[_labels(y) == BENIGN]
    if len(X) < 2:
        raise DataError(
            f"{len(X)} benign training row(s)", expected="benign rows to learn normal traffic from"
        )
    return X


# -- classifiers --------------------------------------------------------------------------------------------
class Classifier:
    """Shared behaviour of the classifiers: ``attack_score = 1 - P(benign)``."""

    kind = "classifier"
    benign_class = BENIGN

    def __init__(self, task: TaskName = "binary", seed: int = 0, **params: Any) -> None:
        self.task = task
        self.seed = seed
        self.params = params
        self.hyperparameters: dict[str, Any] = {}

    def fit(
        self,
        X: np.ndarray,
        y: Any = None,
        *,
        validation: Validation = None,
        progress: Progress = NO_PROGRESS,
        **_: Any,
    ) -> Classifier:
        labels = _labels(y)
        classes = np.unique(labels)
        if len(classes) < 2:
            raise DataError(
                f"training labels hold one class only ({classes.tolist()})", expected="two or more"
            )
        if BENIGN not in classes:
            raise DataError("training labels hold no benign rows", expected=f"some rows labelled {BENIGN!r}")
        self._fit(np.asarray(X, dtype=np.float32), labels, validation, progress)
        self.classes_ = [str(c) for c in self._classes()]
        self.benign_index_ = self.classes_.index(BENIGN)
        return self

    def _fit(self, X: np.ndarray, y: np.ndarray, validation: Validation, progress: Progress) -> None:
        raise NotImplementedError

    def _classes(self) -> np.ndarray:
        return self.estimator_.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(np.asarray(X, dtype=np.float32)).astype(np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_, dtype=object)[self.predict_proba(X).argmax(axis=1)]

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        return np.float32(1.0) - self.predict_proba(X)[:, self.benign_index_]

    def to_onnx(self, n_features: int) -> Any:
        return classifier_outputs(sklearn_graph(self.estimator_, n_features), self.benign_index_)


def _log_loss(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, model.predict_proba(X), labels=model.classes_))


class LogisticRegressionModel(Classifier):
    """Logistic regression (multinomial for several classes); C from {0.1, 1, 10} by validation log-loss."""

    grid = (0.1, 1.0, 10.0)

    def _fit(self, X: np.ndarray, y: np.ndarray, validation: Validation, progress: Progress) -> None:
        from sklearn.linear_model import LogisticRegression

        grid = [self.params["C"]] if "C" in self.params else list(self.grid)
        if validation is None:
            grid = grid[1:2] if len(grid) > 1 else grid
        best, best_loss = None, np.inf
        # one path over ascending C, each fit starting from the previous solution (much faster to converge)
        model = LogisticRegression(max_iter=1000, warm_start=True, random_state=self.seed)
        with progress.task("logistic regression", total=len(grid)) as task:
            for c in sorted(grid):
                model.set_params(C=c).fit(X, y)
                loss = _log_loss(model, *validation) if validation is not None else 0.0
                if loss < best_loss:
                    best, best_loss = copy.deepcopy(model), loss
                task.advance()
        self.estimator_ = best
        self.hyperparameters = {"C": float(best.C)}


class LinearSVMModel(Classifier):
    """Linear SVM (hinge loss) with Platt-scaled probabilities (3-fold sigmoid calibration inside train)."""

    def _estimator(self) -> Any:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import LinearSVC

        c = float(self.params.get("C", 1.0))
        self.hyperparameters = {"C": c, "calibration": "sigmoid, 3-fold"}
        return CalibratedClassifierCV(
            LinearSVC(C=c, dual="auto", max_iter=5000, random_state=self.seed), cv=3, method="sigmoid"
        )

    def _fit(self, X: np.ndarray, y: np.ndarray, validation: Validation, progress: Progress) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        X, y = _at_least(X, y, 3)
        with progress.task("linear SVM"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator_ = self._estimator().fit(X, y)


def _at_least(X: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeat the rows of classes with fewer than ``n`` rows, so that n-fold calibration sees every class."""
    names, counts = np.unique(y, return_counts=True)
    rare = names[counts < n]
    if not len(rare):
        return X, y
    extra = np.concatenate([np.resize(np.flatnonzero(y == c), n - counts[names == c][0]) for c in rare])
    return np.vstack([X, X[extra]]), np.concatenate([y, y[extra]])


class RBFSVMModel(LinearSVMModel):
    """RBF-kernel SVM made tractable on 100k+ rows: a Nystroem approximation of the kernel (``components``
    landmark rows, default 300) feeding the calibrated linear SVM. ``gamma`` defaults to scikit-learn's
    ``"scale"`` rule, 1 / (n_features * variance of the training matrix)."""

    def _fit(self, X: np.ndarray, y: np.ndarray, validation: Validation, progress: Progress) -> None:
        from sklearn.kernel_approximation import Nystroem

        n_components = int(min(self.params.get("components", 300), len(X)))
        gamma = float(self.params.get("gamma", 1.0 / (X.shape[1] * max(float(X.var()), 1e-12))))
        with progress.task("Nystroem kernel map"):
            nystroem = Nystroem(
                kernel="rbf", gamma=gamma, n_components=n_components, random_state=self.seed
            ).fit(X)
        self.gamma_ = gamma
        self.components_ = nystroem.components_.astype(np.float64)
        self.normalization_ = nystroem.normalization_.astype(np.float64)
        super()._fit(self._features(X), y, validation, progress)
        self.hyperparameters |= {"gamma": gamma, "components": n_components}

    def _features(self, X: np.ndarray) -> np.ndarray:
        # Same formula, order and precision (float64) as the ONNX graph below.
        x = np.asarray(X, dtype=np.float64)
        d2 = _squared_distances(x, self.components_)
        return (np.exp(-self.gamma_ * d2) @ self.normalization_.T).astype(np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return super().predict_proba(self._features(X))

    def to_onnx(self, n_features: int) -> Any:
        from iotguard.preprocess.onnx_graph import DOUBLE, FLOAT, GraphBuilder, chain

        g = GraphBuilder("nystroem")
        x = g.op("Cast", g.input("x", FLOAT, [None, n_features]), to=DOUBLE)
        d2 = _onnx_squared_distances(g, x, self.components_)
        kernel = g.op("Exp", g.op("Mul", d2, g.const(np.float64(-self.gamma_), "neg_gamma")))
        mapped = g.op("MatMul", kernel, g.const(self.normalization_.T.copy(), "normalization"))
        g.output("mapped", g.op("Cast", mapped, to=FLOAT), FLOAT, [None, len(self.components_)])
        svm = super().to_onnx(len(self.components_))
        return chain(g.model(), svm, [("mapped", "x")], {"score": "score", "proba": "proba"}, prefix="svm_")


class RandomForestModel(Classifier):
    """Random forest: 100 trees, sqrt(features) per split, leaves of at least 1 row, all cores."""

    def _fit(self, X: np.ndarray, y: np.ndarray, validation: Validation, progress: Progress) -> None:
        from sklearn.ensemble import RandomForestClassifier

        n_trees = int(self.params.get("trees", 100))
        model = RandomForestClassifier(
            n_estimators=0,
            warm_start=True,
            n_jobs=_threads(),
            random_state=self.seed,
            min_samples_leaf=int(self.params.get("min_samples_leaf", 1)),
            max_depth=self.params.get("max_depth"),
        )
        with progress.task("random forest (trees)", total=n_trees) as task:
            step = 10
            while model.n_estimators < n_trees:
                model.n_estimators = min(n_trees, model.n_estimators + step)
                model.fit(X, y)
                task.update(completed=model.n_estimators)
        self.estimator_ = model
        self.hyperparameters = {"trees": n_trees, "max_features": "sqrt"}

    def to_onnx(self, n_features: int) -> Any:
        return forest_graph(self.estimator_, n_features, self.benign_index_)


class LightGBMModel(Classifier):
    """Gradient-boosted trees (LightGBM): up to 500 rounds at learning rate 0.1, 31 leaves, minimum leaf
    hessian 1, early stopping after 30 rounds without improvement on the validation rows."""

    def _fit(self, X: np.ndarray, y: np.ndarray, validation: Validation, progress: Progress) -> None:
        import lightgbm as lgb

        rounds = int(self.params.get("rounds", 500))
        model = lgb.LGBMClassifier(
            n_estimators=rounds,
            learning_rate=float(self.params.get("learning_rate", 0.1)),
            num_leaves=int(self.params.get("leaves", 31)),
            # LightGBM's default minimum leaf hessian (1e-3) lets leaves of rare classes take huge values:
            # on CICIDS2017 families the validation loss went 0.14 -> 28 within 300 rounds. 1 (XGBoost's
            # default) keeps it at 0.0024.
            min_child_weight=float(self.params.get("min_child_weight", 1.0)),
            random_state=self.seed,
            n_jobs=_threads(),
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        # LightGBM sees class indices; the names stay here (its eval_y path skips its own label encoder)
        self.class_names_ = np.unique(y)
        with progress.task("gradient boosting (rounds)", total=rounds) as task:
            callbacks = [lambda env: task.update(completed=env.iteration + 1)]
            fit_args: dict[str, Any] = {}
            if validation is not None and len(np.unique(validation[1])) > 1:
                callbacks.append(lgb.early_stopping(30, verbose=False))
                fit_args["eval_X"] = (validation[0],)
                fit_args["eval_y"] = (np.searchsorted(self.class_names_, validation[1]),)
            model.fit(X, np.searchsorted(self.class_names_, y), callbacks=callbacks, **fit_args)
            task.update(completed=rounds)
        self.estimator_ = model
        best = model.best_iteration_ or rounds
        self.hyperparameters = {
            "rounds": int(best),
            "learning_rate": model.learning_rate,
            "leaves": model.num_leaves,
            "min_child_weight": model.min_child_weight,
        }

    def _classes(self) -> np.ndarray:
        return self.class_names_

    def to_onnx(self, n_features: int) -> Any:
        return lightgbm_graph(self.estimator_, n_features, self.benign_index_)


class KMeansClassifierModel(Classifier):
    """K-Means as a classifier: ``clusters`` (default 64) clusters of all training rows, each labelled by its
    class mix; a row gets the class distribution of its nearest cluster (Laplace-smoothed)."""

    def _fit(self, X: np.ndarray, y: np.ndarray, validation: Validation, progress: Progress) -> None:
        from sklearn.cluster import MiniBatchKMeans

        k = int(min(self.params.get("clusters", 64), len(X)))
        with progress.task("K-Means (classifier)"), _one_thread():
            km = MiniBatchKMeans(
                n_clusters=k, batch_size=4096, n_init=3, random_state=self.seed, max_iter=200
            ).fit(X)
        self.centers_ = km.cluster_centers_.astype(np.float64)
        self.class_names_ = np.unique(y)
        assigned = self._nearest(X)
        counts = np.zeros((k, len(self.class_names_)))
        np.add.at(counts, (assigned, np.searchsorted(self.class_names_, y)), 1.0)
        self.table_ = ((counts + 1.0) / (counts.sum(axis=1, keepdims=True) + len(self.class_names_))).astype(
            np.float32
        )
        self.hyperparameters = {"clusters": k}

    def _classes(self) -> np.ndarray:
        return self.class_names_

    def _nearest(self, X: np.ndarray) -> np.ndarray:
        return _squared_distances(np.asarray(X, dtype=np.float64), self.centers_).argmin(axis=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.table_[self._nearest(X)]

    def to_onnx(self, n_features: int) -> Any:
        from iotguard.preprocess.onnx_graph import DOUBLE, FLOAT, GraphBuilder

        g = GraphBuilder("kmeans_classifier")
        x = g.op("Cast", g.input("x", FLOAT, [None, n_features]), to=DOUBLE)
        nearest = g.op("ArgMin", _onnx_squared_distances(g, x, self.centers_), axis=1, keepdims=0)
        proba = g.op("Gather", g.const(self.table_, "cluster_proba"), nearest, axis=0)
        p_benign = g.op("Gather", proba, g.const(np.array(self.benign_index_, np.int64), "benign"), axis=1)
        score = g.op("Sub", g.const(np.float32(1.0), "one"), p_benign)
        g.output("score", score, FLOAT, [None])
        g.output("proba", proba, FLOAT, [None, len(self.classes_)])
        return g.model()


# -- anomaly detectors ----------------------------------------------------------------------------------------
class AnomalyDetector:
    """Shared behaviour: fitted on benign rows only (``y`` selects them); binary task only."""

    kind = "anomaly"

    def __init__(self, task: TaskName = "binary", seed: int = 0, **params: Any) -> None:
        if task != "binary":
            raise ConfigError(
                f"anomaly detectors score attack-vs-benign only; task {task!r} is not supported",
                expected="task binary",
            )
        self.task = task
        self.seed = seed
        self.params = params
        self.hyperparameters: dict[str, Any] = {}

    def fit(
        self,
        X: np.ndarray,
        y: Any = None,
        *,
        validation: Validation = None,
        progress: Progress = NO_PROGRESS,
        **_: Any,
    ) -> AnomalyDetector:
        X = benign_rows(X, y, np.float32)
        self._fit(X, progress)
        return self

    def _fit(self, X: np.ndarray, progress: Progress) -> None:
        raise NotImplementedError


class KMeansDistanceModel(AnomalyDetector):
    """K-Means anomaly score: distance to the nearest of ``clusters`` (default 16) centres of benign traffic."""

    def _fit(self, X: np.ndarray, progress: Progress) -> None:
        from sklearn.cluster import KMeans

        k = int(min(self.params.get("clusters", 16), len(np.unique(X, axis=0))))
        with progress.task("K-Means (benign clusters)"), _one_thread():
            km = KMeans(n_clusters=k, n_init=3, random_state=self.seed, max_iter=300).fit(X)
        self.centers_ = km.cluster_centers_.astype(np.float64)
        self.hyperparameters = {"clusters": k}

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        d2 = _squared_distances(np.asarray(X, dtype=np.float64), self.centers_)
        return np.sqrt(d2.min(axis=1)).astype(np.float32)

    def to_onnx(self, n_features: int) -> Any:
        from iotguard.preprocess.onnx_graph import DOUBLE, FLOAT, GraphBuilder

        g = GraphBuilder("kmeans_distance")
        x = g.op("Cast", g.input("x", FLOAT, [None, n_features]), to=DOUBLE)
        d2 = _onnx_squared_distances(g, x, self.centers_)
        nearest = g.op("ReduceMin", d2, g.const(np.array([1], np.int64), "axis"), keepdims=0)
        g.output("score", g.op("Cast", g.op("Sqrt", nearest), to=FLOAT), FLOAT, [None])
        return g.model()


class IsolationForestModel(AnomalyDetector):
    """Isolation Forest on benign traffic (200 trees of 256 rows); score = minus scikit-learn's decision
    function (0 is scikit-learn's own boundary; iotguard sets its threshold on validation rows)."""

    def _fit(self, X: np.ndarray, progress: Progress) -> None:
        from sklearn.ensemble import IsolationForest

        with progress.task("isolation forest"):
            self.estimator_ = IsolationForest(
                n_estimators=int(self.params.get("trees", 200)),
                max_samples=min(256, len(X)),
                random_state=self.seed,
                n_jobs=_threads(),
            ).fit(X)
        self.hyperparameters = {"trees": self.estimator_.n_estimators, "max_samples": 256}

    def attack_score(self, X: np.ndarray) -> np.ndarray:
        return (-self.estimator_.decision_function(np.asarray(X, dtype=np.float32))).astype(np.float32)

    def to_onnx(self, n_features: int) -> Any:
        return isolation_forest_graph(self.estimator_, n_features)


# -- distances shared by the K-Means and Nystroem graphs ---------------------------------------------------
def _squared_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """||x - c||^2 as |x|^2 - 2 x.c + |c|^2 (clipped at 0), in float64 exactly like the ONNX graph."""
    xx = (x * x).sum(axis=1, keepdims=True)
    cc = (centers * centers).sum(axis=1)[None, :]
    return np.maximum(xx - 2.0 * (x @ centers.T) + cc, 0.0)


def _onnx_squared_distances(g: Any, x: str, centers: np.ndarray) -> str:
    xx = g.op("ReduceSum", g.op("Mul", x, x), g.const(np.array([1], np.int64), "axis"), keepdims=1)
    xc = g.op("MatMul", x, g.const(centers.T.copy(), "centers_t"))
    cc = g.const((centers * centers).sum(axis=1)[None, :], "centers_sq")
    d2 = g.op("Add", g.op("Sub", xx, g.op("Mul", g.const(np.float64(2.0), "two"), xc)), cc)
    return g.op("Max", d2, g.const(np.float64(0.0), "zero"))


# -- registry ---------------------------------------------------------------------------------------------------
def _spec(name: str, title: str, cls: type, kind: str, description: str) -> ModelSpec:
    return register(
        ModelSpec(
            name=name,
            title=title,
            kind=kind,  # type: ignore[arg-type]
            family="classical",
            build=lambda task="binary", seed=0, **params: cls(task=task, seed=seed, **params),
            description=description,
        )
    )


SPECS = [
    _spec(
        "lr", "Logistic regression", LogisticRegressionModel, "classifier", LogisticRegressionModel.__doc__
    ),
    _spec("svm", "Linear SVM", LinearSVMModel, "classifier", LinearSVMModel.__doc__),
    _spec("rbf-svm", "RBF SVM (Nystroem)", RBFSVMModel, "classifier", RBFSVMModel.__doc__),
    _spec("rf", "Random forest", RandomForestModel, "classifier", RandomForestModel.__doc__),
    _spec("lgbm", "LightGBM", LightGBMModel, "classifier", LightGBMModel.__doc__),
    _spec(
        "kmeans-clf", "K-Means classifier", KMeansClassifierModel, "classifier", KMeansClassifierModel.__doc__
    ),
    _spec("kmeans", "K-Means distance", KMeansDistanceModel, "anomaly", KMeansDistanceModel.__doc__),
    _spec("iforest", "Isolation Forest", IsolationForestModel, "anomaly", IsolationForestModel.__doc__),
]
