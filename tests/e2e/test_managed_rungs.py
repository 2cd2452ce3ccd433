"""A managed study trained by rungs on real Celery workers: a trial paused by one worker
process is resumed from its checkpoint by another.

Real processes throughout: the API server (SQLite and PostgreSQL), Redis, and two
``tuneforge worker`` processes. The first worker is shut down (warm: it finishes the
task it runs) right after it takes trial 0, so every promotion after that runs on the
second. The trial's checkpoint, downloaded while it waits paused, is compared with the
one it ends with: the resumed worker kept the very trees the first one grew (the forest
has no fixed seed, so trees grown again from scratch would differ), and the checkpoint's
record says who trained which rung, in which process, with how many trees before and after.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import LiveServer
from tests.e2e.conftest import E2E_TIMEOUT, Worker, all_trials, wait_for
from tuneforge.api.services.lifecycle import NOT_PROMOTED

pytestmark = pytest.mark.slow

#: Trial 0 learns; trials 1 and 2 cannot split at all (a forest of single leaves), so at
#: rung 10 trial 0 is the top third and is promoted, whoever ran the others.
PARAMS = [{"min_samples_split": 2}, {"min_samples_split": 500}, {"min_samples_split": 500}]


def rung_spec() -> dict[str, Any]:
    return {
        "name": "e2e-rungs",
        "parameters": [{"name": "min_samples_split", "type": "int", "low": 2, "high": 500}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "fidelity": {"name": "n_estimators", "min": 10, "max": 90},
        "early_stopping": {"rule": "asha", "reduction_factor": 3},
        "max_trials": len(PARAMS),
        "max_active_trials": 1,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "dataset": {"source": "sklearn", "name": "iris"},
            "cv": {"type": "stratified_kfold", "n_splits": 3},
            "scoring": "accuracy",
        },
    }


def warm_shutdown(worker: Worker) -> None:
    """SIGTERM to the worker's main process only: Celery finishes the running task, takes
    no other, and exits."""
    os.kill(worker.proc.pid, signal.SIGTERM)
    worker.proc.wait(timeout=E2E_TIMEOUT)


def checkpoint(http: httpx.Client, sid: int, number: int) -> dict[str, Any]:
    reply = http.get(f"/studies/{sid}/trials/{number}/checkpoint")
    assert reply.status_code == 200, reply.text
    data = pickle.loads(reply.content)
    assert isinstance(data, dict)
    return data


def trial(http: httpx.Client, sid: int, number: int) -> dict[str, Any]:
    return dict(http.get(f"/studies/{sid}/trials/{number}").json())


def test_a_paused_trial_resumes_from_its_checkpoint_on_another_worker_process(
    db_url: str, broker_url: str
) -> None:
    # start_server's settings; the first worker boots while the server does
    env = {
        "TUNEFORGE_BROKER_URL": broker_url,
        "TUNEFORGE_RECONCILE_INTERVAL_SECONDS": "0.5",
        "TUNEFORGE_DISPATCH_TTL_SECONDS": "6",
    }
    server = LiveServer(db_url, env=env)
    first = Worker(server.url, broker_url, "first")
    second: Worker | None = None
    http = httpx.Client(base_url=f"{server.url}/api/v1", timeout=E2E_TIMEOUT)
    try:
        server.start()
        sid = http.post("/studies", json=rung_spec()).json()["id"]
        for params in PARAMS:  # trials 0, 1, 2, handed out in this order
            r = http.post(f"/studies/{sid}/trials", json={"params": params, "state": "requested"})
            assert r.status_code == 201, r.text
        assert http.post(f"/studies/{sid}/run").status_code == 200
        wait_for(
            lambda: trial(http, sid, 0)["state"] != "requested",
            60,
            "a worker to take trial 0",
            0.05,
        )
        warm_shutdown(first)
        paused = trial(http, sid, 0)
        assert paused["state"] == "paused", f"the first worker should have paused it: {paused}"
        before = checkpoint(http, sid, 0)  # what the first worker process left
        second = Worker(server.url, broker_url, "second")
        study = wait_for(
            lambda: (s := http.get(f"/studies/{sid}").json())["state"] == "completed" and s,
            90,
            "the study to finish on the second worker",
        )
        trials = {t["number"]: t for t in all_trials(server.url, sid)}
        after = checkpoint(http, sid, 0)
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
        http.close()
        server.stop()

    # the study ran to its end: trial 0 trained to the full 90 trees, the others pruned
    assert study["best_trial"]["number"] == 0
    assert [m["step"] for m in trials[0]["measurements"]] == [10, 30, 90]
    assert trials[0]["state"] == "completed" and trials[0]["values"]["accuracy"] > 0.8
    for n in (1, 2):
        assert trials[n]["state"] == "pruned" and trials[n]["reason"] == NOT_PROMOTED
        assert [m["step"] for m in trials[n]["measurements"]] == [10]

    # who trained what: the first worker up to the paused rung, the second from there on
    segments = after["segments"]
    handover = before["resource"]
    assert before["segments"] == segments[: len(before["segments"])]
    assert {s["worker"].split("@")[0] for s in before["segments"]} == {"first"}
    later = segments[len(before["segments"]) :]
    assert later and {s["worker"].split("@")[0] for s in later} == {"second"}
    assert {s["pid"] for s in later}.isdisjoint({s["pid"] for s in before["segments"]})
    assert [s["from"] for s in segments] == [0, *[s["to"] for s in segments[:-1]]]
    assert segments[-1]["to"] == after["resource"] == 90
    for previous, segment in itertools.pairwise(segments):
        # each resumed part started from the checkpoint's trees and only added new ones
        assert segment["loaded_checkpoint"] is True
        assert segment["fitted_before"] == previous["fitted_after"] == [segment["from"]] * 3
    assert later[0]["from"] == handover and later[0]["fitted_before"] == [handover] * 3

    # the trees the first process grew are the ones the trial ends with (random_state is
    # unset: a forest retrained from scratch would have different trees)
    for old, new in zip(before["models"], after["models"], strict=True):
        assert len(old.estimators_) == handover and len(new.estimators_) == 90
        for grown, kept in zip(old.estimators_, new.estimators_[:handover], strict=True):
            np.testing.assert_array_equal(grown.tree_.threshold, kept.tree_.threshold)
            np.testing.assert_array_equal(grown.tree_.value, kept.tree_.value)
