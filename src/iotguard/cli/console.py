"""Terminal output for the CLI: rich consoles and a rich implementation of :class:`~iotguard.core.progress.Progress`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

PIPE_WIDTH = 200
"""Columns of a console that writes to a pipe or a file: rich's 80 would cut addresses and numbers in tables
("192.168.…") that scripts and logs then read; COLUMNS, when set, still wins."""


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


out = _console()
err = _console(stderr=True)


class _RichTask:
    def __init__(self, progress: Progress, task_id: int) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(
        self, *, completed: float | None = None, total: float | None = None, description: str | None = None
    ) -> None:
        self._progress.update(self._id, completed=completed, total=total, description=description)


class RichProgress:
    """Progress bars on stderr while work runs. Nested steps vanish when done; each outermost step leaves one
    line with its duration, so a long command reads as a short log."""

    def __init__(self, console: Console = err) -> None:
        self._console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._depth = 0

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_RichTask]:
        if self._depth == 0:
            self._progress.start()
        self._depth += 1
        task_id = self._progress.add_task(description, total=total)
        started = time.perf_counter()
        finished = False
        try:
            yield _RichTask(self._progress, task_id)
            finished = True
        finally:
            description = next(t.description for t in self._progress.tasks if t.id == task_id)
            self._progress.remove_task(task_id)
            self._depth -= 1
            if self._depth == 0:
                self._progress.stop()
                if finished:
                    seconds = time.perf_counter() - started
                    self._console.print(
                        f"[green]✓[/] {description} [dim]({seconds:.1f} s)[/]", highlight=False
                    )
