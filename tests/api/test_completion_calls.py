"""Completions on PostgreSQL in one pipelined transaction (api/services/completion_calls.py).

Through the real app on PostgreSQL: a completion is five statements besides the
authorization read and the audit row, with no ORM object built; a script of
completions of every kind leaves the study's and the trials' rows exactly as the
usual path (:mod:`tuneforge.api.services.completions` alone) leaves them; and every
call the pipelined path hands over (refused values, a run-out lease, an unknown or
finished trial, the completion that ends the study) gets the usual path's answer,
nothing written before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from tests.conftest import make_client, statements_of
from tests.specs import small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.db.models import StudyRow, TrialRow
from tuneforge.api.db.repository import utcnow
from tuneforge.api.services import completion_calls, completions
from tuneforge.api.services.completion_calls import Completion

API = "/api/v1/studies"
#: What two equal scripts must agree on (ids, timestamps and the clients' names aside).
STUDY_COLUMNS = (
    "state",
    "completion_reason",
    "trial_counter",
    "version",
    "history_version",
    "best_trials",
    *(f"n_{s}" for s in ("requested", "active", "stopping", "paused")),
    *(f"n_{s}" for s in ("completed", "pruned", "infeasible", "failed")),
)
TRIAL_COLUMNS = (
    "number",
    "state",
    "params",
    "values",
    "stop_source",
    "reason",
    "metadata_",
    "finished_seq",
    "touched_seq",
    "lease_expires_at",
)


def _db(client: TestClient) -> Database:
    return client.app.state.db  # type: ignore[attr-defined,no-any-return]


def _study(client: TestClient, name: str, **overrides: Any) -> int:
    spec = small_spec(name, algorithm="random", seed=7, **overrides)
    r = client.post(API, json=spec)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _suggest(client: TestClient, sid: int, count: int = 1) -> list[int]:
    r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "w", "count": count})
    assert r.status_code == 200, r.text
    return [int(t["number"]) for t in r.json()["trials"]]


def _complete(client: TestClient, sid: int, number: int, body: dict[str, Any]) -> Any:
    return client.post(f"{API}/{sid}/trials/{number}/complete", json=body)


def _expire_lease(db: Database, sid: int, number: int) -> None:
    with db.write() as session:
        session.execute(
            update(TrialRow)
            .where(TrialRow.study_id == sid, TrialRow.number == number)
            .values(lease_expires_at=utcnow() - timedelta(hours=1))
        )


def _rows(db: Database, sid: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with db.read() as session:
        study = session.get(StudyRow, sid)
        assert study is not None
        trials = session.scalars(
            select(TrialRow).where(TrialRow.study_id == sid).order_by(TrialRow.number)
        ).all()
        return (
            {c: getattr(study, c) for c in STUDY_COLUMNS},
            [{c: _column(t, c) for c in TRIAL_COLUMNS} for t in trials],
        )


def _column(trial: TrialRow, column: str) -> Any:
    """A trial's column; its lease as whether it has one, a reason without a time."""
    value = getattr(trial, column)
    if column == "lease_expires_at":
        return value is None
    return value.split(" at ")[0] if column == "reason" and value else value


@dataclass
class Observed:
    """What a block sent and built: its SQL statements, the study and trial rows the ORM
    loaded, and the study-lock holds its database reported (wait, hold)."""

    statements: list[str] = field(default_factory=list)
    built: list[Any] = field(default_factory=list)
    holds: list[tuple[float, float]] = field(default_factory=list)


@contextmanager
def observed(db: Database) -> Iterator[Observed]:
    seen = Observed()
    db.lock_observer = lambda waited, held: seen.holds.append((waited, held))

    def on_load(target: Any, _context: Any) -> None:
        seen.built.append(target)

    event.listen(TrialRow, "load", on_load)
    event.listen(StudyRow, "load", on_load)
    try:
        with statements_of(db) as statements:
            seen.statements = statements
            yield seen
    finally:
        event.remove(TrialRow, "load", on_load)
        event.remove(StudyRow, "load", on_load)


