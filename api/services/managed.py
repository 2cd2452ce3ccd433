"""Managed studies: start execution on the workers, plan their tasks, store evaluations.

The reconciler calls :func:`plan_dispatches` for each managed study inside the
study's lock; it derives what to send from database state alone (running
trials, unclaimed dispatches, budget), so any replica may run it and a lost
message only delays work.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ...core.errors import Conflict, InvalidSpec
from ...core.objective import has_holdout
from ...core.study import Study, StudySpec
from ...core.trials import TASK_CLIENT_PREFIX, StudyState, TrialState
from ..db.engine import Database
from ..db.models import DispatchRow, StudyRow
from ..db.repository import get_study_row, spec_of, state_counts, utcnow
from .lifecycle import RUNNING_STATES, budget_used, reap_expired, refresh_study_state
from .promotions import promotable
from .same_error import SAME_ERROR
from .studies import study_view


@dataclass(frozen=True)
class LossCheck:
    """When an unclaimed dispatch counts as lost before its TTL (a broker restarted empty).

    A task that no worker claimed within ``claim_seconds`` is lost when the broker no
    longer holds it (``held``: the ids it still queues or has handed out unacknowledged).
    When the broker cannot be asked (``held`` is None), an unclaimed trial task is
    presumed lost after ``claim_seconds``: it is revoked and sent again, which costs a
    place in the queue but never runs a trial twice (the revoked copy is dropped).
    """

    claim_seconds: float
    held: frozenset[str] | None = None

    def lost(self, dispatch: DispatchRow, now: datetime) -> bool:
        if dispatch.created_at >= now - timedelta(seconds=self.claim_seconds):
            return False
        if self.held is None:
            return dispatch.kind == "trial"
        return dispatch.task_id not in self.held


@dataclass
class Plan:
    """Tasks to send and to revoke once the planning transaction has committed."""

    send: list[tuple[str, int, str]] = field(default_factory=list)
    revoke: list[str] = field(default_factory=list)


def run_study(db: Database, study_id: int) -> Study:
    """Ask the workers to execute the study's managed objective (idempotent)."""
    with db.write() as session:
        row = get_study_row(session, study_id, lock=True)
        spec = spec_of(row)
        if spec.objective is None:
            raise InvalidSpec("the study has no managed objective to run", field="objective")
        if spec.max_trials is None:
            raise InvalidSpec("a managed study needs a max_trials budget", field="max_trials")
        if row.state == StudyState.COMPLETED.value and row.completion_reason == SAME_ERROR:
            raise Conflict(
                f"study {study_id} stopped because its first trials all failed with the same "
                "error (see completion_reason); fix the cause, then PATCH state: active"
            )
        if row.state == StudyState.COMPLETED.value:
            raise Conflict(f"study {study_id} is completed; raise max_trials to run it again")
        row.managed = True
        return study_view(session, row)


def request_evaluation(
    db: Database, study_id: int, *, force: bool = False, by_key: int | None = None
) -> Study:
    """Queue the held-out evaluation of the best configuration (runs on a worker).

    The held-out rows are scored once: once an evaluation is done, only ``force`` (an
    admin's decision) queues another, and the one it replaces is kept in
    ``evaluation.previous`` with who forced it.
    """
    with db.write() as session:
        row = get_study_row(session, study_id, lock=True)
        spec = spec_of(row)
        earlier = evaluation_done(row, study_id, force)
        if row.evaluation is not None and row.evaluation.get("state") == "requested":
            return study_view(session, row)  # already queued: asking again changes nothing
        if spec.objective is None or not spec.objective.get("test_size"):
            raise InvalidSpec(
                "the study holds no test set out (objective.test_size)", field="objective"
            )
        if state_counts(session, row.id)[TrialState.COMPLETED.value] == 0:
            raise Conflict(f"study {study_id} has no completed trial to evaluate yet")
        row.evaluation = {"state": "requested", "requested_at": utcnow().isoformat()}
        if earlier is not None:
            row.evaluation["forced"] = {"by_key": by_key, "previous": earlier}
        return study_view(session, row)


def evaluation_done(row: StudyRow, study_id: int, force: bool) -> dict[str, Any] | None:
    """The finished evaluation a forced request replaces; 409 when one exists unforced."""
    current = row.evaluation
    if current is None or current.get("state") != "done":
        return None
    if not force:
        raise Conflict(
            f"study {study_id} was already evaluated on its held-out rows (test_score "
            f"{current.get('test_score')}); scoring them again would let the test set steer "
            "the choice. An admin may force it: POST /evaluate?force=true (recorded)",
            field="evaluation",
            details={"evaluation_state": "done"},
        )
    return {k: v for k, v in current.items() if k != "forced"}


def store_evaluation(db: Database, study_id: int, body: Mapping[str, Any]) -> Study:
    """A worker's evaluation: the best trial's CV score beside its held-out test score,
    or ``{"state": "failed", "error": ...}``."""
    failed = body.get("state") == "failed"
    required = ("error",) if failed else ("trial_number", "params", "cv_score", "test_score")
    for key in required:
        if key not in body:
            raise InvalidSpec("is required", field=key)
    with db.write() as session:
        row = get_study_row(session, study_id, lock=True)
        if row.evaluation is not None and row.evaluation.get("state") == "done":
            raise Conflict(
                f"study {study_id} already has its held-out evaluation",
                field="evaluation",
                details={"evaluation_state": "done"},
            )
        state = "failed" if failed else "done"
        forced = (row.evaluation or {}).get("forced")
        row.evaluation = {**dict(body), "state": state, "evaluated_at": utcnow().isoformat()}
        if forced is not None:
            row.evaluation["forced"] = forced
        session.execute(
            delete(DispatchRow).where(
                DispatchRow.study_id == study_id, DispatchRow.kind == "evaluate"
            )
        )
        return study_view(session, row)


