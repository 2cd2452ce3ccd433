"""Trial checkpoints: which trials may store one, and where it lives.

A worker saves a checkpoint while its trial runs (or once it is paused, before
it lets go of it); whoever resumes the trial later, on any machine, loads it.
The bytes are opaque to the server and live in the artifact store
(:mod:`tuneforge.api.artifacts`), not the database; they go when the study goes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ...core.errors import Conflict, NotFound
from ...core.trials import TrialState
from ..artifacts import (
    ArtifactStore,
    StoredArtifact,
    StudyIdentity,
    checkpoint_key,
    study_prefix,
)
from ..db.engine import Database
from ..db.models import StudyRow, TrialRow
from ..db.repository import get_study_row, get_trial_row

#: States in which a trial's checkpoint may be written: it runs, or it waits to be resumed.
WRITABLE = frozenset({TrialState.ACTIVE, TrialState.STOPPING, TrialState.PAUSED})


def check_writable(db: Database, study_id: int, number: int) -> StudyIdentity:
    """The study of a trial that may store a checkpoint now (404 / 409 otherwise); one
    statement reading two columns, as a worker saves one at every step under a
    pausing rule."""
    with db.read() as session:
        row = session.execute(
            select(StudyRow.created_at, TrialRow.state)
            .select_from(StudyRow)
            .outerjoin(TrialRow, (TrialRow.study_id == StudyRow.id) & (TrialRow.number == number))
            .where(StudyRow.id == study_id)
        ).first()
    if row is None:
        raise NotFound(f"study {study_id} does not exist", field="study_id")
    if row.state is None:
        raise NotFound(f"trial {number} does not exist in study {study_id}", field="number")
    if TrialState(row.state) not in WRITABLE:
        raise Conflict(
            f"trial {number} is {row.state}: a checkpoint can be saved while the trial "
            "is active, stopping or paused",
            field="state",
        )
    return (study_id, row.created_at)


def study_gone(db: Database, study_id: int) -> bool:
    """Whether the study was deleted (e.g. while one of its checkpoints was uploading)."""
    with db.read() as session:
        return session.scalar(select(StudyRow.id).where(StudyRow.id == study_id)) is None


def open_checkpoint(
    db: Database, store: ArtifactStore, study_id: int, number: int
) -> tuple[StoredArtifact, Any]:
    """The stored checkpoint of an existing trial and an open file of its bytes, one whole
    version even while the trial saves a new one (404 when the trial or checkpoint is
    missing)."""
    with db.read() as session:
        study = get_study_row(session, study_id)
        get_trial_row(session, study_id, number)
        key = checkpoint_key((study.id, study.created_at), number)
    found = store.open_current(key)
    if found is None:
        raise NotFound(
            f"trial {number} of study {study_id} has no checkpoint",
            field="checkpoint",
        )
    return found


def delete_study_artifacts(store: ArtifactStore, study: StudyIdentity) -> None:
    """Remove every checkpoint of a deleted study."""
    store.delete_tree(study_prefix(study))
