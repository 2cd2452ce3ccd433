"""Population-based training through the real app, on SQLite and PostgreSQL.

A population of simulated workers trains in lock-step rounds of one epoch. Each
keeps its model (one number walking towards a target at a rate its ``lr`` sets)
in its trial's checkpoint. When a measurement's reply says ``exploit``, the
worker loads the donor's checkpoint through the checkpoint endpoint, takes the
new params and trains on. The test checks that every exploit copies the
checkpoint of a trial that ranked better at that step, that the history is in
``GET trial`` and the export, that a re-sent measurement gets the same action,
that suggest never starts more than the population, and that the population
ends better than it started, and better than its members would have alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

API = "/api/v1"
POPULATION = 6
EPOCHS = 12
TARGET = 10.0


def spec(name: str = "pbt") -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [
            {"name": "lr", "type": "float", "low": 0.01, "high": 0.6, "scale": "log"},
            {"name": "width", "type": "int", "low": 1, "high": 4},
        ],
        "metrics": [{"name": "score", "goal": "maximize"}],
        "algorithm": "random",
        "early_stopping": {
            "rule": "pbt",
            "population": POPULATION,
            "interval": 3,
            "quantile": 0.34,
            "perturb": 0.15,
        },
        "fidelity": {"name": "epochs", "min": 1, "max": EPOCHS},
        "max_trials": 50,
        "seed": 3,
    }


def train(x: float, params: dict[str, Any]) -> float:
    """One epoch: move towards the target at rate ``lr`` (wider models a little faster)."""
    return x + params["lr"] * (1 + 0.1 * params["width"]) * (TARGET - x)


def score(x: float) -> float:
    return round(-abs(TARGET - x), 9)


def alone(params: dict[str, Any], epochs: int = EPOCHS) -> float:
    x = 0.0
    for _ in range(epochs):
        x = train(x, params)
    return score(x)


@dataclass
class Member:
    number: int
    params: dict[str, Any]
    first_params: dict[str, Any]
    x: float = 0.0
    epoch: int = 0


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{API}{path}", json=body)
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


def checkpoint(client: TestClient, sid: int, number: int) -> bytes:
    r = client.get(f"{API}/studies/{sid}/trials/{number}/checkpoint")
    assert r.status_code == 200, r.text
    return r.content


def start_members(client: TestClient, sid: int) -> list[Member]:
    members = []
    for i in range(POPULATION + 2):  # two more workers ask than the population holds
        reply = post(client, f"/studies/{sid}/trials/suggest", {"count": 1, "client_id": f"w{i}"})
        for t in reply["trials"]:
            members.append(Member(t["number"], dict(t["params"]), dict(t["params"])))
    assert len(members) == POPULATION  # suggest hands out the population, no more
    return members


def epoch(client: TestClient, sid: int, m: Member, saved: dict[int, bytes]) -> dict[str, Any]:
    """Train one epoch, checkpoint, report; follow an exploit. Returns the exploit, if any."""
    m.x, m.epoch = train(m.x, m.params), m.epoch + 1
    blob = json.dumps({"x": m.x, "epoch": m.epoch}).encode()
    path = f"{API}/studies/{sid}/trials/{m.number}/checkpoint"
    assert client.put(path, content=blob, params={"step": m.epoch}).status_code == 200
    saved[m.number] = blob
    body = {"step": m.epoch, "values": {"score": score(m.x)}}
    reply = post(client, f"/studies/{sid}/trials/{m.number}/measurements", body)
    assert not reply["should_stop"]
    action = reply["action"]
    if action is None:
        return {}
    again = post(client, f"/studies/{sid}/trials/{m.number}/measurements", body)
    assert again["action"] == action  # a retried report gets the same instruction
    assert action["type"] == "exploit" and action["step"] == m.epoch
    donor_bytes = checkpoint(client, sid, action["from_trial"])
    assert donor_bytes == saved[action["from_trial"]]  # the donor's latest state
    m.x = json.loads(donor_bytes)["x"]
    m.params = dict(action["params"])
    return {"number": m.number, **action}


def test_pbt_exploits_better_checkpoints_and_improves_the_population(client: TestClient) -> None:
    sid = client.post(f"{API}/studies", json=spec()).json()["id"]
    members = start_members(client, sid)
    saved: dict[int, bytes] = {}
    scores_at: dict[tuple[int, int], float] = {}
    exploits = []
    for _ in range(EPOCHS):
        for m in members:
            before = score(train(m.x, m.params))
            scores_at[(m.number, m.epoch + 1)] = before
            found = epoch(client, sid, m, saved)
            if found:
                exploits.append(found)
    assert exploits, "no member exploited another"
    for e in exploits:
        assert scores_at[(e["from_trial"], e["step"])] > scores_at[(e["number"], e["step"])]
    for m in members:
        post(
            client, f"/studies/{sid}/trials/{m.number}/complete", {"values": {"score": score(m.x)}}
        )
        assert checkpoint(client, sid, m.number) == saved[m.number]  # finished: still readable
    study = client.get(f"{API}/studies/{sid}").json()
    assert study["state"] == "completed"
    assert study["completion_reason"] == "population_trained"

    start = [scores_at[(m.number, 1)] for m in members]
    final = [score(m.x) for m in members]
    assert sum(final) / len(final) > sum(start) / len(start)
    exploited = {e["number"] for e in exploits}
    own = [alone(m.first_params) for m in members if m.number in exploited]
    got = [score(m.x) for m in members if m.number in exploited]
    assert sum(got) / len(got) > sum(own) / len(own)  # better than training alone

    trial = client.get(f"{API}/studies/{sid}/trials/{exploits[0]['number']}").json()
    history = trial["metadata"]["pbt_history"]
    mine = [e for e in exploits if e["number"] == trial["number"]]
    assert [(h["step"], h["from_trial"], h["params"]) for h in history] == [
        (e["step"], e["from_trial"], e["params"]) for e in mine
    ]
    assert trial["params"] == mine[-1]["params"]
    assert history[0]["old_params"] == next(
        m.first_params for m in members if m.number == trial["number"]
    )
    exported = client.get(f"{API}/studies/{sid}/trials", params={"format": "jsonl"})
    assert exported.status_code == 200, exported.text
    rows = [json.loads(line) for line in exported.text.splitlines() if line.strip()]
    row = next(r for r in rows if r["number"] == trial["number"])
    assert row["metadata"]["pbt_history"] == history
    csv = client.get(f"{API}/studies/{sid}/trials", params={"format": "csv"})
    assert csv.status_code == 200 and "pbt_history" in csv.text.splitlines()[0]
    assert math.isfinite(sum(final))


def test_a_failed_member_is_replaced_within_the_population(client: TestClient) -> None:
    body = spec("pbt-fail")
    body["retries"] = {"max_retries": 0, "lease_seconds": 600}
    sid = client.post(f"{API}/studies", json=body).json()["id"]
    members = start_members(client, sid)
    post(client, f"/studies/{sid}/trials/{members[0].number}/fail", {"reason": "node lost"})
    reply = post(client, f"/studies/{sid}/trials/suggest", {"count": 3, "client_id": "late"})
    assert len(reply["trials"]) == 1  # one place came free
    assert reply["trials"][0]["number"] == POPULATION


def test_bad_pbt_options_are_422_naming_the_field(client: TestClient) -> None:
    body = spec("pbt-bad")
    body["early_stopping"]["quantile"] = 0.9
    r = client.post(f"{API}/studies", json=body)
    assert r.status_code == 422
    assert "early_stopping.quantile" in r.text