def test_a_completion_is_five_statements_and_no_orm_object(pg_url: str) -> None:
    with make_client(pg_url) as client:
        db = _db(client)
        sid = _study(client, "five")
        (number,) = _suggest(client, sid)
        step = {"step": 1, "values": {"accuracy": 0.25}}
        assert (
            client.post(f"{API}/{sid}/trials/{number}/measurements", json=step).status_code == 200
        )
        with observed(db) as seen:
            r = _complete(client, sid, number, {"values": {"accuracy": 0.5}})
        statements, built, holds = seen.statements, seen.built, seen.holds
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["state"] == "completed" and body["values"] == {"accuracy": 0.5}
        assert [m["step"] for m in body["measurements"]] == [1]
        assert body["completed_at"] is not None and body["lease_expires_at"] is None
        work = [s for s in statements if "api_keys" not in s and "audit" not in s]
        assert len(work) == 5, work
        assert [s.split()[0] for s in work[-2:]] == ["UPDATE", "UPDATE"]
        assert sum("FOR NO KEY UPDATE" in s for s in work) == 2
        assert built == [], "the pipelined path builds no ORM object"
        assert len(holds) == 1 and holds[0][1] > 0, "its lock hold is observed"
        study = client.get(f"{API}/{sid}").json()
        assert study["best_trial"]["number"] == number
        assert study["trial_counts"]["completed"] == 1


def _script(client: TestClient, name: str) -> tuple[int, list[tuple[int, Any]]]:
    """A study's id after completions of every kind, and every reply."""
    rule = {"rule": "median", "n_startup_trials": 1, "min_peers": 1}
    sid = _study(client, name, max_trials=10, early_stopping=rule)
    db = _db(client)
    numbers = _suggest(client, sid, 6)
    bodies: list[dict[str, Any]] = [
        {"values": {"accuracy": 0.5}, "metadata": {"host": "a"}},
        {"values": {"accuracy": 0.9}, "reason": "done early"},
        {"infeasible": True, "values": {"accuracy": 0.1}},
        {"infeasible": True},
        {"values": {"accuracy": 0.7}},
    ]
    replies: list[tuple[int, Any]] = []
    for i, (number, body) in enumerate(zip(numbers, bodies, strict=False)):
        if i in (0, 4):  # the median rule stops the fifth at its first step: it is pruned
            step = {"step": 1, "values": {"accuracy": 0.5 if i == 0 else 0.01}}
            m = client.post(f"{API}/{sid}/trials/{number}/measurements", json=step)
            replies.append((m.status_code, m.json()))
        r = _complete(client, sid, number, body)
        replies.append(_seen(client, sid, r))
    # a user stops the sixth: completing it completes it
    client.post(f"{API}/{sid}/trials/{numbers[5]}/stop")
    r = _complete(client, sid, numbers[5], {"values": {"accuracy": 0.2}})
    replies.append(_seen(client, sid, r))
    refused = [
        (numbers[0], {"values": {"accuracy": 0.3}}),  # finished already
        (99, {"values": {"accuracy": 0.3}}),  # unknown
    ]
    last = _suggest(client, sid, 2)
    refused += [
        (last[0], {"values": {"loss": 1.0}}),  # not the study's metric
        (last[0], {}),  # no values
    ]
    for number, body in refused:
        r = _complete(client, sid, number, body)
        replies.append(_seen(client, sid, r))
    _expire_lease(db, sid, last[1])
    r = _complete(client, sid, last[1], {"values": {"accuracy": 0.3}})
    replies.append(_seen(client, sid, r))
    r = _complete(client, sid, last[0], {"values": {"accuracy": 0.3}})
    replies.append(_seen(client, sid, r))
    while (rest := _suggest(client, sid)) != []:
        r = _complete(client, sid, rest[0], {"values": {"accuracy": 0.4}})
        replies.append(_seen(client, sid, r))
    return sid, [(status, _comparable(seen)) for status, seen in replies]


def _seen(client: TestClient, sid: int, reply: Any) -> tuple[int, Any]:
    """A completion's reply, and the study as it stands after it."""
    study = client.get(f"{API}/{sid}").json()
    kept = ("state", "completion_reason", "trial_counts", "best_trial")
    return reply.status_code, (reply.json(), {k: study.get(k) for k in kept})


def _comparable(reply: Any) -> Any:
    """A reply without its timestamps and request id."""
    if isinstance(reply, list | tuple):
        return [_comparable(item) for item in reply]
    if not isinstance(reply, dict):
        return reply
    drop = {"created_at", "started_at", "completed_at", "updated_at", "lease_expires_at"}
    drop |= {"request_id", "id"}
    out = {k: _comparable(v) for k, v in reply.items() if k not in drop}
    if isinstance(out.get("detail"), dict):
        out["detail"].pop("request_id", None)
    if "measurements" in out:
        out["measurements"] = [{**m, "created_at": None} for m in out["measurements"]]
    if "message" in out:  # the reaped trial's reason names the lease's time, and the study
        out["message"] = re.sub(r"study \d+", "study #", out["message"].split(" at ")[0])
    return out


