"""``GET /studies/{id}/hypervolume`` and the spec's ``hypervolume_reference``, through the
real app (SQLite and PostgreSQL), checked against moocore and a hand-computed volume."""

from __future__ import annotations

from typing import Any

import moocore
import numpy as np
from fastapi.testclient import TestClient

API = "/api/v1"


def spec(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "metrics": [
            {"name": "acc", "goal": "maximize"},
            {"name": "size", "goal": "minimize"},
            {"name": "mem", "goal": "minimize", "role": "constraint", "threshold": 10},
        ],
        **extra,
    }


def complete(client: TestClient, sid: int, values: dict[str, float]) -> None:
    body = {"params": {"x": 0.5}, "state": "completed", "values": values}
    r = client.post(f"{API}/studies/{sid}/trials", json=body)
    assert r.status_code == 201, r.text


def test_history_with_the_spec_reference(client: TestClient) -> None:
    r = client.post(
        f"{API}/studies", json=spec("hv", hypervolume_reference={"acc": 0.0, "size": 10})
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["hypervolume_reference"] == {"acc": 0.0, "size": 10.0}
    complete(client, sid, {"acc": 0.5, "size": 5, "mem": 1})  # box 0.5 x 5 = 2.5
    complete(client, sid, {"acc": 0.9, "size": 9, "mem": 1})  # adds 0.4 x 1 = 0.4
    complete(client, sid, {"acc": 0.99, "size": 1, "mem": 20})  # breaks the constraint
    complete(client, sid, {"acc": 0.4, "size": 6, "mem": 1})  # dominated: nothing
    complete(client, sid, {"acc": 0.8, "size": 2, "mem": 1})  # the front becomes 0.8x8+0.1x1
    r = client.get(f"{API}/studies/{sid}/hypervolume")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reference_source"] == "spec" and body["reference_rule"] is None
    assert body["reference_point"] == {"acc": 0.0, "size": 10.0}
    assert body["objectives"] == ["acc", "size"]
    volumes = [h["hypervolume"] for h in body["history"]]
    assert np.allclose(volumes, [2.5, 2.9, 2.9, 2.9, 0.8 * 8 + 0.1 * 1])
    assert [h["number"] for h in body["history"]] == [0, 1, 2, 3, 4]
    assert body["n_trials"] == 5 and body["n_feasible"] == 4
    assert body["hypervolume"] == volumes[-1]


def test_an_inferred_reference_is_stated_and_matches_moocore(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=spec("hv-inferred")).json()["id"]
    rng = np.random.default_rng(0)
    points = rng.random((25, 2))
    for acc, size in points:
        complete(client, sid, {"acc": float(acc), "size": float(size), "mem": 0})
    body = client.get(f"{API}/studies/{sid}/hypervolume").json()
    assert body["reference_source"] == "inferred" and "worst value" in body["reference_rule"]
    losses = np.column_stack([-points[:, 0], points[:, 1]])
    span = losses.max(axis=0) - losses.min(axis=0)
    ref = losses.max(axis=0) + 0.1 * span
    assert np.allclose(
        [body["reference_point"]["acc"], body["reference_point"]["size"]], ref * [-1, 1]
    )
    assert np.isclose(body["hypervolume"], moocore.hypervolume(losses, ref=ref))
    volumes = [h["hypervolume"] for h in body["history"]]
    assert volumes == sorted(volumes) and len(volumes) == 25


def test_a_single_objective_study_is_a_422_naming_metrics(client: TestClient) -> None:
    one = {"name": "one", "parameters": spec("x")["parameters"], "metrics": [{"name": "loss"}]}
    sid = client.post(f"{API}/studies", json=one).json()["id"]
    r = client.get(f"{API}/studies/{sid}/hypervolume")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "metrics"
    assert client.get(f"{API}/studies/999999/hypervolume").status_code == 404


def test_bad_references_are_422s_naming_the_field(client: TestClient) -> None:
    cases = [
        ({"acc": 0.0}, "hypervolume_reference.size"),
        ({"acc": 0.0, "size": 1, "mem": 3}, "hypervolume_reference.mem"),
        ({"acc": "high", "size": 1}, "hypervolume_reference.acc"),
        ([0, 1], "hypervolume_reference"),
    ]
    for reference, field in cases:
        r = client.post(f"{API}/studies", json=spec("bad", hypervolume_reference=reference))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["field"] == field, r.text
    one = {
        "name": "one",
        "parameters": spec("x")["parameters"],
        "metrics": [{"name": "loss"}],
        "hypervolume_reference": {"loss": 1},
    }
    r = client.post(f"{API}/studies", json=one)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "hypervolume_reference"
