"""Hostile study specs and requests, through the real app on SQLite and PostgreSQL.

The server's operator allows python objectives from ``team_objectives`` only, data
files under one data root, no URL scheme, and ``n_jobs`` up to 2. Every row must be
refused with a 4xx naming the field, must not echo the content of any file, and must
leave nothing stored. A second table (:data:`KEYED_ROWS`) runs on a server with two
projects and API keys: requests naming the other project's ids are 404 exactly like
unknown ids, requests with a revoked key are 401, and neither changes anything.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_nested import spec as nested_spec
from tests.conftest import _truncate, make_client
from tests.specs import small_spec
from tuneforge.api.db.migrate import upgrade
from tuneforge.api.services import keys as key_service

API = "/api/v1"
SECRET = "root:x:0:0:do-not-leak"


class Server:
    """The app, its data root and a directory outside it."""

    def __init__(self, client: TestClient, root: Path, outside: Path) -> None:
        self.client = client
        self.root = root
        self.outside = outside

    def count(self) -> int:
        reply = self.client.get(f"{API}/studies", params={"page_size": 1000})
        assert reply.status_code == 200, reply.text
        return len(reply.json()["studies"])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "data", base / "outside"
    root.mkdir()
    outside.mkdir()
    rows = "".join(f"{i % 7}.5,{i % 3},{i % 2}\n" for i in range(30))
    (root / "good.csv").write_text("a,b,label\n" + rows)
    (outside / "secret.csv").write_text(f"{SECRET}\n1,2,3\n")
    (root / "link.csv").symlink_to(outside / "secret.csv")
    (root / "linkdir").symlink_to(outside)
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'tuneforge.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_url")
        _truncate(url)
    settings = {
        "reconcile_interval_seconds": 0,
        "python_objective_modules": ("team_objectives",),
        "data_roots": (str(root),),
        "data_url_schemes": (),
        "max_n_jobs": 2,
    }
    with make_client(url, **settings) as client:
        client.__dict__["_raise_server_exceptions"] = False
        yield Server(client, root, outside)


def base_spec() -> dict[str, Any]:
    return {
        "name": "hostile",
        "parameters": [{"name": "max_depth", "type": "int", "low": 2, "high": 6}],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
        "max_trials": 5,
        "objective": {
            "kind": "sklearn",
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "fixed_params": {"n_estimators": 10, "n_jobs": 1},
            "dataset": {"source": "csv", "path": "good.csv", "target": "label"},
            "cv": {"type": "kfold", "n_splits": 3},
            "scoring": "accuracy",
        },
    }


Edit = Callable[[dict[str, Any], Server], None]


def path(value: str | Callable[[Server], str]) -> Edit:
    def edit(spec: dict[str, Any], srv: Server) -> None:
        spec["objective"]["dataset"]["path"] = value(srv) if callable(value) else value

    return edit


def objective(**changes: Any) -> Edit:
    def edit(spec: dict[str, Any], _: Server) -> None:
        spec["objective"].update(changes)

    return edit


def python(target: str, **options: Any) -> Edit:
    def edit(spec: dict[str, Any], _: Server) -> None:
        spec["objective"] = {"kind": "python", "callable": target, "options": options}
        spec["metrics"] = [{"name": "loss", "goal": "minimize"}]

    return edit


def fixed(**params: Any) -> Edit:
    def edit(spec: dict[str, Any], _: Server) -> None:
        spec["objective"]["fixed_params"].update(params)

    return edit


def parameter(**param: Any) -> Edit:
    def edit(spec: dict[str, Any], _: Server) -> None:
        spec["parameters"].append(param)

    return edit


def cv(**fields: Any) -> Edit:
    def edit(spec: dict[str, Any], _: Server) -> None:
        spec["objective"]["cv"].update(fields)

    return edit


def dataset(**fields: Any) -> Edit:
    def edit(spec: dict[str, Any], _: Server) -> None:
        spec["objective"]["dataset"].update(fields)

    return edit


def nested(inner: Edit) -> Edit:
    """The same hostile spec sent to ``POST /nested-cv`` (fields under ``study.``)."""

    def edit(spec: dict[str, Any], srv: Server) -> None:
        inner(spec, srv)
        spec["__nested__"] = True

    return edit


PATH = "objective.dataset.path"
CALLABLE = "objective.callable"
ESTIMATOR = "objective.estimator"
FP = "objective.fixed_params"

#: (row id, edit of the base spec, the field the 4xx must name)
ROWS: list[tuple[str, Edit, str]] = [
    # path traversal and files outside the data root
    ("dotdot", path("../../etc/passwd"), PATH),
    ("dotdot-deep", path("a/b/../../../outside/secret.csv"), PATH),
    ("absolute-system-file", path("/etc/passwd"), PATH),
    ("absolute-proc", path("/proc/self/environ"), PATH),
    ("absolute-outside-existing", path(lambda s: str(s.outside / "secret.csv")), PATH),
    ("absolute-outside-missing", path(lambda s: str(s.outside / "missing.csv")), PATH),
    ("symlink-out", path("link.csv"), PATH),
    ("symlinked-dir-out", path("linkdir/secret.csv"), PATH),
    ("percent-encoded-dotdot", path("%2e%2e/%2e%2e/etc/passwd"), PATH),
    ("home", path("~/.ssh/id_rsa"), PATH),
    ("backslashes", path("..\\..\\etc\\passwd"), PATH),
    ("root-itself", path("."), PATH),
    # URLs (no scheme is allowed on this server)
    ("http-metadata", path("http://169.254.169.254/latest/meta-data/"), PATH),
    ("https", path("https://example.com/data.csv"), PATH),
    ("file-url", path("file:///etc/passwd"), PATH),
    ("file-url-short", path("file:/etc/passwd"), PATH),
    ("s3", path("s3://bucket/data.csv"), PATH),
    ("ftp", path("ftp://host/data.csv"), PATH),
    ("parquet-url", dataset(source="parquet", path="https://example.com/x.parquet"), PATH),
    # dotted paths to dangerous callables
    ("os-system", python("os:system"), CALLABLE),
    ("subprocess-run", python("subprocess:run"), CALLABLE),
    ("tuneforge-cli", python("tuneforge.cli:main"), CALLABLE),
    ("celery-cli", python("celery.bin.celery:main"), CALLABLE),
    ("builtins-eval", python("builtins:eval"), CALLABLE),
    ("shutil-rmtree", python("shutil:rmtree"), CALLABLE),
    ("importlib", python("importlib:import_module"), CALLABLE),
    ("prefix-trick", python("team_objectivesx:run"), CALLABLE),
    ("dunder", python("team_objectives:__init__"), CALLABLE),
    ("no-colon", python("os.system"), CALLABLE),
    # estimators that are not plain, listed estimators
    ("pipeline", objective(estimator="sklearn.pipeline.Pipeline"), ESTIMATOR),
    ("stacking", objective(estimator="sklearn.ensemble.StackingClassifier"), ESTIMATOR),
    ("bagging", objective(estimator="sklearn.ensemble.BaggingClassifier"), ESTIMATOR),
    ("utils-bunch", objective(estimator="sklearn.utils.Bunch"), ESTIMATOR),
    ("os-path", objective(estimator="os.path"), ESTIMATOR),
    ("private-module", objective(estimator="sklearn.svm._classes.SVC"), ESTIMATOR),
    ("private-config", objective(estimator="sklearn._config.set_config"), ESTIMATOR),
    ("popen", objective(estimator="subprocess.Popen"), ESTIMATOR),
    # option injection
    ("memory", fixed(memory="/tmp/tuneforge-joblib"), f"{FP}.memory"),
    ("n-jobs-huge", fixed(n_jobs=10_000), f"{FP}.n_jobs"),
    ("n-jobs-all-cores", fixed(n_jobs=-1), f"{FP}.n_jobs"),
    ("dict-option", fixed(max_depth={"__class__": "os.system"}), f"{FP}.max_depth"),
    ("nested-list-option", fixed(max_depth=[[1]]), f"{FP}.max_depth[0]"),
    ("callbacks", fixed(callbacks=["os:system"]), f"{FP}.callbacks"),
    ("unknown-option", fixed(colour="red"), f"{FP}.colour"),
    ("path-option", fixed(class_weight="/etc/passwd"), f"{FP}.class_weight"),
    ("infinite-option", fixed(max_depth=float("inf")), f"{FP}.max_depth"),
    (
        "tuned-memory",
        parameter(name="memory", type="categorical", values=["/tmp/x"]),
        "parameters[1].name",
    ),
    ("tuned-n-jobs", parameter(name="n_jobs", type="int", low=1, high=4096), "parameters[1].high"),
    (
        "tuned-path-value",
        parameter(name="criterion", type="categorical", values=["gini", "../x"]),
        "parameters[1].values[1]",
    ),
    # huge numbers
    ("n-splits-huge", cv(n_splits=10**12), "objective.cv.n_splits"),
    ("cv-seed-1e308", cv(seed=1e308), "objective.cv.seed"),
    ("test-size-tiny", objective(test_size=1e-300), "objective.test_size"),
    ("gap-1e308", cv(type="time_series", gap=1e308), "objective.cv.gap"),
    ("seed-huge", objective(seed=10**30), "objective.seed"),
    (
        "outer-index-huge",
        objective(outer_fold={"n_splits": 3, "index": 10**18}),
        "objective.outer_fold.index",
    ),
    # NUL and lone surrogates in objective fields
    ("nul-target", dataset(target="label\x00"), "objective.dataset.target"),
    ("nul-path", path("good.csv\x00.txt"), PATH),
    ("nul-callable", python("team_objectives\x00:run"), CALLABLE),
    ("surrogate-estimator", objective(estimator="sklearn.svm.SVC\ud800"), ESTIMATOR),
    (
        "surrogate-option-value",
        python("team_objectives:run", key="\udfff"),
        "objective.options.key",
    ),
    ("surrogate-option-key", fixed(**{"\ud800": 1}), FP),
    # deeply nested objective
    (
        "deep-options",
        python("team_objectives:run", deep=json.loads('{"a":' * 40 + "1" + "}" * 40)),
        "objective.options.deep",
    ),
    # the same through POST /nested-cv
    ("nested-dotdot", nested(path("../outside/secret.csv")), f"study.{PATH}"),
    ("nested-url", nested(path("http://169.254.169.254/")), f"study.{PATH}"),
    ("nested-memory", nested(fixed(memory="/tmp/x")), f"study.{FP}.memory"),
    (
        "nested-estimator",
        nested(objective(estimator="sklearn.pipeline.Pipeline")),
        f"study.{ESTIMATOR}",
    ),
]


def send(srv: Server, edit: Edit) -> Any:
    """POST the edited spec as JSON text: lone surrogates as ``\\udxxx`` escapes and
    infinities as ``Infinity``, as a hostile client can send them."""
    spec = copy.deepcopy(base_spec())
    edit(spec, srv)
    url = f"{API}/studies"
    if spec.pop("__nested__", False):
        spec, url = {"study": spec, "outer_splits": 3, "run": False}, f"{API}/nested-cv"
    headers = {"content-type": "application/json"}
    return srv.client.post(url, content=json.dumps(spec), headers=headers)


@pytest.mark.parametrize(("row", "edit", "field"), ROWS, ids=[r[0] for r in ROWS])
def test_a_hostile_spec_is_refused_naming_the_field(
    server: Server, row: str, edit: Edit, field: str
) -> None:
    before = server.count()
    reply = send(server, edit)
    assert 400 <= reply.status_code < 500, (row, reply.status_code, reply.text)
    error = reply.json()["error"]
    assert (error.get("details") or {}).get("field", "").startswith(field), (row, error)
    assert SECRET not in reply.text and "do-not-leak" not in reply.text
    assert str(server.outside) not in reply.text or field.endswith(PATH)
    assert server.count() == before == 0


def test_outside_the_roots_a_file_that_exists_and_one_that_does_not_read_alike(
    server: Server,
) -> None:
    """A caller cannot probe for files outside the data roots."""
    messages = set()
    for target in ("secret.csv", "missing.csv", "linkdir/secret.csv", "../../etc/passwd"):
        value = target if "/" in target else str(server.outside / target)
        reply = send(server, path(value))
        assert reply.status_code == 422
        messages.add(reply.json()["error"]["message"].replace(value, "<path>"))
    assert len(messages) == 1, messages


def test_oversized_and_unparseable_bodies_are_refused(server: Server) -> None:
    big = json.dumps({**base_spec(), "description": "x" * (5 * 1024 * 1024)})
    headers = {"content-type": "application/json"}
    reply = server.client.post(f"{API}/studies", content=big, headers=headers)
    assert reply.status_code == 413
    deep = '{"name": "deep", "metadata": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"
    reply = server.client.post(f"{API}/studies", content=deep, headers=headers)
    assert 400 <= reply.status_code < 500, reply.text
    assert server.count() == 0


def test_the_base_spec_itself_is_accepted(server: Server) -> None:
    """The control: every row above is refused for its own change, not the base spec."""
    reply = server.client.post(f"{API}/studies", json=base_spec())
    assert reply.status_code == 201, reply.text
    assert server.client.delete(f"{API}/studies/{reply.json()['id']}").status_code == 204
    assert server.count() == 0


# ---------------------------------------------------------------- projects and keys


class Keyed:
    """A server with projects ``a`` and ``b``: keys of a (one of them revoked), b's admin
    key, a revoked worker key, and b's study ``team-b-secret`` with trial 0 running."""

    def __init__(self, client: TestClient, keys: dict[str, str], ids: dict[str, Any]) -> None:
        self.client = client
        self.keys = keys
        self.ids = ids

    def snapshot(self) -> Any:
        """Everything both projects can see (key use times aside)."""
        seen = []
        for admin in ("a-admin", "b-admin"):
            headers = {"Authorization": f"Bearer {self.keys[admin]}"}
            studies = self.client.get(f"{API}/studies", headers=headers).json()["studies"]
            trials = [
                self.client.get(f"{API}/studies/{s['id']}/trials", headers=headers).json()
                for s in studies
            ]
            keys = self.client.get(f"{API}/keys", headers=headers).json()["keys"]
            seen.append((studies, trials, [{**k, "last_used_at": None} for k in keys]))
        return seen


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def keyed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Keyed]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('hostile-keyed') / 'tuneforge.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_url")
        _truncate(url)
    with make_client(url, reconcile_interval_seconds=0) as client:
        client.__dict__["_raise_server_exceptions"] = False
        db = client.app.state.db  # type: ignore[attr-defined]
        for name in ("a", "b"):
            key_service.create_project(db, name)
        keys = {
            f"{p}-{r}": key_service.create_key(db, p, r)[1]
            for p, r in (("a", "editor"), ("a", "admin"), ("b", "editor"), ("b", "admin"))
        }
        for name, project, role in (("revoked", "a", "admin"), ("revoked-worker", None, "worker")):
            entry, keys[name] = key_service.create_key(db, project, role)
            key_service.revoke_key(db, int(entry["id"]))
        b = {"Authorization": f"Bearer {keys['b-editor']}"}
        study = client.post(f"{API}/studies", json=small_spec("team-b-secret"), headers=b)
        assert study.status_code == 201, study.text
        sid = study.json()["id"]
        suggested = client.post(f"{API}/studies/{sid}/trials/suggest", json={"count": 1}, headers=b)
        assert suggested.json()["trials"][0]["number"] == 0, suggested.text
        group = {"study": nested_spec(name="b-group"), "outer_splits": 2, "run": False}
        assert client.post(f"{API}/nested-cv", json=group, headers=b).status_code == 201
        b_key = next(k["id"] for k in key_service.list_keys(db) if k["project"] == "b")
        ids = {"study": sid, "group": "b-group", "key": b_key}
        yield Keyed(client, keys, ids)
    if request.param == "postgresql":
        _truncate(url)  # later tests use the session's database without keys