def both_ways(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    where: Any,
    name: str,
    script: Callable[[TestClient, str], tuple[int, Any]],
) -> tuple[Any, Any, list[bool]]:
    """``script`` run twice: with ``where.<name>`` (a pipelined path) noting whether it
    served each call, then with it handing every call over to the usual path; each run's
    replies and the rows it left, and the notes of the first run."""
    taken: list[bool] = []
    real = getattr(where, name)

    def counted(*args: Any) -> Any:
        answer = real(*args)
        taken.append(answer is not None)
        return answer

    runs = []
    for path, stand_in in (("pipelined", counted), ("usual", lambda *_: None)):
        monkeypatch.setattr(where, name, stand_in)
        sid, replies = script(client, f"{name}-{path}")
        runs.append((replies, _rows(_db(client), sid)))
    return runs[0], runs[1], taken


def test_pipelined_completions_leave_the_rows_the_usual_path_leaves(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(pg_url) as client:
        pipelined, usual, taken = both_ways(
            client, monkeypatch, completions, "complete_pipelined", _script
        )
    trials = ended_alike(pipelined, usual, taken, pipelined_at_least=7)
    assert [t["number"] for t in trials if t["state"] == "pruned"] == [4], "the rule stopped one"


def ended_alike(pipelined: Any, usual: Any, taken: list[bool], pipelined_at_least: int) -> Any:
    """The two runs of :func:`both_ways` gave the same replies and rows, each path served
    some calls, and the study spent its budget with the run-out lease reaped; its trials."""
    assert sum(taken) >= pipelined_at_least and not all(taken), taken
    assert pipelined == usual
    study, trials = pipelined[1]
    assert study["state"] == "completed" and study["completion_reason"] == "max_trials"
    assert any(t["state"] == "failed" for t in trials), "the run-out lease was reaped"
    return trials


def test_completions_that_arrive_together_share_one_pipelined_transaction(pg_url: str) -> None:
    with make_client(pg_url) as client:
        db = _db(client)
        sid = _study(client, "together")
        numbers = _suggest(client, sid, 3)
        calls = [Completion(n, {"accuracy": 0.1 * n}, False, None, {}) for n in numbers]
        with statements_of(db) as statements:
            answers = completions.complete_many(db, sid, calls)
        assert [getattr(a, "number", a) for a in answers] == numbers
        assert all(getattr(a, "values", None) for a in answers)
        assert sum("FROM studies" in s and "FOR NO KEY UPDATE" in s for s in statements) == 1
        assert client.get(f"{API}/{sid}").json()["trial_counts"]["completed"] == 3


def test_a_refused_call_in_a_shared_batch_writes_nothing_of_the_others(pg_url: str) -> None:
    with make_client(pg_url) as client:
        db = _db(client)
        sid = _study(client, "refused")
        a, b = _suggest(client, sid, 2)
        version = _rows(db, sid)[0]["version"]
        calls = [
            Completion(a, {"accuracy": 0.5}, False, None, {}),
            Completion(b, {"loss": 0.5}, False, None, {}),
        ]
        holds: list[tuple[float, float]] = []
        db.lock_observer = lambda waited, held: holds.append((waited, held))
        assert completion_calls.complete_pipelined(db, sid, calls) is None
        assert _rows(db, sid)[0]["version"] == version, "nothing was written"
        assert len(holds) == 1, "the lock it took before handing over is observed"
        answers = completions.complete_many(db, sid, calls)
        assert getattr(answers[0], "number", None) == a
        assert isinstance(answers[1], Exception) and "accuracy" in str(answers[1])


def test_sqlite_takes_the_usual_path(sqlite_url: str) -> None:
    with make_client(sqlite_url) as client:
        sid = _study(client, "sqlite")
        (number,) = _suggest(client, sid)
        call = Completion(number, {"accuracy": 0.5}, False, None, {})
        assert completion_calls.complete_pipelined(_db(client), sid, [call]) is None
        assert _complete(client, sid, number, {"values": {"accuracy": 0.5}}).status_code == 200
