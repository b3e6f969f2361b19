"""A small helper to write ONNX graphs by hand, and to chain two ONNX models into one.

Used for the preprocessing graph and for models whose scores no converter knows (K-Means distance, Nystroem
features). Everything iotguard writes targets one opset (:data:`OPSET`), so graphs from different converters
can be fused into one artifact.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 19
"""Default-domain opset of every graph iotguard writes (19: ``Equal`` on strings for one-hot encoding)."""
ML_OPSET = 3
"""``ai.onnx.ml`` opset (tree ensembles, label encoders)."""
IR_VERSION = 9

FLOAT = TensorProto.FLOAT
DOUBLE = TensorProto.DOUBLE
STRING = TensorProto.STRING
INT64 = TensorProto.INT64
BOOL = TensorProto.BOOL


class GraphBuilder:
    """Collects nodes, constants, inputs and outputs; ``model()`` returns a checked ``ModelProto``."""

    def __init__(self, name: str = "iotguard") -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._ids = count()

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._ids)}"

    def input(self, name: str, elem_type: int, shape: list[Any]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        if array.dtype.kind in "OUS":
            tensor = helper.make_tensor(
                name, STRING, array.shape, [str(v).encode("utf-8") for v in array.ravel()]
            )
        else:
            tensor = numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", outputs: int = 1, **attrs: Any) -> Any:
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, domain=domain, **attrs))
        return names[0] if outputs == 1 else names

    def output(self, name: str, source: str, elem_type: int, shape: list[Any]) -> None:
        self.nodes.append(helper.make_node("Identity", [source], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, self.name, self.inputs, self.outputs, initializer=self.initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
            ir_version=IR_VERSION,
            producer_name="iotguard",
        )
        onnx.checker.check_model(model)
        return model


def harmonize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Bring a converter's graph to iotguard's opsets and IR version so graphs can be merged."""
    versions = {o.domain or "": o.version for o in model.opset_import}
    if versions.get("", OPSET) < OPSET:
        from onnx import version_converter

        model = version_converter.convert_version(model, OPSET)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.opset_import[:]
    for domain, version in versions.items():
        if domain == "":
            version = OPSET
        elif domain == "ai.onnx.ml":
            version = max(version, ML_OPSET)
        out.opset_import.append(helper.make_opsetid(domain, version))
    if "" not in versions:
        out.opset_import.append(helper.make_opsetid("", OPSET))
    out.ir_version = IR_VERSION
    return out


def chain(
    first: onnx.ModelProto,
    second: onnx.ModelProto,
    io_map: list[tuple[str, str]],
    outputs: dict[str, str],
    prefix: str,
) -> onnx.ModelProto:
    """Feed ``first``'s outputs into ``second`` (``io_map``: first output -> second input).

    ``outputs`` maps final output names to outputs of ``second`` (unprefixed names); the result's inputs are
    ``first``'s inputs. ``second``'s names get ``prefix`` so that they cannot collide with ``first``'s.
    """
    a = harmonize(first)
    b = onnx.compose.add_prefix(harmonize(second), prefix=prefix)
    merged = onnx.compose.merge_models(
        a,
        b,
        io_map=[(src, prefix + dst) for src, dst in io_map],
        outputs=[prefix + src for src in outputs.values()],
    )
    graph = merged.graph
    for final, src in outputs.items():
        graph.node.append(helper.make_node("Identity", [prefix + src], [final]))
    kept = {o.name: o for o in graph.output}
    del graph.output[:]
    for final, src in outputs.items():
        value = onnx.ValueInfoProto()
        value.CopyFrom(kept[prefix + src])
        value.name = final
        graph.output.append(value)
    merged.ir_version = IR_VERSION
    onnx.checker.check_model(merged)
    return merged
