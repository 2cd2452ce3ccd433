"""ASHA end to end through the REST API, on SQLite and PostgreSQL.

Three simulated workers share one study: each suggests, trains one epoch per
round (posting a measurement), stops when the reply says so and completes the
trial with its last values, and resumes promoted trials from the step they
paused at. The test checks the pause / promote cycle: resumed trials keep
their number and parameters, no trial is held by two workers at once, none is
lost, and every trial ends finished; the same for ``hyperband``, which runs
ASHA in brackets. The same holds with four worker threads
against a live server (``test_asha_with_parallel_workers``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import LiveServer
from tests.specs import score, small_spec
from tuneforge.api.db.engine import Database
from tuneforge.api.db.repository import get_study_row

API = "/api/v1"
MAX_EPOCHS = 27
TRIALS = 12
FINISHED = {"completed", "pruned"}


def accuracy(params: dict[str, Any], epoch: int) -> float:
    """A learning curve towards ``score(params)``; speeds differ, so curves cross."""
    tau = 1.0 + 6.0 * (params["depth"] % 4)
    return round(score(params) * (1.0 - math.exp(-epoch / tau)), 6)


@dataclass
class Worker:
    name: str
    trial: dict[str, Any] | None = None
    epoch: int = 0
    done: bool = False


@dataclass
class Log:
    params: dict[int, dict[str, Any]] = field(default_factory=dict)
    paused_at: dict[int, int] = field(default_factory=dict)
    resumed: list[tuple[int, int]] = field(default_factory=list)
    epochs: int = 0


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{API}{path}", json=body)
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


def take(client: TestClient, sid: int, worker: Worker, others: list[Worker], log: Log) -> None:
    reply = post(client, f"/studies/{sid}/trials/suggest", {"count": 1, "client_id": worker.name})
    if not reply["trials"]:
        worker.done = reply["study_state"] == "completed"
        return
    (trial,) = reply["trials"]
    number = trial["number"]
    assert all(o.trial is None or o.trial["number"] != number for o in others), "held twice"
    if number in log.params:  # handed out before: only as a promotion of a paused trial
        assert number in log.paused_at, f"trial {number} came back without being paused"
        assert trial["params"] == log.params[number]
        assert trial["resume_from_step"] == log.paused_at.pop(number)
        log.resumed.append((number, trial["resume_from_step"]))
    else:
        assert trial["resume_from_step"] is None
        log.params[number] = trial["params"]
    worker.trial, worker.epoch = trial, trial["resume_from_step"] or 0


def train_one_epoch(client: TestClient, sid: int, worker: Worker, log: Log) -> None:
    assert worker.trial is not None
    number, params = worker.trial["number"], worker.trial["params"]
    worker.epoch += 1
    log.epochs += 1
    value = {"accuracy": accuracy(params, worker.epoch)}
    base = f"/studies/{sid}/trials/{number}"
    reply = post(client, f"{base}/measurements", {"step": worker.epoch, "values": value})
    if reply["should_stop"]:
        done = post(client, f"{base}/complete", {"values": value})
        assert done["state"] in ("paused", "pruned")
        if done["state"] == "paused":
            log.paused_at[number] = worker.epoch
        worker.trial = None
    elif worker.epoch >= MAX_EPOCHS:
        assert post(client, f"{base}/complete", {"values": value})["state"] == "completed"
        worker.trial = None


def run_study(client: TestClient, sid: int, n_workers: int = 3) -> Log:
    workers = [Worker(f"w{i}") for i in range(n_workers)]
    log = Log()
    for _ in range(2000):
        if all(w.done for w in workers):
            return log
        for w in workers:
            if w.done:
                continue
            if w.trial is None:
                take(client, sid, w, [o for o in workers if o is not w], log)
            else:
                train_one_epoch(client, sid, w, log)
    raise AssertionError("the study never finished")


def all_trials(client: TestClient, sid: int) -> list[dict[str, Any]]:
    r = client.get(f"{API}/studies/{sid}/trials", params={"page_size": 1000})
    assert r.status_code == 200, r.text
    trials: list[dict[str, Any]] = r.json()["trials"]
    return trials


@pytest.mark.parametrize(("rule", "n_trials"), [("asha", TRIALS), ("hyperband", 20)])
def test_asha_pauses_promotes_and_finishes_every_trial(
    client: TestClient, rule: str, n_trials: int
) -> None:
    spec = small_spec(
        rule,
        algorithm="random",
        seed=5,
        max_trials=n_trials,
        fidelity={"name": "epochs", "min": 1, "max": MAX_EPOCHS},
        early_stopping={"rule": rule, "reduction_factor": 3},
    )
    r = client.post(f"{API}/studies", json=spec)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    log = run_study(client, sid)

    study = client.get(f"{API}/studies/{sid}").json()
    assert study["state"] == "completed" and study["completion_reason"] == "max_trials"
    trials = all_trials(client, sid)
    assert [t["number"] for t in trials] == list(range(n_trials))  # none lost, no extra
    assert {t["state"] for t in trials} <= FINISHED
    assert log.resumed, "no paused trial was ever promoted"
    assert any(t["measurements"][-1]["step"] == MAX_EPOCHS for t in trials)
    # paused trials never promoted were pruned when the study ended, with the reason
    for number in log.paused_at:
        trial = trials[number]
        assert trial["state"] == "pruned"
        assert trial["reason"] == "paused and not promoted before the study ended"
    for number, step in log.resumed:  # a resumed trial trained on past its pause
        assert trials[number]["measurements"][-1]["step"] > step
        assert trials[number]["resume_from_step"] is not None
    assert log.epochs < n_trials * MAX_EPOCHS // 2  # far less than training every one fully


def test_asha_needs_a_fidelity_with_a_positive_min(client: TestClient) -> None:
    asha = {"rule": "asha"}
    r = client.post(f"{API}/studies", json=small_spec("a", early_stopping=asha))
    assert r.status_code == 422 and "fidelity" in r.json()["error"]["message"]
    zero = {"name": "epochs", "min": 0, "max": 9}
    r = client.post(f"{API}/studies", json=small_spec("b", early_stopping=asha, fidelity=zero))
    assert r.status_code == 422 and "fidelity.min" in r.json()["error"]["message"]
    bad = {"rule": "asha", "reduction_factor": 1}
    fid = {"name": "epochs", "min": 1, "max": 9}
    r = client.post(f"{API}/studies", json=small_spec("c", early_stopping=bad, fidelity=fid))
    assert r.status_code == 422
    assert "early_stopping.reduction_factor: must be an integer in [2, 100], got 1" in r.text


def test_asha_is_refused_for_managed_objectives_that_cannot_resume(client: TestClient) -> None:
    tree = {
        "kind": "sklearn",
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "dataset": {"source": "sklearn", "name": "iris"},
        "cv": {"type": "kfold", "n_splits": 3},
    }
    depth = [{"name": "max_depth", "type": "int", "low": 1, "high": 8}]
    asha = {"rule": "asha"}
    cases = [  # (fidelity, objective, the field the 422 names)
        ({"name": "epochs", "min": 1, "max": 9}, tree, "fidelity.name"),
        ({"name": "n_samples", "min": 10, "max": 90}, tree, "early_stopping.rule"),
        (
            {"name": "epochs", "min": 1, "max": 9},
            {"kind": "python", "callable": "tests.e2e.objectives:slow_quadratic"},
            "early_stopping.rule",
        ),
    ]
    for i, (fidelity, objective, named) in enumerate(cases):
        managed = small_spec(
            f"managed-{i}",
            fidelity=fidelity,
            early_stopping=asha,
            objective=objective,
            parameters=depth,
        )
        r = client.post(f"{API}/studies", json=managed)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"].startswith(f"{named}:"), r.text
    resumable = small_spec(
        "managed-ok",
        fidelity={"name": "folds", "min": 1, "max": 3},
        early_stopping=asha,
        objective=tree,
        parameters=depth,
    )
    assert client.post(f"{API}/studies", json=resumable).status_code == 201


def test_completing_the_study_by_hand_prunes_its_paused_trials(client: TestClient) -> None:
    fidelity = {"name": "epochs", "min": 1, "max": 9}
    spec = small_spec("hand", fidelity=fidelity, early_stopping={"rule": "asha"})
    sid = client.post(f"{API}/studies", json=spec).json()["id"]
    (trial,) = post(client, f"/studies/{sid}/trials/suggest", {"count": 1})["trials"]
    base = f"/studies/{sid}/trials/{trial['number']}"
    reply = post(client, f"{base}/measurements", {"step": 1, "values": {"accuracy": 0.5}})
    assert reply == {
        "should_stop": True,
        "trial_state": "stopping",
        "action": None,
        "next_decision_step": None,
    }
    assert post(client, f"{base}/complete", {"values": {"accuracy": 0.5}})["state"] == "paused"
    r = client.patch(f"{API}/studies/{sid}", json={"state": "completed"})
    assert r.status_code == 200 and r.json()["trial_counts"]["pruned"] == 1
    (pruned,) = all_trials(client, sid)
    assert pruned["state"] == "pruned" and pruned["values"] == {"accuracy": 0.5}
    assert pruned["reason"] == "paused and not promoted before the study ended"


# ---- real concurrency: four worker threads against a live server -------------------------


class Events:
    """A shared, ordered log of takes and releases of trials by workers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, str, int, Any]] = []
        self.errors: list[str] = []

    def add(self, kind: str, worker: str, number: int, data: Any = None) -> None:
        with self.lock:
            self.items.append((kind, worker, number, data))


