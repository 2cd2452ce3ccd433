"""SQLAlchemy 2 typed models: the storage shape of projects, studies, trials and measurements.

Rows never leave the ``api`` package: repositories turn them into core value
objects (see :mod:`tuneforge.api.db.convert`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: JSON everywhere, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StudyRow(Base):
    __tablename__ = "studies"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_studies_project_name"),
        # study ids are public: SQLite must never hand a deleted study's id out again
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    completion_reason: Mapped[str | None] = mapped_column(String(64))
    #: The normalized study spec (StudySpec.to_dict); PATCH edits budgets and metadata in it.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: Last number handed out; the next trial gets ``trial_counter`` and increments it.
    trial_counter: Mapped[int] = mapped_column(Integer, default=0)
    algorithm_state: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    search_exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Moves forward on every change of the study's trials; keys caches.
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: Trials per state, kept by the lifecycle module in the transaction that changes them.
    n_requested: Mapped[int] = mapped_column(Integer, default=0)
    n_active: Mapped[int] = mapped_column(Integer, default=0)
    n_stopping: Mapped[int] = mapped_column(Integer, default=0)
    n_paused: Mapped[int] = mapped_column(Integer, default=0)
    n_completed: Mapped[int] = mapped_column(Integer, default=0)
    n_pruned: Mapped[int] = mapped_column(Integer, default=0)
    n_infeasible: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    #: ``version`` when a trial last finished: the finished history changed then
    #: (equals the largest ``TrialRow.finished_seq``); keys the history caches.
    history_version: Mapped[int] = mapped_column(Integer, default=0)
    #: The best trial(s) as ``[{"number", "values"}]`` (the Pareto front with several
    #: objectives), kept incrementally; ``None`` for a study migrated from before 0007
    #: until its next completion recomputes it.
    best_trials: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    #: True once ``POST /run`` asked the workers to execute the managed objective.
    managed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The held-out evaluation of the best configuration (test score beside CV score).
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
        Index("ix_trials_study_state", "study_id", "state"),
        Index("ix_trials_study_updated", "study_id", "updated_at"),
        Index("ix_trials_study_client", "study_id", "client_id"),
        Index("ix_trials_state_lease", "state", "lease_expires_at"),
        Index("ix_trials_study_finished", "study_id", "finished_seq"),
        Index("ix_trials_study_touched", "study_id", "touched_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    values: Mapped[dict[str, float] | None] = mapped_column(JSONType)
    client_id: Mapped[str | None] = mapped_column(String(256))
    retry_of: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    #: Who asked the trial to stop and what completing it does: "rule" (prunes it),
    #: "rule:pause" (pauses it; it may be resumed) or "user" (completes it).
    stop_source: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    resume_from_step: Mapped[int | None] = mapped_column(Integer)
    #: The study's version when the trial finished (finished trials never change again).
    finished_seq: Mapped[int | None] = mapped_column(Integer)
    #: The study's version when the trial's state, values or measurements last changed:
    #: the rules' view of a study reloads only the trials touched since it was read.
    touched_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MeasurementRow(Base):
    __tablename__ = "measurements"
    __table_args__ = (Index("ix_measurements_study_step", "study_id", "step"),)

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    values: Mapped[dict[str, float]] = mapped_column(JSONType)
    elapsed_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DispatchRow(Base):
    """A task sent to the workers for a managed study; claimed when a worker picks it up.

    The reconciler derives how many tasks are in flight from these rows, so a
    lost message (a Redis restart) only delays work: an unclaimed dispatch
    older than its time-to-live is replaced.
    """

    __tablename__ = "dispatches"
    __table_args__ = (Index("ix_dispatches_study_claimed", "study_id", "claimed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    #: "trial" (run one trial) or "evaluate" (held-out evaluation of the best configuration).
    kind: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKeyRow(Base):
    """An API key: one project (none for a shared worker key), one role, stored hashed.

    The key itself (``tf_<id>_<secret>``) is shown once when it is created; only
    its SHA-256 and a short display prefix are kept.
    """

    __tablename__ = "api_keys"
    # key ids are part of keys: SQLite must never hand an id out twice
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    #: ``tf_<id>_`` and the first characters of the secret, to recognise a key in listings.
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """One mutating API request: who (key, project), what (method, route, path), when, result.

    No foreign keys: entries outlive the studies and keys they name.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[int | None] = mapped_column(Integer)
    project_id: Mapped[int | None] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))
    #: The route template, e.g. ``/api/v1/studies/{study_id}``.
    route: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(500))
    study_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer)


class DatasetRow(Base):
    """An uploaded table (CSV or Parquet) a managed study trains on.

    The bytes live in the artifact store under ``datasets/<sha256>`` (rows with the
    same content share them); the row keeps what the server learned reading them
    once: rows, and each column's kind and missing values.
    """

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_datasets_project_name"),
        # dataset ids are public and studies name them: never hand one out twice
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    #: ``csv`` or ``parquet``.
    format: Mapped[str] = mapped_column(String(16))
    #: SHA-256 of the uploaded bytes, hex: the dataset's fingerprint and artifact key.
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    #: ``[{"name", "kind", "missing", "integral"}]`` in file order.
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    #: Defaults a study's ``objective.dataset`` takes when it names none.
    target: Mapped[str | None] = mapped_column(String(500))
    groups: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
