"""Spare points (api/services/suggest_spare.py): a busy TPE study's suggests take points
fitted ahead, each draw is handed out once, a point too old for the history is dropped,
and a study whose suggests never queue keeps none (issue 17, the ``tpe`` suggest tail).

The real app on both backends and the real TPE, fitted in the server's process
(``fit_processes=0``) so a test can step in during a fit.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_metrics import scrape
from tests.api.test_statement_counts import counting, filled_study
from tests.conftest import make_client, statements_of
from tests.specs import score, small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.db.repository import get_study_row, spec_of
from tuneforge.api.services import suggest_fit, suggest_spare
from tuneforge.api.settings import Settings
from tuneforge.core.study import StudySpec, parse_study_spec

API = "/api/v1/studies"
WAIT = 30.0
#: Results before the spares start: 2 spare points at most (1% of them).
HISTORY = 210


def _loop(client: TestClient, sid: int, n: int, cid: str = "loop") -> list[dict[str, Any]]:
    """``n`` suggest-complete rounds of one client; the trials it got."""
    got = []
    for _ in range(n):
        trial = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": cid}).json()
        trial = trial["trials"][0]
        body = {"values": {"accuracy": score(trial["params"])}}
        reply = client.post(f"{API}/{sid}/trials/{trial['number']}/complete", json=body)
        assert reply.status_code == 200, reply.text
        got.append(trial)
    return got


def _add_results(client: TestClient, sid: int, trials: list[dict[str, Any]]) -> None:
    """Results evaluated elsewhere (``POST .../trials`` as completed): history without a
    suggest."""
    for t in trials:
        body = {"params": t["params"], "state": "completed"}
        body["values"] = {"accuracy": score(t["params"])}
        reply = client.post(f"{API}/{sid}/trials", json=body)
        assert reply.status_code in (200, 201), reply.text


def _study(client: TestClient, name: str) -> tuple[Database, int]:
    """A ``tpe`` study with :data:`HISTORY` results (written in one transaction, the last
    one through the API)."""
    sid = filled_study(client, name, HISTORY, "tpe")
    return client.app.state.db, sid  # type: ignore[attr-defined]


def _first_trials(client: TestClient, sid: int, n: int) -> list[dict[str, Any]]:
    reply = client.get(f"{API}/{sid}/trials", params={"page_size": n})
    assert reply.status_code == 200, reply.text
    trials: list[dict[str, Any]] = reply.json()["trials"]
    return trials


def _state(db: Database, sid: int) -> Any:
    with db.read() as session:
        return get_study_row(session, sid).algorithm_state


def _spec(db: Database, sid: int) -> StudySpec:
    with db.read() as session:
        return spec_of(get_study_row(session, sid))


def _spare_params(db: Database, sid: int) -> list[dict[str, Any]]:
    entry = suggest_spare._spares(db, sid)
    return [] if entry is None else [dict(p) for p, _ in entry.points]


def _wait_for_spares(db: Database, sid: int, at_least: int = 1) -> None:
    for _ in range(int(WAIT / 0.02)):
        entry = suggest_spare._spares(db, sid)
        if entry is not None and len(entry.points) >= at_least and not entry.refilling:
            return
        threading.Event().wait(0.02)
    raise AssertionError("no spare points were fitted")


def test_a_busy_study_hands_out_its_spare_points_once_each(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        db, sid = _study(client, "spares")
        _loop(client, sid, 5)
        assert not suggest_spare.available(db, sid), "a one-client loop keeps no spares"
        suggest_spare.mark_busy(db, sid)  # as when a suggest queues behind another's fit
        _loop(client, sid, 1)  # its batch starts the refill
        _wait_for_spares(db, sid, at_least=2)
        spares = _spare_params(db, sid)
        before = _state(db, sid)
        refills = []  # held back while the spares are taken, so the state can be compared
        monkeypatch.setattr(suggest_spare, "refill_if_low", lambda *a: refills.append(a))
        got = [
            client.post(f"{API}/{sid}/trials/suggest", json={"client_id": f"c{i}"}).json()
            for i in range(2)
        ]
        trials = [g["trials"][0] for g in got]
        assert [t["params"] for t in trials] == spares, "the suggests took the spare points"
        assert [t["number"] for t in trials] == [HISTORY + 6, HISTORY + 7]
        assert _state(db, sid) == before, "taking a spare point draws nothing"
        assert before["draws"] >= 2, "the refill saved the draws its points used"
        assert refills, "taking the spares asked for a refill"
        monkeypatch.undo()
        assert suggest_spare.refill_if_low(*refills[-1])
        _wait_for_spares(db, sid)
        assert not any(p in spares for p in _spare_params(db, sid))
        counted = scrape(client)
        events = {
            e: counted.get(("tuneforge_spare_points_total", (("event", e),)))
            for e in ("fitted", "taken")
        }
        assert events["taken"] == 2, counted
        assert (events["fitted"] or 0) >= 2 + len(_spare_params(db, sid)), counted


def test_a_refill_keeps_its_points_when_another_process_fits_during_it(db_url: str) -> None:
    """Two apps on one database stand for two server processes: while the first one's
    refill fits, the second suggests twice (each a fit that saves TPE's state). The
    refill reserved its draws before its fit, so it keeps its points, none of them is
    a point the other process drew, and the saved state has moved past both."""
    with (
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as one,
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as two,
    ):
        db, sid = _study(one, "reserved-refill")
        spec = _spec(db, sid)
        entry = suggest_spare._spares(db, sid, spec)
        assert entry is not None
        others: list[dict[str, Any]] = []
        starts = []

        def fit_while_another_suggests(snapshot: suggest_fit.Snapshot) -> Any:
            starts.append(snapshot.request.state)
            others.extend(_loop(two, sid, 2, cid="other"))
            return suggest_fit.fit(snapshot)

        before = _state(db, sid)
        assert suggest_spare.refill(db, sid, entry, fit_while_another_suggests) == 2
        spares = _spare_params(db, sid)
        assert len(spares) == 2 and not any(o["params"] in spares for o in others)
        assert starts == [{"draws": before["draws"], "sobol_index": before["sobol_index"]}]
        reserved_to = before["draws"] + 100 * 2  # sampling.MAX_ATTEMPTS per point
        assert _state(db, sid)["draws"] >= reserved_to + 2, "the others drew past the refill's"


def test_a_busy_studys_batch_keeps_its_fit_when_another_process_claims_during_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suggest of a busy study that finds no spare points fits a batch. While it fits,
    another process claims a trial of the study (moving its trial counter and TPE's
    state): the batch's draws were reserved before its fit, so its claim takes that fit
    as it is, instead of fitting again on a fresh snapshot (three times over, in a study
    whose counter moves with every spare point taken)."""
    with (
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as one,
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as two,
    ):
        db, sid = _study(one, "reserved-batch")
        monkeypatch.setattr(suggest_spare, "refill_if_low", lambda *a: False)
        suggest_spare.mark_busy(db, sid)
        before = _state(db, sid)
        starts: list[Any] = []
        others: list[dict[str, Any]] = []
        real_fit = suggest_fit.fit

        def fit_while_another_claims(snapshot: suggest_fit.Snapshot) -> Any:
            starts.append(snapshot.request.state)
            if len(starts) == 1:  # the first fit is the busy study's batch in ``one``
                others.extend(_loop(two, sid, 1, cid="other"))
            return real_fit(snapshot)

        monkeypatch.setattr(suggest_fit, "fit", fit_while_another_claims)
        reply = one.post(f"{API}/{sid}/trials/suggest", json={"client_id": "busy"})
        assert reply.status_code == 200, reply.text
        (mine,) = reply.json()["trials"]
        assert len(starts) == 2, "one fit in each process: the batch was not fitted again"
        assert starts[0] == {"draws": before["draws"], "sobol_index": before["sobol_index"]}
        assert starts[1]["draws"] == before["draws"] + 100, "the other drew past the reservation"
        assert mine["params"] != others[0]["params"]
        assert mine["number"] == others[0]["number"] + 1
        assert _state(db, sid)["draws"] > before["draws"] + 100
        stale = ("tuneforge_suggest_phase_seconds_count", (("phase", "stale"),))
        assert scrape(one).get(stale, 0) == 0, "no attempt was thrown away"


def test_a_reservation_is_one_swap_unless_the_state_moved_since_the_snapshot(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a refill reserves its draws with one ``UPDATE`` that swaps the saved
    state it read for the reserved one: no transaction holds the study row. When another
    fit saved the state after the refill's snapshot, the swap misses and the locked
    transaction reserves past the newer state (on SQLite it always does)."""
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        db, sid = _study(client, "swap")
        entry = suggest_spare._spares(db, sid, _spec(db, sid))
        assert entry is not None
        before = _state(db, sid)
        with statements_of(db) as sent:
            assert suggest_spare.refill(db, sid, entry, suggest_fit.fit) == 2
        pg = db.backend == "postgresql"
        locks = [q for q in sent if "FOR NO KEY UPDATE" in q]
        updates = [q for q in sent if q.startswith("UPDATE studies")]
        swaps = [q for q in updates if "IS NOT DISTINCT FROM" in q]
        assert _state(db, sid)["draws"] == before["draws"] + 100 * 2  # MAX_ATTEMPTS a point
        assert (len(updates), len(swaps), len(locks)) == ((1, 1, 0) if pg else (1, 0, 0))

        swap = suggest_spare._reserve_by_swap
        moved: list[Any] = []

        def after_another_fit(*args: Any) -> Any:
            _loop(client, sid, 1, cid="meanwhile")  # a batch that saves TPE's state
            moved.append(_state(db, sid))
            return swap(*args)

        monkeypatch.setattr(suggest_spare, "_reserve_by_swap", after_another_fit)
        entry.points.clear()
        with statements_of(db) as sent:
            assert suggest_spare.refill(db, sid, entry, suggest_fit.fit) == 2
        assert moved and moved[0]["draws"] > before["draws"] + 200
        assert _state(db, sid)["draws"] == moved[0]["draws"] + 100 * 2
        if pg:
            assert any("FOR NO KEY UPDATE" in q for q in sent), "the locked transaction reserved"


def test_a_refill_in_tpe_start_up_fits_nothing_and_moves_no_state(db_url: str) -> None:
    """TPE's start-up follows one Sobol' position, which no reservation can split: a
    study still in it gets no spare points and its state stays as it was."""
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        sid = filled_study(client, "start-up", HISTORY, "tpe", {"n_startup_trials": 500})
        db = client.app.state.db
        entry = suggest_spare._spares(db, sid, _spec(db, sid))
        assert entry is not None
        before = _state(db, sid)
        assert suggest_spare.refill(db, sid, entry, suggest_fit.fit) == 0
        assert not entry.points and _state(db, sid) == before


def test_a_spare_point_older_than_one_percent_of_the_history_is_dropped(db_url: str) -> None:
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        db, sid = _study(client, "old-spares")
        done = _first_trials(client, sid, 4)
        spec = _spec(db, sid)
        entry = suggest_spare._spares(db, sid, spec)
        assert entry is not None
        assert suggest_spare.refill(db, sid, entry, suggest_fit.fit) == 2
        spares = _spare_params(db, sid)
        _add_results(client, sid, done[:2])  # 2 newer results: within 1% of 212
        first = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "a"}).json()
        assert first["trials"][0]["params"] == spares[0]
        _add_results(client, sid, done[2:4])  # 2 more: 4 newer than the fit saw, over 1%
        second = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": "b"}).json()
        assert second["trials"][0]["params"] != spares[1]
        assert not entry.points
        assert scrape(client)[("tuneforge_spare_points_total", (("event", "old"),))] == 1


def test_spares_follow_the_rules_of_the_study_and_the_server() -> None:
    assert suggest_spare.target_of(99) == 0
    assert suggest_spare.target_of(250) == 2
    assert suggest_spare.target_of(100_000) == suggest_spare.spare_limit()
    assert suggest_spare.fresh(seen=1000, finished=1010)
    assert not suggest_spare.fresh(seen=1000, finished=1011)
    spec = parse_study_spec(small_spec("rules", algorithm="tpe"))
    assert suggest_spare.keeps_spares(spec)
    assert not suggest_spare.keeps_spares(parse_study_spec(small_spec("gp", algorithm="gp")))
    hyperband = small_spec(
        "hb",
        algorithm="tpe",
        fidelity={"name": "epochs", "min": 1, "max": 27},
        early_stopping={"rule": "hyperband", "reduction_factor": 3},
    )
    assert not suggest_spare.keeps_spares(parse_study_spec(hyperband))
    finite = small_spec("finite", algorithm="tpe")
    finite["parameters"] = [p for p in finite["parameters"] if p["type"] != "float"]
    assert not suggest_spare.keeps_spares(parse_study_spec(finite)), "two draws may be equal"


def test_a_server_with_spares_turned_off_keeps_none(db_url: str) -> None:
    with make_client(
        db_url, reconcile_interval_seconds=0, fit_processes=0, spare_points=0
    ) as client:
        db, sid = _study(client, "no-spares")
        suggest_spare.mark_busy(db, sid)
        _loop(client, sid, 3)
        assert not suggest_spare.available(db, sid)
    suggest_spare.configure(Settings.model_fields["spare_points"].default)


def test_a_suggest_served_from_spare_points_costs_the_same_at_any_size(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write transaction: the due-lease read, the locked study row, its update and the
    new trial's insert, whatever the study's size; no history read, no fit. On
    PostgreSQL the due-lease read is part of the statement that locks the study row
    (api/services/suggest_calls.py)."""
    with make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as client:
        monkeypatch.setattr(suggest_spare, "refill_if_low", lambda *a: False)
        db = client.app.state.db  # type: ignore[attr-defined]
        tallies = []
        for n in (300, 3000):
            sid = filled_study(client, f"size-{n}", n, "tpe")
            entry = suggest_spare._spares(db, sid, _spec(db, sid))
            assert entry is not None and suggest_spare.refill(db, sid, entry, suggest_fit.fit)
            spares = _spare_params(db, sid)
            with counting(client) as measure:
                url = f"{API}/{sid}/trials/suggest"
                tally = measure(lambda url=url: client.post(url, json={"client_id": "x"}))
            assert tally.rows == 0, "no trial or measurement row was loaded"
            mine = [s for s in tally.statements if "audit_log" not in s and "api_keys" not in s]
            tallies.append([s.split()[0] for s in mine if not s.startswith("BEGIN")])
            assert spares[0] not in _spare_params(db, sid), "the suggest took a spare point"
    reads = ["SELECT"] if db_url.startswith("postgresql") else ["SELECT", "SELECT"]
    assert tallies[0] == tallies[1] == [*reads, "UPDATE", "INSERT"], tallies


def test_two_processes_hand_out_spare_points_under_load_without_repeating_a_draw(
    db_url: str,
) -> None:
    """Two apps on one database (two server processes), both keeping spare points of
    one busy study, twelve clients looping suggest -> complete on them: every call
    succeeds, both processes hand out spare points, and no two trials got the same
    point (with a float in the space, only a draw used twice repeats one)."""
    with (
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as one,
        make_client(db_url, reconcile_interval_seconds=0, fit_processes=0) as two,
    ):
        _, sid = _study(one, "two-processes")
        for app in (one, two):
            suggest_spare.mark_busy(app.app.state.db, sid)  # type: ignore[attr-defined]
        failures: list[str] = []

        def loop(client: TestClient, cid: str) -> None:
            try:
                _loop(client, sid, 10, cid=cid)
            except AssertionError as exc:  # a refused call (_loop checks each complete)
                failures.append(str(exc))

        threads = [
            threading.Thread(target=loop, args=(one if i % 2 else two, f"c{i}")) for i in range(12)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 4)
        assert failures == [] and not any(t.is_alive() for t in threads)
        trials = _first_trials(one, sid, HISTORY + 200)
        assert len(trials) == HISTORY + 120
        assert all(t["state"] == "completed" for t in trials)
        points = [json.dumps(t["params"], sort_keys=True) for t in trials[HISTORY:]]
        assert len(set(points)) == len(points), "a draw was handed out twice"
        for app in (one, two):
            taken = scrape(app).get(("tuneforge_spare_points_total", (("event", "taken"),)))
            assert taken, "each process handed out spare points"
