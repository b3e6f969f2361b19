"""Registers the deep models in the zoo. Importing this module does not import torch; building a model does."""

from __future__ import annotations

from typing import Any

from iotguard.models.base import Model, ModelSpec, register


def _classifier(arch: str, **defaults: Any):  # noqa: ANN202
    def build(task: str = "binary", seed: int = 0, **params: Any) -> Model:
        from iotguard.models.deep.classifier import DeepClassifier

        return DeepClassifier(arch, task=task, seed=seed, **(defaults | params))

    return build


def _hybrid(task: str = "binary", seed: int = 0, **params: Any) -> Model:
    from iotguard.models.deep.hybrid import DeepHybrid

    return DeepHybrid(task=task, seed=seed, **params)


def _autoencoder(task: str = "binary", seed: int = 0, **params: Any) -> Model:
    from iotguard.models.deep.autoencoder import DeepAutoencoder

    return DeepAutoencoder(task=task, seed=seed, **params)


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="mlp",
        title="MLP",
        kind="classifier",
        family="deep",
        build=_classifier("mlp"),
        description="Fully connected network (256-128), the deep baseline.",
    ),
    ModelSpec(
        name="cnn",
        title="1-D CNN",
        kind="classifier",
        family="deep",
        build=_classifier("cnn"),
        description="Two 1-D convolutions over the feature vector, then a dense layer.",
    ),
    ModelSpec(
        name="lstm",
        title="LSTM (per record)",
        kind="classifier",
        family="deep",
        build=_classifier("lstm"),
        description="LSTM over one flow's feature vector cut into 8 chunks (the literature's form).",
    ),
    ModelSpec(
        name="cnn-lstm",
        title="CNN-LSTM (per record)",
        kind="classifier",
        family="deep",
        build=_classifier("cnn_lstm"),
        description="1-D convolution over the feature vector, LSTM over the pooled positions.",
    ),
    ModelSpec(
        name="lstm-window",
        title="LSTM (16 flows per host)",
        kind="classifier",
        family="deep",
        build=_classifier("lstm_window"),
        input="window",
        description="LSTM over the 16 most recent flows of the same source host, the scored flow last.",
    ),
    ModelSpec(
        name="cnn-lstm-window",
        title="CNN-LSTM (16 flows per host)",
        kind="classifier",
        family="deep",
        build=_classifier("cnn_lstm_window"),
        input="window",
        description="Causal convolution across neighbouring flows of a host, then an LSTM over the window.",
    ),
    ModelSpec(
        name="mlp-ae",
        title="MLP + autoencoder",
        kind="classifier",
        family="deep",
        build=_hybrid,
        description="The MLP for known attacks, or the autoencoder (benign-only) for anything it cannot rebuild.",
    ),
    ModelSpec(
        name="autoencoder",
        title="Autoencoder",
        kind="anomaly",
        family="deep",
        build=_autoencoder,
        description="Trained on benign rows only; reconstruction error above the 1%-FPR benign threshold.",
    ),
)

for _spec in SPECS:
    register(_spec)
