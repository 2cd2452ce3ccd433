"""Suggest fits outside any lock, shares one fit among concurrent callers of a study, and
re-fits when another server process claimed points meanwhile (issue 17, deliverable 1).

The study's real algorithm runs in every test; a wrapper only makes the fit wait for
the test's signal, so the test can act while a fit is in progress. The fits run in the
server's process here (``fit_processes=0``), where the wrapper can hold them;
``tests/api/test_fit_pool.py`` covers the child process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_metrics import scrape
from tests.conftest import make_client
from tests.specs import score, small_spec
from tuneforge.api.services import suggest_fit
from tuneforge.core.algorithms import Algorithm, Suggestion, SuggestRequest

API = "/api/v1/studies"
WAIT = 30.0


class HeldAlgorithm(Algorithm):
    """The real algorithm, whose ``suggest`` first waits until the test releases it."""

    name = "held"

    def __init__(self, inner: Algorithm, gate: Gate) -> None:
        super().__init__({})
        self.inner, self.gate = inner, gate

    def suggest(self, request: SuggestRequest) -> Suggestion:
        self.gate.entered(request.count)
        assert self.gate.release.wait(WAIT), "the test never released the fit"
        return self.inner.suggest(request)


class Gate:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.counts: list[int] = []
        self._lock = threading.Lock()

    def entered(self, count: int) -> None:
        with self._lock:
            self.counts.append(count)
        self.started.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    real = suggest_fit.create_algorithm

    def held(name: str, options: Any, space: Any) -> Algorithm:
        return HeldAlgorithm(real(name, options, space), gate)

    monkeypatch.setattr(suggest_fit, "create_algorithm", held)
    yield gate
    gate.release.set()


def start_suggest(client: TestClient, sid: int, cid: str, out: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": cid})
        out[cid] = r

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("algorithm", ["gp", "tpe"])
def test_complete_measure_and_heartbeat_never_wait_for_a_fit(
    db_url: str, gate: Gate, algorithm: str
) -> None:
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        sid = client.post(API, json=small_spec("held", algorithm=algorithm)).json()["id"]
        gate.release.set()
        first = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "a"}).json()
        number = first["trials"][0]["number"]
        gate.release.clear()
        out: dict[str, Any] = {}
        thread = start_suggest(client, sid, "b", out)
        assert gate.started.wait(WAIT)
        base = f"{API}/{sid}/trials/{number}"
        # the fit is held: every call below would hang if it waited for the fit
        step = {"step": 0, "values": {"accuracy": 0.4}}
        assert client.post(f"{base}/measurements", json=step).status_code == 200
        assert client.post(f"{base}/heartbeat", json={}).status_code == 200
        done = client.post(f"{base}/complete", json={"values": {"accuracy": 0.5}})
        assert done.status_code == 200 and done.json()["state"] == "completed"
        assert client.get(f"{API}/{sid}").json()["trial_counts"]["completed"] == 1
        assert thread.is_alive(), "the suggest finished before its fit was released"
        gate.release.set()
        thread.join(WAIT)
        reply = out["b"]
        assert reply.status_code == 200 and reply.json()["trials"][0]["number"] == 1


def test_concurrent_suggests_of_a_study_share_one_fit(db_url: str, gate: Gate) -> None:
    waiting = 5
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        spec = small_spec("batch", algorithm="tpe", max_trials=40)
        sid = client.post(API, json=spec).json()["id"]
        gate.release.set()
        for i in range(12):  # past TPE's start-up: the model is fitted
            t = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "s"}).json()
            body = {"values": {"accuracy": score(t["trials"][0]["params"])}}
            client.post(f"{API}/{sid}/trials/{t['trials'][0]['number']}/complete", json=body)
            del i
        gate.release.clear()
        gate.counts.clear()
        gate.started.clear()
        out: dict[str, Any] = {}
        threads = [start_suggest(client, sid, "leader", out)]
        assert gate.started.wait(WAIT)
        threads += [start_suggest(client, sid, f"w{i}", out) for i in range(waiting)]
        batcher = suggest_fit._batchers[client.app.state.db]  # type: ignore[attr-defined]
        for _ in range(300):  # until all of them queued behind the leader's fit
            with batcher._lock:
                if len(batcher._queues.get(sid, ())) == waiting:
                    break
            threading.Event().wait(0.01)
        gate.release.set()
        for t in threads:
            t.join(WAIT)
        replies = {cid: r.json() for cid, r in out.items()}
        assert all(r.status_code == 200 for r in out.values())
        trials = [r["trials"][0] for r in replies.values()]
        assert gate.counts == [1, waiting], "the waiting callers shared one fit"
        numbers = sorted(t["number"] for t in trials)
        assert numbers == list(range(12, 12 + waiting + 1))
        keys = {tuple(sorted(t["params"].items())) for t in trials}
        assert len(keys) == waiting + 1, "each caller got its own point"
        assert {t["client_id"] for t in trials} == set(out)


def test_a_claim_made_by_another_process_during_the_fit_forces_a_new_fit(
    db_url: str, gate: Gate
) -> None:
    """Two apps on one database stand for two server processes: while the first one's fit
    is held, the second claims a point; the first must fit again (its saved state is
    stale) instead of handing out the same draw."""
    with (
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as one,
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as two,
    ):
        sid = one.post(API, json=small_spec("replicas", algorithm="tpe")).json()["id"]
        out: dict[str, Any] = {}
        thread = start_suggest(one, sid, "one", out)
        assert gate.started.wait(WAIT)
        gate.started.clear()
        other: dict[str, Any] = {}
        gate_thread = start_suggest(two, sid, "two", other)
        assert gate.started.wait(WAIT)  # the second process's fit started too
        gate.release.set()
        thread.join(WAIT)
        gate_thread.join(WAIT)
        a, b = out["one"].json()["trials"][0], other["two"].json()["trials"][0]
        assert {a["number"], b["number"]} == {0, 1}
        assert a["params"] != b["params"], "a stale fit handed out the same draw twice"
        assert len(gate.counts) == 3, "exactly one of the two fits was redone"
        stale = ("tuneforge_suggest_phase_seconds_count", (("phase", "stale"),))
        assert scrape(one).get(stale, 0) + scrape(two).get(stale, 0) == 1, "counted once"


def test_suggests_waiting_for_the_bookkeeping_share_its_transaction(
    db_url: str, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``random`` runs inside the claim: while one suggest holds the study's transaction,
    the suggests of the study that arrive queue and are then served together, each as if
    it came alone (a client's own running trial back, the budget respected)."""
    from tuneforge.api.services import suggest as suggest_module
    from tuneforge.api.services import suggest_calls

    locks: list[int] = []
    real_get, real_serve = suggest_module.get_study_row, suggest_calls._serve

    def counted(session: Any, study_id: int, lock: bool = False) -> Any:
        if lock:
            locks.append(study_id)
        return real_get(session, study_id, lock=lock)

    def counted_serve(db: Any, study: Any, *args: Any) -> Any:  # locked on PostgreSQL
        locks.append(study.id)
        return real_serve(db, study, *args)

    monkeypatch.setattr(suggest_module, "get_study_row", counted)
    monkeypatch.setattr(suggest_calls, "_serve", counted_serve)
    waiting = 5
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        spec = small_spec("claims", algorithm="random", max_trials=5)
        sid = client.post(API, json=spec).json()["id"]
        gate.release.set()
        held = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "w0"}).json()
        gate.release.clear()
        gate.started.clear()
        gate.counts.clear()
        locks.clear()
        out: dict[str, Any] = {}
        threads = [start_suggest(client, sid, "leader", out)]
        assert gate.started.wait(WAIT)  # the leader's transaction holds the study lock
        batcher = suggest_fit.claim_batcher(client.app.state.db)  # type: ignore[attr-defined]
        for i in range(waiting):  # queued one by one, so they are served in this order
            threads.append(start_suggest(client, sid, f"w{i}", out))
            for _ in range(300):
                with batcher._lock:
                    if len(batcher._queues.get(sid, ())) == i + 1:
                        break
                threading.Event().wait(0.01)
        gate.release.set()
        for t in threads:
            t.join(WAIT)
        assert all(r.status_code == 200 for r in out.values())
        trials = {cid: r.json()["trials"] for cid, r in out.items()}
        assert locks == [sid, sid], "the five waiting suggests took the study lock once"
        own = held["trials"][0]["number"]
        assert [t["number"] for t in trials["w0"]] == [own], "its own running trial, back"
        new = [t["number"] for cid in ["leader", "w1", "w2", "w3"] for t in trials[cid]]
        assert new == [1, 2, 3, 4], "in arrival order"
        assert trials["w4"] == [], "max_trials (5) reached: nothing left for the last one"
        assert trials["w3"][0]["client_id"] == "w3"
        assert gate.counts == [1, 1, 1, 1], "the algorithm ran once per ask with new points"
