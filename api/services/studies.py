"""Study use cases: create, read, list, update budgets and state, delete, best trials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from ...core.errors import Conflict, InvalidSpec
from ...core.policy import STRICT, ObjectivePolicy
from ...core.study import Study, StudySpec, budget, parse_study_spec
from ...core.trials import StudyState, Trial
from ..db.engine import Database
from ..db.models import ProjectRow, StudyRow, TrialRow
from ..db.repository import (
    counts_of,
    default_project_id,
    get_study_row,
    measurements_of,
    spec_of,
    to_study,
    to_trial,
    utcnow,
)
from . import warm_start
from .datasets import check_objective
from .lifecycle import new_study, refresh_study_state, set_study_state, touch
from .same_error import public_completion_reason
from .summary import best_numbers

PATCHABLE = (
    "state",
    "max_trials",
    "max_active_trials",
    "max_failed_trials",
    "description",
    "metadata",
)


def study_view(session: Session, row: StudyRow) -> Study:
    """The study as the API shows it (counts, best trials, why it completed)."""
    return study_views(session, [row])[0]


def study_views(session: Session, rows: Sequence[StudyRow]) -> list[Study]:
    """Several studies as the API shows them, with a constant number of statements:
    counts and best trial numbers come from each row's summary, and the best trials of
    all of them are read in one query (plus one for their measurements)."""
    numbers = {row.id: best_numbers(session, row) for row in rows}
    best = _best_trials(session, numbers)
    out = []
    for row in rows:
        spec = spec_of(row)
        trials = [best[(row.id, n)] for n in numbers[row.id] if (row.id, n) in best]
        study = to_study(row, counts_of(row), trials, spec)
        project = session.get(ProjectRow, row.project_id)  # the session's identity map caches it
        out.append(
            replace(
                study,
                completion_reason=public_completion_reason(session, row, spec),
                project=project.name if project is not None else study.project,
            )
        )
    return out


def _best_trials(
    session: Session, numbers: Mapping[int, Sequence[int]]
) -> dict[tuple[int, int], Trial]:
    """The trials named by ``{study id: [numbers]}``, with their measurements."""
    keys = [(sid, n) for sid, ns in numbers.items() for n in ns]
    if not keys:
        return {}
    rows = session.scalars(
        select(TrialRow).where(tuple_(TrialRow.study_id, TrialRow.number).in_(keys))
    ).all()
    ms = measurements_of(session, [r.id for r in rows])
    return {(r.study_id, r.number): to_trial(r, ms.get(r.id, ())) for r in rows}


def _best(session: Session, study: StudyRow) -> list[Trial]:
    """The best trial(s) of one study, with their measurements."""
    numbers = best_numbers(session, study)
    best = _best_trials(session, {study.id: numbers})
    return [best[(study.id, n)] for n in numbers if (study.id, n) in best]


def create_study(
    db: Database,
    body: Mapping[str, Any],
    *,
    policy: ObjectivePolicy = STRICT,
    if_exists: str | None = None,
    project_id: int | None = None,
    default_max_failed_trials: int = 0,
) -> tuple[Study, bool]:
    """Create a study in ``project_id`` (None: the default project); returns it and whether
    it is new. Same name twice is a conflict unless ``if_exists == "return"`` and the specs
    are identical. A managed objective is checked first: what it names against the
    operator's ``policy``, then its csv/parquet file (columns and types against the spec);
    it gets ``max_failed_trials`` ``default_max_failed_trials`` when it sets none."""
    if if_exists not in (None, "return"):
        raise InvalidSpec("must be 'return' when given", field="if_exists")
    spec = with_failure_default(parse_study_spec(body), default_max_failed_trials)
    spec = check_objective(spec, policy, db, project_id)  # data read before any lock
    with db.write() as session:
        row, created = insert_study(session, spec, if_exists=if_exists, project_id=project_id)
        return study_view(session, row), created


def with_failure_default(spec: StudySpec, default: int) -> StudySpec:
    """``spec`` with ``max_failed_trials`` ``default`` when it has a managed objective and
    sets none (``default`` 0: as it is), so an objective that keeps failing, each time
    differently, cannot run forever; stored, it shows in the study's spec."""
    if spec.objective is None or spec.max_failed_trials is not None or default <= 0:
        return spec
    return replace(spec, max_failed_trials=default)


