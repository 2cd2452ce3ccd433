"""Measurement replies say where the study's rule decides next (``next_decision_step``);
a report carries the measurements held back before it (``earlier``), stored in the same
transaction. Through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.specs import small_spec

API = "/api/v1"


def started(client: TestClient, **spec: Any) -> str:
    """A study with ``spec`` and one suggested trial; the trial's URL."""
    r = client.post(f"{API}/studies", json=small_spec(**spec))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    r = client.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": "w"})
    assert r.status_code == 200, r.text
    return f"{API}/studies/{sid}/trials/{r.json()['trials'][0]['number']}"


def report(client: TestClient, url: str, step: int, **body: Any) -> dict[str, Any]:
    r = client.post(f"{url}/measurements", json={"step": step, "values": {"accuracy": 0.5}, **body})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def point(step: int, accuracy: float = 0.5, **extra: Any) -> dict[str, Any]:
    return {"step": step, "values": {"accuracy": accuracy}, **extra}


ASHA = {
    "fidelity": {"name": "epochs", "min": 1, "max": 81},
    "early_stopping": {"rule": "asha", "reduction_factor": 3, "keep_leader": True},
}


def test_asha_replies_name_the_next_rung(client: TestClient) -> None:
    url = started(client, name="asha-next", **ASHA)
    got = {s: report(client, url, s)["next_decision_step"] for s in (1, 2, 3, 4, 9, 26, 27, 28)}
    assert got == {1: 3, 2: 3, 3: 9, 4: 9, 9: 27, 26: 27, 27: None, 28: None}
    assert report(client, url, 4)["next_decision_step"] == 9  # a repeated step answers too


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (None, None),
        ({"rule": "median"}, 6),
        ({"rule": "median", "n_warmup_steps": 10}, 10),
        ({"rule": "patience", "patience": 3}, 6),
        ({"rule": "threshold", "upper": 2.0}, 6),
    ],
)
def test_other_rules_reply_with_their_next_step(
    client: TestClient, rule: dict[str, Any] | None, expected: int | None
) -> None:
    spec = {} if rule is None else {"early_stopping": rule}
    url = started(client, name=f"next-{rule}", **spec)
    assert report(client, url, 5)["next_decision_step"] == expected


def test_a_stopped_trial_gets_no_next_step(client: TestClient) -> None:
    url = started(client, name="stopped", **ASHA)
    assert client.post(f"{url}/stop", json={}).status_code == 200
    reply = report(client, url, 1)
    assert reply["should_stop"] is True and reply["next_decision_step"] is None


def test_earlier_measurements_are_stored_with_the_report(client: TestClient) -> None:
    url = started(client, name="batch", **ASHA)
    assert report(client, url, 3, earlier=[point(1, 0.1), point(2, 0.2)])["should_stop"] is False
    reply = report(
        client,
        url,
        9,
        values={"accuracy": 0.9},
        earlier=[point(s, s / 10, elapsed_seconds=float(s)) for s in range(4, 9)],
    )
    assert reply == {
        "should_stop": False,
        "trial_state": "active",
        "action": None,
        "next_decision_step": 27,
    }
    stored = client.get(url).json()["measurements"]
    assert [m["step"] for m in stored] == list(range(1, 10))
    assert stored[4] == {"step": 5, "values": {"accuracy": 0.5}, "elapsed_seconds": 5.0}
    assert stored[8]["values"] == {"accuracy": 0.9}
    # Sent again (a retry after a lost reply): nothing changes.
    again = report(client, url, 9, values={"accuracy": 0.1}, earlier=[point(8, 0.0)])
    assert again["next_decision_step"] == 27
    assert client.get(url).json()["measurements"] == stored
    # A report whose earlier steps were stored before: only the new ones are added.
    report(client, url, 11, earlier=[point(8, 0.0), point(10, 0.7)])
    after = client.get(url).json()["measurements"]
    assert [m["step"] for m in after] == [*range(1, 12)]
    assert after[7]["values"] == {"accuracy": 0.8} and after[9]["values"] == {"accuracy": 0.7}


def test_earlier_measurements_on_a_study_without_rule(client: TestClient) -> None:
    url = started(client, name="batch-none")
    assert report(client, url, 4, earlier=[point(1), point(2)])["next_decision_step"] is None
    assert [m["step"] for m in client.get(url).json()["measurements"]] == [1, 2, 4]


def test_the_rule_decides_once_on_the_reported_step(client: TestClient) -> None:
    """A lone ASHA trial without ``keep_leader`` is paused at its first rung it reports;
    the earlier steps are stored first, and the decision is made on the report's step."""
    spec = {**ASHA, "early_stopping": {"rule": "asha", "reduction_factor": 3}}
    url = started(client, name="decide-once", **spec)
    reply = report(client, url, 1, earlier=[point(0)])
    assert reply["should_stop"] is True and reply["trial_state"] == "stopping"
    assert [m["step"] for m in client.get(url).json()["measurements"]] == [0, 1]


BAD = [
    ({"earlier": [point(2), point(2)]}, "earlier[1].step"),
    ({"earlier": [point(3), point(2)]}, "earlier[1].step"),
    ({"earlier": [point(5)]}, "earlier[0].step"),
    ({"earlier": [point(7)]}, "earlier[0].step"),
    ({"earlier": [point(-1)]}, "earlier[0].step"),
    ({"earlier": [{"step": 1, "values": {"nope": 1.0}}]}, "earlier[0].values.nope"),
    ({"earlier": [{"step": 1, "values": {"accuracy": "x"}}]}, "earlier[0].values.accuracy"),
    ({"earlier": [{"step": 1, "values": []}]}, "earlier[0].values"),
    ({"earlier": [point(1, elapsed_seconds=-1.0)]}, "earlier[0].elapsed_seconds"),
    ({"earlier": [{"step": 1}]}, "earlier[0].values"),
    ({"earlier": [{**point(1), "extra": 1}]}, "earlier[0].extra"),
    ({"earlier": [{"step": True, "values": {}}]}, "earlier[0].step"),
    ({"earlier": {"step": 1}}, "earlier"),
    ({"earlier": [point(s) for s in range(1001)], "step": 5000}, "earlier"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_a_bad_earlier_batch_is_a_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    url = started(client, name=f"bad-{field}", **ASHA)
    r = client.post(f"{url}/measurements", json={"step": 5, "values": {"accuracy": 0.5}, **body})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == field, r.text
    assert client.get(url).json()["measurements"] == []  # nothing of it was stored


def test_a_batch_of_the_largest_size_is_stored(client: TestClient) -> None:
    url = started(client, name="batch-max")
    report(client, url, 1000, earlier=[point(s) for s in range(1000)])
    assert len(client.get(url).json()["measurements"]) == 1001
