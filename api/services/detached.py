"""Rows in no ORM session, written back by :func:`.driver.pipeline`.

The pipelined calls (:mod:`.completion_calls`, :mod:`.suggest_calls`) read a study's
and its trials' rows with the driver, let the lifecycle module change them as it
changes rows of a session (:mod:`.lifecycle` stays the one writer of states), and
queue the ``UPDATE`` of the columns it changed and the ``INSERT`` of the trials it
created. Values are written as the ORM writes them, with one difference that no
reader sees: JSON wrapped for psycopg (``None`` as SQL ``NULL``, where the ORM writes
JSON ``null``; both read back as ``None``), timestamps as timezone-aware UTC, which is
also how they are read back (``UTCDateTime``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, Generic, TypeVar

from psycopg.types.json import Jsonb
from sqlalchemy import JSON, ColumnElement, Insert, Update, bindparam, insert, inspect, update

from ..db import driver
from ..db.engine import Database
from ..db.models import Base, TrialRow

_Row = TypeVar("_Row", bound=Base)


@dataclass
class Detached(Generic[_Row]):
    """A row in no session, made from a row the driver read, and the values it was read
    with (to tell what the lifecycle module changed)."""

    row: _Row
    loaded: dict[str, Any]

    @classmethod
    def of(cls, model: type[_Row], read: Any) -> Detached[_Row]:
        """The row of ``model`` that ``read`` (a driver row of :func:`read_columns`) holds."""
        values = {key: as_utc(getattr(read, column.name)) for key, column in _columns(model)}
        return cls(model(**values), values)

    def queue_changes(self, tx: driver.Pipeline) -> None:
        """Queue the ``UPDATE`` of the columns the lifecycle module assigned a different
        value (it assigns new JSON values, never changes one in place)."""
        model = type(self.row)
        params: dict[str, Any] = {}
        for key, column in _columns(model):
            value = getattr(self.row, key)
            if value != self.loaded[key]:
                params[f"v_{column.name}"] = _bound(column, value)
        if params:
            changed = tuple(sorted(params))
            tx.queue(_update(model, changed), {"row_id": self.loaded["id"], **params})


@dataclass
class NewTrials:
    """Where :func:`.lifecycle.new_trial` puts the trials it creates outside a session;
    :meth:`queue_inserts` writes them."""

    rows: list[TrialRow] = field(default_factory=list)

    def add(self, row: object) -> None:
        if not isinstance(row, TrialRow):
            raise TypeError(f"only new trials are collected here, not {row!r}")
        self.rows.append(row)

    def queue_inserts(self, tx: driver.Pipeline) -> None:
        """Queue one ``INSERT`` per new trial (its id is the database's)."""
        for row in self.rows:
            params = {
                column.name: _bound(column, getattr(row, key))
                for key, column in _columns(TrialRow)
                if key != "id"
            }
            tx.queue(_insert_trial(), params)


@contextmanager
def observed_lock(db: Database, locked: list[float]) -> Iterator[None]:
    """Tell ``db.lock_observer`` how long the block waited for and held its study's row
    lock, once the transaction around the block has ended (committed or rolled back):
    ``locked`` is empty while the lock is not held, then the times it was asked for and
    granted (``time.perf_counter``). Enter it before the :func:`.driver.pipeline`, so
    that it ends after the transaction."""
    try:
        yield
    finally:
        if locked and db.lock_observer is not None:
            asked, granted = locked
            db.lock_observer(granted - asked, time.perf_counter() - granted)


def read_columns(model: type[Base]) -> list[ColumnElement[Any]]:
    """The columns of ``model`` that :meth:`Detached.of` needs a read to select."""
    return [column for _, column in _columns(model)]


def as_utc(value: Any) -> Any:
    """A timestamp as the ORM's ``UTCDateTime`` gives it (UTC); anything else unchanged."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


@cache
def _columns(model: type[Base]) -> tuple[tuple[str, ColumnElement[Any]], ...]:
    """The model's attributes and their columns (a study's evaluation is neither read nor
    written by a pipelined call)."""
    return tuple(
        (attr.key, attr.columns[0])
        for attr in inspect(model).column_attrs
        if attr.key != "evaluation"
    )


@lru_cache(maxsize=256)
def _update(model: type[Base], parameters: tuple[str, ...]) -> Update:
    """``UPDATE`` of one row of ``model`` by id, setting the columns of ``parameters``
    (``v_`` and the column's name) to those parameters."""
    table = Base.metadata.tables[model.__tablename__]
    values: dict[str, Any] = {name[2:]: bindparam(name) for name in parameters}
    return update(table).where(table.c.id == bindparam("row_id")).values(values)


@cache
def _insert_trial() -> Insert:
    table = Base.metadata.tables[TrialRow.__tablename__]
    names = [column.name for key, column in _columns(TrialRow) if key != "id"]
    return insert(table).values({name: bindparam(name) for name in names})


def _bound(column: ColumnElement[Any], value: Any) -> Any:
    if value is not None and isinstance(column.type, JSON):
        return Jsonb(value)
    return value
