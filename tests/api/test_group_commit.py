"""Completions of one study that queue while its write transaction runs share the next
one (api/services/group_commit.py, api/services/completions.py), and each caller still
gets the answer it would have had alone."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.specs import small_spec
from tuneforge.api.services import completions, suggest_fit
from tuneforge.api.services.group_commit import GroupCommit

API = "/api/v1/studies"
WAIT = 30.0


def _until(condition: Any) -> None:
    for _ in range(3000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("timed out")


def _queued(batcher: GroupCommit[Any, Any], key: int) -> int:
    with batcher._lock:
        return len(batcher._queues.get(key, ()))


# ---- the batcher alone ----------------------------------------------------------------------


def held_work(
    answer: Any,
) -> tuple[Any, threading.Event, list[list[int]]]:
    """A work function that notes each batch and holds the batch led by item 0 until
    the returned event is set; each item's answer is ``answer(item)``."""
    release = threading.Event()
    batches: list[list[int]] = []

    def work(items: Sequence[int]) -> list[Any]:
        batches.append(list(items))
        if items[0] == 0:
            assert release.wait(WAIT)
        return [answer(i) for i in items]

    return work, release, batches


def test_callers_that_queue_behind_a_batch_share_the_next_and_keep_their_own_answers() -> None:
    batcher: GroupCommit[int, int] = GroupCommit()
    work, release, batches = held_work(lambda i: ValueError(f"odd {i}") if i % 2 else i * 10)

    answers: dict[int, Any] = {}

    def call(i: int) -> None:
        try:
            answers[i] = batcher.submit(7, i, work)
        except ValueError as exc:
            answers[i] = str(exc)

    threads = [threading.Thread(target=call, args=(0,))]
    threads[0].start()
    _until(lambda: batches)
    threads += [threading.Thread(target=call, args=(i,)) for i in range(1, 6)]
    for t in threads[1:]:
        t.start()
    _until(lambda: _queued(batcher, 7) == 5)
    release.set()
    for t in threads:
        t.join(WAIT)
    assert batches == [[0], [1, 2, 3, 4, 5]]
    assert answers == {0: 0, 1: "odd 1", 2: 20, 3: "odd 3", 4: 40, 5: "odd 5"}
    assert _queued(batcher, 7) == 0 and not batcher._queues, "the key is idle again"


