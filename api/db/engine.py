"""Engine and session factory for SQLite (embedded) and PostgreSQL (team server).

SQLite runs in WAL mode with a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so two writers queue instead of failing half-way. On
PostgreSQL the service serializes writes per study with a row lock on the study
(``SELECT ... FOR NO KEY UPDATE``, :func:`~tuneforge.api.db.repository.for_update`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ...core.errors import Temporary

_WRITE = "tuneforge_write"
#: ``session.info`` key: (seconds waited, ``perf_counter`` when granted) of the study row
#: lock the session's transaction holds (:func:`note_study_lock`).
_STUDY_LOCK = "tuneforge_study_lock"
#: Called with (seconds waited for a study row lock, seconds it was held) when the
#: transaction that took it ends.
LockObserver = Callable[[float, float], None]
#: Called with (phase, seconds) for each phase of a model suggest's shared fit.
PhaseObserver = Callable[[str, float], None]
#: Called with (event, points) for the spare points of busy TPE studies.
SpareObserver = Callable[[str, int], None]


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def build_engine(url: str, *, pool_size: int = 10, sqlite_busy_ms: int = 30_000) -> Engine:
    """Create an engine with the right pragmas (SQLite) or pool settings (PostgreSQL)."""
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": sqlite_busy_ms / 1000}
        )
        _configure_sqlite(engine, sqlite_busy_ms)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_timeout=30)
    _ping_when_idle(engine)
    return engine


#: A pooled PostgreSQL connection idle for longer than this is pinged before it is used.
PING_AFTER_IDLE_S = 2.0
_CHECKED_IN = "tuneforge_checked_in"


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection with a round trip only when it sat idle for
    :data:`PING_AFTER_IDLE_S` (SQLAlchemy's ``pool_pre_ping`` pings on every checkout,
    a round trip and about 0.15 ms of CPU each, several times per request).

    A connection that died while idle (a database restart or failover, a proxy's idle
    timeout) is replaced before the request sees it, as with ``pool_pre_ping``. One
    that dies while in use fails its statement: SQLAlchemy then discards every
    connection the pool handed out before (a disconnect invalidates the pool), the
    request answers 503 and the clients retry it, which a ping on every checkout would
    not have prevented for the requests already running."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # new, or back in the pool a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's own error: the connection is gone
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its ping")


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def is_write_session(session: Session) -> bool:
    """Whether ``session`` came from :meth:`Database.write` (its transaction may still
    roll back, so process caches must not keep what it read)."""
    bind = session.get_bind()
    return bool(bind.get_execution_options().get(_WRITE, False))


def note_study_lock(session: Session, waited: float) -> None:
    """Record that ``session``'s transaction was granted a study row lock after waiting
    ``waited`` seconds; its hold time is measured when the transaction ends (the first
    lock of a transaction counts: it is held from then to the commit or rollback)."""
    session.info.setdefault(_STUDY_LOCK, (waited, time.perf_counter()))


class Database:
    """One engine plus read and write session scopes; one transaction per scope.

    ``lock_observer``, when set, hears how long each transaction waited for and held
    its study row lock (PostgreSQL; see :func:`note_study_lock`); ``phase_observer``
    hears the seconds of each phase of a model suggest's shared fit (``snapshot``,
    ``fit``, ``claim``, and ``stale`` for an attempt thrown away:
    ``api/services/suggest_fit.py``); ``spare_observer`` hears how
    many spare points were fitted, taken or dropped as too old
    (``api/services/suggest_spare.py``)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.engine = build_engine(self.url, pool_size=pool_size)
        self.backend = self.engine.dialect.name
        self.lock_observer: LockObserver | None = None
        self.phase_observer: PhaseObserver | None = None
        self.spare_observer: SpareObserver | None = None
        #: Called with the SQL of each statement sent by :func:`.driver.run` (which
        #: SQLAlchemy's cursor events do not see).
        self.statement_listeners: list[Callable[[str], None]] = []
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._writer = sessionmaker(self._write_engine, expire_on_commit=False)
        self._autocommit = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.backend == "postgresql"
            else None
        )
        #: Reads outside a transaction (:meth:`read` with ``transaction=False``).
        self._autocommit_reader = (
            sessionmaker(self._autocommit, expire_on_commit=False)
            if self._autocommit is not None
            else self._reader
        )
        for maker in (self._reader, self._writer):
            event.listen(maker, "after_commit", self._transaction_ended)
            event.listen(maker, "after_rollback", self._transaction_ended)

    def _transaction_ended(self, session: Session) -> None:
        lock = session.info.pop(_STUDY_LOCK, None)
        if lock is not None and self.lock_observer is not None:
            waited, granted = lock
            self.lock_observer(waited, time.perf_counter() - granted)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed at the end of the block and rolled back on error."""
        with self._scope(self._writer) as session:
            yield session

    @contextmanager
    def read(self, *, transaction: bool = True) -> Iterator[Session]:
        """A read-only transaction (never blocks writers on SQLite's WAL).

        ``transaction=False``: on PostgreSQL the reads run in autocommit mode, which spares
        the ``BEGIN`` and ``COMMIT`` round trips (two of the three to five of a hot read,
        and under load each waits its turn for the interpreter lock). No answer changes:
        at PostgreSQL's READ COMMITTED every statement sees its own snapshot inside a
        transaction too. Not for a server-side cursor (``yield_per``, a streamed export),
        which lives only inside a transaction. On SQLite a transaction as above, whose one
        snapshot the statements then share."""
        with self._scope(self._reader if transaction else self._autocommit_reader) as session:
            yield session

    @contextmanager
    def single(self, *, write: bool = False) -> Iterator[Connection]:
        """A connection for one statement that is its own transaction: on PostgreSQL in
        autocommit mode, which spares the ``BEGIN`` and ``COMMIT`` round trips and the ORM
        session of :meth:`read` and :meth:`write` (the authorization read and the audit
        insert of every request use it); on SQLite a transaction of the same kind as
        :meth:`read` or :meth:`write`. Several statements in one block each see their own
        snapshot on PostgreSQL (as in :meth:`read` at READ COMMITTED)."""
        try:
            if self._autocommit is not None:
                with self._autocommit.connect() as conn:
                    yield conn
            else:
                engine = self._write_engine if write else self.engine
                with engine.begin() as conn:
                    yield conn
        except OperationalError as exc:
            raise Temporary(f"database temporarily unavailable: {exc.orig}") from exc

    @contextmanager
    def _scope(self, factory: sessionmaker[Session]) -> Iterator[Session]:
        session = factory()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise Temporary(f"database temporarily unavailable: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
