"""`tuneforge db upgrade` and `tuneforge serve` refusing an old schema, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import LiveServer, free_port
from tuneforge.api.db.engine import build_engine
from tuneforge.api.db.migrate import current_revision, head_revision

CLI = [sys.executable, "-m", "tuneforge.cli"]


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_serve_refuses_an_unmigrated_database_and_names_the_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    result = run("serve", "--db", url, "--port", str(free_port()))
    assert result.returncode != 0
    assert f"tuneforge db upgrade --db {url}" in result.stderr
    assert "--migrate" in result.stderr


def test_db_upgrade_then_serve(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'team.db'}"
    result = run("db", "upgrade", "--db", url)
    assert result.returncode == 0, result.stderr
    engine = build_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
    server = LiveServer(url).start()
    try:
        assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}
    finally:
        server.stop()


def test_db_upgrade_on_postgresql_is_idempotent(pg_url: str) -> None:
    for _ in range(2):
        result = run("db", "upgrade", "--db", pg_url)
        assert result.returncode == 0, result.stderr


def test_serve_with_migrate_flag_and_env_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    server = LiveServer(url, "--migrate")
    server.start()
    try:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        server.stop()
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "TUNEFORGE_DB_URL": url},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert url in banner
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_embedded_default_creates_and_migrates_tuneforge_db(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TUNEFORGE_DB_URL"}
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port)], cwd=tmp_path, env=env)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json() == {"status": "ready"}
        assert (tmp_path / "tuneforge.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_unreachable_database_is_a_clear_cli_error(tmp_path: Path) -> None:
    result = run("db", "upgrade", "--db", "postgresql://nobody@127.0.0.1:1/none", timeout=60)
    assert result.returncode != 0
    assert "cannot upgrade" in result.stderr
    assert "Traceback" not in result.stderr
