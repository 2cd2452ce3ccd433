"""The percentile, threshold and patience rules through the REST API (SQLite and PostgreSQL):
a stopped trial is told to stop, and completing it records ``pruned`` with the rule's reason."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.specs import small_spec

API = "/api/v1"


def run_trial(client: TestClient, sid: int, curve: list[float]) -> dict[str, Any]:
    """One trial reporting ``curve`` step by step until told to stop; then complete it."""
    r = client.post(f"{API}/studies/{sid}/trials/suggest", json={"count": 1})
    (trial,) = r.json()["trials"]
    base = f"{API}/studies/{sid}/trials/{trial['number']}"
    values: dict[str, float] = {}
    for step, value in enumerate(curve):
        values = {"accuracy": value}
        reply = client.post(f"{base}/measurements", json={"step": step, "values": values})
        assert reply.status_code == 200, reply.text
        if reply.json()["should_stop"]:
            assert reply.json()["trial_state"] == "stopping"
            break
    done = client.post(f"{base}/complete", json={"values": values})
    assert done.status_code == 200, done.text
    out: dict[str, Any] = done.json()
    return out


@pytest.mark.parametrize(
    ("rule", "peers", "curve", "reason"),
    [
        ({"rule": "threshold", "lower": 0.3}, [], [0.5, 0.2, 0.9], "below 0.3"),
        ({"rule": "patience", "patience": 2}, [], [0.5, 0.6, 0.6, 0.55, 0.9], "did not improve"),
        (
            {"rule": "percentile", "percentile": 25, "n_startup_trials": 2, "min_peers": 2},
            [[0.8, 0.9], [0.7, 0.8]],
            [0.75, 0.6, 0.9],
            "best-25% cut-off",
        ),
    ],
)
def test_rule_prunes_through_the_api(
    client: TestClient,
    rule: dict[str, Any],
    peers: list[list[float]],
    curve: list[float],
    reason: str,
) -> None:
    r = client.post(f"{API}/studies", json=small_spec("rules", early_stopping=rule))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    for peer in peers:
        assert run_trial(client, sid, peer)["state"] == "completed"
    trial = run_trial(client, sid, curve)
    assert trial["state"] == "pruned" and reason in trial["reason"]
    assert trial["measurements"][-1]["step"] < len(curve) - 1  # stopped before the end


def test_a_rule_watches_the_named_objective(client: TestClient) -> None:
    metrics = [{"name": "accuracy"}, {"name": "loss", "goal": "minimize"}]
    rule = {"rule": "threshold", "upper": 1.0, "metric": "loss"}
    r = client.post(
        f"{API}/studies", json=small_spec("watch", metrics=metrics, early_stopping=rule)
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    (trial,) = client.post(f"{API}/studies/{sid}/trials/suggest", json={}).json()["trials"]
    base = f"{API}/studies/{sid}/trials/{trial['number']}"
    calm = {"accuracy": 0.1, "loss": 0.5}  # a poor accuracy does not matter to this rule
    assert not client.post(f"{base}/measurements", json={"step": 0, "values": calm}).json()[
        "should_stop"
    ]
    blown = {"accuracy": 0.9, "loss": 7.0}
    reply = client.post(f"{base}/measurements", json={"step": 1, "values": blown}).json()
    assert reply["should_stop"] is True
    done = client.post(f"{base}/complete", json={"values": blown}).json()
    assert done["state"] == "pruned" and "loss 7 is above 1" in done["reason"]


def test_wilcoxon_stops_a_trial_worse_on_every_fold(client: TestClient) -> None:
    rule = {"rule": "wilcoxon", "alpha": 0.1}
    sid = client.post(f"{API}/studies", json=small_spec("folds", early_stopping=rule)).json()["id"]

    def folds(scores: list[float]) -> dict[str, Any]:
        """Report the running mean after each fold, as tuneforge's CV workers do."""
        (trial,) = client.post(f"{API}/studies/{sid}/trials/suggest", json={}).json()["trials"]
        base = f"{API}/studies/{sid}/trials/{trial['number']}"
        mean = 0.0
        for k, score in enumerate(scores, start=1):
            mean = (mean * (k - 1) + score) / k
            reply = client.post(
                f"{base}/measurements", json={"step": k, "values": {"accuracy": mean}}
            )
            if reply.json()["should_stop"]:
                break
        out: dict[str, Any] = client.post(
            f"{base}/complete", json={"values": {"accuracy": mean}}
        ).json()
        return out

    best = [0.90, 0.88, 0.92, 0.91, 0.89]
    assert folds(best)["state"] == "completed"
    worse = folds([s - 0.04 for s in best])
    assert worse["state"] == "pruned" and "wilcoxon rule: on 4 folds" in worse["reason"]
    assert folds([0.91, 0.87, 0.93, 0.90, 0.90])["state"] == "completed"  # not worse