def test_a_failing_batch_answers_each_of_its_callers_with_the_error() -> None:
    batcher: GroupCommit[int, int] = GroupCommit()

    def work(items: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        batcher.submit(1, 1, work)
    assert batcher.submit(1, 2, lambda items: [i + 1 for i in items]) == 3, "not stuck"


def test_the_batch_size_is_capped() -> None:
    batcher: GroupCommit[int, int] = GroupCommit(limit=2)
    work, release, batches = held_work(lambda i: i)

    threads = [threading.Thread(target=batcher.submit, args=(3, 0, work))]
    threads[0].start()
    _until(lambda: batches)
    for i in range(1, 4):
        threads.append(threading.Thread(target=batcher.submit, args=(3, i, work)))
        threads[-1].start()
        _until(lambda n=i: _queued(batcher, 3) == n)
    release.set()
    for t in threads:
        t.join(WAIT)
    assert batches == [[0], [1, 2], [3]]


def test_weighted_batches_idle_keys_and_the_queue_hook() -> None:
    """Items weigh what they ask for (suggest's points): a batch takes queued items while
    their weights add up to the limit, or to the leader's own weight when larger; a key
    is idle only while no batch runs; ``on_queue`` hears each caller that waits."""
    batcher: GroupCommit[int, int] = GroupCommit(limit=5, weight=lambda i: i)
    work, release, batches = held_work(lambda i: i)
    queued: list[int] = []

    def submit(item: int) -> None:
        batcher.submit(3, item, work, on_queue=lambda: queued.append(item))

    assert batcher.idle(3)
    threads = [threading.Thread(target=batcher.submit, args=(3, 0, work))]
    threads[0].start()
    _until(lambda: batches)
    assert not batcher.idle(3)
    for n, item in enumerate((2, 3, 4, 9, 1), start=1):
        threads.append(threading.Thread(target=submit, args=(item,)))
        threads[-1].start()
        _until(lambda n=n: _queued(batcher, 3) == n)
    release.set()
    for t in threads:
        t.join(WAIT)
    assert batches == [[0], [2, 3], [4], [9], [1]]
    assert queued == [2, 3, 4, 9, 1]
    assert batcher.idle(3)


# ---- completions through the app ---------------------------------------------------------------


class HeldFirst:
    """Holds trial 0's completion inside its one-call transaction until released, and
    notes which calls ran alone and which tried to share a transaction."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.alone: list[int] = []
        self.together: list[list[int]] = []
        real_alone, real_together = completions._complete_alone, completions._complete_together

        def held_alone(db: Any, study_id: int, call: completions.Completion) -> Any:
            self.alone.append(call.number)
            if call.number == 0:
                self.entered.set()
                assert self.release.wait(WAIT)
            return real_alone(db, study_id, call)

        def counted_together(db: Any, study_id: int, calls: Any) -> Any:
            self.together.append(sorted(c.number for c in calls))
            return real_together(db, study_id, calls)

        monkeypatch.setattr(completions, "_complete_alone", held_alone)
        monkeypatch.setattr(completions, "_complete_together", counted_together)

    def complete_all(
        self, client: TestClient, sid: int, bodies: dict[int, dict[str, Any]]
    ) -> dict[int, Any]:
        """Complete trial 0, then the others while it is held; every reply by number."""
        out: dict[int, Any] = {}

        def complete(number: int) -> None:
            url = f"{API}/{sid}/trials/{number}/complete"
            out[number] = client.post(url, json=bodies[number])

        first = threading.Thread(target=complete, args=(0,))
        first.start()
        assert self.entered.wait(WAIT)
        rest = [threading.Thread(target=complete, args=(n,)) for n in bodies if n != 0]
        for t in rest:
            t.start()
        batcher = completions._batcher(client.app.state.db)  # type: ignore[attr-defined]
        _until(lambda: _queued(batcher, sid) == len(rest))
        self.release.set()
        for t in [first, *rest]:
            t.join(WAIT)
        return out


def test_completions_waiting_for_a_study_share_one_transaction(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first completion is held inside its transaction; five more of the study arrive
    meanwhile, one of them with a metric the study does not have. The five try one
    shared transaction, which the bad one refuses: it is rolled back and each runs
    alone, so the bad one gets its own 422 and the others 200."""
    held = HeldFirst(monkeypatch)
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        sid = client.post(API, json=small_spec("group", algorithm="random")).json()["id"]
        reply = client.post(f"{API}/{sid}/trials/suggest", json={"count": 6, "client_id": "w"})
        assert [t["number"] for t in reply.json()["trials"]] == list(range(6))
        bodies = {n: {"values": {("nope" if n == 3 else "accuracy"): 0.1 * n}} for n in range(6)}
        out = held.complete_all(client, sid, bodies)
        assert held.together == [[1, 2, 3, 4, 5]], "the five that waited shared one try"
        assert sorted(held.alone) == [0, 1, 2, 3, 4, 5], "then each ran alone"
        statuses = {n: r.status_code for n, r in out.items()}
        assert statuses == {0: 200, 1: 200, 2: 200, 3: 422, 4: 200, 5: 200}
        assert "nope" in out[3].text
        for n in (0, 1, 2, 4, 5):
            assert out[n].json()["state"] == "completed"
            assert out[n].json()["values"] == {"accuracy": pytest.approx(0.1 * n)}
        study = client.get(f"{API}/{sid}").json()
        assert study["trial_counts"]["completed"] == 5 and study["trial_counts"]["active"] == 1
        best = client.get(f"{API}/{sid}/best").json()
        assert best["trials"][0]["number"] == 5


def test_a_shared_transaction_stores_every_completion_of_the_batch(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a refusal the waiting completions are stored by the shared transaction
    itself (not by the one-call fallback), with their measurements in the replies."""
    held = HeldFirst(monkeypatch)
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        spec = small_spec("shared", algorithm="random", max_trials=4)
        sid = client.post(API, json=spec).json()["id"]
        reply = client.post(f"{API}/{sid}/trials/suggest", json={"count": 4, "client_id": "w"})
        assert [t["number"] for t in reply.json()["trials"]] == [0, 1, 2, 3]
        for n in range(4):
            body = {"step": 1, "values": {"accuracy": 0.01 * n}}
            assert client.post(f"{API}/{sid}/trials/{n}/measurements", json=body).status_code == 200
        out = held.complete_all(
            client, sid, {n: {"values": {"accuracy": 0.1 * n}} for n in range(4)}
        )
        assert held.alone == [0] and held.together == [[1, 2, 3]], "the three shared one"
        for n in range(4):
            trial = out[n].json()
            assert out[n].status_code == 200 and trial["state"] == "completed"
            assert [m["step"] for m in trial["measurements"]] == [1]
        study = client.get(f"{API}/{sid}").json()
        assert study["state"] == "completed", "the budget of 4 is spent"
        assert study["trial_counts"]["completed"] == 4


# ---- completions before a model suggest's claim -------------------------------------------------


def test_wait_idle_returns_when_the_keys_batch_ends_and_not_before() -> None:
    batcher: GroupCommit[int, int] = GroupCommit()
    work, release, _ = held_work(lambda i: i)
    leader = threading.Thread(target=batcher.submit, args=(5, 0, work))
    leader.start()
    _until(lambda: not batcher.idle(5))
    assert batcher.wait_idle(6, 0.0), "another key is idle at once"
    assert not batcher.wait_idle(5, 0.05), "the key's batch still runs"
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(batcher.wait_idle(5, WAIT)))
    waiter.start()
    release.set()
    waiter.join(WAIT)
    leader.join(WAIT)
    assert waited == [True] and batcher.idle(5)


def _model_study(client: TestClient) -> tuple[int, int]:
    """A ``tpe`` study with one running trial (its number)."""
    sid = client.post(API, json=small_spec("first", algorithm="tpe")).json()["id"]
    r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "a"})
    return sid, r.json()["trials"][0]["number"]


def test_a_model_suggest_claims_after_the_completion_its_study_is_committing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion is held in its transaction; a suggest of the same study fits, then
    waits for it before its claim (``COMPLETIONS_FIRST_SECONDS``, raised here so the
    test does not depend on timing), and claims once it is committed."""
    monkeypatch.setattr(completions, "COMPLETIONS_FIRST_SECONDS", WAIT)
    held = HeldFirst(monkeypatch)
    claims: list[bool] = []
    real_claim = suggest_fit._claim

    def noted_claim(db: Any, study_id: int, *args: Any, **kwargs: Any) -> Any:
        claims.append(completions._batcher(db).idle(study_id))
        return real_claim(db, study_id, *args, **kwargs)

    monkeypatch.setattr(suggest_fit, "_claim", noted_claim)
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        sid, number = _model_study(client)
        assert number == 0
        del claims[:]
        replies: dict[str, Any] = {}

        def call(name: str, path: str, body: dict[str, Any]) -> None:
            replies[name] = client.post(f"{API}/{sid}/trials{path}", json=body)

        done = threading.Thread(
            target=call, args=("done", "/0/complete", {"values": {"accuracy": 0.5}})
        )
        done.start()
        assert held.entered.wait(WAIT)
        asked = threading.Thread(target=call, args=("asked", "/suggest", {"client_id": "b"}))
        asked.start()
        asked.join(0.5)
        assert asked.is_alive(), "the suggest claimed while its study's completion ran"
        assert claims == []
        held.release.set()
        done.join(WAIT)
        asked.join(WAIT)
        assert replies["done"].status_code == 200, replies["done"].text
        assert replies["asked"].status_code == 200, replies["asked"].text
        assert replies["asked"].json()["trials"][0]["number"] == 1
        assert claims == [True]


def test_a_model_suggest_waits_for_completions_only_so_long(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(completions, "COMPLETIONS_FIRST_SECONDS", 0.05)
    held = HeldFirst(monkeypatch)
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        sid, _ = _model_study(client)
        out: dict[str, Any] = {}

        def complete() -> None:
            out["done"] = client.post(
                f"{API}/{sid}/trials/0/complete", json={"values": {"accuracy": 0.5}}
            )

        done = threading.Thread(target=complete)
        done.start()
        assert held.entered.wait(WAIT)
        r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "b"})
        assert r.status_code == 200 and r.json()["trials"][0]["number"] == 1, r.text
        assert done.is_alive(), "the completion was not held while the suggest ran"
        held.release.set()
        done.join(WAIT)
        assert out["done"].status_code == 200, out["done"].text
