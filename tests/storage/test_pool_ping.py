"""PostgreSQL pool: a connection is pinged before use only after it sat idle, and one
that died while idle is replaced without the caller seeing an error."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text

from tuneforge.api.db import engine as engine_module
from tuneforge.api.db.engine import Database


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, pool_size=2)
    yield database
    database.dispose()


def _pings(db: Database) -> list[int]:
    """Counts the pings the dialect sends (appends one per ping)."""
    seen: list[int] = []
    ping = db.engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        seen.append(1)
        return ping(dbapi_connection)

    db.engine.dialect.do_ping = counted  # type: ignore[method-assign]
    return seen


def _backend_pid(db: Database) -> int:
    with db.single() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_back_in_the_pool_a_moment_ago_is_not_pinged(db: Database) -> None:
    pings = _pings(db)
    for _ in range(20):
        _backend_pid(db)
    assert pings == []


def test_a_connection_idle_past_the_limit_is_pinged(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.05)
    pings = _pings(db)
    _backend_pid(db)
    time.sleep(0.1)
    _backend_pid(db)
    assert pings == [1]


def test_a_connection_killed_while_idle_is_replaced_before_use(
    db: Database, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.05)
    first = _backend_pid(db)
    killer = Database(pg_url)
    try:
        with killer.single() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar()
    finally:
        killer.dispose()
    time.sleep(0.1)
    discarded: list[int] = []
    event.listen(db.engine, "invalidate", lambda *_: discarded.append(1))
    assert _backend_pid(db) != first  # no error: the ping found it dead, a new one served
    assert discarded == [1]
