"""``study.optimize``: run an objective in local worker processes against a study.

Each worker is a fresh interpreter (multiprocessing "spawn") with its own
client and ``client_id``; the parent only supervises, counts and draws the
progress bar. Trials live on the server, so workers can be anywhere a URL
reaches — this function is the one-machine convenience.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING, Any

from ._worker import Objective, Shared, WorkerSpec, worker_main
from .progress import ProgressBar, best_value, budget_done, finished_note, resume_note

if TYPE_CHECKING:
    from .handles import Study, Trial

#: How long workers get to fail their running trials after Ctrl-C.
INTERRUPT_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class OptimizeResult:
    """What one ``optimize`` call did: the trials it finished, by final state (``counts``),
    and the study's best trial afterwards (earlier trials included)."""

    best: Trial | None
    counts: dict[str, int]
    elapsed_seconds: float

    @property
    def n_trials(self) -> int:
        """Trials this call finished, in any state."""
        return sum(self.counts.values())

    @property
    def n_completed(self) -> int:
        return self.counts.get("completed", 0)

    @property
    def n_pruned(self) -> int:
        return self.counts.get("pruned", 0)

    @property
    def n_failed(self) -> int:
        return self.counts.get("failed", 0)


@dataclass
class Tally:
    """The parent's view of the workers' reports."""

    metric: str | None
    maximize: bool
    counts: Counter[str] = field(default_factory=Counter)
    best: float | None = None
    error: BaseException | None = None
    #: Called with each finished trial's number (the ``callbacks`` of :func:`optimize`).
    on_trial: Callable[[int], None] | None = None

    def add(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "trial":
            _, number, state, values = event
            self.counts[state] += 1
            if state == "completed" and self.metric and values and self.metric in values:
                self._offer(float(values[self.metric]))
            self._call_back(number)
        elif kind == "error" and self.error is None:
            import cloudpickle

            self.error = cloudpickle.loads(event[2])

    def _call_back(self, number: int) -> None:
        if self.on_trial is None or self.error is not None:
            return
        try:
            self.on_trial(number)
        except Exception as exc:  # stops the workers and is re-raised, like an objective's
            self.error = exc

    def _offer(self, value: float) -> None:
        if self.best is None or (value > self.best if self.maximize else value < self.best):
            self.best = value


def optimize(
    study: Study,
    objective: Objective,
    n_trials: int | None = None,
    n_workers: int = 1,
    timeout: float | None = None,
    progress: bool = True,
    catch: tuple[type[Exception], ...] = (),
    callbacks: Sequence[Callable[[Study, Trial], None]] = (),
) -> OptimizeResult:
    """Run ``objective(trial) -> float | dict`` on ``study`` in ``n_workers`` processes.

    - A number is the value of the study's single objective metric; a dict
      gives every metric. The objective may ``trial.report(step, ...)`` and
      raise :class:`~tuneforge.TrialPruned` when it returns True.
    - ``n_trials`` caps the trials this call starts (all workers together).
      Workers also stop when the study is completed or paused, and start no
      new trial after ``timeout`` seconds (running ones finish).
    - An exception from the objective fails its trial (``retry=False``). If
      it is an instance of ``catch`` the worker goes on; otherwise all workers
      stop starting trials and the exception is re-raised here.
    - Ctrl-C: every worker fails its running trial with reason "interrupted"
      (``retry=False``), then ``KeyboardInterrupt`` is re-raised.
    - ``callbacks``: each is called here, in this process, as ``callback(study, trial)``
      once per trial a worker finished (the trial read back with its measurements), e.g.
      :class:`tuneforge.mlflow.MLflowCallback`. An exception from one stops the workers
      and is re-raised.
    """
    _check_arguments(study, n_trials, n_workers)
    study.refresh()  # the budget and state as of now
    bar = _bar_for(study, n_trials, progress)
    if study.state == "completed":  # nothing to run: say so instead of an empty bar
        bar.note(finished_note(study.data))
        return OptimizeResult(study.best(), {}, 0.0)
    note = resume_note(study.data)
    if note is not None:
        bar.note(note)
    procs, shared = _workers(study, objective, n_trials, n_workers, catch)
    tally = _tally_for(study)
    if callbacks:
        tally.on_trial = lambda number: _call(callbacks, study, study.trial(number))
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    try:
        for p in procs:
            p.start()
        with bar:
            _supervise(procs, shared, tally, bar, deadline)
            if tally.error is not None:
                raise tally.error  # inside the bar: it gives way to the error's message
    except KeyboardInterrupt:
        _interrupt(procs, shared, tally)
        raise
    finally:
        _reap(procs)
    study.refresh()
    return OptimizeResult(study.best(), dict(tally.counts), time.monotonic() - started)


def _call(callbacks: Sequence[Callable[[Study, Trial], None]], study: Study, trial: Trial) -> None:
    for callback in callbacks:
        callback(study, trial)


def _bar_for(study: Study, n_trials: int | None, enabled: bool) -> ProgressBar:
    """The bar over the whole budget: trials done before this call already count."""
    done = budget_done(study.data.trial_counts)
    left = _budget(study, n_trials)
    total = study.data.max_trials if n_trials is None else done + (left or 0)
    return ProgressBar(
        enabled,
        total,
        f"study {study.name}",
        done=done,
        best=best_value(study.data),
        status="starting workers",
    )


def _workers(
    study: Study,
    objective: Objective,
    n_trials: int | None,
    n_workers: int,
    catch: tuple[type[Exception], ...],
) -> tuple[list[SpawnProcess], Shared]:
    """The (not yet started) worker processes and what they share with this one."""
    import cloudpickle

    ctx = multiprocessing.get_context("spawn")
    shared = Shared(started=ctx.Value("i", 0), stop=ctx.Event(), events=ctx.Queue())
    client = study._client
    spec = WorkerSpec(
        index=0,
        url=client.url,
        api_key=client.api_key,
        timeout=client.timeout,
        # the server answered this process: the workers need no fast first-contact window
        retry=replace(client.retry, connect_seconds=client.retry.total_seconds)
        if client.reached
        else client.retry,
        study_id=study.id,
        objective=cloudpickle.dumps(objective),
        catch=cloudpickle.dumps(tuple(catch)),
        n_trials=n_trials,
    )
    procs = [
        ctx.Process(
            target=worker_main,
            args=(replace(spec, index=i), shared),
            name=f"tuneforge-worker-{i}",
        )
        for i in range(n_workers)
    ]
    return procs, shared


def _check_arguments(study: Study, n_trials: int | None, n_workers: int) -> None:
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    if n_trials is not None and n_trials < 1:
        raise ValueError(f"n_trials must be >= 1 or None, got {n_trials}")
    if study._client.in_process:
        raise ValueError("optimize runs workers in other processes: give the client a real URL")


def _tally_for(study: Study) -> Tally:
    objectives = study.data.objectives
    if len(objectives) != 1:  # no single "best so far" for several objectives
        return Tally(metric=None, maximize=True)
    metric = objectives[0]
    tally = Tally(metric=str(metric["name"]), maximize=metric.get("goal") != "minimize")
    tally.best = best_value(study.data)  # earlier trials of a resumed study count
    return tally


def _budget(study: Study, n_trials: int | None) -> int | None:
    """The progress bar's total: ``n_trials``, else what is left of ``max_trials``."""
    left = None
    if study.data.max_trials is not None:
        counts = study.data.trial_counts
        used = sum(n for state, n in counts.items() if state != "failed")
        left = max(study.data.max_trials - used, 0)
    if n_trials is None:
        return left
    return n_trials if left is None else min(n_trials, left)


def _supervise(
    procs: list[SpawnProcess],
    shared: Shared,
    tally: Tally,
    bar: ProgressBar,
    deadline: float | None,
) -> None:
    """Collect reports until every worker has exited; stop them at the deadline or on error."""
    running = set(range(len(procs)))
    first = bar.done
    while running:
        try:
            event = shared.events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            for i in [i for i in running if not procs[i].is_alive()]:  # gone without a word
                running.discard(i)
                _check_exit(procs[i], shared, tally)
        else:
            _handle(event, running, shared, tally)
        bar.update(first + sum(tally.counts.values()), tally.best, _status(shared, tally))
        if deadline is not None and time.monotonic() >= deadline:
            shared.stop.set()
    _drain(shared, tally)
    bar.update(first + sum(tally.counts.values()), tally.best)


def _status(shared: Shared, tally: Tally) -> str:
    """What the bar shows before a best value is known."""
    if tally.counts:
        return "no completed trial yet"
    if shared.started.value == 0:
        return "starting workers (importing the objective)"
    return "running the first trials"


def _handle(event: tuple[Any, ...], running: set[int], shared: Shared, tally: Tally) -> None:
    if event[0] == "exit":
        running.discard(event[1])
        return
    tally.add(event)
    if event[0] == "error" or tally.error is not None:
        shared.stop.set()


def _check_exit(proc: SpawnProcess, shared: Shared, tally: Tally) -> None:
    """A worker that died before it could report (crash, OOM kill, bad start) is an error."""
    if proc.exitcode == 0 or tally.error is not None:
        return
    tally.error = RuntimeError(
        f"{proc.name} died with exit code {proc.exitcode}. In a script, call optimize under "
        "`if __name__ == '__main__':` - every worker imports the main module (multiprocessing 'spawn')."
    )
    shared.stop.set()


def _drain(shared: Shared, tally: Tally) -> None:
    while True:
        try:
            event = shared.events.get_nowait()
        except queue.Empty:
            return
        if event[0] != "exit":
            tally.add(event)


def _interrupt(procs: list[SpawnProcess], shared: Shared, tally: Tally) -> None:
    """Ctrl-C: make every worker fail its running trial, and wait for them (bounded)."""
    shared.stop.set()
    for p in procs:
        if p.is_alive() and p.pid is not None and os.name == "posix":
            with contextlib.suppress(ProcessLookupError):  # it may have just exited
                os.kill(p.pid, signal.SIGINT)  # a terminal Ctrl-C already did; workers act once
    deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        _drain(shared, tally)
        time.sleep(0.05)


def _reap(procs: list[SpawnProcess]) -> None:
    for p in procs:
        if p.pid is None:
            continue  # never started
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join()
