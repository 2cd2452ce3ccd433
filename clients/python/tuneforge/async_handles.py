"""Handles of the async client: :class:`AsyncStudy` and :class:`AsyncTrial`.

They mirror :mod:`tuneforge.handles` method for method; only I/O is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
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
    from .async_client import AsyncClient


class AsyncHeartbeat:
    """A task that extends a running trial's lease every ``interval`` seconds."""

    def __init__(self, beat: Callable[[], Awaitable[bool]], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if not await self._beat():
                    return
            except Exception:  # trial gone, client closed: nothing left to keep alive
                return

    def stop(self) -> None:
        self._task.cancel()


class AsyncTrial(TrialBase):
    """One trial (async). Handles from ``suggest`` send heartbeats until the trial ends.

    ::

        async with study.suggest_one() as trial:
            await trial.complete(accuracy=await train(**trial.params))
    """

    def __init__(
        self,
        client: AsyncClient,
        study_id: int,
        data: TrialData,
        *,
        lease_seconds: float = 600.0,
        owned: bool = False,
        fidelity: Fidelity | None = None,
    ) -> None:
        super().__init__(study_id, data, lease_seconds, fidelity, client.report_delay)
        self._client = client
        self._heartbeat: AsyncHeartbeat | None = None
        if owned and data.is_running:
            name = f"tuneforge-heartbeat-{study_id}-{data.number}"
            self._heartbeat = AsyncHeartbeat(self._beat, self.heartbeat_interval, name)
            client._heartbeats.add(self._heartbeat)

    async def report(
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

        Reports at steps where the study's rule cannot decide are held back and sent
        with a later one, as ``Trial.report`` describes."""
        merged = metric_values(values, metrics)
        should_stop = self._should_stop
        for call in self._report_calls(step, merged, elapsed_seconds):
            should_stop = (await self._send_report(call)).should_stop
        return should_stop

    async def _send_report(self, call: calls.Call[MeasureReply]) -> MeasureReply:
        reply = await self._client._request(call)
        self._note_report(call.json["values"], reply, call.json["step"])
        return reply

    async def _send_held(self, *, drop_if_refused: bool) -> None:
        """Send the reports held back. With ``drop_if_refused`` (the trial ends or is read
        next) a 409 drops them: a trial that stopped running can store no more, and the
        next call reports its state."""
        call = self._flush_call()
        if call is None:
            return
        try:
            await self._send_report(call)
        except Conflict:
            if not drop_if_refused:
                raise
            self._held.clear()

    async def heartbeat(self) -> bool:
        """Extend the lease now; returns True when the trial should stop."""
        return (await self._send_heartbeat()).should_stop

    async def _beat(self) -> bool:
        return (await self._send_heartbeat()).trial_state in RUNNING_STATES

    async def _send_heartbeat(self) -> HeartbeatReply:
        reply = await self._client._request(calls.heartbeat(self.study_id, self.number))
        self._should_stop = self._should_stop or reply.should_stop
        return reply

    async def complete(
        self,
        values: Mapping[str, float] | None = None,
        /,
        *,
        metadata: Mapping[str, Any] | None = None,
        **metrics: float,
    ) -> AsyncTrial:
        """Finish with the final metric values: ``complete(accuracy=0.93)`` or a dict;
        ``metadata`` is merged into the trial's metadata."""
        body = complete_body(metric_values(values, metrics), metadata)
        return await self._finish(calls.complete(self.study_id, self.number, body), body)

    async def infeasible(
        self, reason: str | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> AsyncTrial:
        """Finish as infeasible: these parameters cannot be evaluated."""
        body = infeasible_body(reason, metadata)
        return await self._finish(calls.complete(self.study_id, self.number, body), body)

    async def fail(self, reason: str | None = None, retry: bool = True) -> AsyncTrial:
        """Report an infrastructure failure; with ``retry`` the server queues the same params."""
        body = fail_body(reason, retry)
        return await self._finish(calls.fail(self.study_id, self.number, body), body)

    async def stop(self) -> AsyncTrial:
        """Ask whoever runs this trial to stop."""
        await self._send_held(drop_if_refused=False)
        self._data = await self._client._request(self._stop_call())
        return self

    async def save_checkpoint(self, state: Any, *, step: int | None = None) -> CheckpointInfo:
        """Store ``state`` (any picklable object: a model, an optimizer, a dict) as this
        trial's checkpoint, replacing the last one; ``step`` defaults to the last step
        reported. Whoever resumes the trial, on any machine, gets it from
        ``load_checkpoint()``."""
        return await self._client._request(self._save_call(state, step))

    async def load_checkpoint(self, default: Any = None, *, trial: int | None = None) -> Any:
        """The object last saved by ``save_checkpoint`` for this trial (or for trial
        ``trial`` of the study), or ``default`` when none was saved. After a PBT exploit
        (:attr:`action`) it is the donor's, until this trial saves its own again."""
        try:
            checkpoint = await self._client._request(self._load_call(trial))
        except NotFound as exc:
            if missing_checkpoint(exc):
                return default
            raise
        return unpickled(checkpoint)

    async def refresh(self) -> AsyncTrial:
        """Read the trial (with its measurements) again, after sending the reports it holds
        back."""
        await self._send_held(drop_if_refused=True)
        self._data = await self._client._request(calls.get_trial(self.study_id, self.number))
        return self

    async def _finish(self, call: calls.Call[TrialData], body: Mapping[str, Any]) -> AsyncTrial:
        await self._send_held(drop_if_refused=True)
        try:
            self._data = await self._client._request(call)
        except Conflict as exc:
            self._stop_heartbeat()
            self._data = await self._recover(exc, body)
        self._stop_heartbeat()
        return self

    async def _recover(self, exc: Conflict, body: Mapping[str, Any]) -> TrialData:
        """After a retry, 409 may mean our first attempt landed and only its reply was lost."""
        if exc.attempts < 2:
            raise exc
        current = await self._client._request(calls.get_trial(self.study_id, self.number))
        if landed(current, body):
            return current
        raise exc

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._client._heartbeats.discard(self._heartbeat)
            self._heartbeat = None

    async def __aenter__(self) -> AsyncTrial:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        plan = self._exit_plan(exc)
        try:
            if plan is not None and plan.verb == "complete":
                await self.complete(plan.values)
            elif plan is not None:
                await self.fail(plan.reason, retry=False)
        except Conflict:
            if exc is None or isinstance(exc, TrialPruned):
                raise
            # finished meanwhile: the exception that ends the block is what matters
        finally:
            self._stop_heartbeat()
        return isinstance(exc, TrialPruned)


class SuggestOne:
    """What ``AsyncStudy.suggest_one()`` returns: ``await`` it, or ``async with`` it."""

    def __init__(self, study: AsyncStudy, timeout: float | None) -> None:
        self._study = study
        self._timeout = timeout
        self._trial: AsyncTrial | None = None

    def __await__(self) -> Generator[Any, None, AsyncTrial]:
        return self._study._suggest_one(self._timeout).__await__()

    async def __aenter__(self) -> AsyncTrial:
        self._trial = await self._study._suggest_one(self._timeout)
        return self._trial

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._trial is not None
        return await self._trial.__aexit__(exc_type, exc, tb)


class AsyncStudy(StudyBase):
    """A study on the server (async): ask it for trials, read results, change its state."""

    def __init__(self, client: AsyncClient, data: StudyData) -> None:
        super().__init__(data)
        self._client = client

    async def refresh(self) -> AsyncStudy:
        """Read the study (state, counts, best trial) again."""
        self._data = await self._client._request(calls.get_study(self.id))
        return self

    async def suggest(self, count: int = 1) -> list[AsyncTrial]:
        """Up to ``count`` trials for this client; empty when there is no work right now."""
        call = calls.suggest(self.id, count, self._client.client_id)
        return [self._owned(t) for t in (await self._client._request(call)).trials]

    def suggest_one(self, *, timeout: float | None = None) -> SuggestOne:
        """One trial, waiting while every slot is busy or the study is paused.

        ``await study.suggest_one()`` or ``async with study.suggest_one() as trial:``.
        Each call asks with a client id of its own (``<client_id>#<n>``), so calls
        awaited at the same time on one client get distinct trials. Raises
        :class:`~tuneforge.NoTrialAvailable` when the study is completed, or when
        ``timeout`` seconds pass without a trial (``study_state`` says whether the
        study was paused or busy).
        """
        return SuggestOne(self, timeout)

    async def _suggest_one(self, timeout: float | None) -> AsyncTrial:
        wait = SuggestWait(timeout)
        # a client id of this call's own: concurrent calls get distinct trials
        call = calls.suggest(self.id, 1, self._client.call_client_id())
        while True:
            reply = await self._client._request(call)
            if reply.trials:
                return self._owned(reply.trials[0])
            await asyncio.sleep(wait.next_delay(reply.study_state))

    async def trial(self, number: int) -> AsyncTrial:
        """The trial ``number`` with its measurements."""
        return self._view(await self._client._request(calls.get_trial(self.id, number)))

    async def trials(
        self, state: str | None = None, *, page_size: int = 100
    ) -> AsyncIterator[AsyncTrial]:
        """Every trial (or those in ``state``) in number order, fetched page by page."""
        token: str | None = None
        while True:
            call = calls.list_trials(self.id, state=state, page_token=token, page_size=page_size)
            page = await self._client._request(call)
            for t in page.trials:
                yield self._view(t)
            token = page.next_page_token
            if token is None:
                return

    async def best(self) -> AsyncTrial | None:
        """The best completed trial (the first of the Pareto front for several objectives)."""
        front = await self.best_trials()
        return front[0] if front else None

    async def best_trials(self) -> list[AsyncTrial]:
        """The best trial, or the Pareto front when the study has several objectives."""
        reply = await self._client._request(calls.best(self.id))
        return [self._view(t) for t in reply.trials]

    async def add_trial(
        self,
        params: Mapping[str, Any],
        values: Mapping[str, float] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> AsyncTrial:
        """Record a trial evaluated elsewhere, or queue ``params`` (see
        :meth:`tuneforge.Study.add_trial`)."""
        call = calls.add_trial(self.id, params, values, metadata)
        return self._view(await self._client._request(call))

    async def importance(self, objective: str | None = None) -> ImportanceReply:
        """Each parameter's share of ``objective``'s variance and the strongest pairwise
        interactions, largest first (see :meth:`tuneforge.Study.importance`)."""
        return await self._client._request(calls.importance(self.id, objective))

    async def to_pandas(self) -> Any:
        """All trials as a pandas DataFrame (``params_<name>``, ``values_<metric>`` columns)."""
        pandas = require_pandas()
        return pandas.DataFrame(trial_rows([t.data async for t in self.trials()]))

    async def update(self, **changes: Any) -> AsyncStudy:
        """PATCH the study: ``state``, ``max_trials``, ``max_active_trials``, ``description``..."""
        self._data = await self._client._request(calls.update_study(self.id, changes))
        return self

    async def pause(self) -> AsyncStudy:
        """Stop handing out trials (running ones continue)."""
        return await self.update(state="paused")

    async def resume(self) -> AsyncStudy:
        """Hand out trials again after ``pause()``."""
        return await self.update(state="active")

    async def run(self) -> AsyncStudy:
        """Start the study's managed objective on the server's workers (docs/api.md "Managed
        objectives"); pause and resume work as for any study."""
        self._data = await self._client._request(calls.run_study(self.id))
        return self

    async def evaluate(self) -> AsyncStudy:
        """Ask a worker to score the best configuration once on the held-out test set;
        the result appears in ``data.evaluation``."""
        self._data = await self._client._request(calls.request_evaluation(self.id))
        return self

    async def store_evaluation(self, result: Mapping[str, Any]) -> AsyncStudy:
        """Record a held-out evaluation (what the bundled workers call after ``evaluate``)."""
        self._data = await self._client._request(calls.store_evaluation(self.id, result))
        return self

    async def delete(self) -> None:
        """Delete the study and all its trials."""
        await self._client._request(calls.delete_study(self.id))

    def _owned(self, data: TrialData) -> AsyncTrial:
        lease, fidelity = self._data.lease_seconds, Fidelity.of(self._data)
        return AsyncTrial(
            self._client, self.id, data, lease_seconds=lease, owned=True, fidelity=fidelity
        )

    def _view(self, data: TrialData) -> AsyncTrial:
        lease, fidelity = self._data.lease_seconds, Fidelity.of(self._data)
        return AsyncTrial(self._client, self.id, data, lease_seconds=lease, fidelity=fidelity)
