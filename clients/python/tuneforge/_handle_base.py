"""What study and trial handles share between sync and async: their data, the
decisions that need no network, and the table ``to_pandas`` builds."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _calls as calls
from ._fidelity import Fidelity, budgets_left, steps_left
from .errors import NotFound, TrialPruned
from .models import Checkpoint, MeasureReply, StudyData, TrialData

MAX_REASON = 2000
#: Most reports a trial holds back before it sends them (a report carries up to 1000).
MAX_HELD = 500


class StudyBase:
    """A study's latest known data and properties derived from it."""

    def __init__(self, data: StudyData) -> None:
        self._data = data

    @property
    def data(self) -> StudyData:
        """The study as last read from the server (see ``refresh()``)."""
        return self._data

    @property
    def id(self) -> int:
        """The study's id (never reused)."""
        return self._data.id

    @property
    def name(self) -> str:
        """The study's name, unique in its project."""
        return self._data.name

    @property
    def state(self) -> str:
        """active | paused | completed, as of the last read."""
        return self._data.state

    @property
    def trial_counts(self) -> dict[str, int]:
        """Trials per state, as of the last read."""
        return dict(self._data.trial_counts)

    def objective_name(self) -> str:
        """The study's single objective metric (what a float result of an objective means)."""
        objectives = self._data.objectives
        if len(objectives) != 1:
            names = [m["name"] for m in objectives]
            raise ValueError(
                f"study {self.name!r} has {len(objectives)} objectives {names}; "
                "return a dict of metric values instead of a number"
            )
        return str(objectives[0]["name"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id} name={self.name!r} state={self.state}>"


@dataclass(frozen=True)
class Finish:
    """How to end a trial that a ``with`` block left running."""

    verb: str  # "complete" or "fail"
    values: Mapping[str, float] | None = None
    reason: str | None = None


class TrialBase:
    """A trial's latest known data, the values it reported and its stop flag."""

    def __init__(
        self,
        study_id: int,
        data: TrialData,
        lease_seconds: float,
        fidelity: Fidelity | None = None,
        report_delay: float = 0.0,
    ) -> None:
        self.study_id = study_id
        self._data = data
        self._lease_seconds = lease_seconds
        self._fidelity = fidelity
        self._reported: dict[str, float] = {}
        self._last_step: int | None = data.resume_from_step
        self._should_stop = data.state == "stopping"
        self._action: dict[str, Any] | None = None
        #: The trial whose checkpoint ``load_checkpoint()`` reads until this one saves again
        #: (the donor of PBT's last exploit).
        self._checkpoint_from: int | None = None
        #: Reports held back (``earlier`` entries), oldest first, and when the first was held.
        self._held: list[dict[str, Any]] = []
        self._held_since = 0.0
        #: Reports at steps below this may be held back: the last reply's
        #: ``next_decision_step`` (inf: the rule decides nothing more; -inf: not known yet,
        #: or a server that does not say).
        self._hold_below = -math.inf
        #: How long a report may be held back: ``report_delay``, at most a heartbeat interval.
        self._hold_seconds = min(max(report_delay, 0.0), self.heartbeat_interval)

    @property
    def data(self) -> TrialData:
        """The trial as last read from the server."""
        return self._data

    @property
    def number(self) -> int:
        """The trial's number in its study (from 0)."""
        return self._data.number

    @property
    def state(self) -> str:
        """requested | active | stopping | paused | completed | pruned | infeasible | failed."""
        return self._data.state

    @property
    def params(self) -> dict[str, Any]:
        """The parameter values to evaluate."""
        return self._data.params

    @property
    def resume_from_step(self) -> int | None:
        """Where a resumed trial goes on from: the last step it trained to before it was
        paused (train from here, e.g. after ``load_checkpoint()``); ``None`` for a fresh
        trial. Reports of steps up to it are ignored by the server."""
        return self._data.resume_from_step

    @property
    def values(self) -> dict[str, float] | None:
        """The final metric values, once finished."""
        return self._data.values

    @property
    def fidelity(self) -> Fidelity | None:
        """The study's fidelity (the resource a step counts, its min, max and rungs), or
        ``None`` when the study declares none."""
        return self._fidelity

    def steps(self, stop: int | None = None, *, start: int | None = None) -> range:
        """The steps left to train, one by one (epochs): from ``resume_from_step + 1``
        (1 for a fresh trial) to ``stop`` (default: the study's ``fidelity.max``).

        A resumed trial trains on from its step, so load its state first
        (``load_checkpoint()``); pass ``start=1`` to train it from scratch instead.
        """
        return steps_left(self._fidelity, self.resume_from_step, stop, start)

    def budgets(self) -> list[int]:
        """The resources left to train to, for models that grow in jumps (trees with
        ``warm_start``, boosting rounds, rows): each rung of the study's fidelity past
        ``resume_from_step`` (``min * reduction_factor**k``, where the asha, hyperband
        and bohb rules decide), then ``fidelity.max``. Report at each one."""
        return budgets_left(self._fidelity, self.resume_from_step)

    @property
    def should_stop(self) -> bool:
        """Whether the server asked this trial to stop (from a report or a heartbeat)."""
        return self._should_stop

    @property
    def last_reported(self) -> dict[str, float]:
        """The latest reported value of each metric (what ``TrialPruned`` completes with)."""
        return dict(self._reported)

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between background heartbeats: a third of the lease."""
        return max(self._lease_seconds / 3, 0.05)

    @property
    def action(self) -> dict[str, Any] | None:
        """The instruction the last ``report`` brought back, already applied, or ``None``.

        PBT's ``{"type": "exploit", "from_trial": 7, "params": {...}, "step": 8}``:
        :attr:`params` now holds the new params and ``load_checkpoint()`` returns
        trial 7's state (until this trial saves its own checkpoint again), so a
        training loop reloads its model and sets the new params, then trains on.
        """
        return None if self._action is None else dict(self._action)

    @property
    def held_reports(self) -> int:
        """How many reports this handle holds back, not sent yet (see ``report``)."""
        return len(self._held)

    def _report_calls(
        self, step: int, values: Mapping[str, float], elapsed_seconds: float | None
    ) -> list[calls.Call[MeasureReply]]:
        """The requests a ``report`` sends: none when it is held back; else the report with
        the held ones as its ``earlier`` (or, when its step does not follow theirs, the held
        ones first, on their own)."""
        point: dict[str, Any] = {"step": step, "values": dict(values)}
        if elapsed_seconds is not None:
            point["elapsed_seconds"] = elapsed_seconds
        now = time.monotonic()
        if self._may_hold(step, now):
            if not self._held:
                self._held_since = now
            self._held.append(point)
            self._reported.update(values)
            self._last_step = step
            self._action = None  # a held report brings no instruction back
            return []
        out = []
        if self._held and step <= self._held[-1]["step"]:
            out.append(self._held_call(self._held))
            held: list[dict[str, Any]] = []
        else:
            held = self._held
        out.append(self._held_call([*held, point]))
        return out

    def _may_hold(self, step: int, now: float) -> bool:
        """Whether a report at ``step`` may wait: the rule cannot decide there, nothing asked
        the trial to stop, and the held ones are few, recent and at lower steps."""
        if self._hold_seconds <= 0 or self._should_stop or not step < self._hold_below:
            return False
        if not self._held:
            return True
        return (
            step > self._held[-1]["step"]
            and now - self._held_since < self._hold_seconds
            and len(self._held) < MAX_HELD
        )

    def _stop_call(self) -> calls.Call[TrialData]:
        """The request that asks the trial to stop; the next report is sent, not held, so
        its reply says so."""
        self._hold_below = -math.inf
        return calls.stop(self.study_id, self.number)

    def _flush_call(self) -> calls.Call[MeasureReply] | None:
        """The request that sends the held reports (before the trial ends), if any."""
        return self._held_call(self._held) if self._held else None

    def _held_call(self, points: list[dict[str, Any]]) -> calls.Call[MeasureReply]:
        """One measurement request: the last of ``points``, the others as its ``earlier``."""
        *earlier, last = points
        step, values = last["step"], last["values"]
        elapsed = last.get("elapsed_seconds")
        return calls.measure(self.study_id, self.number, step, values, elapsed, earlier)

    def _note_report(
        self, values: Mapping[str, float], reply: MeasureReply, step: int | None = None
    ) -> None:
        self._reported.update(values)
        if step is not None:
            self._last_step = step
            self._held = [m for m in self._held if m["step"] > step]
        if "next_decision_step" in reply.model_fields_set:
            upcoming = reply.next_decision_step
            self._hold_below = math.inf if upcoming is None else float(upcoming)
        else:  # an older server: send every report
            self._hold_below = -math.inf
        self._should_stop = self._should_stop or reply.should_stop
        self._action = dict(reply.action) if reply.action is not None else None
        if self._action is not None and self._action.get("type") == "exploit":
            params = dict(self._action.get("params") or {})
            self._data = self._data.model_copy(update={"params": params})
            self._checkpoint_from = int(self._action["from_trial"])

    def _save_call(self, state: Any, step: int | None) -> calls.Call[Any]:
        """The request that stores ``state`` (pickled) as this trial's checkpoint; from then
        on ``load_checkpoint()`` reads this trial's own again."""
        import cloudpickle

        data = cloudpickle.dumps(state)
        self._checkpoint_from = None
        return calls.save_checkpoint(
            self.study_id, self.number, data, _first(step, self._last_step)
        )

    def _load_call(self, trial: int | None) -> calls.Call[Checkpoint]:
        """The request that reads trial ``trial``'s checkpoint; by default this trial's, or
        after an exploit its donor's (until this trial saves again)."""
        number = _first(trial, self._checkpoint_from, self.number)
        assert number is not None
        return calls.load_checkpoint(self.study_id, number)

    def _exit_plan(self, exc: BaseException | None) -> Finish | None:
        """What ``__exit__`` does: nothing if the trial already ended, else complete or fail.

        A user exception fails the trial with ``retry=False``: the same
        parameters would most likely fail the same way (call
        ``trial.fail(reason, retry=True)`` yourself for a transient error).
        """
        if not self._data.is_running:
            return None
        if isinstance(exc, TrialPruned):
            if self._reported:
                return Finish("complete", values=dict(self._reported))
            return Finish("fail", reason="pruned before it reported any value")
        if exc is None:
            return Finish("fail", reason="the with block ended without complete()")
        if isinstance(exc, KeyboardInterrupt):
            return Finish("fail", reason="interrupted")
        return Finish("fail", reason=f"{type(exc).__name__}: {exc}"[:MAX_REASON])

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} study={self.study_id} number={self.number} "
            f"state={self.state} params={self.params}>"
        )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def unpickled(checkpoint: Checkpoint) -> Any:
    """The object a checkpoint holds (saved by ``save_checkpoint``).

    Unpickling runs code named in the bytes: load only checkpoints your own
    workers saved, from a server you trust.
    """
    import pickle

    return pickle.loads(checkpoint.data)