def insert_study(
    session: Session,
    spec: StudySpec,
    *,
    if_exists: str | None = None,
    managed: bool = False,
    project_id: int | None = None,
) -> tuple[StudyRow, bool]:
    """Add a study row in the caller's transaction (or find the identical existing one),
    in ``project_id`` (None: the default project)."""
    if project_id is None:
        project_id = default_project_id(session)
    spec = warm_start.resolve(session, spec, project_id)  # names -> ids of this project
    existing = session.scalar(
        select(StudyRow).where(StudyRow.project_id == project_id, StudyRow.name == spec.name)
    )
    if existing is not None:
        if if_exists == "return" and existing.spec == spec.to_dict():
            return existing, False
        detail = " with a different spec" if if_exists == "return" else ""
        raise Conflict(
            f"a study named {spec.name!r} already exists{detail} (id {existing.id})",
            field="name",
            details={"study_id": existing.id},
        )
    row = new_study(session, project_id, spec, managed=managed, now=utcnow())
    session.flush()
    return row, True


def get_study(db: Database, study_id: int) -> Study:
    with db.read() as session:
        return study_view(session, get_study_row(session, study_id))


def list_studies(
    db: Database,
    *,
    state: StudyState | None,
    name: str | None,
    after_id: int | None,
    page_size: int,
    project_id: int | None = None,
) -> tuple[list[Study], int | None]:
    """A page of studies by id (only ``project_id``'s when given)."""
    with db.read() as session:
        stmt = select(StudyRow)
        if project_id is not None:
            stmt = stmt.where(StudyRow.project_id == project_id)
        if state is not None:
            stmt = stmt.where(StudyRow.state == state.value)
        if name is not None:
            stmt = stmt.where(StudyRow.name == name)
        if after_id is not None:
            stmt = stmt.where(StudyRow.id > after_id)
        rows = session.scalars(stmt.order_by(StudyRow.id).limit(page_size + 1)).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        return study_views(session, rows), (rows[-1].id if more and rows else None)


def update_study(db: Database, study_id: int, changes: Mapping[str, Any]) -> Study:
    """Change budgets, description, metadata or the state (active / paused / completed)."""
    for key in changes:
        if key not in PATCHABLE:
            raise InvalidSpec(f"cannot be changed (changeable: {', '.join(PATCHABLE)})", field=key)
    with db.write() as session:
        row = get_study_row(session, study_id, lock=True)
        new_spec = dict(row.spec)
        for key in ("max_trials", "max_active_trials", "max_failed_trials"):
            if key in changes:
                new_spec[key] = budget(changes[key], key, minimum=1)
        if "description" in changes:
            new_spec["description"] = changes["description"]
        if "metadata" in changes:
            new_spec["metadata"] = changes["metadata"]
        spec = parse_study_spec(new_spec)
        row.spec = spec.to_dict()
        now = utcnow()
        if "state" in changes:
            set_study_state(session, row, _parse_state(changes["state"]), now)
        touch(row, now)
        refresh_study_state(session, row, spec, now)
        return study_view(session, row)


def _parse_state(raw: Any) -> StudyState:
    try:
        return StudyState(raw)
    except ValueError:
        raise InvalidSpec("must be 'active', 'paused' or 'completed'", field="state") from None


def delete_study(db: Database, study_id: int) -> tuple[int, datetime]:
    """Delete the study (trials and measurements cascade); its identity for the artifact store."""
    with db.write() as session:
        row = get_study_row(session, study_id, lock=True)
        identity = (row.id, row.created_at)
        session.delete(row)
    return identity


def study_best(db: Database, study_id: int) -> list[Trial]:
    """The best trial (single objective) or the Pareto front (several objectives)."""
    with db.read() as session:
        row = get_study_row(session, study_id)
        return _best(session, row)
