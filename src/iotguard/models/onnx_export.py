"""Turning fitted scikit-learn / LightGBM estimators into graphs that follow the Model contract.

Every model graph has one float32 input ``x`` [N, n_features] and the outputs ``score`` [N] (the attack
score) and, for classifiers, ``proba`` [N, n_classes].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from iotguard.preprocess.onnx_graph import ML_OPSET, OPSET, harmonize


def sklearn_graph(estimator: Any, n_features: int) -> onnx.ModelProto:
    """A scikit-learn estimator as ONNX (input ``x``; outputs as skl2onnx names them, no ZipMap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    model = convert_sklearn(
        estimator,
        initial_types=[("x", FloatTensorType([None, n_features]))],
        options=options,
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    return harmonize(model)


def classifier_outputs(
    model: onnx.ModelProto, benign_index: int, proba: str = "probabilities"
) -> onnx.ModelProto:
    """Replace a classifier graph's outputs by ``score`` = 1 - proba[:, benign_index] and ``proba``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    n_classes = _last_dim(graph, proba)
    index = numpy_helper.from_array(np.array(benign_index, dtype=np.int64), "benign_index_")
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one_")
    graph.initializer.extend([index, one])
    graph.node.extend(
        [
            helper.make_node("Identity", [proba], ["proba"]),
            helper.make_node("Gather", [proba, "benign_index_"], ["p_benign_"], axis=1),
            helper.make_node("Sub", ["one_", "p_benign_"], ["score"]),
        ]
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("score", onnx.TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("proba", onnx.TensorProto.FLOAT, [None, n_classes]),
        ]
    )
    onnx.checker.check_model(out)
    return out


def _last_dim(graph: onnx.GraphProto, name: str) -> Any:
    for value in graph.output:
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            if dims and dims[-1].HasField("dim_value"):
                return dims[-1].dim_value
    return None


class TreeWriter:
    """Collects trees as the attributes of one ``ai.onnx.ml`` ``TreeEnsembleRegressor``.

    Split thresholds are stored as the largest float32 not above the trained (float64) threshold, so that for
    every float32 input ``x <= threshold`` decides exactly as the trained model does.
    """

    def __init__(self) -> None:
        self.attrs: dict[str, list[Any]] = {
            k: []
            for k in (
                "nodes_treeids",
                "nodes_nodeids",
                "nodes_featureids",
                "nodes_values",
                "nodes_modes",
                "nodes_truenodeids",
                "nodes_falsenodeids",
                "target_treeids",
                "target_nodeids",
                "target_ids",
                "target_weights",
            )
        }

    def branch(self, tree: int, node: int, feature: int, threshold: float, left: int, right: int) -> None:
        self._node(tree, node, feature, float(_floor_float32(threshold)), "BRANCH_LEQ", left, right)

    def test(
        self, tree: int, node: int, feature: int, value: float, mode: str, left: int, right: int
    ) -> None:
        """A split with an exact float32 ``value`` and any ``mode`` (``BRANCH_LT``, ``BRANCH_LEQ`` ...)."""
        self._node(tree, node, feature, value, mode, left, right)

    def leaf(self, tree: int, node: int, value: float, target: int = 0) -> None:
        """A leaf adding ``value`` to output ``target``; call again with another target for the same leaf."""
        a = self.attrs
        if not (a["nodes_treeids"] and a["nodes_treeids"][-1] == tree and a["nodes_nodeids"][-1] == node):
            self._node(tree, node, 0, 0.0, "LEAF", 0, 0)
        a["target_treeids"].append(tree)
        a["target_nodeids"].append(node)
        a["target_ids"].append(target)
        a["target_weights"].append(float(value))

    def _node(
        self, tree: int, node: int, feature: int, value: float, mode: str, left: int, right: int
    ) -> None:
        a = self.attrs
        a["nodes_treeids"].append(tree)
        a["nodes_nodeids"].append(node)
        a["nodes_featureids"].append(feature)
        a["nodes_values"].append(value)
        a["nodes_modes"].append(mode)
        a["nodes_truenodeids"].append(left)
        a["nodes_falsenodeids"].append(right)

    def sum_node(self, g: Any, x: str, n_targets: int) -> str:
        """Adds the ensemble to graph ``g``: output [N, n_targets], the sum of the trees' leaf values."""
        return g.op(
            "TreeEnsembleRegressor",
            x,
            domain="ai.onnx.ml",
            n_targets=n_targets,
            aggregate_function="SUM",
            **self.attrs,
        )


def lightgbm_graph(model: Any, n_features: int, benign_index: int) -> onnx.ModelProto:
    """A fitted ``LGBMClassifier`` as ONNX with outputs ``score`` and ``proba``.

    Written from the booster's own dump rather than with onnxmltools, whose float32 rounding of the
    float64 split thresholds sends rows that sit between the two down the other branch.
    """
    from iotguard.preprocess.onnx_graph import FLOAT, GraphBuilder

    dump = model.booster_.dump_model(num_iteration=model.best_iteration_ or None)
    n_classes = int(dump["num_class"])
    per_iteration = int(dump["num_tree_per_iteration"])
    writer = TreeWriter()
    for info in dump["tree_info"]:
        tree = int(info["tree_index"])
        target = tree % per_iteration if per_iteration > 1 else 0
        # number the nodes in pre-order (onnxruntime takes a tree's first node as its root)
        order: list[dict[str, Any]] = []
        ids: dict[int, int] = {}
        stack = [info["tree_structure"]]
        while stack:
            node = stack.pop()
            ids[id(node)] = len(order)
            order.append(node)
            if "leaf_value" not in node:
                stack.extend([node["right_child"], node["left_child"]])
        for me, node in enumerate(order):
            if "leaf_value" in node:
                writer.leaf(tree, me, node["leaf_value"], target)
                continue
            if node["decision_type"] != "<=" or node.get("missing_type", "None") == "Zero":
                raise ValueError(
                    f"unsupported LightGBM split {node['decision_type']} / {node['missing_type']}"
                )
            left, right = ids[id(node["left_child"])], ids[id(node["right_child"])]
            writer.branch(tree, me, int(node["split_feature"]), float(node["threshold"]), left, right)
    g = GraphBuilder("lightgbm")
    x = g.input("x", FLOAT, [None, n_features])
    raw = writer.sum_node(g, x, per_iteration)
    if n_classes > 2 or per_iteration > 1:
        proba = g.op("Softmax", raw, axis=1)
    else:
        p1 = g.op("Sigmoid", raw)
        proba = g.op("Concat", g.op("Sub", g.const(np.float32(1.0), "one"), p1), p1, axis=1)
    n_out = max(n_classes, 2)
    p_benign = g.op("Gather", proba, g.const(np.array(benign_index, np.int64), "benign"), axis=1)
    g.output("score", g.op("Sub", g.const(np.float32(1.0), "one"), p_benign), FLOAT, [None])
    g.output("proba", proba, FLOAT, [None, n_out])
    return g.model()


def forest_graph(estimator: Any, n_features: int, benign_index: int) -> onnx.ModelProto:
    """A ``RandomForestClassifier`` as ONNX with outputs ``score`` and ``proba`` (the mean of the trees' leaf
    class fractions, as scikit-learn computes ``predict_proba``), with exact float32 split thresholds."""
    from iotguard.preprocess.onnx_graph import FLOAT, GraphBuilder

    n_classes = len(estimator.classes_)
    n_trees = len(estimator.estimators_)
    writer = TreeWriter()
    for t, tree in enumerate(estimator.estimators_):
        tr = tree.tree_
        for node in range(tr.node_count):
            if tr.children_left[node] == -1:
                value = tr.value[node, 0]
                fractions = value / value.sum() if value.sum() > 0 else value
                for k in range(n_classes):
                    if fractions[k] != 0.0:
                        writer.leaf(t, node, fractions[k] / n_trees, k)
                if not np.any(fractions):
                    writer.leaf(t, node, 0.0, 0)
            else:
                left, right = int(tr.children_left[node]), int(tr.children_right[node])
                writer.branch(t, node, int(tr.feature[node]), float(tr.threshold[node]), left, right)
    g = GraphBuilder("random_forest")
    proba = writer.sum_node(g, g.input("x", FLOAT, [None, n_features]), n_classes)
    p_benign = g.op("Gather", proba, g.const(np.array(benign_index, np.int64), "benign"), axis=1)
    g.output("score", g.op("Sub", g.const(np.float32(1.0), "one"), p_benign), FLOAT, [None])
    g.output("proba", proba, FLOAT, [None, n_classes])
    return g.model()


def isolation_forest_graph(estimator: Any, n_features: int) -> onnx.ModelProto:
    """An ``IsolationForest`` as one ``TreeEnsembleRegressor``; output ``score`` = -decision_function.

    skl2onnx's converter builds a graph that takes milliseconds per row; this one sums each tree's path
    length (leaf depth + expected depth of the leaf's remaining samples - 1, as scikit-learn does) in one op.
    """
    from sklearn.ensemble._iforest import _average_path_length

    from iotguard.preprocess.onnx_graph import FLOAT, GraphBuilder

    writer = TreeWriter()
    subsample = estimator._max_features != n_features
    trees = zip(estimator.estimators_, estimator.estimators_features_, strict=True)
    for t, (tree, features) in enumerate(trees):
        tr = tree.tree_
        path = estimator._decision_path_lengths[t] + estimator._average_path_length_per_tree[t] - 1.0
        for node in range(tr.node_count):
            if tr.children_left[node] == -1:
                writer.leaf(t, node, path[node])
            else:
                feature = int(features[tr.feature[node]] if subsample else tr.feature[node])
                left, right = int(tr.children_left[node]), int(tr.children_right[node])
                writer.branch(t, node, feature, float(tr.threshold[node]), left, right)
    c = len(estimator.estimators_) * float(_average_path_length([estimator._max_samples])[0])
    g = GraphBuilder("isolation_forest")
    depths = writer.sum_node(g, g.input("x", FLOAT, [None, n_features]), 1)
    exponent = g.op("Mul", depths, g.const(np.float32(-1.0 / c if c else 0.0), "inv_c"))
    # score_samples = -2^(-depth/c); attack score = -(score_samples - offset_) = 2^(-depth/c) + offset_
    power = g.op("Pow", g.const(np.float32(2.0), "two"), exponent)
    score = g.op("Add", power, g.const(np.float32(estimator.offset_), "offset"))
    g.output("score", g.op("Reshape", score, g.const(np.array([-1], np.int64), "flat")), FLOAT, [None])
    return g.model()


def _floor_float32(value: float) -> np.float32:
    """The largest float32 <= value: for float32 x, ``x <= value`` iff ``x <= _floor_float32(value)``."""
    f = np.float32(value)
    if float(f) > value:
        f = np.nextafter(f, np.float32(-np.inf))
    return f
