"""Trial checkpoints: which trials may store one, and where it lives.

A worker saves a checkpoint while its trial runs (or once it is paused, before
it lets go of it); whoever resumes the trial later, on any machine, loads it.
The bytes are opaque to the server and live in the artifact store
(:mod:`tuneforge.api.artifacts`), not the database; they go when the study goes.
"""

from __future__ import annotations

from ...core.errors import Conflict, NotFound
from ...core.trials import TrialState
from ..artifacts import ArtifactStore, StoredArtifact, checkpoint_key, study_prefix
from ..db.engine import Database
from ..db.repository import get_study_row, get_trial_row

#: States in which a trial's checkpoint may be written: it runs, or it waits to be resumed.
WRITABLE = frozenset({TrialState.ACTIVE, TrialState.STOPPING, TrialState.PAUSED})


def check_writable(db: Database, study_id: int, number: int) -> str:
    """The checkpoint key of a trial that may store one now (404 / 409 otherwise)."""
    with db.read() as session:
        get_study_row(session, study_id)
        trial = get_trial_row(session, study_id, number)
        if TrialState(trial.state) not in WRITABLE:
            raise Conflict(
                f"trial {number} is {trial.state}: a checkpoint can be saved while the trial "
                "is active, stopping or paused",
                field="state",
            )
    return checkpoint_key(study_id, number)


def find_checkpoint(
    db: Database, store: ArtifactStore, study_id: int, number: int
) -> StoredArtifact:
    """The stored checkpoint of an existing trial (404 when the trial or checkpoint is missing)."""
    with db.read() as session:
        get_study_row(session, study_id)
        get_trial_row(session, study_id, number)
    stored = store.describe(checkpoint_key(study_id, number))
    if stored is None:
        raise NotFound(
            f"trial {number} of study {study_id} has no checkpoint",
            field="checkpoint",
        )
    return stored


def delete_study_artifacts(store: ArtifactStore, study_id: int) -> None:
    """Remove every checkpoint of a deleted study."""
    store.delete_tree(study_prefix(study_id))