def claim_dispatch(session: Session, study_id: int, client_id: str | None, now: datetime) -> None:
    """A worker that suggests with a task's client id has picked that task up."""
    if not client_id or not client_id.startswith(TASK_CLIENT_PREFIX):
        return
    session.execute(
        update(DispatchRow)
        .where(
            DispatchRow.study_id == study_id,
            DispatchRow.task_id == client_id[len(TASK_CLIENT_PREFIX) :],
            DispatchRow.claimed_at.is_(None),
        )
        .values(claimed_at=now)
    )


def managed_study_ids(db: Database) -> list[int]:
    with db.read() as session:
        return list(session.scalars(select(StudyRow.id).where(StudyRow.managed.is_(True))).all())


def plan_dispatches(
    db: Database, study_id: int, ttl: float, parallelism: int, loss: LossCheck | None = None
) -> Plan:
    """Decide, under the study lock, which tasks to send or revoke; record the new ones.

    Unclaimed tasks older than ``ttl`` are replaced; so are those ``loss`` finds lost.
    """
    plan = Plan()
    with db.write() as session:
        row = get_study_row(session, study_id, lock=True)
        spec = spec_of(row)
        now = utcnow()
        if reap_expired(session, row, spec, now):
            refresh_study_state(session, row, spec, now)
        fresh = _fresh_dispatches(session, row.id, now - timedelta(seconds=ttl), plan, loss)
        if row.state != StudyState.ACTIVE.value:
            plan.revoke += [d.task_id for d in fresh if d.kind == "trial"]
            session.execute(delete(DispatchRow).where(DispatchRow.task_id.in_(plan.revoke)))
            fresh = [d for d in fresh if d.kind != "trial"]
            _maybe_evaluate(row, spec, fresh)
        else:
            wanted = _wanted_trial_tasks(session, row, spec, parallelism)
            pending = sum(1 for d in fresh if d.kind == "trial")
            for _ in range(max(0, wanted - pending)):
                plan.send.append(("trial", row.id, str(uuid.uuid4())))
        evaluating = row.evaluation is not None and row.evaluation.get("state") == "requested"
        if evaluating and not any(d.kind == "evaluate" for d in fresh):
            plan.send.append(("evaluate", row.id, str(uuid.uuid4())))
        for kind, _, task_id in plan.send:
            session.add(DispatchRow(study_id=row.id, kind=kind, task_id=task_id, created_at=now))
    return plan


def _fresh_dispatches(
    session: Session, study_id: int, cutoff: datetime, plan: Plan, loss: LossCheck | None
) -> list[DispatchRow]:
    """Unclaimed dispatches still presumed alive; older ones and lost ones are dropped."""
    rows = session.scalars(
        select(DispatchRow).where(
            DispatchRow.study_id == study_id, DispatchRow.claimed_at.is_(None)
        )
    ).all()
    now = utcnow()
    stale = [
        d
        for d in rows
        if d.created_at < cutoff - _extra_life(d) or (loss is not None and loss.lost(d, now))
    ]
    if stale:
        plan.revoke += [d.task_id for d in stale]
        session.execute(delete(DispatchRow).where(DispatchRow.id.in_([d.id for d in stale])))
    session.execute(
        delete(DispatchRow).where(
            DispatchRow.study_id == study_id, DispatchRow.claimed_at.is_not(None)
        )
    )
    return [d for d in rows if d not in stale]


def _extra_life(dispatch: DispatchRow) -> timedelta:
    """An evaluation is one long task that never claims; give it far longer before replacing it."""
    return timedelta(hours=1) if dispatch.kind == "evaluate" else timedelta(0)


def _wanted_trial_tasks(session: Session, row: StudyRow, spec: StudySpec, parallelism: int) -> int:
    """How many trial tasks should be waiting for a worker right now.

    Paused trials hold no slot (only active and stopping ones run), and they count
    towards ``max_trials``: once the budget is spent, the work left is the requested
    trials and the paused ones the rule promotes now (a task's suggest hands those
    out first). The rule is asked only when the cheap counts do not fill the slots.
    """
    counts = state_counts(session, row.id)
    running = sum(counts[s.value] for s in RUNNING_STATES)
    slots = (spec.max_active_trials or parallelism) - running
    left = math.inf if spec.max_trials is None else spec.max_trials - budget_used(counts)
    work = left + counts[TrialState.REQUESTED.value]
    if work < slots and counts[TrialState.PAUSED.value] > 0:
        work += len(promotable(session, row, spec))
    return int(max(0, min(slots, work)))


def _maybe_evaluate(row: StudyRow, spec: StudySpec, fresh: list[DispatchRow]) -> None:
    """A managed study that just completed gets its held-out evaluation queued once."""
    if row.state != StudyState.COMPLETED.value or row.evaluation is not None:
        return
    if has_holdout(spec.objective):
        row.evaluation = {"state": "requested", "requested_at": utcnow().isoformat()}
