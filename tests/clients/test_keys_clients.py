"""The JavaScript client and the curl walk-through against a live server that requires API
keys: with ``TUNEFORGE_API_KEY`` they work as before, without it they stop at the 401."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.clients.test_js_and_curl import JS, ROOT, WALKTHROUGH, curl, node  # noqa: F401
from tests.conftest import LiveServer
from tuneforge.api.db.engine import Database
from tuneforge.api.services import keys as key_service


@pytest.fixture
def keyed(sqlite_url: str) -> Iterator[tuple[LiveServer, str]]:
    """A live server on a database with an editor key of project ``team``."""
    db = Database(sqlite_url)
    try:
        key_service.create_project(db, "team")
        _, key = key_service.create_key(db, "team", "editor")
    finally:
        db.dispose()
    server = LiveServer(sqlite_url).start()
    yield server, key
    server.stop()


def run(cmd: list[str], url: str, key: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    full.pop("NODE_OPTIONS", None)
    full |= {"TUNEFORGE_URL": url, **env}
    if key is not None:
        full["TUNEFORGE_API_KEY"] = key
    return subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=240)


def studies(server: LiveServer, key: str) -> list[str]:
    reply = httpx.get(
        f"{server.url}/api/v1/studies", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    return [s["name"] for s in reply.json()["studies"]]


def test_js_example_with_and_without_a_key(
    node: str,  # noqa: F811
    keyed: tuple[LiveServer, str],
) -> None:
    server, key = keyed
    denied = run([node, str(JS / "example.mjs")], server.url, None, TUNEFORGE_STUDY_NAME="js-no")
    assert denied.returncode != 0 and "unauthorized" in denied.stderr, denied.stderr
    done = run([node, str(JS / "example.mjs")], server.url, key, TUNEFORGE_STUDY_NAME="js-key")
    assert done.returncode == 0, done.stderr[-4000:]
    assert "best: trial" in done.stdout
    assert studies(server, key) == ["js-key"]


def test_curl_walkthrough_with_and_without_a_key(
    curl: str,  # noqa: F811
    keyed: tuple[LiveServer, str],
) -> None:
    server, key = keyed
    cmd = ["bash", str(WALKTHROUGH), server.url]
    denied = run(cmd, server.url, None, STUDY_NAME="curl-no")
    assert denied.returncode != 0 and '"code": "unauthorized"' in denied.stdout
    done = run(cmd, server.url, key, STUDY_NAME="curl-key")
    assert done.returncode == 0, done.stderr[-4000:]
    assert studies(server, key) == ["curl-key"]
