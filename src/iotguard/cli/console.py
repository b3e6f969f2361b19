"""Terminal output for the CLI: rich consoles and a rich implementation of :class:`~iotguard.core.progress.Progress`."""

from __future__ import annotations

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

out = Console()
err = Console(stderr=True)


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
    """Progress bars on stderr; tasks stack up while they run and stay visible when done."""

    def __init__(self, console: Console = err) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._depth = 0

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[_RichTask]:
        if self._depth == 0:
            self._progress.start()
        self._depth += 1
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _RichTask(self._progress, task_id)
            if total is not None:
                self._progress.update(task_id, completed=self._progress.tasks[-1].total)
        finally:
            self._progress.stop_task(task_id)
            self._depth -= 1
            if self._depth == 0:
                self._progress.stop()
