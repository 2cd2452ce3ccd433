"""The worker process of ``study.optimize``: ask for a trial, run the objective, finish
the trial, repeat; report each finished trial to the parent over a queue.

Runs in a fresh interpreter (multiprocessing "spawn"); the objective arrives
pickled with cloudpickle, so lambdas and closures from ``__main__`` work.
"""

from __future__ import annotations

import contextlib
import signal
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ._core import RetryPolicy
from .client import Client
from .errors import Conflict, NoTrialAvailable, TuneforgeError
from .handles import Study, Trial

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Event

Objective = Callable[[Trial], float | Mapping[str, float]]
#: How long an interrupted worker keeps trying to fail its trials.
RELEASE_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable: where the server is and what to run."""

    index: int
    url: str
    api_key: str | None
    timeout: httpx.Timeout
    retry: RetryPolicy
    study_id: int
    objective: bytes  # cloudpickle
    catch: bytes  # cloudpickle of a tuple of exception classes
    n_trials: int | None


@dataclass(frozen=True)
class Shared:
    """What the parent and all workers share.

    ``started`` counts the new trials this optimize call started (a promoted
    trial that resumes is not new); the parent sets ``stop`` to say "start no
    new trial"; workers put ``("trial", number, state, values, resumed)``,
    ``("error", index, pickled exception)`` and ``("exit", index)`` on ``events``.
    """

    started: Synchronized[int]
    stop: Event
    events: Queue[tuple[Any, ...]]


def worker_main(spec: WorkerSpec, shared: Shared) -> None:
    """Entry point of a worker process."""
    _interrupt_once()
    client = Client(spec.url, spec.api_key, timeout=spec.timeout, retry=spec.retry)
    try:
        _run(client, spec, shared)
    except KeyboardInterrupt:
        with contextlib.suppress(TuneforgeError):
            _release(spec, client.client_id)
    except BaseException as exc:
        shared.events.put(("error", spec.index, _dump_error(exc)))
    finally:
        client.close()
        shared.events.put(("exit", spec.index))


def _run(client: Client, spec: WorkerSpec, shared: Shared) -> None:
    import cloudpickle

    objective: Objective = cloudpickle.loads(spec.objective)
    catch: tuple[type[BaseException], ...] = cloudpickle.loads(spec.catch)
    study = client.get_study(spec.study_id)
    while not shared.stop.is_set() and _take_slot(shared, spec.n_trials):
        trial = _next_trial(study, shared)
        if trial is None:
            return
        resumed = trial.resume_from_step is not None
        if resumed:  # a promoted trial goes on: it is not one of the n_trials new ones
            _give_back_slot(shared)
        try:
            run_trial(study, trial, objective)
        except catch:
            pass  # the trial was failed with the error as its reason; go on
        finally:
            shared.events.put(("trial", trial.number, trial.state, trial.values, resumed))


def run_trial(study: Study, trial: Trial, objective: Objective) -> None:
    """Run ``objective`` on ``trial`` and complete it with the result.

    ``TrialPruned`` completes the trial with its last reported values (the
    server records it ``pruned``, or ``paused`` when its rule may promote it);
    any other exception fails it (``retry=False``) and propagates.
    """
    with trial:
        result = objective(trial)
        if trial.data.is_running:  # the objective may have finished the trial itself
            trial.complete(as_values(result, study))


def as_values(result: Any, study: Study) -> dict[str, float]:
    """An objective's result as metric values: a number means the single objective."""
    if isinstance(result, Mapping):
        return dict(result)
    if isinstance(result, int | float) and not isinstance(result, bool):
        return {study.objective_name(): float(result)}
    raise TypeError(
        f"the objective returned {type(result).__name__}; return a number or a dict of metrics"
    )


def _take_slot(shared: Shared, n_trials: int | None) -> bool:
    with shared.started.get_lock():
        if n_trials is not None and shared.started.value >= n_trials:
            return False
        shared.started.value += 1
        return True


def _give_back_slot(shared: Shared) -> None:
    with shared.started.get_lock():
        shared.started.value -= 1


def _next_trial(study: Study, shared: Shared) -> Trial | None:
    """A trial, or None when the study has no more work or the parent says stop."""
    while not shared.stop.is_set():
        try:
            return study.suggest_one(timeout=1.0)
        except NoTrialAvailable as exc:
            if exc.study_state != "active":
                return None
    return None


def _interrupt_once() -> None:
    """The first SIGINT raises KeyboardInterrupt; later ones are ignored so cleanup finishes.

    A Ctrl-C in a terminal reaches every process of the group, and the parent
    forwards one more: each worker must act on exactly one.
    """
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not fired:
            fired = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def _release(spec: WorkerSpec, client_id: str) -> None:
    """Fail every trial this worker still holds with reason "interrupted".

    Covers a trial handed out by a suggest whose reply the interrupt cut off.
    Uses a fresh connection: the old one may have been interrupted mid-request.
    """
    quick = RetryPolicy(total_seconds=RELEASE_SECONDS, connect_seconds=RELEASE_SECONDS)
    with Client(spec.url, spec.api_key, client_id=client_id, retry=quick) as client:
        study = client.get_study(spec.study_id)
        for state in ("active", "stopping"):
            for trial in list(study.trials(state=state, page_size=1000)):
                if trial.data.client_id == client_id:
                    with contextlib.suppress(Conflict):  # it finished meanwhile
                        trial.fail("interrupted", retry=False)


def _dump_error(exc: BaseException) -> bytes:
    """The exception for the parent to re-raise, with this process's traceback as a note."""
    import cloudpickle

    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"raised in an optimize worker:\n{text}")
        return bytes(cloudpickle.dumps(exc))
    except Exception:
        return bytes(cloudpickle.dumps(RuntimeError(f"an optimize worker failed:\n{text}")))
