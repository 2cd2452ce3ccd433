"""The progress bar of ``study.optimize``: trials done / budget, best so far, ETA (rich)."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class ProgressBar:
    """A rich progress bar on stderr, or nothing at all when ``enabled`` is false."""

    def __init__(self, enabled: bool, total: int | None, description: str) -> None:
        self.enabled = enabled
        self.total = total
        self.description = description
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, best="-")
        return self

    def update(self, done: int, best: float | None) -> None:
        """Show ``done`` finished trials and the best objective value so far."""
        if self._bar is not None:
            shown = "-" if best is None else f"{best:.6g}"
            self._bar.update(self._task, completed=done, best=shown)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