def thread_worker(url: str, sid: int, name: str, events: Events) -> None:
    with httpx.Client(base_url=f"{url}{API}", timeout=60) as http:
        for _ in range(400):
            r = http.post(f"/studies/{sid}/trials/suggest", json={"count": 1, "client_id": name})
            if r.status_code != 200:
                events.errors.append(f"{name} suggest {r.status_code} {r.text[:200]}")
                return
            if not r.json()["trials"]:
                if r.json()["study_state"] == "completed":
                    return
                time.sleep(0.05)  # others are training; a paused trial may be promoted
                continue
            (trial,) = r.json()["trials"]
            events.add("take", name, trial["number"], (trial["params"], trial["resume_from_step"]))
            if not train(http, sid, name, trial, events):
                return
        events.errors.append(f"{name} never saw the study complete")


def train(http: httpx.Client, sid: int, name: str, trial: dict[str, Any], events: Events) -> bool:
    number, epoch = trial["number"], trial["resume_from_step"] or 0
    base = f"/studies/{sid}/trials/{number}"
    while True:
        epoch += 1
        values = {"accuracy": accuracy(trial["params"], epoch)}
        r = http.post(f"{base}/measurements", json={"step": epoch, "values": values})
        if r.status_code != 200:
            events.errors.append(f"{name} measure {number}: {r.status_code} {r.text[:200]}")
            return False
        if r.json()["should_stop"] or epoch >= MAX_EPOCHS:
            events.add("release", name, number, epoch)  # before the server can hand it on
            done = http.post(f"{base}/complete", json={"values": values})
            if done.status_code != 200:
                events.errors.append(f"{name} complete {number}: {done.text[:200]}")
                return False
            return True