def missing_checkpoint(exc: NotFound) -> bool:
    """Whether a 404 means "no checkpoint saved yet" (not an unknown trial or study)."""
    return isinstance(exc.details, dict) and exc.details.get("field") == "checkpoint"


def complete_body(
    values: Mapping[str, float], metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"values": dict(values)}
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def infeasible_body(
    reason: str | None, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"infeasible": True, "reason": reason}
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def fail_body(reason: str | None, retry: bool) -> dict[str, Any]:
    return {"reason": reason, "retry": retry}


def trial_rows(trials: Iterable[TrialData]) -> list[dict[str, Any]]:
    """One flat row per trial: number, state, ``params_<name>``, ``values_<metric>``, times."""
    rows = []
    for t in trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state}
        row.update({f"params_{k}": v for k, v in t.params.items()})
        row.update({f"values_{k}": v for k, v in (t.values or {}).items()})
        duration = None
        if t.started_at is not None and t.completed_at is not None:
            duration = (t.completed_at - t.started_at).total_seconds()
        row.update(
            started_at=t.started_at,
            completed_at=t.completed_at,
            duration_seconds=duration,
            reason=t.reason,
            retry_of=t.retry_of,
            client_id=t.client_id,
        )
        rows.append(row)
    return rows


def require_pandas() -> Any:
    """The pandas module, or an ImportError that says how to get it."""
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "study.to_pandas() needs pandas, which is not installed: pip install pandas"
        ) from None
    return pandas
