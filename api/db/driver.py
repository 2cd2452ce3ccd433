"""Statements on a pooled psycopg connection, without SQLAlchemy's execution layers.

Every API request runs two statements that are not its work: the authorization read
(api/services/keys.py) and, for a mutating request, its audit row (api/services/audit.py).
Each is its own transaction in autocommit mode. Through SQLAlchemy's ``Connection`` one
costs about 210 microseconds of the server's CPU on PostgreSQL; the same statement sent
by psycopg on a connection taken from the same pool costs about 85 (docs/performance.md,
run U). Under a team's load the server's interpreter is the bottleneck, so those
microseconds are every call's latency. :func:`transaction` does the same for the few
statements of one transaction: a measurement of a study without an early-stopping rule
(api/services/lease_calls.py, run V). :func:`pipeline` sends a transaction's statements
in two round trips, its reads and then its writes with the ``COMMIT``: a completion and
a suggest's bookkeeping, which hold their study's lock in between
(api/services/completion_calls.py, api/services/suggest_calls.py, run X).

The statements stay SQLAlchemy constructs, compiled once per statement for the engine's
dialect. Their values go to the driver as they are, without the column types' bind and
result processing, so :func:`run` is only for statements whose columns need none on
PostgreSQL (integers, strings, timezone-aware timestamps, which ``UTCDateTime`` passes
through there). On SQLite :func:`run` is an ordinary :meth:`Database.single` block.

A connection the driver reports broken is invalidated (the pool replaces it), and the
error becomes :class:`~tuneforge.core.errors.Temporary` (503), as in :meth:`Database.single`.
Statement listeners (:attr:`Database.statement_listeners`) hear each statement sent this
way, so the tests that count a call's statements count these too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.sql import ClauseElement, Executable

from ...core.errors import Temporary

if TYPE_CHECKING:
    from .engine import Database

Params = Mapping[str, Any]

_compiled: dict[tuple[int, str, tuple[str, ...]], tuple[ClauseElement, str, dict[str, Any]]] = {}
_compiled_lock = threading.Lock()


def _sql(db: Database, statement: ClauseElement, keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The statement's SQL for the engine's dialect and the values it binds itself (such
    as a ``LIMIT``'s), compiled once per statement and dialect."""
    key = (id(statement), db.backend, tuple(keys))
    cached = _compiled.get(key)
    if cached is None or cached[0] is not statement:
        compiled = statement.compile(dialect=db.engine.dialect, column_keys=list(keys))
        fixed = {name: value for name, value in compiled.params.items() if value is not None}
        cached = (statement, str(compiled), fixed)
        with _compiled_lock:
            _compiled[key] = cached
    return cached[1], cached[2]


def run(
    db: Database,
    statement: Executable,
    params: Params | Sequence[Params] | None = None,
    *,
    write: bool = False,
) -> list[Any]:
    """Run one statement as its own transaction and return its rows (attribute access by
    column name; none for a statement that returns none). A sequence of parameter sets
    is one ``executemany``: on PostgreSQL one pipeline with one sync, so all of them or
    none. ``write`` matters on SQLite only (a ``BEGIN IMMEDIATE`` transaction); on
    PostgreSQL every statement here is its own autocommit transaction."""
    sets: list[Params]
    if params is None or isinstance(params, Mapping):
        sets, many = [params or {}], False
    else:
        sets, many = list(params), True
    if db.backend != "postgresql":
        with db.single(write=write) as conn:
            result = conn.execute(statement, sets if many else sets[0])
            return list(result.all()) if result.returns_rows else []
    sql, fixed = _sql(db, cast(ClauseElement, statement), list(sets[0]) if sets else [])
    _heard(db, sql)
    pooled = _checkout(db)
    connection: Any = pooled.dbapi_connection
    try:
        connection.autocommit = True
        with connection.cursor(row_factory=namedtuple_row) as cursor:
            if many:
                cursor.executemany(sql, [{**fixed, **p} for p in sets])
                return []
            cursor.execute(sql, {**fixed, **sets[0]})
            return cursor.fetchall() if cursor.description is not None else []
    except psycopg.OperationalError as exc:
        pooled.invalidate(exc)
        raise Temporary(f"database temporarily unavailable: {exc}") from exc
    finally:
        if not connection.closed:
            connection.autocommit = False
        pooled.close()


