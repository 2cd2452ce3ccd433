"""The progress bar of ``study.optimize`` and of the CLI: trials done out of the study's
whole budget, the best value so far (or what is happening before the first trial
ends), elapsed time and ETA (rich), plus one-line notes such as "resuming ..."."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any


def budget_done(counts: Mapping[str, int]) -> int:
    """Finished trials that count against ``max_trials`` (failed ones do not)."""
    return sum(counts.get(state, 0) for state in ("completed", "pruned", "infeasible"))


def best_value(data: Any) -> float | None:
    """The study's best value of its single objective metric (``None`` with several, or none)."""
    objectives = data.objectives
    best = data.best_trial
    if len(objectives) != 1 or best is None or not best.values:
        return None
    value = best.values.get(str(objectives[0]["name"]))
    return None if value is None else float(value)


def resume_note(data: Any) -> str | None:
    """``resuming study 'x': 35 of 150 trials done``, or ``None`` for a study without trials."""
    if not any(data.trial_counts.values()):
        return None
    done = budget_done(data.trial_counts)
    budget = f" of {data.max_trials}" if data.max_trials is not None else ""
    return f"resuming study {data.name!r}: {done}{budget} trials done"


def finished_note(data: Any) -> str:
    """What a finished study did: why it ended, how many trials, its best value."""
    done = budget_done(data.trial_counts)
    reason = f" ({data.completion_reason})" if data.completion_reason else ""
    budget = f" of {data.max_trials}" if data.max_trials is not None else ""
    text = f"study {data.name!r} is finished{reason}: {done}{budget} trials done"
    best = data.best_trial
    value = best_value(data)
    if best is not None and value is not None:
        metric = data.objectives[0]["name"]
        return f"{text}; best {metric} {value:.6g} (trial {best.number})"
    if best is not None:
        return f"{text}; best trial {best.number}"
    return f"{text}; no completed trial"


@contextmanager
def status_line(enabled: bool, text: str) -> Iterator[None]:
    """A spinner with ``text`` on stderr while the block runs; it leaves nothing behind."""
    if not enabled:
        yield
        return
    from rich.console import Console

    with Console(stderr=True, highlight=False).status(text):
        yield


class ProgressBar:
    """A rich progress bar on stderr, or nothing at all when ``enabled`` is false.

    ``done`` trials of ``total`` are finished when the bar starts (a resumed
    study). Until a best value is known the bar shows ``status`` instead, such
    as "starting workers".
    """

    def __init__(
        self,
        enabled: bool,
        total: int | None,
        description: str,
        *,
        done: int = 0,
        best: float | None = None,
        status: str = "",
    ) -> None:
        self.enabled = enabled
        self.total = total
        #: Cut so that the counts, best value and ETA keep their room on narrow terminals.
        self.description = description if len(description) <= 40 else description[:39] + "…"
        self.done = done
        self.best = best
        self.status = status
        #: Shown after the best value, e.g. "3 paused, 2 resumed" (``study.optimize``).
        self.extra = ""
        self._console: Any = None
        self._bar: Any = None
        self._task: Any = None

    def note(self, text: str) -> None:
        """Print one line on stderr (above the bar while it runs)."""
        if not self.enabled:
            return
        self._console_for_bar().print(text, markup=False, soft_wrap=True)

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
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
            TextColumn("{task.fields[info]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console_for_bar(),
        )
        self._bar.start()
        self._task = self._bar.add_task(
            self.description, total=self.total, completed=self.done, info=self._info()
        )
        return self

    def _console_for_bar(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def _info(self) -> str:
        info = f"best {self.best:.6g}" if self.best is not None else self.status or "best -"
        return f"{info} · {self.extra}" if self.extra else info

    def update(
        self, done: int, best: float | None, status: str | None = None, extra: str | None = None
    ) -> None:
        """Show ``done`` finished trials (of the whole budget) and the best value so far."""
        self.done, self.best = done, best
        if status is not None:
            self.status = status
        if extra is not None:
            self.extra = extra
        if self._bar is not None:
            self._bar.update(self._task, completed=done, info=self._info())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            if exc_type is None:
                self._bar.stop()
            else:  # an error or Ctrl-C: its message stands alone, no bar or blank line
                self._bar.live.transient = True
                self._bar.live.stop()
            self._bar = None
