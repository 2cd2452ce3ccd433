"""The storage/service contract: the same behaviour on SQLite and PostgreSQL,
through the real FastAPI app."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.specs import score, small_spec

API = "/api/v1"


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    r = client.post(f"{API}/studies", json=small_spec(**overrides))
    assert r.status_code == 201, r.text
    return r.json()


def suggest(
    client: TestClient, sid: int, count: int = 1, client_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"count": count}
    if client_id is not None:
        body["client_id"] = client_id
    r = client.post(f"{API}/studies/{sid}/trials/suggest", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def complete(client: TestClient, sid: int, trial: dict[str, Any]) -> dict[str, Any]:
    r = client.post(
        f"{API}/studies/{sid}/trials/{trial['number']}/complete",
        json={"values": {"accuracy": score(trial["params"])}},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_create_returns_the_study_shape(client: TestClient) -> None:
    study = create(client, max_trials=10)
    for key in (
        "id",
        "state",
        "created_at",
        "updated_at",
        "trial_counts",
        "best_trial",
        "parameters",
        "metrics",
        "algorithm",
        "early_stopping",
        "retries",
        "seed",
    ):
        assert key in study
    assert study["state"] == "active"
    assert study["best_trial"] is None
    assert study["trial_counts"]["completed"] == 0
    assert client.get(f"{API}/studies/{study['id']}").json()["name"] == "study"


def test_duplicate_name_conflicts_unless_if_exists_return(client: TestClient) -> None:
    first = create(client)
    again = client.post(f"{API}/studies", json=small_spec())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    same = client.post(f"{API}/studies?if_exists=return", json=small_spec())
    assert same.status_code == 200 and same.json()["id"] == first["id"]
    different = client.post(f"{API}/studies?if_exists=return", json=small_spec(seed=7))
    assert different.status_code == 409


def test_suggest_complete_best_round_trip(client: TestClient) -> None:
    sid = create(client, max_trials=6)["id"]
    seen = []
    for _ in range(6):
        (trial,) = suggest(client, sid, client_id="w")["trials"]
        assert trial["state"] == "active" and trial["client_id"] == "w"
        assert trial["lease_expires_at"] is not None
        done = complete(client, sid, trial)
        assert done["state"] == "completed"
        seen.append(done)
    assert [t["number"] for t in seen] == list(range(6))
    reply = suggest(client, sid, client_id="w")
    assert reply == {"trials": [], "study_state": "completed"}
    best = client.get(f"{API}/studies/{sid}/best").json()["trials"]
    assert len(best) == 1
    assert best[0]["values"]["accuracy"] == max(t["values"]["accuracy"] for t in seen)
    study = client.get(f"{API}/studies/{sid}").json()
    assert study["state"] == "completed" and study["trial_counts"]["completed"] == 6
    assert study["best_trial"]["number"] == best[0]["number"]


def test_suggest_with_client_id_is_idempotent(client: TestClient) -> None:
    sid = create(client)["id"]
    first = suggest(client, sid, count=2, client_id="host-7:worker-2")["trials"]
    again = suggest(client, sid, count=2, client_id="host-7:worker-2")["trials"]
    assert [t["number"] for t in again] == [t["number"] for t in first]
    other = suggest(client, sid, count=1, client_id="someone-else")["trials"]
    assert other[0]["number"] not in {t["number"] for t in first}
    anonymous = [suggest(client, sid)["trials"][0]["number"] for _ in range(2)]
    assert len(set(anonymous)) == 2


def test_batch_is_distinct_and_respects_count(client: TestClient) -> None:
    sid = create(client)["id"]
    trials = suggest(client, sid, count=8)["trials"]
    assert len(trials) == 8
    keys = {tuple(sorted(t["params"].items())) for t in trials}
    assert len(keys) == 8


def test_requested_trials_come_first(client: TestClient) -> None:
    sid = create(client)["id"]
    params = {"lr": 0.01, "depth": 3, "batch": 32, "optimizer": "sgd", "momentum": 0.5}
    queued = client.post(
        f"{API}/studies/{sid}/trials", json={"params": params, "state": "requested"}
    )
    assert queued.status_code == 201 and queued.json()["state"] == "requested"
    (trial,) = suggest(client, sid, client_id="a")["trials"]
    assert trial["number"] == queued.json()["number"] and trial["params"] == params


def test_add_completed_trial_counts_for_best(client: TestClient) -> None:
    sid = create(client)["id"]
    params = {"lr": 0.01, "depth": 6, "batch": 32, "optimizer": "adam"}
    r = client.post(
        f"{API}/studies/{sid}/trials",
        json={"params": params, "state": "completed", "values": {"accuracy": 0.99}},
    )
    assert r.status_code == 201 and r.json()["state"] == "completed"
    assert client.get(f"{API}/studies/{sid}/best").json()["trials"][0]["params"] == params


def test_finished_trial_answers_every_write_with_409(client: TestClient) -> None:
    sid = create(client)["id"]
    (trial,) = suggest(client, sid, client_id="w")["trials"]
    complete(client, sid, trial)
    n = trial["number"]
    writes = [
        ("measurements", {"step": 1, "values": {"accuracy": 0.5}}),
        ("heartbeat", {}),
        ("complete", {"values": {"accuracy": 0.1}}),
        ("complete", {"infeasible": True, "reason": "again"}),
        ("fail", {"reason": "late", "retry": True}),
        ("stop", {}),
    ]
    for verb, body in writes:
        r = client.post(f"{API}/studies/{sid}/trials/{n}/{verb}", json=body)
        assert r.status_code == 409, (verb, r.text)
        assert r.json()["error"]["code"] == "conflict"
    stored = client.get(f"{API}/studies/{sid}/trials/{n}").json()
    assert stored["values"] == {"accuracy": score(trial["params"])}


def test_repeated_measurement_step_is_a_no_op(client: TestClient) -> None:
    sid = create(client)["id"]
    (trial,) = suggest(client, sid, client_id="w")["trials"]
    url = f"{API}/studies/{sid}/trials/{trial['number']}/measurements"
    first = client.post(url, json={"step": 3, "values": {"accuracy": 0.5}, "elapsed_seconds": 1.5})
    again = client.post(url, json={"step": 3, "values": {"accuracy": 0.9}})
    assert first.status_code == again.status_code == 200
    assert first.json() == {
        "should_stop": False,
        "trial_state": "active",
        "action": None,
        "next_decision_step": None,
    }
    stored = client.get(f"{API}/studies/{sid}/trials/{trial['number']}").json()
    assert stored["measurements"] == [
        {"step": 3, "values": {"accuracy": 0.5}, "elapsed_seconds": 1.5}
    ]


def test_nan_and_infinite_values_are_rejected(client: TestClient) -> None:
    sid = create(client)["id"]
    (trial,) = suggest(client, sid, client_id="w")["trials"]
    base = f"{API}/studies/{sid}/trials/{trial['number']}"
    for bad in ("NaN", "Infinity", "-Infinity"):
        body = '{"step": 1, "values": {"accuracy": ' + bad + "}}"
        r = client.post(
            f"{base}/measurements", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert "values.accuracy" in r.json()["error"]["message"]
        body = '{"values": {"accuracy": ' + bad + "}}"
        r = client.post(
            f"{base}/complete", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422
    assert client.get(base).json()["state"] == "active"


def test_infeasible_and_stop_and_fail(client: TestClient) -> None:
    sid = create(client, retries={"max_retries": 1, "lease_seconds": 60})["id"]
    a, b, c = suggest(client, sid, count=3, client_id="w")["trials"]
    r = client.post(
        f"{API}/studies/{sid}/trials/{a['number']}/complete",
        json={"infeasible": True, "reason": "OOM at this width"},
    )
    assert r.json()["state"] == "infeasible" and r.json()["reason"] == "OOM at this width"
    r = client.post(f"{API}/studies/{sid}/trials/{b['number']}/stop", json={})
    assert r.json()["state"] == "stopping"
    hb = client.post(f"{API}/studies/{sid}/trials/{b['number']}/heartbeat", json={}).json()
    assert hb == {"should_stop": True, "trial_state": "stopping"}
    assert complete(client, sid, b)["state"] == "completed"
    failed = client.post(
        f"{API}/studies/{sid}/trials/{c['number']}/fail",
        json={"reason": "node lost", "retry": True},
    ).json()
    assert failed["state"] == "failed" and failed["reason"] == "node lost"
    retry = client.get(f"{API}/studies/{sid}/trials?state=requested").json()["trials"]
    assert len(retry) == 1 and retry[0]["retry_of"] == c["number"]
    assert retry[0]["params"] == c["params"]
    (again,) = suggest(client, sid, client_id="w2")["trials"]
    assert again["number"] == retry[0]["number"]
    client.post(
        f"{API}/studies/{sid}/trials/{again['number']}/fail", json={"reason": "x", "retry": True}
    )
    assert client.get(f"{API}/studies/{sid}/trials?state=requested").json()["trials"] == []


def test_max_active_trials_and_budget_reopen(client: TestClient) -> None:
    sid = create(client, max_trials=3, max_active_trials=2)["id"]
    batch = suggest(client, sid, count=5)["trials"]
    assert len(batch) == 2
    assert suggest(client, sid)["trials"] == []
    for t in batch:
        complete(client, sid, t)
    (last,) = suggest(client, sid, count=5)["trials"]
    complete(client, sid, last)
    assert suggest(client, sid) == {"trials": [], "study_state": "completed"}
    r = client.patch(f"{API}/studies/{sid}", json={"max_trials": 5})
    assert r.status_code == 200 and r.json()["state"] == "active"
    assert len(suggest(client, sid, count=5)["trials"]) == 2


def test_pause_and_resume(client: TestClient) -> None:
    sid = create(client)["id"]
    assert (
        client.patch(f"{API}/studies/{sid}", json={"state": "paused"}).json()["state"] == "paused"
    )
    # a paused study answers "paused" (it may be resumed), not "completed"
    assert suggest(client, sid) == {"trials": [], "study_state": "paused"}
    assert client.get(f"{API}/studies/{sid}").json()["state"] == "paused"
    client.patch(f"{API}/studies/{sid}", json={"state": "active"})
    assert len(suggest(client, sid)["trials"]) == 1


def test_max_failed_trials_completes_the_study(client: TestClient) -> None:
    sid = create(client, max_failed_trials=2, retries={"max_retries": 0, "lease_seconds": 60})["id"]
    for _ in range(2):
        (t,) = suggest(client, sid)["trials"]
        client.post(f"{API}/studies/{sid}/trials/{t['number']}/fail", json={"reason": "boom"})
    study = client.get(f"{API}/studies/{sid}").json()
    assert study["state"] == "completed" and study["completion_reason"] == "max_failed_trials"


def test_listing_pages_and_filters(client: TestClient) -> None:
    for i in range(3):
        create(client, name=f"s{i}")
    page = client.get(f"{API}/studies?page_size=2").json()
    assert len(page["studies"]) == 2 and page["next_page_token"]
    rest = client.get(f"{API}/studies?page_size=2&page_token={page['next_page_token']}").json()
    assert [s["name"] for s in rest["studies"]] == ["s2"] and rest["next_page_token"] is None
    sid = page["studies"][0]["id"]
    trials = suggest(client, sid, count=5)["trials"]
    complete(client, sid, trials[0])
    got = client.get(f"{API}/studies/{sid}/trials?page_size=2").json()
    assert [t["number"] for t in got["trials"]] == [0, 1]
    nxt = client.get(f"{API}/studies/{sid}/trials?page_size=10&page_token={got['next_page_token']}")
    assert [t["number"] for t in nxt.json()["trials"]] == [2, 3, 4]
    done = client.get(f"{API}/studies/{sid}/trials?state=completed").json()["trials"]
    assert [t["number"] for t in done] == [trials[0]["number"]]
    stamp = done[0]["updated_at"]
    later = client.get(f"{API}/studies/{sid}/trials", params={"updated_after": stamp}).json()
    assert all(t["number"] != trials[0]["number"] for t in later["trials"])
    assert client.get(f"{API}/studies?state=completed").json()["studies"] == []


def test_delete_removes_study_and_trials(client: TestClient) -> None:
    sid = create(client)["id"]
    suggest(client, sid, count=2)
    assert client.delete(f"{API}/studies/{sid}").status_code == 204
    assert client.get(f"{API}/studies/{sid}").status_code == 404
    assert client.get(f"{API}/studies/{sid}/trials").status_code == 404
    assert create(client)["id"] != sid


def test_median_rule_stops_a_bad_trial_and_complete_prunes_it(client: TestClient) -> None:
    spec = {"rule": "median", "n_startup_trials": 2, "min_peers": 2}
    sid = create(client, early_stopping=spec)["id"]
    for value in (0.8, 0.9, 0.85):
        (t,) = suggest(client, sid)["trials"]
        base = f"{API}/studies/{sid}/trials/{t['number']}"
        client.post(f"{base}/measurements", json={"step": 1, "values": {"accuracy": value}})
        client.post(f"{base}/complete", json={"values": {"accuracy": value}})
    (bad,) = suggest(client, sid)["trials"]
    base = f"{API}/studies/{sid}/trials/{bad['number']}"
    reply = client.post(
        f"{base}/measurements", json={"step": 1, "values": {"accuracy": 0.1}}
    ).json()
    assert reply["should_stop"] is True and reply["trial_state"] == "stopping"
    done = client.post(f"{base}/complete", json={"values": {"accuracy": 0.1}}).json()
    assert done["state"] == "pruned"
    assert client.get(f"{API}/studies/{sid}/best").json()["trials"][0]["values"]["accuracy"] == 0.9


def test_multi_objective_best_is_the_pareto_front(client: TestClient) -> None:
    metrics = [{"name": "acc", "goal": "maximize"}, {"name": "latency", "goal": "minimize"}]
    sid = create(client, metrics=metrics)["id"]
    points = [(0.9, 10.0), (0.8, 5.0), (0.7, 20.0), (0.95, 30.0)]
    for acc, lat in points:
        (t,) = suggest(client, sid)["trials"]
        client.post(
            f"{API}/studies/{sid}/trials/{t['number']}/complete",
            json={"values": {"acc": acc, "latency": lat}},
        )
    front = client.get(f"{API}/studies/{sid}/best").json()["trials"]
    assert sorted((t["values"]["acc"], t["values"]["latency"]) for t in front) == [
        (0.8, 5.0),
        (0.9, 10.0),
        (0.95, 30.0),
    ]


def test_grid_study_completes_when_the_grid_is_used_up(client: TestClient) -> None:
    params = [
        {"name": "kernel", "type": "categorical", "values": ["rbf", "linear"]},
        {"name": "c", "type": "discrete", "values": [0.1, 1.0, 10.0]},
    ]
    sid = create(client, parameters=params, algorithm="grid", metrics=[{"name": "acc"}])["id"]
    seen = set()
    while True:
        reply = suggest(client, sid, count=4)
        for t in reply["trials"]:
            seen.add((t["params"]["kernel"], t["params"]["c"]))
            r = client.post(
                f"{API}/studies/{sid}/trials/{t['number']}/complete",
                json={"values": {"acc": t["params"]["c"]}},
            )
            assert r.status_code == 200
        if not reply["trials"]:
            break
    assert len(seen) == 6
    study = client.get(f"{API}/studies/{sid}").json()
    assert study["state"] == "completed"
    assert study["completion_reason"] == "search_space_exhausted"
    assert study["trial_counts"]["completed"] == 6


def test_best_trials_carry_their_measurements(client: TestClient) -> None:
    sid = create(client)["id"]
    (trial,) = suggest(client, sid)["trials"]
    base = f"{API}/studies/{sid}/trials/{trial['number']}"
    client.post(f"{base}/measurements", json={"step": 1, "values": {"accuracy": 0.4}})
    client.post(f"{base}/complete", json={"values": {"accuracy": 0.5}})
    expected = [{"step": 1, "values": {"accuracy": 0.4}, "elapsed_seconds": None}]
    assert client.get(f"{API}/studies/{sid}/best").json()["trials"][0]["measurements"] == expected
    assert client.get(f"{API}/studies/{sid}").json()["best_trial"]["measurements"] == expected


def test_trials_filter_by_client_id(client: TestClient) -> None:
    sid = create(client)["id"]
    mine = suggest(client, sid, count=2, client_id="me")["trials"]
    suggest(client, sid, count=1, client_id="other")
    got = client.get(f"{API}/studies/{sid}/trials", params={"client_id": "me"}).json()["trials"]
    assert [t["number"] for t in got] == [t["number"] for t in mine]


def test_conflict_on_a_finished_trial_names_its_state(client: TestClient) -> None:
    sid = create(client)["id"]
    (trial,) = suggest(client, sid)["trials"]
    complete(client, sid, trial)
    r = client.post(f"{API}/studies/{sid}/trials/{trial['number']}/fail", json={"reason": "x"})
    assert r.status_code == 409
    assert r.json()["error"]["details"]["trial_state"] == "completed"
