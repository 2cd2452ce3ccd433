"""API keys through the real app on SQLite and PostgreSQL: two projects with a key of each
role, every registered route (the tests grow with the API), isolation, roles, revocation,
open mode, and keys never stored or logged in clear."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from tests.api.test_nested import spec as nested_spec
from tests.conftest import statements_of
from tests.specs import small_spec
from tuneforge.api.auth import ROUTE_ROLES, is_loopback
from tuneforge.api.db.engine import Database
from tuneforge.api.services import keys as key_service

API = "/api/v1"
ROLES = ("viewer", "editor", "admin")
RANK = {"viewer": 1, "editor": 2, "admin": 3}
#: What the issue asks for, written out here (not read from the implementation's table).
ADMIN_ONLY = {
    ("DELETE", "/api/v1/studies/{study_id}"),
    ("POST", "/api/v1/studies/{study_id}/evaluate"),
    ("PUT", "/api/v1/studies/{study_id}/evaluation"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/{key_id}"),
    ("DELETE", "/api/v1/datasets/{dataset_id}"),
}
WORKER_MAY = {
    ("GET", "/api/v1/studies/{study_id}"),
    ("GET", "/api/v1/studies/{study_id}/best"),
    ("PUT", "/api/v1/studies/{study_id}/evaluation"),
    ("GET", "/api/v1/studies/{study_id}/trials"),
    ("GET", "/api/v1/studies/{study_id}/trials/{number}"),
    ("GET", "/api/v1/studies/{study_id}/trials/{number}/checkpoint"),
    ("PUT", "/api/v1/studies/{study_id}/trials/{number}/checkpoint"),
    ("GET", "/api/v1/datasets/{dataset_id}/content"),
    *(
        ("POST", f"/api/v1/studies/{{study_id}}/trials{verb}")
        for verb in (
            "/suggest",
            "/{number}/measurements",
            "/{number}/heartbeat",
            "/{number}/complete",
            "/{number}/fail",
        )
    ),
}


def needed(method: str, template: str) -> str:
    if (method, template) in ADMIN_ONLY:
        return "admin"
    return "viewer" if method == "GET" else "editor"


def api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, template) the app documents under /api/v1, DELETE last."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    found = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(API)
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    return sorted(found, key=lambda mt: (mt[0] == "DELETE", mt[1], mt[0]))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class World:
    """Projects a and b, a key per role in each, a worker key, a study (with trial 0),
    a nested-cv group and an uploaded dataset in a."""

    keys: dict[tuple[str, str], str]
    worker: str
    study_a: int
    study_b: int
    group_a: str
    db: Database
    dataset_a: int = 0

    @property
    def key_a(self) -> int:
        """The id of project a's viewer key."""
        return int(self.keys["a", "viewer"].split("_")[1])


