"""``driver.run``: one statement on a pooled connection without SQLAlchemy's execution
layers (the authorization read and the audit insert), on SQLite and PostgreSQL: rows
by column name, a batch all or nothing, the pooled connection handed back as it was
taken, and a connection that broke replaced, its error a 503."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, select, text

from tuneforge.api.db import driver
from tuneforge.api.db.engine import Database
from tuneforge.api.db.models import AuditRow
from tuneforge.core.errors import Temporary


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, pool_size=1)
    yield database
    database.dispose()


def _row(method: str, status: int) -> dict[str, object]:
    return {
        "at": datetime.now(UTC),
        "key_id": None,
        "project_id": None,
        "method": method,
        "route": "/r",
        "path": "/p",
        "study_id": None,
        "status": status,
    }


COUNT = select(func.count()).select_from(AuditRow).where(AuditRow.status >= bindparam("least"))


def test_rows_by_name_and_a_batch_all_or_nothing(db: Database) -> None:
    heard: list[str] = []
    db.statement_listeners.append(heard.append)
    driver.run(db, insert(AuditRow), [_row("POST", 700), _row("PUT", 701)], write=True)
    (row,) = driver.run(
        db, COUNT.add_columns(func.max(AuditRow.status).label("top")), {"least": 700}
    )
    assert (row[0], row.top) == (2, 701)
    too_long = "X" * 50  # the column holds 8 characters on PostgreSQL, SQLite ignores it
    batch = [_row("POST", 702), _row(too_long if db.backend == "postgresql" else "POST", 703)]
    if db.backend == "postgresql":
        with pytest.raises(Exception, match="too long"):
            driver.run(db, insert(AuditRow), batch, write=True)
        assert driver.run(db, COUNT, {"least": 702})[0][0] == 0, "half a batch was stored"
        assert len(heard) == 4, "each statement sent by the driver is heard"
    assert driver.run(db, select(AuditRow.id).where(AuditRow.status == 999)) == []


def test_the_pooled_connection_goes_back_in_a_transaction_again(db: Database) -> None:
    """After an autocommit statement the pooled connection (pool of one) must not stay in
    autocommit: a write that fails afterwards still rolls back."""
    driver.run(db, insert(AuditRow), [_row("POST", 710)], write=True)
    with pytest.raises(RuntimeError), db.write() as session:
        session.execute(insert(AuditRow).values(**_row("POST", 711)))
        raise RuntimeError("roll back")
    assert driver.run(db, COUNT, {"least": 711})[0][0] == 0


def test_a_broken_connection_is_a_503_and_replaced(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    killer = Database(pg_url)
    try:
        pid = driver.run(db, select(func.pg_backend_pid().label("pid")))[0].pid
        with killer.single() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        with pytest.raises(Temporary, match="temporarily unavailable"):
            driver.run(db, select(func.pg_backend_pid().label("pid")))
        assert driver.run(db, select(func.pg_backend_pid().label("pid")))[0].pid != pid
    finally:
        killer.dispose()
        db.dispose()


def test_no_database_to_connect_to_is_a_503() -> None:
    """The pool, used without SQLAlchemy's connection, raises the driver's own error when
    it cannot connect (a database down or restarting): still a 503, not a 500."""
    from tests.conftest import free_port

    db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(Temporary, match="temporarily unavailable"):
            driver.run(db, select(func.pg_backend_pid().label("pid")))
    finally:
        db.dispose()


def test_a_transaction_commits_at_the_end_and_rolls_back_on_error(pg_url: str) -> None:
    """``driver.transaction``: every statement of the block or none, the listeners hear
    each, and the pooled connection (a pool of one) goes back usable either way."""
    db = Database(pg_url, pool_size=1)
    heard: list[str] = []
    db.statement_listeners.append(heard.append)
    try:
        with driver.transaction(db) as tx:
            tx.run(insert(AuditRow), _row("POST", 720))
            (row,) = tx.run(COUNT, {"least": 720})  # its own write, seen before the commit
            assert row[0] == 1
            tx.run(insert(AuditRow), _row("PUT", 721))
        assert len(heard) == 3
        with pytest.raises(RuntimeError), driver.transaction(db) as tx:
            tx.run(insert(AuditRow), _row("POST", 722))
            raise RuntimeError("roll back")
        with pytest.raises(Exception, match="too long"), driver.transaction(db) as tx:
            tx.run(insert(AuditRow), _row("POST", 723))
            tx.run(insert(AuditRow), _row("X" * 50, 724))
        assert driver.run(db, COUNT, {"least": 720})[0][0] == 2, "only the first block stays"
    finally:
        db.dispose()


def _transaction_pid(db: Database) -> int:
    with driver.transaction(db) as tx:
        return int(tx.run(select(func.pg_backend_pid().label("pid")))[0].pid)


def _pipeline_pid(db: Database) -> int:
    with driver.pipeline(db) as tx:
        return int(tx.queue(select(func.pg_backend_pid().label("pid"))).rows()[0].pid)


#: A statement in each kind of transaction the driver opens: the server process's id.
BACKEND_PID = {"transaction": _transaction_pid, "pipeline": _pipeline_pid}


@pytest.mark.parametrize("kind", sorted(BACKEND_PID))
def test_a_transaction_on_a_broken_connection_is_a_503_and_replaced(pg_url: str, kind: str) -> None:
    db = Database(pg_url, pool_size=1)
    killer = Database(pg_url)
    pid_of = BACKEND_PID[kind]
    try:
        pid = pid_of(db)
        with killer.single() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        with pytest.raises(Temporary, match="temporarily unavailable"):
            pid_of(db)
        assert pid_of(db) != pid
    finally:
        killer.dispose()
        db.dispose()


@pytest.mark.parametrize("opened", [driver.transaction, driver.pipeline])
def test_a_transaction_is_for_postgresql_only(sqlite_url: str, opened: Any) -> None:
    db = Database(sqlite_url)
    try:
        with pytest.raises(ValueError, match="PostgreSQL"), opened(db):
            pass
    finally:
        db.dispose()


def test_a_pipeline_commits_at_the_end_and_rolls_back_on_error(pg_url: str) -> None:
    """``driver.pipeline``: rows read inside the block, every statement of the block or
    none (an exception of the block's own, or a statement that fails after the last read,
    when only the ``COMMIT`` would have told), and the pooled connection (a pool of one)
    goes back usable and out of any transaction either way."""
    db = Database(pg_url, pool_size=1)
    heard: list[str] = []
    db.statement_listeners.append(heard.append)
    try:
        with driver.pipeline(db) as tx:
            tx.queue(insert(AuditRow), _row("POST", 730))
            (row,) = tx.queue(COUNT, {"least": 730}).rows()  # its own write, before the commit
            assert row[0] == 1
            tx.queue(insert(AuditRow), _row("PUT", 731))
        assert len(heard) == 3, "each statement sent by the driver is heard"
        with pytest.raises(RuntimeError), driver.pipeline(db) as tx:
            tx.queue(insert(AuditRow), _row("POST", 732))
            assert tx.queue(COUNT, {"least": 732}).rows()[0][0] == 1
            raise RuntimeError("roll back")
        with pytest.raises(Exception, match="too long"), driver.pipeline(db) as tx:
            tx.queue(insert(AuditRow), _row("POST", 733))
            tx.queue(insert(AuditRow), _row("X" * 50, 734))  # fails with the COMMIT queued
        assert driver.run(db, COUNT, {"least": 730})[0][0] == 2, "only the first block stays"
        with driver.transaction(db) as plain:  # the same pooled connection, not in a block
            assert plain.run(COUNT, {"least": 730})[0][0] == 2
    finally:
        db.dispose()