def check_events(events: Events) -> dict[int, int]:
    """Holds never overlap; a trial handed out again comes back as itself, from its step.
    Returns how many times each trial was taken."""
    holder: dict[int, str] = {}
    released_at: dict[int, int] = {}
    first: dict[int, Any] = {}
    takes: dict[int, int] = {}
    for kind, worker, number, data in events.items:
        if kind == "take":
            assert number not in holder, f"trial {number} held by {holder.get(number)} and {worker}"
            holder[number] = worker
            params, resume = data
            takes[number] = takes.get(number, 0) + 1
            if number in first:
                assert params == first[number] and resume == released_at[number]
            else:
                assert resume is None
                first[number] = params
        else:
            assert holder.pop(number) == worker
            released_at[number] = data
    assert holder == {}
    return takes


def test_asha_with_parallel_workers(live_server: LiveServer) -> None:
    spec = small_spec(
        "asha-parallel",
        algorithm="random",
        seed=11,
        max_trials=16,
        fidelity={"name": "epochs", "min": 1, "max": MAX_EPOCHS},
        early_stopping={"rule": "asha"},
    )
    r = httpx.post(f"{live_server.url}{API}/studies", json=spec, timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    events = Events()
    threads = [
        threading.Thread(target=thread_worker, args=(live_server.url, sid, f"w{i}", events))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert events.errors == []
    takes = check_events(events)
    assert sorted(takes) == list(range(16)) and max(takes.values()) > 1  # some promoted
    with httpx.Client(base_url=f"{live_server.url}{API}", timeout=30) as http:
        study = http.get(f"/studies/{sid}").json()
        trials = http.get(f"/studies/{sid}/trials", params={"page_size": 100}).json()["trials"]
    assert study["state"] == "completed"
    assert len(trials) == 16 and {t["state"] for t in trials} <= FINISHED


def algorithm_state_after(client: TestClient, db_url: str, rule: str) -> dict[str, Any]:
    """Run a 20-trial TPE study under ``rule``; TPE's saved state at the end."""
    spec = small_spec(
        rule,
        algorithm="tpe",
        algorithm_options={"n_startup_trials": 4},
        seed=5,
        max_trials=20,
        fidelity={"name": "epochs", "min": 1, "max": MAX_EPOCHS},
        early_stopping={"rule": rule},
    )
    r = client.post(f"{API}/studies", json=spec)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    log = run_study(client, sid)
    trials = all_trials(client, sid)
    assert [t["number"] for t in trials] == list(range(20))
    assert {t["state"] for t in trials} <= FINISHED and log.resumed
    assert client.get(f"{API}/studies/{sid}").json()["state"] == "completed"
    db = Database(db_url)
    try:
        with db.read() as session:
            state = get_study_row(session, sid).algorithm_state
    finally:
        db.dispose()
    assert state is not None
    return state


def test_bohb_feeds_the_model_budget_level_results(client: TestClient, db_url: str) -> None:
    # Under Hyperband, TPE learns from finished trials and from paused ones as if pruned
    # where they stopped (were paused trials in flight, too few trials would finish before
    # the end and all 20 points would come from its Sobol start-up). Under BOHB it learns
    # from the trials' values at the largest budget with enough of them. Either way its
    # model takes over.
    hyperband = algorithm_state_after(client, db_url, "hyperband")
    assert hyperband["draws"] > 0 and hyperband["sobol_index"] < 20
    bohb = algorithm_state_after(client, db_url, "bohb")
    assert bohb["draws"] > 0 and bohb["sobol_index"] < 20
