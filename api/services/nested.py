"""Nested cross-validation: one inner study per outer fold, and their summary.

Each inner study tunes on the training rows of its outer fold and holds that
fold's test rows out (``objective.outer_fold``); its held-out evaluation is
the outer score. The summary reports each outer score, their mean and
standard deviation, and the configuration each fold chose.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from ...core.errors import InvalidSpec, NotFound
from ...core.policy import STRICT, ObjectivePolicy
from ...core.study import parse_study_spec
from ..db.engine import Database
from ..db.models import StudyRow
from .dataset_store import resolve_uploaded
from .datasets import check_objective
from .studies import insert_study, study_view, with_failure_default

MAX_OUTER = 20


def inner_spec(spec: Mapping[str, Any], outer: int, index: int, seed: int) -> dict[str, Any]:
    """The spec of the inner study for outer fold ``index``."""
    objective = spec.get("objective")
    if not isinstance(objective, Mapping) or objective.get("kind") != "sklearn":
        raise InvalidSpec(
            "nested cross-validation needs a managed sklearn objective", field="objective"
        )
    body = copy.deepcopy(dict(spec))
    inner = {k: v for k, v in objective.items() if k != "test_size"}
    inner["outer_fold"] = {"n_splits": outer, "index": index, "seed": seed}
    body["objective"] = inner
    body["name"] = f"{spec.get('name')}-outer{index}"
    group = {"group": spec.get("name"), "index": index, "n_splits": outer}
    body["metadata"] = {**dict(spec.get("metadata") or {}), "nested_cv": group}
    return body


def start_nested_cv(
    db: Database,
    spec: Mapping[str, Any],
    outer: int,
    seed: int,
    *,
    run: bool,
    policy: ObjectivePolicy = STRICT,
    project_id: int | None = None,
    default_max_failed_trials: int = 0,
) -> dict[str, Any]:
    """Create the inner studies in one transaction, in ``project_id`` (None: the default
    project), and start them on the workers when ``run``; each gets ``max_failed_trials``
    ``default_max_failed_trials`` when the spec sets none."""
    if isinstance(outer, bool) or not isinstance(outer, int) or not 2 <= outer <= MAX_OUTER:
        raise InvalidSpec(f"must be an integer in [2, {MAX_OUTER}]", field="outer_splits")
    specs = []
    for k in range(outer):
        try:
            parsed = parse_study_spec(inner_spec(spec, outer, k, seed))
            specs.append(with_failure_default(parsed, default_max_failed_trials))
        except InvalidSpec as exc:
            raise InvalidSpec(
                exc.message, field=f"study.{exc.field}" if exc.field else "study"
            ) from None
    try:
        specs = [resolve_uploaded(db, s, project_id) for s in specs]  # uploaded data by id
        check_objective(specs[0], policy, db)  # every fold names the same code and file
    except InvalidSpec as exc:
        raise InvalidSpec(exc.message, field=f"study.{exc.field}") from None
    if run and specs[0].max_trials is None:
        raise InvalidSpec("a managed study needs a max_trials budget", field="study.max_trials")
    with db.write() as session:
        for s in specs:
            insert_study(session, s, managed=run, project_id=project_id)
    return nested_summary(db, str(spec.get("name")), project_id)


def nested_summary(db: Database, group: str, project_id: int | None = None) -> dict[str, Any]:
    """Each outer fold's study, state, chosen configuration and outer (held-out) score
    (among ``project_id``'s studies when given)."""
    with db.read() as session:
        stmt = select(StudyRow).where(StudyRow.name.like(f"{_escape(group)}-outer%", escape="\\"))
        if project_id is not None:
            stmt = stmt.where(StudyRow.project_id == project_id)
        rows = session.scalars(stmt).all()
        folds = []
        for row in rows:
            meta = (row.spec.get("metadata") or {}).get("nested_cv") or {}
            if meta.get("group") == group:
                folds.append((meta["index"], study_view(session, row)))
    if not folds:
        raise NotFound(f"no nested cross-validation named {group!r}", field="group")
    folds.sort(key=lambda f: f[0])
    out = [_fold(index, study) for index, study in folds]
    scores = [f["outer_score"] for f in out if f["outer_score"] is not None]
    return {
        "group": group,
        "outer_splits": len(out),
        "folds": out,
        "done": len(scores) == len(out),
        "mean": statistics.fmean(scores) if scores else None,
        "std": statistics.pstdev(scores) if len(scores) > 1 else (0.0 if scores else None),
    }


def _fold(index: int, study: Any) -> dict[str, Any]:
    evaluation = study.evaluation or {}
    best = study.best_trials[0] if study.best_trials else None
    return {
        "index": index,
        "study_id": study.id,
        "state": study.state.value,
        "trial_counts": dict(study.trial_counts),
        "best_params": dict(best.params) if best else None,
        "inner_score": (
            dict(best.values or {}).get(study.spec.objectives[0].name) if best else None
        ),
        "outer_score": evaluation.get("test_score") if evaluation.get("state") == "done" else None,
        "evaluation_state": evaluation.get("state"),
    }


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