FORGED = {
    "params": {"lr": 0.01, "depth": 3, "batch": 16, "optimizer": "adam"},
    "state": "completed",
    "values": {"accuracy": -1e300},
}
B = "/studies/{study}"

#: (row id, key, method, path under /api/v1 with b's ids, body, expected status)
KEYED_ROWS: list[tuple[str, str, str, str, Any, int]] = [
    # project a's keys naming project b's ids: 404 like an unknown id
    ("other-read", "a-admin", "GET", B, None, 404),
    ("other-best", "a-admin", "GET", f"{B}/best", None, 404),
    ("other-trials", "a-admin", "GET", f"{B}/trials", None, 404),
    ("other-trial", "a-admin", "GET", f"{B}/trials/0", None, 404),
    ("other-complete-study", "a-editor", "PATCH", B, {"state": "completed"}, 404),
    ("other-delete", "a-admin", "DELETE", B, None, 404),
    ("other-forge-trial", "a-editor", "POST", f"{B}/trials", FORGED, 404),
    ("other-suggest", "a-editor", "POST", f"{B}/trials/suggest", {"count": 1}, 404),
    (
        "other-complete-trial",
        "a-editor",
        "POST",
        f"{B}/trials/0/complete",
        {"values": {"accuracy": -1e300}},
        404,
    ),
    ("other-fail-trial", "a-editor", "POST", f"{B}/trials/0/fail", {"reason": "x"}, 404),
    (
        "other-measure",
        "a-editor",
        "POST",
        f"{B}/trials/0/measurements",
        {"step": 1, "values": {"accuracy": 1.0}},
        404,
    ),
    ("other-run", "a-editor", "POST", f"{B}/run", None, 404),
    ("other-evaluation", "a-admin", "PUT", f"{B}/evaluation", {"test_score": 1.0}, 404),
    ("other-nested-group", "a-admin", "GET", "/nested-cv/{group}", None, 404),
    ("other-key-revoke", "a-admin", "DELETE", "/keys/{key}", None, 404),
    # revoked keys: 401 on every verb, at once
    ("revoked-list", "revoked", "GET", "/studies", None, 401),
    ("revoked-read", "revoked", "GET", B, None, 401),
    ("revoked-create", "revoked", "POST", "/studies", small_spec("by-revoked"), 401),
    ("revoked-delete", "revoked", "DELETE", B, None, 401),
    (
        "revoked-complete-trial",
        "revoked",
        "POST",
        f"{B}/trials/0/complete",
        {"values": {"accuracy": -1e300}},
        401,
    ),
    ("revoked-new-key", "revoked", "POST", "/keys", {"project": "a", "role": "admin"}, 401),
    (
        "revoked-worker-complete",
        "revoked-worker",
        "POST",
        f"{B}/trials/0/complete",
        {"values": {"accuracy": 1.0}},
        401,
    ),
    (
        "revoked-worker-evaluation",
        "revoked-worker",
        "PUT",
        f"{B}/evaluation",
        {"test_score": 1.0},
        401,
    ),
]


@pytest.mark.parametrize(
    ("row", "key", "method", "path", "body", "status"), KEYED_ROWS, ids=[r[0] for r in KEYED_ROWS]
)
def test_other_projects_ids_and_revoked_keys_are_refused(
    keyed: Keyed, row: str, key: str, method: str, path: str, body: Any, status: int
) -> None:
    before = keyed.snapshot()
    headers = {"Authorization": f"Bearer {keyed.keys[key]}"}
    target = API + path.format(**keyed.ids)
    reply = keyed.client.request(method, target, json=body, headers=headers)
    assert reply.status_code == status, (row, reply.text)
    error = reply.json()["error"]
    assert error["code"] == ("not_found" if status == 404 else "unauthorized"), (row, error)
    assert "team-b-secret" not in reply.text
    if status == 404 and "{study}" in path:  # exactly what an unknown id answers
        unknown = keyed.client.request(
            method,
            target.replace(f"/studies/{keyed.ids['study']}", "/studies/999999"),
            json=body,
            headers=headers,
        )
        assert reply.json()["error"]["message"].replace(str(keyed.ids["study"]), "N") == (
            unknown.json()["error"]["message"].replace("999999", "N")
        ), row
    assert keyed.snapshot() == before
