"""A suggest's bookkeeping on PostgreSQL in one pipelined transaction
(api/services/suggest_calls.py).

Through the real app on PostgreSQL: a suggest that only starts new trials is three
statements besides the authorization read and the audit row, with no ORM object
built; a script of suggests of every kind (several points, a client's own running
trial, a run-out lease, queued trials, the parallelism limit and the budget) gives the
same replies and leaves the same rows as the usual path
(:func:`tuneforge.api.services.suggest._bookkeeping` through the ORM alone); and a
suggest whose bookkeeping has more to do than start trials does not even lock the
study in the pipelined try when a trial is due.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_completion_calls import (
    API,
    _comparable,
    _db,
    _expire_lease,
    both_ways,
    ended_alike,
    observed,
)
from tests.conftest import make_client
from tests.specs import small_spec
from tuneforge.api.services import suggest, suggest_calls


def _study(client: TestClient, name: str, **overrides: Any) -> int:
    spec = small_spec(name, algorithm="random", seed=11, **overrides)
    spec["parameters"] = spec["parameters"][:1]  # a float alone: random runs in the claim
    r = client.post(API, json=spec)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _suggest(client: TestClient, sid: int, cid: str, count: int = 1) -> Any:
    return client.post(f"{API}/{sid}/trials/suggest", json={"client_id": cid, "count": count})


def test_a_suggest_that_starts_trials_is_three_statements_and_no_orm_object(
    pg_url: str,
) -> None:
    with make_client(pg_url, reconcile_interval_seconds=0) as client:
        db = _db(client)
        sid = _study(client, "three")
        assert _suggest(client, sid, "warm").status_code == 200  # the path's hint is known
        with observed(db) as seen:
            r = _suggest(client, sid, "x", count=2)
        statements, built, holds = seen.statements, seen.built, seen.holds
        assert r.status_code == 200, r.text
        trials = r.json()["trials"]
        assert [t["number"] for t in trials] == [1, 2]
        assert all(t["state"] == "active" and t["lease_expires_at"] for t in trials)
        assert all(t["client_id"] == "x" for t in trials)
        work = [s.split()[0] for s in statements if "api_keys" not in s and "audit" not in s]
        assert work == ["SELECT", "UPDATE", "INSERT", "INSERT"], work
        assert built == [], "the pipelined path builds no ORM object"
        assert len(holds) == 1, "its lock hold is observed"
        listed = client.get(f"{API}/{sid}/trials").json()["trials"]
        assert [t["number"] for t in listed] == [0, 1, 2]
        assert client.get(f"{API}/{sid}").json()["trial_counts"]["active"] == 3


def _script(client: TestClient, name: str) -> tuple[int, list[Any]]:
    """A study's id after suggests of every kind, and every reply."""
    sid = _study(client, name, max_trials=9, max_active_trials=4)
    db = _db(client)
    seen: list[Any] = []

    def asked(cid: str, count: int = 1) -> list[int]:
        r = _suggest(client, sid, cid, count)
        study = client.get(f"{API}/{sid}").json()
        seen.append((r.status_code, r.json(), study["trial_counts"], study["state"]))
        return [t["number"] for t in r.json().get("trials", [])]

    def complete(number: int, value: float) -> None:
        body = {"values": {"accuracy": value}}
        r = client.post(f"{API}/{sid}/trials/{number}/complete", json=body)
        seen.append((r.status_code, r.json()))

    first = asked("a", 2)  # two new points
    running = asked("b")
    asked("a")  # its own running trials, back
    running += asked("c", 3)  # the parallelism limit leaves room for one
    asked("d")  # none: four are running
    complete(first[0], 0.5)
    _expire_lease(db, sid, first[1])
    running += asked("d")  # the run-out lease is reaped, its retry queued and handed out
    queued = client.post(f"{API}/{sid}/trials", json={"params": {"lr": 0.01}})
    seen.append((queued.status_code, queued.json()))
    for number in running:
        complete(number, 0.1)
    for number in asked("e", 3):  # the queued trial, then new points
        complete(number, 0.2)
    while (numbers := asked("f", 2)) != []:
        for number in numbers:
            complete(number, 0.3)
    return sid, _comparable(seen)


def test_pipelined_bookkeeping_answers_and_writes_as_the_usual_path(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(pg_url, reconcile_interval_seconds=0) as client:
        pipelined, usual, taken = both_ways(
            client, monkeypatch, suggest, "bookkeeping_pipelined", _script
        )
    ended_alike(pipelined, usual, taken, pipelined_at_least=4)


def test_a_due_trial_leaves_the_study_unlocked_by_the_pipelined_try(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(pg_url, reconcile_interval_seconds=0) as client:
        sid = _study(client, "due")
        (own,) = [t["number"] for t in _suggest(client, sid, "a").json()["trials"]]
        served: list[int] = []
        real_serve = suggest_calls._serve

        def counted(db: Any, study: Any, *args: Any) -> Any:
            served.append(study.id)
            return real_serve(db, study, *args)

        monkeypatch.setattr(suggest_calls, "_serve", counted)
        r = _suggest(client, sid, "a")
        assert [t["number"] for t in r.json()["trials"]] == [own], "its own trial, back"
        assert served == [], "the pipelined try found the trial due and locked nothing"
        assert [t["number"] for t in _suggest(client, sid, "b").json()["trials"]] == [1]
        assert served == [sid]


def test_sqlite_takes_the_usual_path(sqlite_url: str) -> None:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        sid = _study(client, "sqlite")
        ask = suggest.Ask(1, "a")
        assert suggest_calls.bookkeeping_pipelined(_db(client), sid, [ask]) is None
        assert ask.trials == []
        assert _suggest(client, sid, "a").status_code == 200