def make_world(client: TestClient) -> World:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    for name in ("a", "b"):
        key_service.create_project(db, name)
    keys = {(p, r): key_service.create_key(db, p, r)[1] for p in "ab" for r in ROLES}
    worker = key_service.create_key(db, None, "worker")[1]
    ids = {}
    for p in "ab":
        r = client.post(
            f"{API}/studies", json=small_spec("shared-name"), headers=bearer(keys[p, "editor"])
        )
        assert r.status_code == 201, r.text
        ids[p] = r.json()["id"]
    r = client.post(
        f"{API}/studies/{ids['a']}/trials/suggest",
        json={"count": 1},
        headers=bearer(keys["a", "editor"]),
    )
    assert r.status_code == 200 and r.json()["trials"][0]["number"] == 0, r.text
    r = client.post(
        f"{API}/nested-cv",
        json={"study": nested_spec(name="secret-group"), "outer_splits": 2, "run": False},
        headers=bearer(keys["a", "editor"]),
    )
    assert r.status_code == 201, r.text
    r = client.post(
        f"{API}/datasets",
        params={"name": "secret-data", "target": "y"},
        content=b"x,y\n1,0\n2,1\n",
        headers={**bearer(keys["a", "editor"]), "content-type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    return World(keys, worker, ids["a"], ids["b"], "secret-group", db, r.json()["id"])


@pytest.fixture
def world(client: TestClient) -> World:
    return make_world(client)


def url(
    template: str, study_id: int, group: str = "g", key_id: int = 0, dataset_id: int = 0
) -> str:
    return template.format(
        study_id=study_id, number=0, group=group, key_id=key_id, dataset_id=dataset_id
    )


def url_a(template: str, world: World) -> str:
    """The route's URL for project a's study, nested-cv group, viewer key and dataset."""
    return url(template, world.study_a, world.group_a, world.key_a, world.dataset_a)


def call(client: TestClient, method: str, path: str, key: str | None) -> Any:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, json=body, headers=bearer(key) if key else {})


# ---------------------------------------------------------------- the table


def test_every_api_route_has_a_role_and_the_table_names_only_real_routes(
    client: TestClient,
) -> None:
    routes = set(api_routes(client))
    assert routes, "no API routes found"
    missing = sorted(routes - set(ROUTE_ROLES))
    assert not missing, f"routes without a role in api/auth.py ROUTE_ROLES: {missing}"
    stale = sorted(set(ROUTE_ROLES) - routes)
    assert not stale, f"ROUTE_ROLES names routes the app does not serve: {stale}"


# ---------------------------------------------------------------- isolation


def _normalized(reply: Any, ident: str) -> Any:
    body = reply.json()
    body["error"]["message"] = re.sub(rf"\b{re.escape(ident)}\b", "<id>", body["error"]["message"])
    return body


def test_another_projects_study_is_404_like_an_unknown_one_on_every_route(
    client: TestClient, world: World
) -> None:
    before = client.get(f"{API}/studies/{world.study_a}", headers=bearer(world.keys["a", "admin"]))
    assert before.status_code == 200
    checked = 0
    for method, template in api_routes(client):
        if not any(p in template for p in ("{study_id}", "{group}", "{key_id}", "{dataset_id}")):
            continue
        for role in ROLES:
            if RANK[role] < RANK[needed(method, template)]:
                continue  # the role check answers 403 first, for any id
            key = world.keys["b", role]
            foreign = call(client, method, url_a(template, world), key)
            unknown = call(
                client, method, url(template, 999_999, "no-such-group", 999_999, 999_999), key
            )
            assert foreign.status_code == 404, f"{role} {method} {template}: {foreign.text}"
            assert unknown.status_code == 404, f"{role} {method} {template}: {unknown.text}"
            ident = (
                world.group_a
                if "{group}" in template
                else str(
                    world.key_a
                    if "{key_id}" in template
                    else world.dataset_a
                    if "{dataset_id}" in template
                    else world.study_a
                )
            )
            other = "no-such-group" if "{group}" in template else "999999"
            assert _normalized(foreign, ident) == _normalized(unknown, other)
            checked += 1
    assert checked >= 15
    after = client.get(f"{API}/studies/{world.study_a}", headers=bearer(world.keys["a", "admin"]))
    assert after.json() == before.json(), "project b's calls changed project a's study"
    still = client.get(f"{API}/studies", headers=bearer(world.keys["a", "viewer"]))
    assert still.status_code == 200, "project b revoked project a's key"


def test_lists_and_creation_stay_in_the_keys_project(client: TestClient, world: World) -> None:
    for role in ROLES:
        for p, own, other in (
            ("a", world.study_a, world.study_b),
            ("b", world.study_b, world.study_a),
        ):
            page = client.get(f"{API}/studies", headers=bearer(world.keys[p, role])).json()
            ids = {s["id"] for s in page["studies"]}
            assert own in ids and other not in ids
            if p == "b":
                assert ids == {world.study_b}
            by_name = client.get(
                f"{API}/studies?name=shared-name", headers=bearer(world.keys[p, role])
            ).json()["studies"]
            assert [s["id"] for s in by_name] == [own]
    new = client.post(
        f"{API}/studies", json=small_spec("only-b"), headers=bearer(world.keys["b", "editor"])
    )
    assert new.status_code == 201 and new.json()["project"] == "b"
    listed_a = client.get(f"{API}/studies?name=only-b", headers=bearer(world.keys["a", "admin"]))
    assert listed_a.json()["studies"] == []
    # nested cv: a's group is a's; b can create its own group of the same name
    r = client.post(
        f"{API}/nested-cv",
        json={"study": nested_spec(name="secret-group"), "outer_splits": 2, "run": False},
        headers=bearer(world.keys["b", "editor"]),
    )
    assert r.status_code == 201, r.text
    folds_b = {f["study_id"] for f in r.json()["folds"]}
    folds_a = client.get(
        f"{API}/nested-cv/secret-group", headers=bearer(world.keys["a", "viewer"])
    ).json()["folds"]
    assert folds_b.isdisjoint(f["study_id"] for f in folds_a)
    # the audit log: each admin sees only their own project's entries
    for p, other in (("a", world.study_b), ("b", world.study_a)):
        entries = client.get(f"{API}/audit", headers=bearer(world.keys[p, "admin"])).json()[
            "entries"
        ]
        assert entries and {e["project"] for e in entries} == {p}
        assert other not in {e["study_id"] for e in entries}


# ---------------------------------------------------------------- roles


@pytest.mark.parametrize("role", [*ROLES, "worker"])
def test_every_route_enforces_the_role(client: TestClient, world: World, role: str) -> None:
    key = world.worker if role == "worker" else world.keys["a", role]
    for method, template in api_routes(client):
        r = call(client, method, url_a(template, world), key)
        if role == "worker":
            allowed = (method, template) in WORKER_MAY
        else:
            allowed = RANK[role] >= RANK[needed(method, template)]
        if allowed:
            assert r.status_code not in (401, 403), f"{role} {method} {template}: {r.text}"
        else:
            assert r.status_code == 403, f"{role} {method} {template}: {r.status_code} {r.text}"
            assert r.json()["error"]["code"] == "forbidden"


def test_a_worker_key_runs_trials_of_every_project(client: TestClient, world: World) -> None:
    for sid in (world.study_a, world.study_b):
        r = client.post(
            f"{API}/studies/{sid}/trials/suggest",
            json={"count": 1, "client_id": "w"},
            headers=bearer(world.worker),
        )
        assert r.status_code == 200, r.text
        number = r.json()["trials"][0]["number"]
        r = client.post(
            f"{API}/studies/{sid}/trials/{number}/complete",
            json={"values": {"accuracy": 0.5}},
            headers=bearer(world.worker),
        )
        assert r.status_code == 200, r.text
    assert client.get(f"{API}/studies", headers=bearer(world.worker)).status_code == 403


# ---------------------------------------------------------------- authentication


def test_missing_garbled_and_revoked_keys_get_401_at_once(client: TestClient, world: World) -> None:
    good = world.keys["a", "viewer"]
    key_id = int(good.split("_")[1])
    wrong_secret = f"tf_{key_id}_" + "A" * 43
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": f"Basic {good}"},
        {"Authorization": good},
        bearer("garbage"),
        bearer(wrong_secret),
        bearer(good + "x"),
        bearer(f"tf_99999999999_{good.split('_', 2)[2]}"),
        bearer("tf_-1_x"),
    ]
    for method, template in api_routes(client):
        for headers in bad_headers[:3] if template != f"{API}/studies" else bad_headers:
            r = client.request(
                method,
                url_a(template, world),
                json={} if method != "GET" else None,
                headers=headers,
            )
            assert r.status_code == 401, f"{method} {template} {headers}: {r.text}"
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthorized"
    assert client.get(f"{API}/studies/{world.study_a}", headers=bearer(good)).status_code == 200
    key_service.revoke_key(world.db, key_id)
    r = client.get(f"{API}/studies/{world.study_a}", headers=bearer(good))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    # the other keys still work, and revoking every key never reopens the server
    assert client.get(f"{API}/studies", headers=bearer(world.keys["a", "admin"])).status_code == 200
    for entry in key_service.list_keys(world.db):
        key_service.revoke_key(world.db, entry["id"])
    assert client.get(f"{API}/studies").status_code == 401


