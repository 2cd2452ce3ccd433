"""Per-call database work does not grow with the study (issue 17, deliverable 2).

Through the real FastAPI app on SQLite and PostgreSQL, each of suggest, a
measurement report, complete, get-study and list-studies is sent once on
studies of 20 and of 400 finished trials. Every SQL statement is counted
(``tests.conftest.statements_of``: SQLAlchemy's ``before_cursor_execute`` event and
the statements ``api/db/driver.py`` sends itself), and every trial or measurement row
the ORM builds with the mappers' ``load`` event: both must be the same small
numbers at both sizes (no scan of the history, no query per listed study).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.conftest import make_client, statements_of
from tests.specs import small_spec
from tuneforge.api.db.models import MeasurementRow, TrialRow
from tuneforge.api.db.repository import get_study_row, utcnow
from tuneforge.api.schemas.common import encode_page_token
from tuneforge.api.services.lifecycle import finish, new_trial
from tuneforge.core.trials import TrialState

SIZES = (20, 400)
STUDIES_PER_PAGE = 3
#: Upper bounds (auth and audit included); the real check is equality across sizes.
MAX_STATEMENTS = 20
MAX_ROWS = 6


@dataclass
class Tally:
    statements: list[str] = field(default_factory=list)
    rows: int = 0


@contextmanager
def counting(client: TestClient) -> Iterator[Callable[[Callable[[], Any]], Tally]]:
    db = client.app.state.db  # type: ignore[attr-defined]
    current = Tally()

    def on_load(_target: Any, _context: Any) -> None:
        current.rows += 1

    event.listen(TrialRow, "load", on_load)
    event.listen(MeasurementRow, "load", on_load)

    def measure(call: Callable[[], Any]) -> Tally:
        nonlocal current
        current = Tally()
        with statements_of(db) as statements:
            response = call()
        current.statements = list(statements)
        assert response.status_code in (200, 201), response.text
        return current

    try:
        yield measure
    finally:
        event.remove(TrialRow, "load", on_load)
        event.remove(MeasurementRow, "load", on_load)


def filled_study(
    client: TestClient, name: str, n: int, algorithm: str, options: dict[str, Any] | None = None
) -> int:
    """A study with ``n - 1`` completed trials added through the lifecycle module in one
    transaction (fast set-up, summary kept as in production) and one run through the API
    by a worker (so this server's history cache is warm, as it is under load);
    ``options``: its ``algorithm_options``."""
    spec = small_spec(name, algorithm=algorithm, max_trials=10 * n)
    if options:
        spec["algorithm_options"] = options
    sid = int(client.post("/api/v1/studies", json=spec).json()["id"])
    rng = np.random.default_rng([n, len(name)])
    db = client.app.state.db  # type: ignore[attr-defined]
    with db.write() as session:
        study = get_study_row(session, sid, lock=True)
        now = utcnow()
        for i in range(n - 1):
            params = {"lr": float(10 ** rng.uniform(-5, -1)), "depth": int(rng.integers(1, 13))}
            row = new_trial(session, study, params | {"batch": 32, "optimizer": "adam"}, now)
            row.values = {"accuracy": float(i % 97)}
            finish(study, row, TrialState.COMPLETED, now)
    number = suggest_one(client, sid, "warm")
    done = client.post(f"/api/v1/studies/{sid}/trials/{number}/complete", json=_values())
    assert done.status_code == 200
    return sid


def suggest_one(client: TestClient, sid: int, client_id: str) -> int:
    r = client.post(f"/api/v1/studies/{sid}/trials/suggest", json={"client_id": client_id})
    assert r.status_code == 200 and r.json()["trials"], r.text
    return int(r.json()["trials"][0]["number"])


def noting_suggest(
    client: TestClient, sid: int, client_id: str, holder: dict[str, int]
) -> Callable[[], Any]:
    """A suggest call for :func:`counting`; it notes the new trial's number in ``holder``."""

    def suggest() -> Any:
        r = client.post(f"/api/v1/studies/{sid}/trials/suggest", json={"client_id": client_id})
        holder["n"] = int(r.json()["trials"][0]["number"])
        return r

    return suggest


def _values() -> dict[str, Any]:
    return {"values": {"accuracy": 0.5}}


def per_call(client: TestClient, n: int, algorithm: str) -> dict[str, Tally]:
    """Tallies of each call on fresh studies of ``n`` trials (the listing is the page
    that holds exactly those studies)."""
    sids = [filled_study(client, f"s{n}-{k}", n, algorithm) for k in range(STUDIES_PER_PAGE)]
    sid = sids[0]
    params: dict[str, Any] = {"page_size": STUDIES_PER_PAGE}
    if sid > 1:
        params["page_token"] = encode_page_token(sid - 1)
    out: dict[str, Tally] = {}
    with counting(client) as measure:
        holder: dict[str, int] = {}
        out["suggest"] = measure(noting_suggest(client, sid, "x", holder))
        base = f"/api/v1/studies/{sid}/trials/{holder['n']}"
        step = {"step": 1, "values": {"accuracy": 0.25}}
        out["measurement"] = measure(lambda: client.post(f"{base}/measurements", json=step))
        out["complete"] = measure(lambda: client.post(f"{base}/complete", json=_values()))
        out["get-study"] = measure(lambda: client.get(f"/api/v1/studies/{sid}"))
        out["list-studies"] = measure(lambda: client.get("/api/v1/studies", params=params))
    listing = client.get("/api/v1/studies", params=params).json()
    assert [s["id"] for s in listing["studies"]] == sids
    assert all(s["best_trial"] is not None for s in listing["studies"])
    return out


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_database_work_per_call_is_independent_of_study_size(db_url: str, algorithm: str) -> None:
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        small = per_call(client, SIZES[0], algorithm)
        large = per_call(client, SIZES[1], algorithm)
    for call in ("suggest", "measurement", "complete", "get-study", "list-studies"):
        a, b = small[call], large[call]
        assert len(a.statements) == len(b.statements), (call, a.statements, b.statements)
        assert a.rows == b.rows, (call, a.rows, b.rows)
        assert len(b.statements) <= MAX_STATEMENTS, (call, b.statements)
        assert b.rows <= MAX_ROWS, (call, b.rows)
        assert not any("GROUP BY trials.state" in s for s in b.statements), call


def asha_study(client: TestClient, n: int) -> int:
    """An ASHA study (rungs 1 and 3 of 1..9) with ``n`` completed trials that reported at
    steps 1, 3 and 9, added through the lifecycle module in one transaction."""
    spec = small_spec(f"asha{n}", algorithm="random", max_trials=10 * n)
    spec["fidelity"] = {"name": "epochs", "min": 1, "max": 9}
    spec["early_stopping"] = {"rule": "asha", "reduction_factor": 3}
    sid = int(client.post("/api/v1/studies", json=spec).json()["id"])
    db = client.app.state.db  # type: ignore[attr-defined]
    with db.write() as session:
        study = get_study_row(session, sid, lock=True)
        now = utcnow()
        for i in range(n):
            params = {"lr": 1e-3, "depth": 1 + i % 12, "batch": 32, "optimizer": "adam"}
            row = new_trial(session, study, params, now)
            session.flush()
            for step in (1, 3, 9):
                value = {"accuracy": float((i * 7919) % 101) / 100}
                session.add(
                    MeasurementRow(
                        trial_id=row.id, step=step, study_id=sid, values=value, created_at=now
                    )
                )
            row.values = {"accuracy": float((i * 7919) % 101) / 100}
            finish(study, row, TrialState.COMPLETED, now)
    return sid


def asha_calls(client: TestClient, n: int) -> dict[str, Tally]:
    sid = asha_study(client, n)
    warm = suggest_one(client, sid, "warm")  # this server reads the study once
    step = {"step": 9, "values": {"accuracy": 0.5}}
    client.post(f"/api/v1/studies/{sid}/trials/{warm}/measurements", json=step)
    client.post(f"/api/v1/studies/{sid}/trials/{warm}/complete", json=_values())
    out: dict[str, Tally] = {}
    with counting(client) as measure:
        holder: dict[str, int] = {}
        out["suggest"] = measure(noting_suggest(client, sid, "x", holder))
        base = f"/api/v1/studies/{sid}/trials/{holder['n']}"
        low = {"step": 0, "values": {"accuracy": 0.01}}
        out["step"] = measure(lambda: client.post(f"{base}/measurements", json=low))
        rung = {"step": 1, "values": {"accuracy": 0.01}}
        out["rung"] = measure(lambda: client.post(f"{base}/measurements", json=rung))
    assert client.get(f"{base}").json()["state"] == "stopping"  # ranked last at its rung
    return out


def test_asha_steps_and_suggest_read_only_what_changed(db_url: str) -> None:
    """Under a pausing rule, suggest and a measurement that crosses a rung read the trials
    touched since this server last read the study, not the study (issue 16's per-step
    cost)."""
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        small = asha_calls(client, SIZES[0])
        large = asha_calls(client, SIZES[1])
    for call in ("suggest", "step", "rung"):
        a, b = small[call], large[call]
        assert len(a.statements) == len(b.statements), (call, a.statements, b.statements)
        assert a.rows == b.rows, (call, a.rows, b.rows)
        assert b.rows <= MAX_ROWS + 4, (call, b.rows)


def _locks_study(statements: list[str]) -> bool:
    return any(
        s.lstrip().upper().startswith("UPDATE STUDIES")
        or ("FROM studies" in s and "UPDATE" in s.upper().split("FROM STUDIES", 1)[1])
        for s in statements
    )


@pytest.mark.parametrize("rule", ["none", "median"])
def test_a_measurement_that_continues_leaves_the_study_row_alone(db_url: str, rule: str) -> None:
    """Workers of one study report in parallel: a measurement the rule lets continue
    locks only its trial, and writes nothing to the study row; ``random`` over continuous
    floats suggests in one write transaction (the algorithm runs in the claim)."""
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        spec = small_spec(f"m-{rule}", algorithm="random")
        spec["early_stopping"] = {"rule": rule}
        sid = int(client.post("/api/v1/studies", json=spec).json()["id"])
        warm = f"/api/v1/studies/{sid}/trials/{suggest_one(client, sid, 'warm')}/measurements"
        client.post(warm, json={"step": 0, "values": {"accuracy": 0.1}})  # the server saw it
        with counting(client) as measure:
            holder: dict[str, int] = {}
            suggested = measure(noting_suggest(client, sid, "m", holder))
            base = f"/api/v1/studies/{sid}/trials/{holder['n']}"
            step = {"step": 1, "values": {"accuracy": 0.25}}
            measured = measure(lambda: client.post(f"{base}/measurements", json=step))
            again = measure(lambda: client.post(f"{base}/measurements", json=step))
        reads = [s for s in suggested.statements if "FROM studies" in s and "api_keys" not in s]
        assert len(reads) == 1, suggested.statements  # no snapshot read before the claim
        if db_url.startswith("postgresql"):
            assert "FOR NO KEY UPDATE" in reads[0].upper(), reads
        assert not _locks_study(measured.statements), measured.statements
        assert not _locks_study(again.statements), again.statements
        assert any("INSERT INTO measurements" in s for s in measured.statements)
        inserts = [s for s in again.statements if "INSERT INTO measurements" in s]
        # a repeat stores nothing: the plain report's insert skips a stored step itself
        assert all("ON CONFLICT" in s and "DO NOTHING" in s for s in inserts), inserts
        assert len(inserts) == (1 if rule == "none" else 0), again.statements
        trial = client.get(base).json()
        assert trial["state"] == "active" and [m["step"] for m in trial["measurements"]] == [1]


@pytest.mark.parametrize("rule", ["none", "asha"])
def test_a_report_with_earlier_measurements_costs_the_same_whatever_their_number(
    db_url: str, rule: str
) -> None:
    """A report carrying 2 or 200 held-back measurements: the same statements (one read of
    the reported steps, or of the curve when a rule decides, and one insert), and no more
    than a plain report."""
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        spec = small_spec(f"batch-{rule}", algorithm="random")
        spec["fidelity"] = {"name": "epochs", "min": 1, "max": 1000}
        spec["early_stopping"] = {"rule": rule, **({"keep_leader": True} if rule == "asha" else {})}
        sid = int(client.post("/api/v1/studies", json=spec).json()["id"])
        sizes = (0, 2, 200)
        urls = []
        for k in range(len(sizes)):
            url = f"/api/v1/studies/{sid}/trials/{suggest_one(client, sid, f'b{k}')}"
            client.post(f"{url}/measurements", json={"step": 1, "values": {"accuracy": 0.1}})
            urls.append(url)
        with counting(client) as measure:
            tallies = []
            for url, size in zip(urls, sizes, strict=True):
                earlier = [{"step": 2 + s, "values": {"accuracy": 0.2}} for s in range(size)]
                body = {"step": 2 + size, "values": {"accuracy": 0.3}, "earlier": earlier}
                post = f"{url}/measurements"
                tallies.append(measure(lambda p=post, b=body: client.post(p, json=b)))
        for url, size in zip(urls, sizes, strict=True):
            steps = [m["step"] for m in client.get(url).json()["measurements"]]
            assert steps == list(range(1, 3 + size)), steps
        plain, small, large = tallies
        assert len(small.statements) == len(large.statements), (small.statements, large.statements)
        # the batch reads which of its steps exist; on PostgreSQL a plain report also
        # extends the lease inside its insert's statement, where a batch updates the trial
        extra = 2 if client.app.state.db.backend == "postgresql" else 1  # type: ignore[attr-defined]
        assert len(small.statements) <= len(plain.statements) + extra, (
            plain.statements,
            small.statements,
        )
        inserts = [s for s in large.statements if "INSERT INTO measurements" in s]
        assert len(inserts) == 1, large.statements


def study_row_reads(tally: Tally) -> list[str]:
    """The statements that read the whole study row (authorization's scalar read of the
    study's project is not one of them)."""
    return [s for s in tally.statements if s.lstrip().startswith("SELECT studies.id")]


def test_a_model_suggest_reads_the_study_twice_and_a_measurement_with_its_trial(
    db_url: str,
) -> None:
    """A model suggest whose caller leads its batch takes the snapshot in the lock-free
    check's read transaction, so the study row is read there and locked by the claim,
    twice in all (it was three times, with the snapshot in a read of its own); a
    measurement reads its study in the statement that locks its trial."""
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        sid = filled_study(client, "reads", SIZES[0], "tpe")
        with counting(client) as measure:
            holder: dict[str, int] = {}
            suggest = measure(noting_suggest(client, sid, "x", holder))
            step = {"step": 1, "values": {"accuracy": 0.25}}
            base = f"/api/v1/studies/{sid}/trials/{holder['n']}"
            measurement = measure(lambda: client.post(f"{base}/measurements", json=step))
    assert len(study_row_reads(suggest)) == 2, suggest.statements
    assert study_row_reads(measurement) == [], measurement.statements
    joined = [s for s in measurement.statements if "FROM trials JOIN studies" in s]
    assert len(joined) == 1, measurement.statements


def test_a_plain_report_stores_and_extends_the_lease_and_a_repeat_changes_nothing(
    db_url: str,
) -> None:
    """On PostgreSQL the measurement's insert and the trial's new lease are one statement
    (the lease moves only when the row was stored); SQLite updates the trial on its own."""
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        sid = int(client.post("/api/v1/studies", json=small_spec("lease-one")).json()["id"])
        base = f"/api/v1/studies/{sid}/trials/{suggest_one(client, sid, 'w')}"
        before = client.get(base).json()
        step = {"step": 1, "values": {"accuracy": 0.25}}
        with counting(client) as measure:
            first = measure(lambda: client.post(f"{base}/measurements", json=step))
            stored = client.get(base).json()
            again = measure(lambda: client.post(f"{base}/measurements", json=step))
        after = client.get(base).json()
    updates = [s for s in first.statements if s.lstrip().startswith("UPDATE trials")]
    if db_url.startswith("postgresql"):
        assert updates == [], first.statements
        assert any("WITH added AS" in s and "UPDATE trials" in s for s in first.statements)
    else:
        assert len(updates) == 1, first.statements
    assert stored["lease_expires_at"] > before["lease_expires_at"]
    assert stored["updated_at"] > before["updated_at"]
    assert [m["step"] for m in after["measurements"]] == [1]
    assert after["measurements"][0]["values"] == {"accuracy": 0.25}
    assert (after["lease_expires_at"], after["updated_at"]) == (
        stored["lease_expires_at"],
        stored["updated_at"],
    ), "a repeated report changed the trial"
    assert not any(s.lstrip().startswith("UPDATE trials") for s in again.statements)


def test_a_repeated_report_stores_nothing_where_inserts_return_no_rows(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 cannot return rows from an insert: a report then checks for its
    step with a read and stores it through the session, with the same answers."""
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    monkeypatch.setattr(SQLiteDialect, "insert_returning", False)
    with make_client(sqlite_url, reconcile_interval_seconds=0) as client:
        spec = small_spec("old-sqlite", algorithm="random")
        sid = int(client.post("/api/v1/studies", json=spec).json()["id"])
        base = f"/api/v1/studies/{sid}/trials/{suggest_one(client, sid, 'w')}"
        with counting(client) as measure:
            step = {"step": 1, "values": {"accuracy": 0.25}}
            first = measure(lambda: client.post(f"{base}/measurements", json=step))
            again = measure(lambda: client.post(f"{base}/measurements", json=step))
        assert not any("ON CONFLICT" in s for s in first.statements + again.statements)
        assert any("INSERT INTO measurements" in s for s in first.statements)
        assert not any("INSERT INTO measurements" in s for s in again.statements)
        trial = client.get(base).json()
        assert [m["step"] for m in trial["measurements"]] == [1]
