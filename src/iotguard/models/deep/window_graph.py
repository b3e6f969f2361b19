"""The artifact graph of a window model: raw windows in, preprocessing per flow, the network over the window.

::

    x   [N, k, numeric]  float32, padding rows all NaN     cat [N, k, categorical] strings (if any)
      | flatten to [N*k, ...]                                 | flatten
      +---------------- preprocessing graph (per flow) -------+
                          | features [N*k, F]
                          | back to [N, k, F]; rows that were all NaN -> 0 (the padding the network knows)
                        network -> score [N] (, proba [N, C])

Built at training time (needs onnx); the artifact that holds it runs on numpy + onnxruntime.
"""

from __future__ import annotations

import onnx
from onnx import compose

from iotguard.preprocess.onnx_graph import BOOL, FLOAT, STRING, GraphBuilder, chain, harmonize


def window_graph(
    preprocess: onnx.ModelProto,
    network: onnx.ModelProto,
    *,
    k: int,
    n_numeric: int,
    n_categorical: int,
    n_features: int,
    outputs: list[str],
) -> onnx.ModelProto:
    """Fuse ``preprocess`` (inputs ``x``/``cat`` -> ``features``) in front of window ``network`` (``x``)."""
    if n_numeric == 0:
        raise ValueError("a window model needs numeric features (padding is marked by NaN numeric values)")
    front = GraphBuilder("window_front")
    x = front.input("x", FLOAT, [None, k, n_numeric])
    front.output(
        "flat_x",
        front.op("Reshape", x, front.const([-1, n_numeric], "shape", "int64")),
        FLOAT,
        [None, n_numeric],
    )
    if n_categorical:
        cat = front.input("cat", STRING, [None, k, n_categorical])
        flat_cat = front.op("Reshape", cat, front.const([-1, n_categorical], "shape", "int64"))
        front.output("flat_cat", flat_cat, STRING, [None, n_categorical])
    present = front.op("Cast", front.op("Not", front.op("IsNaN", x)), to=FLOAT)
    has_value = front.op("ReduceMax", present, front.const([2], "axes", "int64"), keepdims=1)
    front.output("pad", front.op("Less", has_value, front.const(0.5, "half", "float32")), BOOL, [None, k, 1])

    io = [("flat_x", "x")] + ([("flat_cat", "cat")] if n_categorical else [])
    head = compose.merge_models(
        harmonize(front.model()),
        compose.add_prefix(harmonize(preprocess), prefix="pre_"),
        io_map=[(a, "pre_" + b) for a, b in io],
        outputs=["pad", "pre_features"],
    )

    back = GraphBuilder("window_back")
    features = back.input("features", FLOAT, [None, n_features])
    pad = back.input("pad", BOOL, [None, k, 1])
    shaped = back.op("Reshape", features, back.const([-1, k, n_features], "shape", "int64"))
    zero = back.const(0.0, "zero", "float32")
    back.output("windows", back.op("Where", pad, zero, shaped), FLOAT, [None, k, n_features])
    head = compose.merge_models(
        harmonize(head),
        compose.add_prefix(back.model(), prefix="back_"),
        io_map=[("pre_features", "back_features"), ("pad", "back_pad")],
        outputs=["back_windows"],
    )
    fused = chain(head, network, [("back_windows", "x")], {name: name for name in outputs}, prefix="model_")
    _name_graph(fused)
    return fused


def _name_graph(model: onnx.ModelProto) -> None:
    model.graph.name = "iotguard_window_model"
    model.producer_name = "iotguard"
    onnx.checker.check_model(model)


__all__ = ["window_graph"]
