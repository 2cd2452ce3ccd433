"""A table of bad inputs: each gets a 4xx with the docs/api.md error body naming the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.specs import small_spec

API = "/api/v1"
Spec = dict[str, Any]


def with_param(i: int, **changes: Any) -> Callable[[Spec], None]:
    def edit(spec: Spec) -> None:
        spec["parameters"][i].update(changes)

    return edit


def setting(**changes: Any) -> Callable[[Spec], None]:
    def edit(spec: Spec) -> None:
        spec.update(changes)

    return edit


# (case id, edit of the spec, expected status, text the message must contain)
SPEC_CASES: list[tuple[str, Callable[[Spec], None], int, str]] = [
    ("type-unknown", with_param(0, type="complex"), 422, "parameters[0].type"),
    ("low-not-number", with_param(0, low="tiny"), 422, "parameters[0].low"),
    ("high-below-low", with_param(1, low=5, high=2), 422, "parameters[1].high"),
    ("low-equals-high", with_param(1, low=3, high=3), 422, "parameters[1].high"),
    ("log-nonpositive", with_param(0, low=0.0), 422, "parameters[0].low"),
    ("scale-unknown", with_param(0, scale="sqrt"), 422, "parameters[0].scale"),
    ("int-fractional-bound", with_param(1, high=7.5), 422, "parameters[1].high"),
    ("step-negative", with_param(1, step=-1), 422, "parameters[1].step"),
    ("step-too-large", with_param(1, step=100), 422, "parameters[1].step"),
    ("discrete-empty", with_param(2, values=[]), 422, "parameters[2].values"),
    ("discrete-not-numbers", with_param(2, values=[1, "x"]), 422, "parameters[2].values[1]"),
    (
        "categorical-duplicates",
        with_param(3, values=["adam", "adam"]),
        422,
        "parameters[3].values[1]",
    ),
    ("duplicate-name", with_param(1, name="lr"), 422, "parameters[1].name"),
    ("empty-name", with_param(1, name=""), 422, "parameters[1].name"),
    (
        "condition-unknown-parent",
        with_param(4, condition={"parent": "nope", "values": ["sgd"]}),
        422,
        "parameters[4].condition.parent",
    ),
    (
        "condition-bad-value",
        with_param(4, condition={"parent": "optimizer", "values": ["rmsprop"]}),
        422,
        "parameters[4].condition.values[0]",
    ),
    (
        "condition-self",
        with_param(4, condition={"parent": "momentum", "values": [1]}),
        422,
        "parameters[4].condition.parent",
    ),
    ("unknown-parameter-field", with_param(0, colour="red"), 422, "parameters[0].colour"),
    ("no-parameters", setting(parameters=[]), 422, "parameters"),
    ("no-metrics", setting(metrics=[]), 422, "metrics"),
    ("metric-goal", setting(metrics=[{"name": "a", "goal": "best"}]), 422, "metrics[0].goal"),
    ("duplicate-metric", setting(metrics=[{"name": "a"}, {"name": "a"}]), 422, "metrics[1].name"),
    (
        "constraint-no-threshold",
        setting(metrics=[{"name": "a"}, {"name": "b", "role": "constraint"}]),
        422,
        "metrics[1].threshold",
    ),
    ("unknown-algorithm", setting(algorithm="magic"), 422, "algorithm"),
    (
        "unknown-algorithm-option",
        setting(algorithm="random", algorithm_options={"speed": 11}),
        422,
        "algorithm_options.speed",
    ),
    ("auto-with-options", setting(algorithm_options={"x": 1}), 422, "algorithm_options.x"),
    ("grid-needs-steps", setting(algorithm="grid"), 422, "lr"),
    ("unknown-rule", setting(early_stopping={"rule": "oracle"}), 422, "early_stopping.rule"),
    (
        "unknown-rule-option",
        setting(early_stopping={"rule": "median", "patience": 3}),
        422,
        "early_stopping.patience",
    ),
    ("negative-max-trials", setting(max_trials=-1), 422, "max_trials"),
    ("zero-max-active", setting(max_active_trials=0), 422, "max_active_trials"),
    ("string-budget", setting(max_failed_trials="ten"), 422, "max_failed_trials"),
    ("negative-retries", setting(retries={"max_retries": -1}), 422, "retries.max_retries"),
    ("zero-lease", setting(retries={"lease_seconds": 0}), 422, "retries.lease_seconds"),
    ("seed-negative", setting(seed=-5), 422, "seed"),
    (
        "fidelity-min-max",
        setting(fidelity={"name": "epochs", "min": 9, "max": 3}),
        422,
        "fidelity.max",
    ),
    ("objective-kind", setting(objective={"kind": "magic"}), 422, "objective.kind"),
    ("unknown-top-level-field", setting(colour="blue"), 422, "colour"),
    ("name-missing", setting(name=None), 422, "name"),
]


def assert_error(r: Any, status: int, needle: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert needle in body["error"]["message"], body


@pytest.mark.parametrize(
    ("edit", "status", "needle"), [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES]
)
def test_bad_study_specs(
    client: TestClient, edit: Callable[[Spec], None], status: int, needle: str
) -> None:
    spec = copy.deepcopy(small_spec())
    edit(spec)
    if spec.get("name") is None:
        spec.pop("name")
    assert_error(client.post(f"{API}/studies", json=spec), status, needle)
    assert client.get(f"{API}/studies").json()["studies"] == []


@pytest.fixture
def running(client: TestClient) -> tuple[TestClient, int, int]:
    sid = client.post(f"{API}/studies", json=small_spec()).json()["id"]
    trial = client.post(f"{API}/studies/{sid}/trials/suggest", json={"client_id": "w"}).json()
    return client, sid, trial["trials"][0]["number"]


REQUEST_CASES: list[tuple[str, str, str, Any, int, str]] = [
    ("malformed-json", "POST", "/studies", b'{"name": ', 400, "not valid JSON"),
    ("body-not-object", "POST", "/studies", [1, 2], 422, "body"),
    ("unknown-study", "GET", "/studies/999999", None, 404, "study 999999"),
    ("study-id-not-int", "GET", "/studies/abc", None, 422, "study_id"),
    ("huge-study-id", "GET", "/studies/99999999999999999999999", None, 422, "study_id"),
    ("huge-trial-number", "POST", "/studies/{sid}/trials/3000000000/heartbeat", {}, 422, "number"),
    ("unknown-trial", "GET", "/studies/{sid}/trials/777", None, 404, "trial 777"),
    ("count-zero", "POST", "/studies/{sid}/trials/suggest", {"count": 0}, 422, "count"),
    ("count-huge", "POST", "/studies/{sid}/trials/suggest", {"count": 10**6}, 422, "count"),
    ("count-string", "POST", "/studies/{sid}/trials/suggest", {"count": "3"}, 422, "count"),
    (
        "unknown-param-in-params",
        "POST",
        "/studies/{sid}/trials",
        {"params": {"lr": 0.01, "depth": 3, "batch": 16, "optimizer": "adam", "width": 3}},
        422,
        "params.width",
    ),
    (
        "param-out-of-bounds",
        "POST",
        "/studies/{sid}/trials",
        {"params": {"lr": 5.0, "depth": 3, "batch": 16, "optimizer": "adam"}},
        422,
        "params.lr",
    ),
    (
        "inactive-param-given",
        "POST",
        "/studies/{sid}/trials",
        {"params": {"lr": 0.01, "depth": 3, "batch": 16, "optimizer": "adam", "momentum": 0.1}},
        422,
        "params.momentum",
    ),
    (
        "missing-param",
        "POST",
        "/studies/{sid}/trials",
        {"params": {"lr": 0.01}},
        422,
        "params.depth",
    ),
    (
        "bad-trial-state",
        "POST",
        "/studies/{sid}/trials",
        {"params": {"lr": 0.01, "depth": 3, "batch": 16, "optimizer": "adam"}, "state": "active"},
        422,
        "state",
    ),
    (
        "wrong-metric-on-complete",
        "POST",
        "/studies/{sid}/trials/{n}/complete",
        {"values": {"acc": 0.5}},
        422,
        "values.acc",
    ),
    (
        "missing-metric-on-complete",
        "POST",
        "/studies/{sid}/trials/{n}/complete",
        {"values": {}},
        422,
        "values.accuracy",
    ),
    (
        "non-number-metric",
        "POST",
        "/studies/{sid}/trials/{n}/measurements",
        {"step": 1, "values": {"accuracy": "high"}},
        422,
        "values.accuracy",
    ),
    (
        "negative-step",
        "POST",
        "/studies/{sid}/trials/{n}/measurements",
        {"step": -1, "values": {"accuracy": 0.5}},
        422,
        "step",
    ),
    (
        "negative-elapsed",
        "POST",
        "/studies/{sid}/trials/{n}/measurements",
        {"step": 1, "values": {"accuracy": 0.5}, "elapsed_seconds": -3},
        422,
        "elapsed_seconds",
    ),
    ("patch-unknown-state", "PATCH", "/studies/{sid}", {"state": "sleeping"}, 422, "state"),
    ("patch-negative-budget", "PATCH", "/studies/{sid}", {"max_trials": -4}, 422, "max_trials"),
    ("patch-unknown-field", "PATCH", "/studies/{sid}", {"algorithm": "grid"}, 422, "algorithm"),
    ("bad-page-token", "GET", "/studies?page_token=garbage", None, 422, "page_token"),
    ("bad-page-size", "GET", "/studies/{sid}/trials?page_size=0", None, 422, "page_size"),
    ("bad-state-filter", "GET", "/studies/{sid}/trials?state=sleeping", None, 422, "state"),
    ("unknown-route", "GET", "/nothing-here", None, 404, "Not Found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [c[1:] for c in REQUEST_CASES],
    ids=[c[0] for c in REQUEST_CASES],
)
def test_bad_requests(
    running: tuple[TestClient, int, int],
    method: str,
    path: str,
    body: Any,
    status: int,
    needle: str,
) -> None:
    client, sid, n = running
    url = API + path.format(sid=sid, n=n)
    if isinstance(body, bytes):
        r = client.request(method, url, content=body, headers={"content-type": "application/json"})
    else:
        r = client.request(method, url, json=body)
    assert_error(r, status, needle)
    trial = client.get(f"{API}/studies/{sid}/trials/{n}").json()
    assert trial["state"] == "active" and trial["measurements"] == []


def test_oversized_body_gets_413(db_url: str) -> None:
    from tests.conftest import make_client

    with make_client(db_url, max_body_bytes=10_000, reconcile_interval_seconds=0) as client:
        spec = small_spec(metadata={"blob": "x" * 20_000})
        assert_error(client.post(f"{API}/studies", json=spec), 413, "exceeds")
