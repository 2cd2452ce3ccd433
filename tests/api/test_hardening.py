"""Hostile requests against the real app on SQLite and PostgreSQL: text the database
cannot store, oversized and over-deep bodies (also chunked, through a real server),
absurd specs, float ranges wider than the largest float, suggest cost, 405 ``Allow``,
request ids and what ``/readyz`` reveals."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import LiveServer, free_port
from tests.specs import small_spec
from tuneforge.api.app import create_app
from tuneforge.api.settings import Settings
from tuneforge.api.text_guard import MAX_JSON_DEPTH
from tuneforge.core.space import MAX_CHOICES, MAX_PARAMETERS

API = "/api/v1"
JSON = {"content-type": "application/json"}
Call = Callable[[TestClient, int, int], httpx.Response]


def post_raw(client: TestClient, path: str, text: str) -> httpx.Response:
    """POST a JSON text as is (to send escapes such as ``\\ud800`` that json= cannot)."""
    return client.post(path, content=text.encode(), headers=JSON)


def spec_text(**changes: Any) -> str:
    return json.dumps(small_spec(**changes))


def with_param(i: int, key: str, value: Any) -> dict[str, Any]:
    spec = small_spec()
    spec["parameters"][i][key] = value
    return spec


# (case id, request given a study id and a trial number, field the reply must name)
TEXT_CASES: list[tuple[str, Call, str]] = [
    ("name-nul", lambda c, s, t: c.post(f"{API}/studies", json=small_spec("a\x00b")), "name"),
    (
        "name-surrogate",
        lambda c, s, t: post_raw(
            c, f"{API}/studies", spec_text(name="@@").replace("@@", "\\ud800")
        ),
        "name",
    ),
    (
        "param-name-nul",
        lambda c, s, t: c.post(f"{API}/studies", json=with_param(0, "name", "l\x00r")),
        "parameters[0].name",
    ),
    (
        "categorical-value-surrogate",
        lambda c, s, t: post_raw(
            c,
            f"{API}/studies",
            json.dumps(with_param(3, "values", ["adam", "@@"])).replace("@@", "x\\udc80"),
        ),
        "parameters[3].values[1]",
    ),
    (
        "description-nul",
        lambda c, s, t: c.post(f"{API}/studies", json=small_spec("d", description="x\x00")),
        "description",
    ),
    (
        "metadata-key-nul",
        lambda c, s, t: c.post(f"{API}/studies", json=small_spec("m", metadata={"k\x00": 1})),
        "metadata",
    ),
    (
        "patch-description-surrogate",
        lambda c, s, t: c.patch(
            f"{API}/studies/{s}", content=b'{"description": "\\udfff"}', headers=JSON
        ),
        "description",
    ),
    (
        "client-id-nul",
        lambda c, s, t: c.post(f"{API}/studies/{s}/trials/suggest", json={"client_id": "w\x00"}),
        "client_id",
    ),
    (
        "complete-reason-nul",
        lambda c, s, t: c.post(
            f"{API}/studies/{s}/trials/{t}/complete",
            json={"values": {"accuracy": 0.5}, "reason": "\x00"},
        ),
        "reason",
    ),
    (
        "queued-trial-param-surrogate",
        lambda c, s, t: post_raw(
            c, f"{API}/studies/{s}/trials", '{"params": {"optimizer": "\\ud83d"}}'
        ),
        "params.optimizer",
    ),
    ("name-filter-nul", lambda c, s, t: c.get(f"{API}/studies?name=a%00b"), "name"),
    (
        "client-filter-nul",
        lambda c, s, t: c.get(f"{API}/studies/{s}/trials?client_id=%00"),
        "client_id",
    ),
    ("path-nul", lambda c, s, t: c.get(f"{API}/studies/{s}%00"), "path"),
]


def snapshot(client: TestClient, sid: int) -> tuple[Any, ...]:
    studies = client.get(f"{API}/studies").json()["studies"]
    trials = client.get(f"{API}/studies/{sid}/trials").json()["trials"]
    return (
        [(s["id"], s["name"], s["description"], s["metadata"]) for s in studies],
        [(t["number"], t["state"], t["reason"], t["client_id"]) for t in trials],
    )


@pytest.mark.parametrize(("case", "call", "field"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_nul_and_lone_surrogates_are_422_naming_the_field_and_store_nothing(
    client: TestClient, case: str, call: Call, field: str
) -> None:
    sid = client.post(f"{API}/studies", json=small_spec("base")).json()["id"]
    (trial,) = client.post(f"{API}/studies/{sid}/trials/suggest", json={}).json()["trials"]
    before = snapshot(client, sid)
    r = call(client, sid, trial["number"])
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_spec"
    assert error["details"]["field"] == field
    assert error["message"].startswith(f"{field}: ") and "NUL" in error["message"]
    assert snapshot(client, sid) == before
    # the server (and, on PostgreSQL, its connections) is fine for the next request
    assert client.post(f"{API}/studies", json=small_spec("after")).status_code == 201
    assert client.get(f"{API}/studies?name=after").json()["studies"][0]["name"] == "after"


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def test_json_nesting_is_capped(client: TestClient) -> None:
    ok = client.post(f"{API}/studies", json=small_spec("ok", metadata=nested(MAX_JSON_DEPTH - 1)))
    assert ok.status_code == 201, ok.text
    deep = client.post(f"{API}/studies", json=small_spec("deep", metadata=nested(MAX_JSON_DEPTH)))
    assert deep.status_code == 422
    assert f"deeper than {MAX_JSON_DEPTH}" in deep.json()["error"]["message"]
    assert deep.json()["error"]["details"]["field"].startswith("metadata.k")
    # deeper than Python's recursion limit: json.loads itself would fail
    huge = client.post(f"{API}/studies", content=b"[" * 200_000 + b"]" * 200_000, headers=JSON)
    assert huge.status_code == 422 and huge.json()["error"]["details"]["field"] == "body"
    malformed = client.post(f"{API}/studies", content=b'{"name": ', headers=JSON)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "bad_request"
    names = [s["name"] for s in client.get(f"{API}/studies").json()["studies"]]
    assert names == ["ok"]


def test_absurd_specs_are_422_naming_the_rule(client: TestClient) -> None:
    many = [{"name": f"p{i}", "type": "float", "low": 0, "high": 1} for i in range(1001)]
    r = client.post(f"{API}/studies", json=small_spec("many", parameters=many))
    assert r.status_code == 422
    assert (
        r.json()["error"]["message"]
        == f"parameters: at most {MAX_PARAMETERS} parameters are allowed"
    )
    values = list(range(MAX_CHOICES + 1))
    wide = small_spec("wide", parameters=[{"name": "c", "type": "categorical", "values": values}])
    r = client.post(f"{API}/studies", json=wide)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "parameters[0].values"
    assert f"at most {MAX_CHOICES} values" in r.json()["error"]["message"]
    assert client.get(f"{API}/studies").json()["studies"] == []


HUGE = [{"name": "x", "type": "float", "low": -1e308, "high": 1e308}]


@pytest.mark.parametrize("algorithm", ["random", "sobol", "tpe", "gp", "cmaes"])
def test_a_range_wider_than_the_largest_float_gives_distinct_suggestions(
    client: TestClient, algorithm: str
) -> None:
    spec = small_spec("huge", parameters=HUGE, algorithm=algorithm, seed=3)
    sid = client.post(f"{API}/studies", json=spec).json()["id"]
    seen: list[float] = []
    for _ in range(3):  # later rounds run on a history of completed trials
        trials = client.post(f"{API}/studies/{sid}/trials/suggest", json={"count": 4}).json()
        for t in trials["trials"]:
            seen.append(t["params"]["x"])
            done = client.post(
                f"{API}/studies/{sid}/trials/{t['number']}/complete",
                json={"values": {"accuracy": -abs(t["params"]["x"]) / 1e308}},
            )
            assert done.status_code == 200, done.text
    assert len(seen) == 12 and len(set(seen)) == 12
    assert all(-1e308 <= x <= 1e308 for x in seen)
    assert sum(abs(x) < 9e307 for x in seen) >= 6, "suggestions collapse onto the bounds"


def test_int_bounds_beyond_2_pow_53_are_422(client: TestClient) -> None:
    ints = [{"name": "n", "type": "int", "low": 0, "high": 2**53 + 2}]
    r = client.post(f"{API}/studies", json=small_spec("ints", parameters=ints))
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "parameters[0].high"
    ints[0]["high"] = 2**53
    assert (
        client.post(f"{API}/studies", json=small_spec("ints", parameters=ints)).status_code == 201
    )


def test_suggest_count_and_cost_are_capped(client: TestClient) -> None:
    params = [{"name": f"p{i}", "type": "float", "low": 0, "high": 1} for i in range(256)]
    spec = small_spec("wide", parameters=params, algorithm="random")
    sid = client.post(f"{API}/studies", json=spec).json()["id"]
    url = f"{API}/studies/{sid}/trials/suggest"
    for count in (0, -(10**30), 10**30, 1001):
        r = client.post(url, json={"count": count})
        assert r.status_code == 422, (count, r.text)
        assert r.json()["error"]["details"]["field"] == "count"
    assert client.get(f"{API}/studies/{sid}/trials").json()["trials"] == []
    # over the cost cap (10,000 trials x parameters): served the cap, 39 trials
    capped = client.post(url, json={"count": 1000})
    assert capped.status_code == 200 and len(capped.json()["trials"]) == 39
    ok = client.post(url, json={"count": 5, "client_id": "other"})
    assert ok.status_code == 200 and len(ok.json()["trials"]) == 5


@pytest.mark.parametrize(
    ("algorithm", "n_parameters", "largest"), [("auto", 5, 16), ("gp", 256, 7), ("cmaes", 100, 16)]
)
def test_model_based_algorithms_get_smaller_batches(
    client: TestClient, algorithm: str, n_parameters: int, largest: int
) -> None:
    params = [{"name": f"p{i}", "type": "float", "low": 0, "high": 1} for i in range(n_parameters)]
    spec = small_spec("model", parameters=params, algorithm=algorithm)
    sid = client.post(f"{API}/studies", json=spec).json()["id"]
    url = f"{API}/studies/{sid}/trials/suggest"
    r = client.post(url, json={"count": largest + 1})
    assert r.status_code == 200, r.text
    assert len(r.json()["trials"]) == largest
    ok = client.post(url, json={"count": 2, "client_id": "other"})
    assert ok.status_code == 200 and len(ok.json()["trials"]) == 2


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", f"{API}/studies", "GET, POST"),
        ("PUT", f"{API}/studies/1", "GET, PATCH, DELETE"),
        ("TRACE", f"{API}/studies/1/run", "POST"),
        ("DELETE", "/healthz", "GET"),
    ],
)
def test_405_lists_the_allowed_methods(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_request_ids_are_echoed_or_generated(client: TestClient) -> None:
    r = client.get(f"{API}/studies", headers={"X-Request-ID": "job-42.retry:1"})
    assert r.headers["x-request-id"] == "job-42.retry:1"
    for bad in ("two words", "x" * 129, "caf\u00e9"):
        r = client.get(f"{API}/studies/999", headers={"X-Request-ID": bad.encode()})
        assert r.status_code == 404
        generated = r.headers["x-request-id"]
        assert generated != bad and len(generated) == 32 and int(generated, 16) >= 0
    rejected = client.post(f"{API}/studies", json=small_spec("\x00"))
    assert rejected.status_code == 422 and "x-request-id" in rejected.headers


def test_readyz_does_not_reveal_the_database_address(tmp_path: Path) -> None:
    port = free_port()
    down = TestClient(create_app(Settings(db_url=f"postgresql://nobody@127.0.0.1:{port}/secret")))
    r = down.get("/readyz")  # no lifespan: the app starts answering without a database
    assert r.status_code == 503 and r.json()["status"] == "database_unreachable"
    assert str(port) not in r.text and "127.0.0.1" not in r.text and "secret" not in r.text
    old = tmp_path / "old-schema.db"
    sqlite3.connect(old).close()  # a database never migrated
    stale = TestClient(create_app(Settings(db_url=f"sqlite:///{old}")))
    r = stale.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "schema_outdated"
    assert "old-schema" not in r.text and "tuneforge db upgrade" in r.json()["detail"]


@pytest.fixture
def small_body_server(sqlite_url: str) -> Iterator[LiveServer]:
    server = LiveServer(sqlite_url, env={"TUNEFORGE_MAX_BODY_BYTES": "65536"}).start()
    yield server
    server.stop()


def chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    """A JSON string of ``total`` bytes, streamed without a Content-Length."""
    padding = ["x" * 100] * (total // 104)
    body = json.dumps(small_spec("chunked", metadata={"padding": padding})).encode()
    for i in range(0, len(body), size):
        yield body[i : i + size]


def test_chunked_bodies_over_the_limit_get_413(small_body_server: LiveServer) -> None:
    url = f"{small_body_server.url}{API}/studies"
    with httpx.Client(timeout=30) as http:
        small = http.post(url, content=chunks(20_000), headers=JSON)
        assert small.status_code == 201, small.text
        assert small.request.headers.get("transfer-encoding") == "chunked"
        for content_type in ("application/json", "text/plain"):
            big = http.post(url, content=chunks(70_000), headers={"content-type": content_type})
            assert big.request.headers.get("transfer-encoding") == "chunked"
            assert big.status_code == 413, big.text
            assert big.json()["error"]["code"] == "payload_too_large"
            assert big.json()["error"]["details"] == {"max_bytes": 65536}
        names = [s["name"] for s in http.get(url).json()["studies"]]
    assert names == ["chunked"]
