"""``tuneforge projects|keys|audit`` and ``serve``'s exposure check, as real subprocesses
on real databases (SQLite and PostgreSQL), with a live server where one is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tuneforge
import tuneforge.errors
from tests.conftest import LiveServer, free_port
from tests.specs import small_spec

CLI = [sys.executable, "-m", "tuneforge.cli"]


def run(*args: str, db: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    if db is not None:
        clean["TUNEFORGE_DB_URL"] = db
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env={**clean, **env}
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def new_key(db: str, *args: str) -> str:
    result = run("keys", "create", *args, db=db)
    key = ok(result).strip()
    assert len(key.splitlines()) == 1 and key.startswith("tf_")
    assert "not shown again" in result.stderr and key not in result.stderr
    return key


def test_projects_and_keys_lifecycle(db_url: str) -> None:
    assert "project ml created" in ok(run("projects", "create", "ml", db=db_url))
    one_line_error(run("projects", "create", "ml", db=db_url), 1, "already exists")
    listed = json.loads(ok(run("projects", "list", "--format", "json", db=db_url)))
    assert [p["name"] for p in listed] == ["default", "ml"]
    admin = new_key(db_url, "--project", "ml", "--role", "admin")
    worker = new_key(db_url, "--role", "worker")
    one_line_error(run("keys", "create", "--role", "editor", db=db_url), 2, "--project")
    one_line_error(
        run("keys", "create", "--role", "worker", "--project", "ml", db=db_url), 2, "worker"
    )
    one_line_error(run("keys", "create", "--role", "owner", "--project", "ml", db=db_url), 2)
    one_line_error(
        run("keys", "create", "--project", "nope", "--role", "viewer", db=db_url), 1, "nope"
    )
    table = ok(run("keys", "list", db=db_url))
    keys = json.loads(ok(run("keys", "list", "--format", "json", db=db_url)))
    assert [(k["project"], k["role"], k["revoked_at"]) for k in keys] == [
        ("ml", "admin", None),
        (None, "worker", None),
    ]
    for key in (admin, worker):
        assert key not in table and key.split("_", 2)[2] not in json.dumps(keys)
    assert keys[0]["prefix"] in table and admin.startswith(keys[0]["prefix"])
    assert "revoked" in ok(run("keys", "revoke", str(keys[1]["id"]), db=db_url))
    one_line_error(run("keys", "revoke", "4242", db=db_url), 1, "does not exist")
    one_line_error(run("keys", "revoke", "x", db=db_url), 2)
    keys = json.loads(ok(run("keys", "list", "--format", "json", db=db_url)))
    assert keys[1]["revoked_at"] is not None and keys[0]["revoked_at"] is None


def test_an_outdated_or_unreachable_database_is_one_line(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    one_line_error(run("projects", "list", db=empty), 1, "tuneforge db upgrade")
    one_line_error(
        run("keys", "list", db="postgresql://nobody@127.0.0.1:1/none"), 1, "cannot use database"
    )


@pytest.fixture
def keyed_server(sqlite_url: str) -> Iterator[tuple[LiveServer, str, str]]:
    """A live server on a database with project ml, an admin and an editor key of it."""
    ok(run("projects", "create", "ml", db=sqlite_url))
    admin = new_key(sqlite_url, "--project", "ml", "--role", "admin")
    editor = new_key(sqlite_url, "--project", "ml", "--role", "editor")
    server = LiveServer(sqlite_url).start()
    yield server, admin, editor
    server.stop()


def test_audit_from_the_database_and_over_http(keyed_server: tuple[LiveServer, str, str]) -> None:
    server, admin, editor = keyed_server
    with tuneforge.Client(server.url, editor) as client:
        study = client.create_study(**small_spec("audited"))
        study.suggest(1)
    rows = json.loads(ok(run("audit", "--format", "json", db=server.db_url)))
    assert [(r["method"], r["status"], r["project"]) for r in rows] == [
        ("POST", 200, "ml"),
        ("POST", 201, "ml"),
    ]
    table = ok(run("audit", "--project", "ml", "--limit", "1", db=server.db_url))
    assert "/trials/suggest" in table and "POST" in table and len(table.splitlines()) == 2
    assert (
        json.loads(ok(run("audit", "--project", "default", "--format", "json", db=server.db_url)))
        == []
    )
    one_line_error(run("audit", "--project", "nope", db=server.db_url), 1, "nope")
    over_http = json.loads(
        ok(run("audit", "--url", server.url, "--format", "json", TUNEFORGE_API_KEY=admin))
    )
    assert over_http == rows
    limited = json.loads(
        ok(
            run(
                "audit", "--url", server.url, "--limit", "1", "--api-key", admin, "--format", "json"
            )
        )
    )
    assert limited == rows[:1]
    one_line_error(run("audit", "--url", server.url, TUNEFORGE_API_KEY=editor), 1, "403")
    one_line_error(run("audit", "--url", server.url), 1, "401", "TUNEFORGE_API_KEY")


def test_sdk_with_a_key_and_without(keyed_server: tuple[LiveServer, str, str]) -> None:
    server, admin, _ = keyed_server
    with tuneforge.Client(server.url, admin) as client:
        client.create_study(**small_spec("sdk"))
        assert [s.data.name for s in client.list_studies()] == ["sdk"]
    with (
        tuneforge.Client(server.url, "tf_1_wrong") as client,
        pytest.raises(tuneforge.errors.Unauthorized),
    ):
        client.list_studies()


def test_client_commands_take_the_key_as_an_option(
    keyed_server: tuple[LiveServer, str, str],
) -> None:
    server, admin, editor = keyed_server
    with tuneforge.Client(server.url, editor) as client:
        client.create_study(**small_spec("listed"))
    listed = ok(
        run("studies", "list", "--url", server.url, "--api-key", editor, "--format", "json")
    )
    assert [s["name"] for s in json.loads(listed)] == ["listed"]
    shown = ok(run("best", "listed", "--url", server.url, "--api-key", admin))
    assert shown.strip() == "no completed trial yet in study 1 'listed'"
    one_line_error(run("studies", "list", "--url", server.url), 1, "401", "TUNEFORGE_API_KEY")
    one_line_error(run("studies", "list", "--url", server.url, "--api-key", "tf_1_wrong"), 1, "401")
    for command in (["worker"], ["run", "x.yaml"], ["trials", "list", "1"], ["nested-cv"]):
        assert "--api-key" in ok(run(*command, "--help")), command


def serve(db: str, *args: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    return subprocess.Popen(
        [*CLI, "serve", "--db", db, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
    )


def wait_ready(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, err = proc.communicate(timeout=15)
    return err + out  # uvicorn's access log goes to stdout


def test_serve_refuses_a_public_address_without_a_key(sqlite_url: str) -> None:
    refused = run("serve", "--db", sqlite_url, "--host", "0.0.0.0", "--port", str(free_port()))
    one_line_error(
        refused, 1, "refusing to listen on 0.0.0.0", "tuneforge keys create", "--insecure"
    )
    port = free_port()
    proc = serve(sqlite_url, "--host", "0.0.0.0", "--port", str(port), "--insecure")
    try:
        wait_ready(proc, port)
    finally:
        err = stop(proc)
    assert "--insecure is set" in err
    port = free_port()
    proc = serve(sqlite_url, "--port", str(port))
    try:
        wait_ready(proc, port)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/studies").status_code == 200
    finally:
        err = stop(proc)
    assert "open mode" in err


def test_a_live_server_never_logs_a_key(sqlite_url: str) -> None:
    ok(run("projects", "create", "ml", db=sqlite_url))
    key = new_key(sqlite_url, "--project", "ml", "--role", "admin")
    other = new_key(sqlite_url, "--project", "ml", "--role", "viewer")
    port = free_port()
    proc = serve(sqlite_url, "--host", "0.0.0.0", "--port", str(port), "--log-level", "debug")
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_ready(proc, port)
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{base}/studies", json=small_spec(), headers=auth).status_code == 201
        assert httpx.get(f"{base}/studies", headers=auth).status_code == 200
        bad = {"Authorization": f"Bearer {key}x"}
        assert httpx.delete(f"{base}/studies/1", headers=bad).status_code == 401
        ok(run("keys", "revoke", other.split("_")[1], db=sqlite_url))
        revoked = {"Authorization": f"Bearer {other}"}
        assert httpx.get(f"{base}/studies", headers=revoked).status_code == 401
    finally:
        err = stop(proc)
    assert "required on every /api/v1 request" in err and "GET /api/v1/studies" in err
    for secret in (key, other):
        assert secret not in err and secret.split("_", 2)[2][:12] not in err
