"""The torch networks. Each maps a float32 batch to logits (classifiers) or to a reconstruction (autoencoder).

Record networks read ``[N, F]``; window networks read ``[N, k, F]`` (see :mod:`.windows`). Sizes are kept
small on purpose: every network trains on full NSL-KDD in minutes on two cores and scores one flow in well
under a millisecond through onnxruntime. Every layer used here exports to plain ONNX operators.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected baseline: F -> hidden... -> classes."""

    def __init__(
        self, n_features: int, n_out: int, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CNN1D(nn.Module):
    """1-D convolutions over the feature vector read as a one-channel signal (the literature's form)."""

    def __init__(
        self,
        n_features: int,
        n_out: int,
        channels: tuple[int, ...] = (16, 32),
        kernel: int = 3,
        hidden: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width, length = 1, n_features
        for c in channels:
            layers += [nn.Conv1d(width, c, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool1d(2)]
            width, length = c, length // 2
        if length < 1:
            raise ValueError(f"{n_features} features are too few for {len(channels)} pooling layers")
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * length, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.unsqueeze(1)))


class RecordLSTM(nn.Module):
    """LSTM over one flow's feature vector read as a sequence of ``steps`` chunks (per-record form).

    Papers feed the feature vector to an LSTM as if it were a sequence; one feature per step is slow and no
    better, so the vector is cut into ``steps`` equal chunks (zero-padded at the end).
    """

    def __init__(
        self, n_features: int, n_out: int, steps: int = 8, hidden: int = 64, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.steps = steps
        self.chunk = math.ceil(n_features / steps)
        self.pad = self.chunk * steps - n_features
        self.lstm = nn.LSTM(self.chunk, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = nn.functional.pad(x, (0, self.pad))
        out, _ = self.lstm(x.reshape(x.shape[0], self.steps, self.chunk))
        return self.head(out[:, -1])


class RecordCNNLSTM(nn.Module):
    """Convolutions over the feature vector, then an LSTM over the pooled positions (per-record form)."""

    def __init__(
        self,
        n_features: int,
        n_out: int,
        channels: int = 32,
        kernel: int = 3,
        pool: int = 8,
        hidden: int = 32,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if n_features < pool:
            raise ValueError(f"{n_features} features are too few for pooling by {pool}")
        self.conv = nn.Sequential(
            nn.Conv1d(1, channels, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool1d(pool)
        )
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x.unsqueeze(1)).transpose(1, 2)  # [N, positions, channels]
        out, _ = self.lstm(z)
        return self.head(out[:, -1])


class WindowLSTM(nn.Module):
    """LSTM over a host's last k flows (temporal form): each step is one whole flow."""

    def __init__(self, n_features: int, n_out: int, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class WindowCNNLSTM(nn.Module):
    """Per-flow embedding and a convolution across neighbouring flows, then an LSTM over the window."""

    def __init__(
        self,
        n_features: int,
        n_out: int,
        channels: int = 32,
        kernel: int = 3,
        hidden: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        # Left padding only, so position t mixes flows t-kernel+1..t and the last position stays the scored flow.
        self.kernel = kernel
        self.conv = nn.Conv1d(n_features, channels, kernel)
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = nn.functional.pad(x.transpose(1, 2), (self.kernel - 1, 0))  # [N, F, k + kernel - 1]
        z = torch.relu(self.conv(z)).transpose(1, 2)  # [N, k, channels]
        out, _ = self.lstm(z)
        return self.head(out[:, -1])


class Autoencoder(nn.Module):
    """Symmetric fully connected autoencoder: F -> hidden... -> code -> ...hidden -> F."""

    def __init__(self, n_features: int, hidden: tuple[int, ...] = (128, 64), code: int = 8) -> None:
        super().__init__()
        widths = [n_features, *hidden, code]
        enc: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            enc += [nn.Linear(a, b), nn.ReLU()]
        dec: list[nn.Module] = []
        rev = widths[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:], strict=True)):
            dec.append(nn.Linear(a, b))
            if i < len(rev) - 2:
                dec.append(nn.ReLU())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "cnn": CNN1D,
    "lstm": RecordLSTM,
    "cnn_lstm": RecordCNNLSTM,
    "lstm_window": WindowLSTM,
    "cnn_lstm_window": WindowCNNLSTM,
}
"""Classifier networks by architecture name; the window ones read ``[N, k, F]``."""
