"""``GET /studies/{id}/importance`` through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

API = "/api/v1"


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [
            {"name": "x0", "type": "float", "low": 0, "high": 1},
            {"name": "x1", "type": "float", "low": 0, "high": 1},
            {"name": "noise", "type": "int", "low": 1, "high": 8},
            {"name": "kind", "type": "categorical", "values": ["a", "b"]},
        ],
        "metrics": [
            {"name": "loss", "goal": "minimize"},
            {"name": "seconds", "goal": "minimize", "role": "tracked"},
        ],
        "seed": 4,
    }


def add_trials(client: TestClient, sid: int, n: int, seed: int = 0) -> None:
    """Completed trials of ``loss = 8 x0 + 2 x1 x2-ish``: x0 dominates; ``seconds`` follows
    ``kind`` only."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x0, x1 = float(rng.random()), float(rng.random())
        kind = "a" if rng.random() < 0.5 else "b"
        params = {"x0": x0, "x1": x1, "noise": int(rng.integers(1, 9)), "kind": kind}
        values = {"loss": 8 * x0 + x1, "seconds": 10.0 if kind == "a" else 1.0}
        r = client.post(
            f"{API}/studies/{sid}/trials",
            json={"params": params, "state": "completed", "values": values},
        )
        assert r.status_code == 201, r.text


def test_importance_ranks_parameters_and_reports_pairs(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=spec("imp")).json()["id"]
    add_trials(client, sid, 60)
    r = client.get(f"{API}/studies/{sid}/importance")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["objective"] == "loss" and body["n_trials"] == 60
    names = [p["name"] for p in body["params"]]
    assert names[0] == "x0" and names[1] == "x1" and set(names) == {"x0", "x1", "noise", "kind"}
    shares = [p["importance"] for p in body["params"]]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0.9
    assert len(body["interactions"]) == 6  # every pair of 4 parameters
    pair_shares = [i["importance"] for i in body["interactions"]]
    assert pair_shares == sorted(pair_shares, reverse=True)
    assert all(len(i["params"]) == 2 for i in body["interactions"])
    # the same study version answers from the cache: the very same numbers
    assert client.get(f"{API}/studies/{sid}/importance").json() == body
    tracked = client.get(f"{API}/studies/{sid}/importance", params={"objective": "seconds"})
    assert tracked.status_code == 200 and tracked.json()["params"][0]["name"] == "kind"


def test_new_trials_change_the_answer(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=spec("imp-grows")).json()["id"]
    add_trials(client, sid, 10)
    first = client.get(f"{API}/studies/{sid}/importance").json()
    add_trials(client, sid, 10, seed=1)
    second = client.get(f"{API}/studies/{sid}/importance").json()
    assert (first["n_trials"], second["n_trials"]) == (10, 20)


def test_too_few_trials_unknown_objective_and_unknown_study(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=spec("imp-few")).json()["id"]
    add_trials(client, sid, 4)
    few = client.get(f"{API}/studies/{sid}/importance")
    assert few.status_code == 409
    error = few.json()["error"]
    assert error["code"] == "conflict" and "at least 5 completed trials" in error["message"]
    assert error["details"] == {"n_trials": 4, "min_trials": 5}
    bad = client.get(f"{API}/studies/{sid}/importance", params={"objective": "f1"})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"] == "objective"
    assert "f1" in bad.json()["error"]["message"]
    assert client.get(f"{API}/studies/999999/importance").status_code == 404
