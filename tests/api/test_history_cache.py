"""The per-process history cache (api/services/history.py) holds a study's finished trials
in number order however they finish, and agrees with a fresh read of the database."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.specs import small_spec
from tuneforge.api.db.repository import get_study_row
from tuneforge.api.services.history import HistoryCache
from tuneforge.api.services.suggest_fit import history_of
from tuneforge.core.algorithms.grown import GrowingHistory
from tuneforge.core.trials import Trial

API = "/api/v1/studies"


def test_trials_finishing_out_of_order_are_held_in_number_order(client: TestClient) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    sid = client.post(API, json=small_spec("history", algorithm="random")).json()["id"]
    r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "w", "count": 8})
    numbers = [t["number"] for t in r.json()["trials"]]
    assert numbers == list(range(8))
    seen: list[list[int]] = []
    before: tuple[Trial, ...] = ()
    for n in (5, 0, 7, 3, 1, 6, 2, 4):  # each completion is merged into a cache that is warm
        body = {"values": {"accuracy": n / 10}} if n != 6 else {"infeasible": True}
        assert client.post(f"{API}/{sid}/trials/{n}/complete", json=body).status_code == 200
        with db.read() as session:
            version = get_study_row(session, sid).history_version
            held = history_of(session).finished(session, sid, version)
        seen.append([t.number for t in held])
        # What the algorithms rely on to read only the new trials (core/algorithms/grown.py):
        # the earlier trial objects, in their order, with the new one inserted.
        assert isinstance(held, GrowingHistory)
        assert [t for t in held if t.number != n] == list(before)
        assert all(a is b for a, b in zip([t for t in held if t.number != n], before, strict=True))
        before = held
    finished: list[int] = []
    for n, held in zip((5, 0, 7, 3, 1, 6, 2, 4), seen, strict=True):
        finished = sorted([*finished, n])
        assert held == finished
    with db.read() as session:
        version = get_study_row(session, sid).history_version
        cached = history_of(session).finished(session, sid, version)
        fresh = HistoryCache().finished(session, sid, version)
    assert cached == fresh
    assert [t.values for t in cached][6] is None  # the infeasible trial, in its place


def test_the_algorithm_reads_the_cached_history_itself_not_a_copy(client: TestClient) -> None:
    """A snapshot of a study without warm-start sources hands the algorithm the cache's
    own tuple: copying a long history on every suggest cost more than the TPE fit (a
    100,000-trial tuple per call, and the young collections that then walked it)."""
    from tuneforge.api.db.repository import spec_of
    from tuneforge.api.services.suggest_fit import read_snapshot

    db = client.app.state.db  # type: ignore[attr-defined]
    sid = client.post(API, json=small_spec("no-copy", algorithm="tpe")).json()["id"]
    for n in range(3):
        trial = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "w"}).json()
        number = trial["trials"][0]["number"]
        body = {"values": {"accuracy": n / 10}}
        assert client.post(f"{API}/{sid}/trials/{number}/complete", json=body).status_code == 200
    with db.read() as session:
        study = get_study_row(session, sid)
        snapshot = read_snapshot(session, study, spec_of(study), 1)
        held = history_of(session).finished(session, sid, study.history_version)
    assert snapshot is not None
    assert len(held) == 3
    assert snapshot.request.completed is held


def test_the_cache_holds_what_the_algorithms_read_of_each_finished_trial(
    client: TestClient,
) -> None:
    """The cache's Core read (``repository.finished_since``) gives each finished trial the
    fields an algorithm or a stopping rule reads, measurements included, equal to the
    mapped rows; trials that finished without a result (failed) are left out."""
    from tuneforge.api.db.repository import load_trials
    from tuneforge.api.services.history import WITH_RESULT

    db = client.app.state.db  # type: ignore[attr-defined]
    sid = client.post(API, json=small_spec("fields", algorithm="random")).json()["id"]
    r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "w", "count": 4})
    numbers = [t["number"] for t in r.json()["trials"]]
    for n in numbers[:3]:
        for step in (1, 2):
            body = {"step": step, "values": {"accuracy": n / 10 + step / 100}}
            assert client.post(f"{API}/{sid}/trials/{n}/measurements", json=body).status_code < 300
    done = {"values": {"accuracy": 0.5}}
    assert client.post(f"{API}/{sid}/trials/{numbers[0]}/complete", json=done).status_code == 200
    infeasible = {"infeasible": True}
    reply = client.post(f"{API}/{sid}/trials/{numbers[1]}/complete", json=infeasible)
    assert reply.status_code == 200
    fail = client.post(f"{API}/{sid}/trials/{numbers[2]}/fail", json={"reason": "oom"})
    assert fail.status_code == 200
    with db.read() as session:
        version = get_study_row(session, sid).history_version
        cached = HistoryCache().finished(session, sid, version)
        rows = load_trials(session, sid, None, with_measurements=True)

    def seen(t: Trial) -> tuple[object, ...]:
        ms = [(m.step, dict(m.values), m.elapsed_seconds) for m in t.measurements]
        return (t.number, t.state, dict(t.params), t.values, t.retry_of, t.attempt, ms)

    expected = [seen(t) for t in rows if t.state in WITH_RESULT]
    assert [seen(t) for t in cached] == expected
    assert [len(t.measurements) for t in cached] == [2, 2]
