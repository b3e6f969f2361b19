"""Scoring heads on top of the networks, and their export to ONNX.

The heads are the one definition of a deep model's outputs: the wrappers compute ``attack_score`` and
``predict_proba`` by running them in torch, and ``to_onnx`` exports the same modules, so torch and onnxruntime
agree to float32 rounding.
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import nn

OPSET = 19
"""Same default-domain opset as the preprocessing graphs, so an artifact can chain them into one graph."""


class ClassifierHead(nn.Module):
    """logits -> (score, proba): ``proba`` is the softmax; ``score`` the probability mass of the attack classes.

    The score sums the non-benign probabilities rather than computing ``1 - P(benign)``: the same number, but
    without float32 cancellation for confident benign rows, so thresholds at very low false-positive rates
    still separate rows.
    """

    def __init__(self, net: nn.Module, n_classes: int, benign_index: int) -> None:
        super().__init__()
        self.net = net
        attack = torch.ones(n_classes)
        attack[benign_index] = 0.0
        self.register_buffer("attack_mask", attack)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        proba = torch.softmax(self.net(x), dim=1)
        score = (proba * self.attack_mask).sum(dim=1)
        return score, proba


class ReconstructionHead(nn.Module):
    """x -> reconstruction error: the mean squared difference per row (higher = more anomalous)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.net(x)).pow(2).mean(dim=1)


def export_onnx(head: nn.Module, example_shape: tuple[int, ...], output_names: list[str]) -> onnx.ModelProto:
    """Export ``head`` with one float32 input ``x`` whose first (batch) axis is dynamic."""
    head.eval()
    dummy = torch.zeros((2, *example_shape[1:]), dtype=torch.float32)
    buffer = io.BytesIO()
    dynamic = {name: {0: "N"} for name in ["x", *output_names]}
    with warnings.catch_warnings():
        # The legacy exporter warns about LSTM batch sizes and its own deprecation; neither applies here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            head,
            (dummy,),
            buffer,
            input_names=["x"],
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model