class Transaction:
    """The statements of one :func:`transaction`, each sent as :func:`run` sends one."""

    def __init__(self, db: Database, connection: Any) -> None:
        self._db = db
        self._connection = connection

    def run(self, statement: Executable, params: Params | None = None) -> list[Any]:
        """Run ``statement`` in the transaction and return its rows (as :func:`run`)."""
        values = dict(params or {})
        sql, fixed = _sql(self._db, cast(ClauseElement, statement), list(values))
        _heard(self._db, sql)
        with self._connection.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, {**fixed, **values})
            return cursor.fetchall() if cursor.description is not None else []


@contextmanager
def transaction(db: Database) -> Iterator[Transaction]:
    """One transaction on a pooled psycopg connection, PostgreSQL only: committed at the
    end of the block, rolled back when it raises. Errors map as in :func:`run` (a broken
    connection is invalidated and the block's error becomes :class:`Temporary`). For hot
    paths whose statements need none of the columns' bind and result processing (see the
    module docstring); a JSON value is passed wrapped in ``psycopg.types.json.Jsonb``."""
    if db.backend != "postgresql":
        raise ValueError("driver.transaction is for PostgreSQL; use Database.write")
    pooled = _checkout(db)
    connection: Any = pooled.dbapi_connection
    try:
        try:
            yield Transaction(db, connection)
            connection.commit()
        except BaseException:
            if not connection.closed and not connection.broken:
                connection.rollback()
            raise
    except psycopg.OperationalError as exc:
        pooled.invalidate(exc)
        raise Temporary(f"database temporarily unavailable: {exc}") from exc
    finally:
        pooled.close()


class Pending:
    """A statement queued in a :class:`Pipeline`; :meth:`rows` waits for its result."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def rows(self) -> list[Any]:
        """The rows of a statement that returns rows. The first read of a result sends
        everything queued before it, in one round trip."""
        return list(self._cursor.fetchall())


class Pipeline:
    """The statements of one :func:`pipeline` transaction."""

    def __init__(self, db: Database, connection: Any) -> None:
        self._db = db
        self._connection = connection

    def queue(self, statement: Executable, params: Params | None = None) -> Pending:
        """Queue ``statement``; it is sent with the next read of a result, or at the end of
        the block with the ``COMMIT``."""
        values = dict(params or {})
        sql, fixed = _sql(self._db, cast(ClauseElement, statement), list(values))
        _heard(self._db, sql)
        cursor = self._connection.cursor(row_factory=namedtuple_row)
        cursor.execute(sql, {**fixed, **values})
        return Pending(cursor)


@contextmanager
def pipeline(db: Database) -> Iterator[Pipeline]:
    """One transaction on a pooled psycopg connection in pipeline mode, PostgreSQL only.

    ``BEGIN`` and the statements queued before the first read of a result go to the
    server in one round trip; the statements queued after the last read go with the
    ``COMMIT`` at the end of the block, in one more. So a transaction that reads rows
    under a lock and then writes holds that lock for one round trip and the Python in
    between, where :func:`transaction` waits for every statement (and, under load, for
    the interpreter lock after each). Rolled back when the block raises; errors map as
    in :func:`transaction`."""
    if db.backend != "postgresql":
        raise ValueError("driver.pipeline is for PostgreSQL; use Database.write")
    pooled = _checkout(db)
    connection: Any = pooled.dbapi_connection
    try:
        connection.autocommit = True  # BEGIN and COMMIT are ours, queued with the rest
        with connection.pipeline():
            connection.execute("BEGIN")
            try:
                yield Pipeline(db, connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
    except psycopg.OperationalError as exc:
        pooled.invalidate(exc)
        raise Temporary(f"database temporarily unavailable: {exc}") from exc
    finally:
        if not connection.closed and not connection.broken:
            if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                connection.execute("ROLLBACK")  # a statement failed: the COMMIT was skipped
            connection.autocommit = False
        pooled.close()


def _heard(db: Database, sql: str) -> None:
    for listener in db.statement_listeners:
        listener(sql)


def _checkout(db: Database) -> Any:
    """A connection of the engine's pool (the pool's own wrapper: ``close()`` returns it)."""
    try:
        return db.engine.raw_connection()
    except (OperationalError, DisconnectionError, psycopg.OperationalError) as exc:
        # no connection to be had (the database is down or restarting); the pool, used
        # directly, raises the driver's own error
        raise Temporary(f"database temporarily unavailable: {exc}") from exc
