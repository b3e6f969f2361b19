"""Progress reporting without printing: library code reports, the CLI draws (with rich).

Long-running library functions take ``progress: Progress = NO_PROGRESS`` and do::

    with progress.task("training random forest", total=n_trees) as task:
        for ...:
            task.advance()
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Task(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def update(
        self, *, completed: float | None = None, total: float | None = None, description: str | None = None
    ) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None) -> AbstractContextManager[Task]: ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(
        self, *, completed: float | None = None, total: float | None = None, description: str | None = None
    ) -> None:
        pass

    def __enter__(self) -> _NullTask:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _NullProgress:
    def task(self, description: str, total: float | None = None) -> _NullTask:
        return _NullTask()


NO_PROGRESS: Progress = _NullProgress()
