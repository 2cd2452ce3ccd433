"""Shared fixtures: real SQLite files and a real PostgreSQL database per test session.

PostgreSQL tests need the server named by ``TUNEFORGE_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Each session creates its own
database and drops it at the end. When the server is down the tests fail in CI
(``CI=true``) and are skipped, with the reason, on a laptop.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text

from tuneforge.api.app import create_app
from tuneforge.api.db.engine import Database, normalize_url
from tuneforge.api.db.migrate import upgrade
from tuneforge.api.settings import Settings

# pytest-xdist (the dev extra): how the suite is split over its workers; without xdist
# pytest must not see the hook (it would be an unknown one)
with contextlib.suppress(ImportError):
    from tests.scheduling import make_scheduler as pytest_xdist_make_scheduler  # noqa: F401

PG_ADMIN_URL = os.environ.get("TUNEFORGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(what: str, error: Exception) -> None:
    """Fail in CI, skip on a laptop: a missing service must never pass silently in CI."""
    message = f"{what} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def temporary_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database ``<prefix>_<pid>_<random>``, dropped on exit.

    When the server named by ``TUNEFORGE_TEST_PG_URL`` is not reachable: fails in CI,
    skips on a laptop (:func:`service_missing`).
    """
    admin = create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        service_missing("PostgreSQL", exc)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


#: What the test servers and workers allow a spec to name (the defaults allow no python
#: module and no data file): the test suite's own objectives, and files under pytest's
#: temporary directory. Tests of the defaults pass their own settings.
TEST_PYTHON_MODULES = "tests"


@pytest.fixture(scope="session", autouse=True)
def spec_policy_for_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Sets ``TUNEFORGE_PYTHON_OBJECTIVE_MODULES`` and ``TUNEFORGE_DATA_ROOTS`` for this
    session (servers and workers started by the tests inherit them); yields the data root."""
    root = str(tmp_path_factory.getbasetemp())
    saved = {k: os.environ.get(k) for k in POLICY_VARIABLES}
    os.environ["TUNEFORGE_PYTHON_OBJECTIVE_MODULES"] = TEST_PYTHON_MODULES
    os.environ["TUNEFORGE_DATA_ROOTS"] = root
    # servers the tests start keep artifacts under pytest's folder, never the working
    # directory (make_client and LiveServer give each app a folder of its own)
    os.environ["TUNEFORGE_ARTIFACT_URL"] = str(tmp_path_factory.mktemp("artifacts"))
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


POLICY_VARIABLES = (
    "TUNEFORGE_PYTHON_OBJECTIVE_MODULES",
    "TUNEFORGE_DATA_ROOTS",
    "TUNEFORGE_ARTIFACT_URL",
)


def fresh_artifact_dir() -> str:
    """An empty artifact folder for one app: on PostgreSQL, ids restart with every test
    (``RESTART IDENTITY``), so apps must not share checkpoints by study id."""
    base = os.environ.get("TUNEFORGE_ARTIFACT_URL") or None
    return tempfile.mkdtemp(prefix="app-", dir=base)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, migrated to head, dropped at the end."""
    with temporary_pg_database("tuneforge_test") as url:
        upgrade(url)
        yield url


#: How many times this session emptied its PostgreSQL database: an app kept across tests
#: (tests/sdk's in-process apps) is built again after one, not left with stale caches.
TRUNCATIONS = [0]


def _truncate(url: str) -> None:
    TRUNCATIONS[0] += 1
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE measurements, trials, studies, api_keys, audit_log, datasets "
                "RESTART IDENTITY CASCADE"
            )
        )
        conn.execute(text("DELETE FROM projects WHERE name <> 'default'"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend (the contract suite runs on both)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tuneforge.db'}"
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("pg_url")
    _truncate(url)
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'tuneforge.db'}"
    upgrade(url)
    return url


@contextmanager
def statements_of(db: Database) -> Iterator[list[str]]:
    """Every SQL statement ``db`` sends while the block runs, in order: through
    SQLAlchemy (its cursor events) and through :func:`tuneforge.api.db.driver.run`."""
    seen: list[str] = []

    def on_execute(_c: object, _cur: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", on_execute)
    db.statement_listeners.append(seen.append)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)
        db.statement_listeners.remove(seen.append)


def make_client(url: str, **settings: object) -> TestClient:
    settings.setdefault("artifact_url", fresh_artifact_dir())
    return TestClient(create_app(Settings(db_url=url, **settings)))  # type: ignore[arg-type]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    """The real FastAPI app on the real database, driven in-process."""
    with make_client(db_url, reconcile_interval_seconds=0) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``tuneforge serve`` in a child process on a free loopback port."""

    def __init__(self, db_url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = db_url
        self.extra = extra
        self.env = {**os.environ, "TUNEFORGE_ARTIFACT_URL": fresh_artifact_dir(), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> LiveServer:
        cmd = [
            sys.executable,
            "-m",
            "tuneforge.cli",
            "serve",
            "--db",
            self.db_url,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.extra,
        ]
        self.proc = subprocess.Popen(cmd, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def live_server(db_url: str) -> Iterator[LiveServer]:
    server = LiveServer(db_url).start()
    yield server
    server.stop()
