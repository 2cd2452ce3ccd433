"""Real processes for end-to-end tests: the API server, Celery workers, Redis, PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, _truncate, free_port, service_missing

ROOT = Path(__file__).resolve().parents[2]
SHARED_REDIS = os.environ.get("TUNEFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def redis_ping(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_connect_timeout=2).ping()


#: Redis database numbers the test sessions may use (0 is left to whoever else uses the server).
BROKER_DBS = range(1, 16)
#: How long a claim on one of them lives when its session dies without releasing it.
CLAIM_SECONDS = 3 * 3600


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """A Redis database number of the shared server for this session, flushed before and after.

    Sessions running at once (pytest-xdist's workers, other checkouts on the same server)
    each claim a number of their own: ``SET NX`` of a claim key in database 0, which no
    test flushes; the claim is released at the end and expires if the session dies."""
    import redis

    try:
        redis_ping(f"{SHARED_REDIS}/0")
    except Exception as exc:
        service_missing("Redis", exc)
    registry = redis.Redis.from_url(f"{SHARED_REDIS}/0")
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    db = next(
        (
            n
            for n in BROKER_DBS
            if registry.set(f"tuneforge-test:broker-db:{n}", token, nx=True, ex=CLAIM_SECONDS)
        ),
        None,
    )
    if db is None:
        raise RuntimeError(f"every Redis database {BROKER_DBS} is claimed by another test session")
    url = f"{SHARED_REDIS}/{db}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        key = f"tuneforge-test:broker-db:{db}"
        if registry.get(key) == token.encode():
            registry.delete(key)
        registry.close()


class PrivateRedis:
    """A redis-server of the test's own on a free port, which the test may kill and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server", FileNotFoundError("redis-server not on PATH"))
        assert binary is not None
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                redis_ping(self.url)
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


class Worker:
    """``tuneforge worker`` in its own process group (so a test can kill the whole of it)."""

    def __init__(
        self, server: str, broker: str, name: str, env: dict[str, str] | None = None
    ) -> None:
        env = {
            **os.environ,
            **(env or {}),
            "TUNEFORGE_SERVER_URL": server,
            "TUNEFORGE_BROKER_URL": broker,
            "PYTHONPATH": str(ROOT),
        }
        cmd = [
            sys.executable,
            "-m",
            "tuneforge.cli",
            "worker",
            "--concurrency",
            "1",
            "--loglevel",
            "warning",
            "--hostname",
            f"{name}@%h",
        ]
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def cluster_db(pg_url: str) -> str:
    _truncate(pg_url)
    return pg_url


def start_server(db_url: str, broker: str) -> LiveServer:
    env = {
        "TUNEFORGE_BROKER_URL": broker,
        "TUNEFORGE_RECONCILE_INTERVAL_SECONDS": "0.5",
        "TUNEFORGE_DISPATCH_TTL_SECONDS": "6",
    }
    return LiveServer(db_url, env=env).start()


def wait_for(check, timeout: float, what: str, interval: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


#: Seconds an e2e request may take. The server shares 2 cores with Celery workers that
#: train models, and its first managed spec imports scikit-learn: under that load a
#: correct reply can take well over httpx's 5 s default. Waiting longer is not a retry.
E2E_TIMEOUT = 60.0


def all_trials(url: str, sid: int) -> list[dict]:  # type: ignore[type-arg]
    reply = httpx.get(
        f"{url}/api/v1/studies/{sid}/trials", params={"page_size": 1000}, timeout=E2E_TIMEOUT
    )
    return list(reply.json()["trials"])