def test_a_keyed_study_call_reads_its_key_and_the_study_together_and_refuses_bad_keys(
    client: TestClient, world: World
) -> None:
    """On a server known to have keys, a study route's authorization is one statement that
    reads the key with the study's project; a wrong, unknown or revoked key is still 401,
    another project's study still 404, and the trial verbs still work with a worker key."""
    viewer = world.keys["a", "viewer"]
    path = f"{API}/studies/{world.study_a}"
    assert client.get(path, headers=bearer(viewer)).status_code == 200  # the app now knows
    with statements_of(world.db) as statements:
        assert client.get(path, headers=bearer(viewer)).status_code == 200
    seen = [" ".join(s.lower().split()) for s in statements]
    keyed = [s for s in seen if "api_keys" in s]
    assert len(keyed) == 1, seen
    assert "studies.project_id" in keyed[0] and "key_hash" in keyed[0], keyed[0]

    key_id = int(viewer.split("_")[1])
    secret = viewer.split("_", 2)[2]
    for bad in (f"tf_{key_id}_" + "A" * 43, f"tf_999999_{secret}", viewer + "x"):
        r = client.get(path, headers=bearer(bad))
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text
    foreign = client.get(f"{API}/studies/{world.study_b}", headers=bearer(viewer))
    assert foreign.status_code == 404, foreign.text
    unknown = client.get(f"{API}/studies/999999", headers=bearer(viewer))
    assert unknown.status_code == 404, unknown.text
    number = client.post(
        f"{path}/trials/suggest", json={"client_id": "w"}, headers=bearer(world.worker)
    ).json()["trials"][0]["number"]
    done = client.post(
        f"{path}/trials/{number}/complete",
        json={"values": {"accuracy": 0.5}},
        headers=bearer(world.worker),
    )
    assert done.status_code == 200, done.text
    key_service.revoke_key(world.db, key_id)
    r = client.get(path, headers=bearer(viewer))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_open_mode_until_the_first_key_exists(client: TestClient) -> None:
    r = client.post(f"{API}/studies", json=small_spec("open"))
    assert r.status_code == 201
    sid = r.json()["id"]
    # any header is ignored while no key exists
    assert client.get(f"{API}/studies/{sid}", headers=bearer("anything")).status_code == 200
    assert client.delete(f"{API}/studies/{sid}").status_code == 204
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    key_service.create_project(db, "team")
    _, key = key_service.create_key(db, "team", "viewer")
    assert client.get(f"{API}/studies").status_code == 401  # the same running app
    assert client.get(f"{API}/studies", headers=bearer(key)).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_keys_are_never_stored_or_logged_in_clear(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = make_world(client)
    secrets_ = [*world.keys.values(), world.worker]
    for key in secrets_:
        assert client.get(f"{API}/studies", headers=bearer(key)).status_code in (200, 403)
        client.delete(f"{API}/studies/{world.study_a}", headers=bearer(key + "tampered"))
    key_service.revoke_key(world.db, int(world.worker.split("_")[1]))
    client.get(f"{API}/studies", headers=bearer(world.worker))
    dump = dump_database(world.db)
    assert "tf_" in dump and "/api/v1/studies" in dump  # the dump does see keys and audit rows
    for key in secrets_:
        body = key.split("_", 2)[2]
        assert key not in dump and body not in dump and body[:12] not in dump
        assert key not in caplog.text and body[:12] not in caplog.text
        assert key_service.hash_key(key) in dump  # what is stored is the hash


def dump_database(db: Database) -> str:
    """Every table's every row as text."""
    out = []
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.append(f"{table}: {tuple(row)!r}")
    return "\n".join(out)


def test_key_format_and_listing(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    key_service.create_project(db, "p")
    entry, key = key_service.create_key(db, "p", "editor")
    assert re.fullmatch(r"tf_\d+_[A-Za-z0-9_-]{43}", key)
    assert key.startswith(entry["prefix"]) and len(entry["prefix"]) < len(key) - 30
    listed = key_service.list_keys(db)
    assert listed == [entry] and key not in repr(listed)
    client.get(f"{API}/studies", headers=bearer(key))
    assert key_service.list_keys(db)[0]["last_used_at"] is not None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.4.5.6", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("tuneforge.example.com", False),
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_admin_manages_its_projects_keys_over_http(client: TestClient, world: World) -> None:
    admin_a = bearer(world.keys["a", "admin"])
    made = client.post(f"{API}/keys", json={"role": "editor"}, headers=admin_a)
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["project"] == "a" and new["role"] == "editor" and new["key"].startswith("tf_")
    listed = client.get(f"{API}/keys", headers=admin_a).json()["keys"]
    assert {k["project"] for k in listed} == {"a"} and new["id"] in {k["id"] for k in listed}
    assert new["key"] not in str(listed)
    listed_b = client.get(f"{API}/keys", headers=bearer(world.keys["b", "admin"])).json()["keys"]
    assert {k["project"] for k in listed_b} == {"b"}
    r = client.post(f"{API}/studies", json=small_spec("by-new-key"), headers=bearer(new["key"]))
    assert r.status_code == 201 and r.json()["project"] == "a"
    for role, status in (("worker", 422), ("owner", 422)):
        r = client.post(f"{API}/keys", json={"role": role}, headers=admin_a)
        assert r.status_code == status and "role" in r.json()["error"]["message"]
    revoked = client.delete(f"{API}/keys/{new['id']}", headers=admin_a)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get(f"{API}/studies", headers=bearer(new["key"])).status_code == 401


def test_open_mode_cannot_create_keys_over_http(client: TestClient) -> None:
    r = client.post(f"{API}/keys", json={"role": "admin"})
    assert r.status_code == 409 and "tuneforge keys create" in r.json()["error"]["message"]
    assert client.get(f"{API}/studies").status_code == 200  # still open
