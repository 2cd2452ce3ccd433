"""``auto`` picks ``bohb`` for a study that declares a fidelity and no early-stopping rule.

Through the real app: the study's reply shows the resolved rule, with its defaults,
and the rule then pauses trials like an explicit ``bohb``. Where bohb's conditions
do not hold, or the spec names its own rule or algorithm, nothing changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client
from tuneforge.core.errors import InvalidSpec
from tuneforge.core.study import parse_study_spec

API = "/api/v1"
FIDELITY = {"name": "epochs", "min": 1, "max": 27}


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "auto-fidelity",
        "parameters": [
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
            {"name": "depth", "type": "int", "low": 1, "high": 8},
        ],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "fidelity": FIDELITY,
    }
    body.update(overrides)
    return body


@pytest.fixture
def api(sqlite_url: str) -> Any:
    with make_client(sqlite_url, reconcile_interval_seconds=0) as c:
        yield c


def create(api: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(f"{API}/studies", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_auto_with_a_fidelity_resolves_to_bohb_in_the_reply(api: TestClient) -> None:
    study = create(api, spec())
    assert study["algorithm"] == "auto"
    rule = study["early_stopping"]
    assert (rule["rule"], rule["reduction_factor"]) == ("bohb", 3)
    again = api.get(f"{API}/studies/{study['id']}").json()
    assert again["early_stopping"] == study["early_stopping"]


def test_the_resolved_rule_pauses_trials(api: TestClient) -> None:
    """Four trials at the first rung: under bohb the worse ones are paused, not run on."""
    sid = create(api, spec())["id"]
    states = []
    for i in range(4):
        trial = api.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": "w"}).json()
        n = trial["trials"][0]["number"]
        value = {"accuracy": 0.9 - 0.1 * i}  # each new trial worse than the ones before
        reply = api.post(
            f"{API}/studies/{sid}/trials/{n}/measurements", json={"step": 1, "values": value}
        )
        if reply.json()["should_stop"]:
            states.append(
                api.post(f"{API}/studies/{sid}/trials/{n}/complete", json={"values": value}).json()[
                    "state"
                ]
            )
        else:
            states.append("running")
    assert "paused" in states


MANAGED = {
    "parameters": [{"name": "min_samples_split", "type": "int", "low": 2, "high": 50}],
    "fidelity": {"name": "n_estimators", "min": 10, "max": 90},
    "objective": {
        "kind": "sklearn",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "dataset": {"source": "sklearn", "name": "iris"},
        "cv": {"type": "stratified_kfold", "n_splits": 3},
    },
}


def test_a_managed_objective_keeps_what_its_workers_can_run() -> None:
    """The managed workers cannot resume paused trials yet: no bohb for them; if they can
    (the objective check accepts the pausing rule), auto's pick applies there too."""
    try:
        parse_study_spec(spec(**MANAGED, early_stopping={"rule": "bohb"}))
    except InvalidSpec:
        expected = "none"
    else:
        expected = "bohb"
    assert parse_study_spec(spec(**MANAGED)).early_stopping["rule"] == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"early_stopping": {"rule": "none"}}, "none"),  # the spec's own rule wins
        ({"early_stopping": {"rule": "asha"}}, "asha"),
        ({"algorithm": "tpe"}, "none"),  # only auto picks a rule
        ({"fidelity": None}, "none"),
        ({"fidelity": {"name": "rows", "min": 0, "max": 1000}}, "none"),  # bohb needs min > 0
        (
            {
                "metrics": [
                    {"name": "accuracy", "goal": "maximize"},
                    {"name": "latency", "goal": "minimize"},
                ]
            },
            "none",
        ),  # several objectives
        (
            {
                "metrics": [
                    {"name": "accuracy", "goal": "maximize"},
                    {"name": "size", "role": "constraint", "threshold": 10},
                ]
            },
            "none",
        ),  # an outcome constraint
    ],
)
def test_where_bohb_does_not_apply_the_rule_stays_as_given(
    overrides: dict[str, Any], expected: str
) -> None:
    assert parse_study_spec(spec(**overrides)).early_stopping["rule"] == expected
