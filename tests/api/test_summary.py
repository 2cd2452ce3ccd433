"""The study row's summary (counts per state, best trials, history version) always says
what a scan of the trials says, and the SQL ``best_until`` agrees with the in-memory one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.specs import small_spec
from tuneforge.api.db.models import StudyRow, TrialRow
from tuneforge.api.db.repository import (
    counts_of,
    get_study_row,
    load_trials,
    scanned_state_counts,
    spec_of,
)
from tuneforge.api.services.peers import SqlPeerView
from tuneforge.api.services.promotions import rule_trials
from tuneforge.api.services.summary import best_numbers
from tuneforge.core.analysis import best_trials
from tuneforge.core.stopping.base import TrialsPeerView
from tuneforge.core.trials import Goal, Metric, TrialState

API = "/api/v1/studies"


def check_summary(client: TestClient, sid: int) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    with db.read() as session:
        study = get_study_row(session, sid)
        assert counts_of(study) == scanned_state_counts(session, sid)
        completed = load_trials(session, sid, (TrialState.COMPLETED,))
        expected = [t.number for t in best_trials(completed, spec_of(study).metrics)]
        assert best_numbers(session, study) == expected
        finished = [r for r in session.query(TrialRow).filter_by(study_id=sid) if r.finished_seq]
        assert study.history_version == max((r.finished_seq for r in finished), default=0)
        full = [t for t in load_trials(session, sid, with_measurements=True)]
        assert rule_trials(session, sid) == [t for t in full if t.state != TrialState.FAILED]
    shown = client.get(f"{API}/{sid}").json()
    assert shown["trial_counts"] == {k: v for k, v in counts_of(study).items()}
    best = shown["best_trial"]
    assert (best["number"] if best else None) == (expected[0] if expected else None)


def suggest(client: TestClient, sid: int, cid: str) -> dict[str, Any]:
    r = client.post(f"{API}/{sid}/trials/suggest", json={"client_id": cid})
    assert r.status_code == 200, r.text
    return dict(r.json()["trials"][0])


@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_summary_matches_a_scan_through_every_event(db_url: str, goal: str) -> None:
    spec = small_spec("summary", algorithm="random", max_trials=40)
    spec["metrics"] = [{"name": "accuracy", "goal": goal}]
    spec["retries"] = {"max_retries": 1, "lease_seconds": 600}
    rng = np.random.default_rng(7)
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        sid = client.post(API, json=spec).json()["id"]
        check_summary(client, sid)
        for i in range(18):
            trial = suggest(client, sid, f"w{i % 3}")
            base = f"{API}/{sid}/trials/{trial['number']}"
            value = float(rng.choice([0.1, 0.5, 0.9, round(float(rng.random()), 3)]))
            step = {"step": 0, "values": {"accuracy": value}}
            assert client.post(f"{base}/measurements", json=step).status_code == 200
            kind = i % 6
            if kind == 1:
                body = {"reason": "node lost", "retry": True}
                assert client.post(f"{base}/fail", json=body).status_code == 200
            elif kind == 2:
                assert client.post(f"{base}/stop", json={}).status_code == 200
                check_summary(client, sid)
                done = client.post(f"{base}/complete", json={"values": {"accuracy": value}})
                assert done.status_code == 200
            elif kind == 3:
                body = {"infeasible": True, "reason": "OOM"}
                assert client.post(f"{base}/complete", json=body).status_code == 200
            elif kind != 5:  # kind 5 stays active
                done = client.post(f"{base}/complete", json={"values": {"accuracy": value}})
                assert done.status_code == 200
            check_summary(client, sid)
        queued = {"params": trial["params"], "state": "requested"}
        assert client.post(f"{API}/{sid}/trials", json=queued).status_code == 201
        added = {"params": trial["params"], "state": "completed", "values": {"accuracy": 0.95}}
        assert client.post(f"{API}/{sid}/trials", json=added).status_code == 201
        check_summary(client, sid)
        assert client.patch(f"{API}/{sid}", json={"state": "completed"}).status_code == 200
        check_summary(client, sid)


def test_a_migrated_study_without_best_is_computed_from_its_trials(db_url: str) -> None:
    """``best_trials`` NULL (a study from before 0007) is read by a scan and rebuilt at
    the next completion."""
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        sid = client.post(API, json=small_spec("legacy", algorithm="random")).json()["id"]
        for value in (0.3, 0.8, 0.5):
            trial = suggest(client, sid, "w")
            body = {"values": {"accuracy": value}}
            client.post(f"{API}/{sid}/trials/{trial['number']}/complete", json=body)
        db = client.app.state.db  # type: ignore[attr-defined]
        with db.write() as session:
            session.get(StudyRow, sid).best_trials = None  # type: ignore[union-attr]
        assert client.get(f"{API}/{sid}").json()["best_trial"]["values"]["accuracy"] == 0.8
        trial = suggest(client, sid, "w")
        body = {"values": {"accuracy": 0.1}}
        client.post(f"{API}/{sid}/trials/{trial['number']}/complete", json=body)
        with db.read() as session:
            stored = session.get(StudyRow, sid).best_trials  # type: ignore[union-attr]
        assert stored is not None and [e["values"]["accuracy"] for e in stored] == [0.8]
        check_summary(client, sid)


@pytest.mark.parametrize("goal", [Goal.MAXIMIZE, Goal.MINIMIZE])
def test_best_until_in_sql_matches_the_in_memory_view(db_url: str, goal: Goal) -> None:
    spec = small_spec("peers", algorithm="random")
    spec["metrics"] = [
        {"name": "accuracy", "goal": goal.value},
        {"name": "loss", "goal": "minimize", "role": "tracked"},
    ]
    rng = np.random.default_rng(3)
    with make_client(db_url, reconcile_interval_seconds=0) as client:
        sid = client.post(API, json=spec).json()["id"]
        for i in range(12):
            trial = suggest(client, sid, f"w{i}")
            base = f"{API}/{sid}/trials/{trial['number']}"
            start = int(rng.integers(0, 3))
            for step in range(start, start + int(rng.integers(1, 6))):
                values = {"loss": 1.0}
                if rng.random() < 0.8:  # sometimes only the tracked metric
                    values["accuracy"] = round(float(rng.random()), 4)
                client.post(f"{base}/measurements", json={"step": step, "values": values})
            if i % 4 == 1:
                client.post(f"{base}/fail", json={"reason": "x", "retry": False})
        db = client.app.state.db  # type: ignore[attr-defined]
        with db.read() as session:
            trials = load_trials(session, sid, with_measurements=True)
            excluded = session.query(TrialRow).filter_by(study_id=sid, number=0).one()
            sql = SqlPeerView(session, sid, Metric("accuracy", goal), excluded.id)
            memory = TrialsPeerView(trials, "accuracy", 0, goal=goal)
            for step in range(9):
                assert sorted(sql.best_until(step)) == sorted(memory.best_until(step)), step
                assert sorted(sql.values_at(step)) == sorted(memory.values_at(step)), step
