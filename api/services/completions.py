"""Completing trials: the completions of one study that arrive together share one
transaction (:mod:`.group_commit`).

On a busy study every completion takes the study's row lock, and a transaction holds
it for several round trips. The completions that queue in this process while one
transaction runs are applied by the next in one go: one study lock, one statement
that locks their trial rows, one read of their measurements, one flush. When
anything in that shared transaction refuses (a trial that is not running, a lease
that ran out, values that do not fit the study's metrics), it is rolled back and
each completion runs in a transaction of its own, so every caller gets exactly the
answer it would have had alone. On PostgreSQL each of these transactions, shared or
alone, is first tried in two round trips, one of them under the study's lock
(:mod:`.completion_calls`), and otherwise as described here. Model suggests of the
study let a running completion transaction finish before they read and claim
(:func:`completions_idle`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from ...core.trials import Trial
from ..db.engine import Database
from ..db.repository import (
    get_study_row,
    locked_trial_rows,
    measurements_by_numbers,
    spec_of,
    to_trial,
    utcnow,
)
from .completion_calls import Completion, apply_completion, complete_pipelined
from .group_commit import GroupCommit
from .lifecycle import lease_expired, refresh_study_state
from .trials import check_metadata, check_reason, locked_reply, locked_trial


def complete_trial(
    db: Database,
    study_id: int,
    number: int,
    values: Any = None,
    infeasible: bool = False,
    reason: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Trial:
    """Finish a trial with its values (pruned if the rule stopped it) or as infeasible;
    ``metadata`` is merged into the trial's metadata."""
    call = Completion(number, values, infeasible, check_reason(reason), check_metadata(metadata))
    return _batcher(db).submit(study_id, call, lambda batch: complete_many(db, study_id, batch))


def complete_many(
    db: Database, study_id: int, calls: Sequence[Completion]
) -> list[Trial | BaseException]:
    """Each call's answer: its trial, or the error it raises. Several calls share one
    transaction when none of them is refused; otherwise each runs alone. On PostgreSQL
    each transaction is first tried in two round trips (:mod:`.completion_calls`)."""
    if len(calls) > 1 and len({c.number for c in calls}) == len(calls):
        try:
            return list(_complete_together(db, study_id, calls))
        except Exception:  # rolled back; each call alone gives its own answer
            pass
    answers: list[Trial | BaseException] = []
    for call in calls:
        try:
            answers.append(_complete_alone(db, study_id, call))
        except Exception as exc:  # the answer of this call alone
            answers.append(exc)
    return answers


class _Refused(Exception):
    """Something in the shared transaction needs the one-call path (which says what)."""


def _complete_together(db: Database, study_id: int, calls: Sequence[Completion]) -> list[Trial]:
    pipelined = complete_pipelined(db, study_id, calls)
    if pipelined is not None:
        return pipelined
    numbers = [c.number for c in calls]
    with db.write() as session:
        curves = measurements_by_numbers(session, study_id, numbers)  # before the lock
        study = get_study_row(session, study_id, lock=True)
        spec = spec_of(study)
        rows = locked_trial_rows(session, study_id, numbers)
        now = utcnow()
        if len(rows) != len(numbers) or any(lease_expired(r, now) for r in rows.values()):
            raise _Refused
        for call in calls:
            apply_completion(study, spec, rows[call.number], call, now)
        refresh_study_state(session, study, spec, now)
        return [to_trial(rows[n], curves.get(n, ())) for n in numbers]


def _complete_alone(db: Database, study_id: int, call: Completion) -> Trial:
    pipelined = complete_pipelined(db, study_id, [call])
    if pipelined is not None:
        return pipelined[0]
    with locked_trial(db, study_id, call.number, curve=True) as ctx:
        apply_completion(ctx.study, ctx.spec, ctx.trial, call, ctx.now)
        refresh_study_state(ctx.session, ctx.study, ctx.spec, ctx.now)
        return locked_reply(ctx)


_batchers: WeakKeyDictionary[Database, GroupCommit[Completion, Trial]] = WeakKeyDictionary()
_batchers_lock = threading.Lock()


def _batcher(db: Database) -> GroupCommit[Completion, Trial]:
    with _batchers_lock:
        return _batchers.setdefault(db, GroupCommit())


#: Longest a model suggest waits for its study's completions in this process (seconds).
COMPLETIONS_FIRST_SECONDS = 0.05


def completions_idle(db: Database, study_id: int) -> None:
    """Completions go first: wait while a completion transaction of the study runs in
    this process, at most :data:`COMPLETIONS_FIRST_SECONDS`.

    A model suggest calls this before its fresh snapshot and before its claim
    (:mod:`.suggest_fit`). A worker that reports a result then does not queue at the
    study's row lock, or for the interpreter lock between its statements, behind a
    claim that may as well come a few milliseconds later, and the suggest works with
    that result in the study. The bound keeps suggests moving under a stream of
    completions (docs/performance.md, run Q)."""
    _batcher(db).wait_idle(study_id, COMPLETIONS_FIRST_SECONDS)
