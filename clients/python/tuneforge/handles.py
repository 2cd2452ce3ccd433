"""Handles of the sync client: :class:`Study` and :class:`Trial`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _calls as calls
from ._core import SuggestWait, landed, metric_values
from ._fidelity import Fidelity
from ._handle_base import (
    StudyBase,
    TrialBase,
    complete_body,
    fail_body,
    infeasible_body,
    missing_checkpoint,
    require_pandas,
    trial_rows,
    unpickled,
)
from .errors import Conflict, NotFound, TrialPruned
from .models import (
    RUNNING_STATES,
    CheckpointInfo,
    HeartbeatReply,
    ImportanceReply,
    MeasureReply,
    StudyData,
    TrialData,
)

if TYPE_CHECKING:
    from .client import Client
    from .optimize import Objective, OptimizeResult


class Heartbeat:
    """A daemon thread that extends a running trial's lease every ``interval`` seconds."""

    def __init__(self, beat: Callable[[], bool], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                if not self._beat():
                    return
            except Exception:  # trial gone, client closed: nothing left to keep alive
                return

    def stop(self) -> None:
        self._stopped.set()


class Trial(TrialBase):
    """One trial. Handles from ``suggest`` send heartbeats until the trial ends.

    Use it as a context manager to make sure it never stays running::

        with study.suggest_one() as trial:
            trial.complete(accuracy=train(**trial.params))
    """

    def __init__(
        self,
        client: Client,
        study_id: int,
        data: TrialData,
        *,
        lease_seconds: float = 600.0,
        owned: bool = False,
        fidelity: Fidelity | None = None,
    ) -> None:
        super().__init__(study_id, data, lease_seconds, fidelity, client.report_delay)
        self._client = client
        self._heartbeat: Heartbeat | None = None
        if owned and data.is_running:
            name = f"tuneforge-heartbeat-{study_id}-{data.number}"
            self._heartbeat = Heartbeat(self._beat, self.heartbeat_interval, name)
            client._heartbeats.add(self._heartbeat)

    @property
    def client(self) -> Client:
        """The client this trial talks through."""
        return self._client

    def report(
        self,
        step: int,
        values: Mapping[str, float] | None = None,
        /,
        *,
        elapsed_seconds: float | None = None,
        **metrics: float,
    ) -> bool:
        """Record metric values at ``step``; returns True when the trial should stop. An
        instruction in the reply (PBT's exploit) is applied: see :attr:`action`.

        When the last reply said the study's rule cannot decide anything before a later
        step (``next_decision_step``: ASHA's next rung, say), a report at a step below it
        is held back and returns False without a request (unless a heartbeat brought a
        stop); the report at or past that step sends the held ones with it. Reports are
        held for at most the client's ``report_delay`` (2 s by default; 0 turns this off)
        and a third of the lease; ``complete``, ``infeasible``, ``fail``, ``stop``,
        ``refresh`` and the end of a ``with`` block send them first. A server that does
        not send ``next_decision_step`` gets every report at once.

        Re-sending a step is a no-op on the server, so the call is retried freely.
        """
        merged = metric_values(values, metrics)
        should_stop = self._should_stop
        for call in self._report_calls(step, merged, elapsed_seconds):
            should_stop = self._send_report(call).should_stop
        return should_stop

    def _send_report(self, call: calls.Call[MeasureReply]) -> MeasureReply:
        reply = self._client._request(call)
        self._note_report(call.json["values"], reply, call.json["step"])
        return reply

    def _send_held(self, *, drop_if_refused: bool) -> None:
        """Send the reports held back. With ``drop_if_refused`` (the trial ends or is read
        next) a 409 drops them: a trial that stopped running can store no more, and the
        next call reports its state."""
        call = self._flush_call()
        if call is None:
            return
        try:
            self._send_report(call)
        except Conflict:
            if not drop_if_refused:
                raise
            self._held.clear()

    def heartbeat(self) -> bool:
        """Extend the lease now; returns True when the trial should stop."""
        return self._send_heartbeat().should_stop

    def _beat(self) -> bool:
        return self._send_heartbeat().trial_state in RUNNING_STATES

    def _send_heartbeat(self) -> HeartbeatReply:
        reply = self._client._request(calls.heartbeat(self.study_id, self.number))
        self._should_stop = self._should_stop or reply.should_stop
        return reply

    def complete(
        self,
        values: Mapping[str, float] | None = None,
        /,
        *,
        metadata: Mapping[str, Any] | None = None,
        **metrics: float,
    ) -> Trial:
        """Finish with the final metric values: ``complete(accuracy=0.93)`` or a dict;
        ``metadata`` is merged into the trial's metadata."""
        body = complete_body(metric_values(values, metrics), metadata)
        return self._finish(calls.complete(self.study_id, self.number, body), body)

    def infeasible(
        self, reason: str | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> Trial:
        """Finish as infeasible: these parameters cannot be evaluated (e.g. out of memory)."""
        body = infeasible_body(reason, metadata)
        return self._finish(calls.complete(self.study_id, self.number, body), body)

    def fail(self, reason: str | None = None, retry: bool = True) -> Trial:
        """Report an infrastructure failure; with ``retry`` the server queues the same params."""
        body = fail_body(reason, retry)
        return self._finish(calls.fail(self.study_id, self.number, body), body)

    def stop(self) -> Trial:
        """Ask whoever runs this trial to stop (its next report or heartbeat says so)."""
        self._send_held(drop_if_refused=False)
        self._data = self._client._request(self._stop_call())
        return self

    def save_checkpoint(self, state: Any, *, step: int | None = None) -> CheckpointInfo:
        """Store ``state`` (any picklable object: a model, an optimizer, a dict) as this
        trial's checkpoint, replacing the last one; ``step`` defaults to the last step
        reported. Whoever resumes the trial, on any machine, gets it from
        ``load_checkpoint()``."""
        return self._client._request(self._save_call(state, step))

    def load_checkpoint(self, default: Any = None, *, trial: int | None = None) -> Any:
        """The object last saved by ``save_checkpoint`` for this trial (or for trial
        ``trial`` of the study), or ``default`` when none was saved. After a PBT exploit
        (:attr:`action`) it is the donor's, until this trial saves its own again."""
        try:
            checkpoint = self._client._request(self._load_call(trial))
        except NotFound as exc:
            if missing_checkpoint(exc):
                return default
            raise
        return unpickled(checkpoint)

    def refresh(self) -> Trial:
        """Read the trial (with its measurements) again, after sending the reports it holds
        back."""
        self._send_held(drop_if_refused=True)
        self._data = self._client._request(calls.get_trial(self.study_id, self.number))
        return self

    def _finish(self, call: calls.Call[TrialData], body: Mapping[str, Any]) -> Trial:
        self._send_held(drop_if_refused=True)
        try:
            self._data = self._client._request(call)
        except Conflict as exc:
            self._stop_heartbeat()
            self._data = self._recover(exc, body)
        self._stop_heartbeat()
        return self

    def _recover(self, exc: Conflict, body: Mapping[str, Any]) -> TrialData:
        """After a retry, 409 may mean our first attempt landed and only its reply was lost."""
        if exc.attempts < 2:
            raise exc
        current = self._client._request(calls.get_trial(self.study_id, self.number))
        if landed(current, body):
            return current
        raise exc

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._client._heartbeats.discard(self._heartbeat)
            self._heartbeat = None

    def __enter__(self) -> Trial:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        plan = self._exit_plan(exc)
        try:
            if plan is not None and plan.verb == "complete":
                self.complete(plan.values)
            elif plan is not None:
                self.fail(plan.reason, retry=False)
        except Conflict:
            if exc is None or isinstance(exc, TrialPruned):
                raise
            # the trial finished meanwhile (a Ctrl-C right after its complete landed):
            # the exception that ends the block matters, not that it cannot be failed now
        finally:
            self._stop_heartbeat()
        return isinstance(exc, TrialPruned)


class Study(StudyBase):
    """A study on the server: ask it for trials, read its results, change its state."""

    def __init__(self, client: Client, data: StudyData) -> None:
        super().__init__(data)
        self._client = client

    @property
    def client(self) -> Client:
        """The client this study talks through."""
        return self._client

    def refresh(self) -> Study:
        """Read the study (state, counts, best trial) again."""
        self._data = self._client._request(calls.get_study(self.id))
        return self

    def suggest(self, count: int = 1) -> list[Trial]:
        """Up to ``count`` trials for this client (its own unfinished ones first).

        An empty list means no work right now: the study is finished or paused,
        or every slot is busy (see ``suggest_one`` to wait).
        """
        call = calls.suggest(self.id, count, self._client.client_id)
        return [self._owned(t) for t in self._client._request(call).trials]

    def suggest_one(self, *, timeout: float | None = None) -> Trial:
        """One trial, waiting while every slot is busy or the study is paused.

        Raises :class:`~tuneforge.NoTrialAvailable` when the study is completed,
        or when ``timeout`` seconds pass without a trial (``study_state`` says
        whether the study was paused or busy). Uses this client's ``client_id``:
        threads should each have their own :class:`~tuneforge.Client`.
        """
        wait = SuggestWait(timeout)
        call = calls.suggest(self.id, 1, self._client.client_id)
        while True:
            reply = self._client._request(call)
            if reply.trials:
                return self._owned(reply.trials[0])
            time.sleep(wait.next_delay(reply.study_state))

    def trial(self, number: int) -> Trial:
        """The trial ``number`` with its measurements."""
        return self._view(self._client._request(calls.get_trial(self.id, number)))

    def trials(self, state: str | None = None, *, page_size: int = 100) -> Iterator[Trial]:
        """Every trial (or those in ``state``) in number order, fetched page by page."""
        token: str | None = None
        while True:
            call = calls.list_trials(self.id, state=state, page_token=token, page_size=page_size)
            page = self._client._request(call)
            yield from (self._view(t) for t in page.trials)
            token = page.next_page_token
            if token is None:
                return

    def best(self) -> Trial | None:
        """The best completed trial (the first of the Pareto front for several objectives)."""
        front = self.best_trials()
        return front[0] if front else None

    def best_trials(self) -> list[Trial]:
        """The best trial, or the Pareto front when the study has several objectives."""
        return [self._view(t) for t in self._client._request(calls.best(self.id)).trials]

    def add_trial(
        self,
        params: Mapping[str, Any],
        values: Mapping[str, float] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> Trial:
        """Record a trial evaluated elsewhere (``completed`` with ``values``), or queue
        ``params`` for the next suggest (no ``values``: ``requested``)."""
        return self._view(self._client._request(calls.add_trial(self.id, params, values, metadata)))

    def importance(self, objective: str | None = None) -> ImportanceReply:
        """Each parameter's share of ``objective``'s variance (default: the first objective)
        and the strongest pairwise interactions, largest first; needs 5 completed trials
        (:class:`~tuneforge.Conflict` before). See docs/analysis.md."""
        return self._client._request(calls.importance(self.id, objective))

    def to_pandas(self) -> Any:
        """All trials as a pandas DataFrame (``params_<name>``, ``values_<metric>`` columns)."""
        pandas = require_pandas()
        return pandas.DataFrame(trial_rows(t.data for t in self.trials()))

    def update(self, **changes: Any) -> Study:
        """PATCH the study: ``state``, ``max_trials``, ``max_active_trials``, ``description``..."""
        self._data = self._client._request(calls.update_study(self.id, changes))
        return self

    def pause(self) -> Study:
        """Stop handing out trials (running ones continue)."""
        return self.update(state="paused")

    def resume(self) -> Study:
        """Hand out trials again after ``pause()``."""
        return self.update(state="active")

    def run(self) -> Study:
        """Start the study's managed objective on the server's workers (docs/api.md "Managed
        objectives"); pause and resume work as for any study."""
        self._data = self._client._request(calls.run_study(self.id))
        return self

    def evaluate(self) -> Study:
        """Ask a worker to score the best configuration once on the held-out test set;
        the result appears in ``data.evaluation``."""
        self._data = self._client._request(calls.request_evaluation(self.id))
        return self

    def store_evaluation(self, result: Mapping[str, Any]) -> Study:
        """Record a held-out evaluation (what the bundled workers call after ``evaluate``)."""
        self._data = self._client._request(calls.store_evaluation(self.id, result))
        return self

    def delete(self) -> None:
        """Delete the study and all its trials."""
        self._client._request(calls.delete_study(self.id))

    def optimize(
        self,
        objective: Objective,
        n_trials: int | None = None,
        n_workers: int = 1,
        timeout: float | None = None,
        progress: bool = True,
        catch: tuple[type[Exception], ...] = (),
        callbacks: Sequence[Callable[[Study, Trial], None]] = (),
    ) -> OptimizeResult:
        """Run ``objective(trial) -> float | dict`` in ``n_workers`` local processes.

        See :func:`tuneforge.optimize.optimize` for the rules on budgets,
        pruning, errors, Ctrl-C and ``callbacks`` (called here once per finished trial).
        """
        from .optimize import optimize

        return optimize(self, objective, n_trials, n_workers, timeout, progress, catch, callbacks)

    def _owned(self, data: TrialData) -> Trial:
        lease, fidelity = self._data.lease_seconds, Fidelity.of(self._data)
        return Trial(
            self._client, self.id, data, lease_seconds=lease, owned=True, fidelity=fidelity
        )

    def _view(self, data: TrialData) -> Trial:
        lease, fidelity = self._data.lease_seconds, Fidelity.of(self._data)
        return Trial(self._client, self.id, data, lease_seconds=lease, fidelity=fidelity)
