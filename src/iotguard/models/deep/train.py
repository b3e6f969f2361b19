"""The training loop shared by every deep model: seeded, early-stopped, class-weighted, with progress.

Determinism: the network is built and trained inside a forked torch RNG seeded with ``seed``; shuffling uses
its own seeded generator; the thread count is fixed for the run. The same seed, data and thread count give
the same weights bit for bit on the same machine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from iotguard.core.progress import NO_PROGRESS, Progress

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 30
    """Upper bound; early stopping usually ends training sooner."""
    batch_size: int = 512
    """Upper bound: a small training set uses smaller batches, so that an epoch has at least
    :data:`MIN_STEPS_PER_EPOCH` optimiser steps (a few thousand benign rows would otherwise give the
    autoencoder six steps an epoch)."""
    lr: float = 1e-3
    weight_decay: float = 1e-5
    patience: int = 4
    """Stop after this many epochs without a validation-loss improvement of at least ``min_delta``."""
    min_delta: float = 1e-4
    """Relative improvement that counts (1e-4 = 0.01 % of the best loss so far)."""
    val_fraction: float = 0.1
    """Share of the training rows held out for early stopping (stratified by class for classifiers)."""
    seed: int = 0
    threads: int | None = None
    """torch threads; None = the CPUs this process may run on."""


MIN_STEPS_PER_EPOCH = 50


def effective_batch_size(n_rows: int, batch_size: int) -> int:
    return max(1, min(batch_size, max(16, n_rows // MIN_STEPS_PER_EPOCH)))


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    """1-based epoch whose weights were kept."""
    seconds: float = 0.0
    batch_size: int = 0
    """The batch size used (see :attr:`TrainConfig.batch_size`)."""

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask; falls back to the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def torch_session(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seeded torch RNG and a fixed thread count for the block; the caller's state is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or available_cpus())
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous)


def validation_split(
    n: int, fraction: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, val)``; stratified by ``strata`` so every class with 2+ rows is in both parts."""
    rng = np.random.default_rng(seed)
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    val_parts = []
    for rows in groups:
        rows = rng.permutation(rows)
        # Every class with 2+ rows lands on both sides; a single row stays in training.
        take = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1) if len(rows) >= 2 else 0
        val_parts.append(rows[:take])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.empty(0, dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


def batched(net: nn.Module, X: torch.Tensor, batch_size: int = 8192) -> Any:
    """``net(X)`` in eval mode and batches, without gradients (a tensor, or a tuple when ``net`` returns one).

    ``X`` must have at least one row."""
    net.eval()
    with torch.inference_mode():
        parts = [net(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts, strict=True))
    return torch.cat(parts)


def fit_network(
    net: nn.Module,
    X: torch.Tensor,
    target: torch.Tensor,
    X_val: torch.Tensor,
    target_val: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig,
    *,
    progress: Progress = NO_PROGRESS,
    description: str = "training",
) -> History:
    """Train ``net`` with Adam, keep the weights of the best validation epoch. Call inside :func:`torch_session`."""
    history = History()
    start = time.perf_counter()
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    shuffle = torch.Generator().manual_seed(config.seed)
    best_loss, best_state, stale = float("inf"), None, 0
    n = len(X)
    history.batch_size = batch_size = effective_batch_size(n, config.batch_size)
    with progress.task(description, total=config.epochs) as task:
        for epoch in range(1, config.epochs + 1):
            net.train()
            total = 0.0
            for batch in torch.randperm(n, generator=shuffle).split(batch_size):
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(net(X[batch]), target[batch])
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            train_loss = total / max(n, 1)
            val_loss = float(loss_fn(batched(net, X_val), target_val)) if len(X_val) else train_loss
            history.train_loss.append(train_loss)
            history.val_loss.append(val_loss)
            log.debug(
                "%s epoch %d: train loss %.5f, validation loss %.5f", description, epoch, train_loss, val_loss
            )
            if val_loss < best_loss * (1 - config.min_delta):
                best_loss, stale, history.best_epoch = val_loss, 0, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
            task.update(description=f"{description}: epoch {epoch}, validation loss {val_loss:.4f}")
            task.advance()
            if stale >= config.patience:
                task.update(completed=config.epochs)
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    history.seconds = time.perf_counter() - start
    log.info(
        "%s: %d epochs, best %d (validation loss %.5f), %.1f s",
        description,
        history.epochs,
        history.best_epoch,
        best_loss,
        history.seconds,
    )
    return history
