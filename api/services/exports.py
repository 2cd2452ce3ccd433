"""Exports of a study's trials as CSV or JSON lines, streamed.

The trials are read in pages of :data:`CHUNK`, each page in its own short read
transaction (the same query as ``GET .../trials``), so an export of any size
holds one page in memory and never keeps a transaction open while the client
reads. The export covers the trials that existed when it started (numbers up
to the study's counter then); a CSV header needs the metadata keys first, so a
CSV export reads the metadata column once before the rows (:func:`metadata_keys`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ...core.errors import NotFound
from ...core.study import StudySpec
from ...core.trials import Trial, TrialState
from ..db.engine import Database
from ..db.models import TrialRow
from ..db.repository import get_study_row, spec_of
from .trials import list_trials

#: Trials per page read from the database.
CHUNK = 500
#: Above this many distinct (flattened) metadata keys, CSV keeps metadata in one JSON column.
MAX_METADATA_COLUMNS = 100


@dataclass(frozen=True)
class ExportFilter:
    """Which trials an export holds: the filters of ``GET .../trials``."""

    state: TrialState | None = None
    updated_after: datetime | None = None
    client_id: str | None = None
    after_number: int | None = None


@dataclass(frozen=True)
class ExportPlan:
    """What an export needs before its first row: the spec and the last trial number."""

    study_id: int
    spec: StudySpec
    last_number: int


def plan_export(db: Database, study_id: int) -> ExportPlan:
    """The study's spec and its current last trial number (404 for an unknown study)."""
    with db.read() as session:
        row = get_study_row(session, study_id)
        return ExportPlan(study_id, spec_of(row), row.trial_counter - 1)


def iter_trials(db: Database, plan: ExportPlan, where: ExportFilter) -> Iterator[Trial]:
    """Every matching trial up to the plan's last number, with measurements, page by page."""
    after = where.after_number
    while True:
        try:
            page, more = list_trials(
                db,
                plan.study_id,
                state=where.state,
                updated_after=where.updated_after,
                client_id=where.client_id,
                after_number=after,
                page_size=CHUNK,
            )
        except NotFound:  # deleted while it was exported: the export ends there
            return
        for trial in page:
            if trial.number > plan.last_number:
                return
            yield trial
        if more is None or not page:
            return
        after = page[-1].number


def metadata_keys(db: Database, plan: ExportPlan, where: ExportFilter) -> list[str] | None:
    """The flattened metadata keys of the matching trials, sorted; ``None`` when there are
    more than :data:`MAX_METADATA_COLUMNS` (then CSV keeps metadata as one JSON column)."""
    keys: set[str] = set()
    after = -1 if where.after_number is None else where.after_number
    while True:
        with db.read() as session:
            stmt = select(TrialRow.number, TrialRow.metadata_).where(
                TrialRow.study_id == plan.study_id,
                TrialRow.number > after,
                TrialRow.number <= plan.last_number,
            )
            if where.state is not None:
                stmt = stmt.where(TrialRow.state == where.state.value)
            if where.updated_after is not None:
                stmt = stmt.where(TrialRow.updated_at > where.updated_after)
            if where.client_id is not None:
                stmt = stmt.where(TrialRow.client_id == where.client_id)
            rows = session.execute(stmt.order_by(TrialRow.number).limit(CHUNK)).all()
        for _, metadata in rows:
            keys.update(flatten(metadata or {}))
            if len(keys) > MAX_METADATA_COLUMNS:
                return None
        if len(rows) < CHUNK:
            return sorted(keys)
        after = rows[-1][0]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (``{"packages": {"numpy": "2.1"}}`` ->
    ``{"packages.numpy": "2.1"}``); lists and scalars stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
