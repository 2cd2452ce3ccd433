"""The lifecycle module applies the engine's decisions to real rows, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.specs import small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.db.repository import get_study_row, get_trial_row, spec_of, utcnow
from tuneforge.api.services import completions
from tuneforge.api.services import trials as trial_service
from tuneforge.api.services.lifecycle import Scope, apply_decision
from tuneforge.api.services.studies import create_study
from tuneforge.core.decisions import (
    CONTINUE,
    NewParams,
    Pause,
    Prune,
    ResumeTrial,
    WorkerAction,
)
from tuneforge.core.errors import Conflict

PARAMS = {"lr": 0.01, "depth": 3, "batch": 16, "optimizer": "adam"}
API = "/api/v1"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def new_study(db: Database) -> int:
    study, _ = create_study(db, small_spec())
    return study.id


def apply(db: Database, sid: int, decision: object, number: int | None = None) -> tuple[str, int]:
    """Apply ``decision`` in one transaction; the trial's state and number after it."""
    with db.write() as session:
        study = get_study_row(session, sid, lock=True)
        scope = Scope(session, study, spec_of(study), utcnow(), "worker-1")
        row = get_trial_row(session, sid, number, lock=True) if number is not None else None
        out = apply_decision(scope, decision, row)  # type: ignore[arg-type]
        session.flush()
        return out.state, out.number


def test_new_params_become_an_active_trial(db: Database) -> None:
    sid = new_study(db)
    assert apply(db, sid, NewParams(PARAMS)) == ("active", 0)
    trial = trial_service.get_trial(db, sid, 0)
    assert trial.params == PARAMS and trial.client_id == "worker-1"
    assert trial.lease_expires_at is not None


def test_continue_and_an_action_leave_the_trial_running(db: Database) -> None:
    sid = new_study(db)
    apply(db, sid, NewParams(PARAMS))
    assert apply(db, sid, CONTINUE, 0) == ("active", 0)
    new = {**PARAMS, "depth": 5}
    exploit = WorkerAction("exploit", {"from_trial": 4, "params": new, "step": 8}, reason="pbt")
    assert apply(db, sid, exploit, 0) == ("active", 0)
    trial = trial_service.get_trial(db, sid, 0)
    assert trial.params == new  # the lifecycle wrote the explored params, and the history
    (entry,) = trial.metadata["pbt_history"]
    assert entry == {
        "step": 8,
        "type": "exploit",
        "from_trial": 4,
        "old_params": PARAMS,
        "params": new,
        "reason": "pbt",
    }
    assert apply(db, sid, WorkerAction("note", {"anything": 1}), 0) == ("active", 0)
    assert trial_service.get_trial(db, sid, 0).params == new


def test_prune_stops_then_completing_prunes(db: Database) -> None:
    sid = new_study(db)
    apply(db, sid, NewParams(PARAMS))
    assert apply(db, sid, Prune("worse than the median"), 0) == ("stopping", 0)
    done = completions.complete_trial(db, sid, 0, values={"accuracy": 0.4})
    assert done.state.value == "pruned" and done.reason == "worse than the median"


def test_pause_then_resume_keeps_number_and_params(db: Database) -> None:
    sid = new_study(db)
    apply(db, sid, NewParams(PARAMS))
    assert apply(db, sid, Pause("rung 0: not in the top third"), 0) == ("stopping", 0)
    paused = completions.complete_trial(db, sid, 0, values={"accuracy": 0.4})
    assert paused.state.value == "paused" and paused.values == {"accuracy": 0.4}
    assert paused.lease_expires_at is None and paused.completed_at is None
    assert apply(db, sid, ResumeTrial(0, 3, "promoted to rung 1")) == ("active", 0)
    resumed = trial_service.get_trial(db, sid, 0)
    assert resumed.resume_from_step == 3 and resumed.params == PARAMS
    assert resumed.reason == "promoted to rung 1" and resumed.lease_expires_at is not None
    done = completions.complete_trial(db, sid, 0, values={"accuracy": 0.9})
    assert done.state.value == "completed"  # not pruned: the pause is over


def test_only_a_paused_trial_can_be_resumed(db: Database) -> None:
    sid = new_study(db)
    apply(db, sid, NewParams(PARAMS))
    with pytest.raises(Conflict, match="only a paused trial"):
        apply(db, sid, ResumeTrial(0, 1))
    completions.complete_trial(db, sid, 0, values={"accuracy": 0.5})
    with pytest.raises(Conflict):
        apply(db, sid, Prune("too late"), 0)  # completed is final


def test_study_moves_follow_the_table(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=small_spec()).json()["id"]
    patch = f"{API}/studies/{sid}"
    assert client.patch(patch, json={"state": "completed"}).json()["completion_reason"] == "user"
    r = client.patch(patch, json={"state": "paused"})
    assert r.status_code == 409 and "cannot become paused" in r.json()["error"]["message"]
    assert client.patch(patch, json={"state": "completed"}).status_code == 200  # no-op
    reopened = client.patch(patch, json={"state": "active"}).json()
    assert reopened["state"] == "active" and reopened["completion_reason"] is None
    assert client.patch(patch, json={"state": "paused"}).json()["state"] == "paused"
