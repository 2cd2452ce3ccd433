"""Typed, frozen mirrors of the wire shapes in docs/api.md (pydantic v2).

Fields the server adds later are kept (``extra="allow"``) so an older SDK
keeps working against a newer server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Measurement(_Wire):
    """One intermediate result of a trial at ``step``."""

    step: int
    values: dict[str, float]
    elapsed_seconds: float | None = None


class TrialData(_Wire):
    """A trial as the server reports it.

    ``state`` is one of requested, active, stopping, paused, completed, pruned,
    infeasible, failed.
    """

    number: int
    state: str
    params: dict[str, Any]
    values: dict[str, float] | None = None
    client_id: str | None = None
    retry_of: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    measurements: list[Measurement] = Field(default_factory=list)
    resume_from_step: int | None = None

    @property
    def is_finished(self) -> bool:
        """Whether the trial can no longer change."""
        return self.state in FINISHED_STATES

    @property
    def is_running(self) -> bool:
        """Whether a worker holds the trial (active or asked to stop)."""
        return self.state in RUNNING_STATES


class StudyData(_Wire):
    """A study: its spec plus ``id``, ``state`` (active | paused | completed) and progress."""

    id: int
    name: str
    parameters: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    algorithm: str = "auto"
    algorithm_options: dict[str, Any] = Field(default_factory=dict)
    early_stopping: dict[str, Any] = Field(default_factory=dict)
    fidelity: dict[str, Any] | None = None
    max_trials: int | None = None
    max_active_trials: int | None = None
    max_failed_trials: int | None = None
    retries: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    objective: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    state: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    trial_counts: dict[str, int] = Field(default_factory=dict)
    best_trial: TrialData | None = None
    project: str | None = None
    description: str | None = None
    completion_reason: str | None = None
    #: The held-out evaluation of a managed study (``study.evaluate()``), when there is one.
    evaluation: dict[str, Any] | None = None

    @property
    def objectives(self) -> list[dict[str, Any]]:
        """The metrics with ``role: objective`` (the default role)."""
        return [m for m in self.metrics if m.get("role", "objective") == "objective"]

    @property
    def lease_seconds(self) -> float:
        """How long a trial's lease lasts without a heartbeat."""
        return float(self.retries.get("lease_seconds", 600.0))


class SuggestReply(_Wire):
    """``POST .../trials/suggest``: the trials handed out and the study's state."""

    trials: list[TrialData]
    study_state: str


class MeasureReply(_Wire):
    """``POST .../measurements``: the early-stopping decision for the trial."""

    should_stop: bool
    trial_state: str
    action: dict[str, Any] | None = None
    #: The smallest step above the reported one where the study's rule could decide
    #: anything; ``None``: at no later step. Servers before it was added send none (then
    #: it is missing from ``model_fields_set`` and every report is sent).
    next_decision_step: int | None = None


class HeartbeatReply(_Wire):
    """``POST .../heartbeat``: whether the trial should stop."""

    should_stop: bool
    trial_state: str


class CheckpointInfo(_Wire):
    """``PUT .../checkpoint``: what the server stored."""

    study_id: int
    number: int
    size_bytes: int
    sha256: str
    saved_at: str
    step: int | None = None


class Checkpoint(_Wire):
    """``GET .../checkpoint``: a trial's saved bytes and the step they were saved at."""

    data: bytes
    step: int | None = None
    sha256: str | None = None


class StudyPage(_Wire):
    studies: list[StudyData]
    next_page_token: str | None = None


class TrialPage(_Wire):
    trials: list[TrialData]
    next_page_token: str | None = None


class BestReply(_Wire):
    trials: list[TrialData]


class ParamImportance(_Wire):
    """One parameter's share of the objective's variance (0 to 1)."""

    name: str
    importance: float


class Interaction(_Wire):
    """Two parameters' joint share of the variance beyond their main effects."""

    params: tuple[str, str]
    importance: float


class ImportanceReply(_Wire):
    """Parameter importance and pairwise interactions, largest first (docs/analysis.md)."""

    objective: str
    n_trials: int
    params: list[ParamImportance]
    interactions: list[Interaction]


FINISHED_STATES = frozenset({"completed", "pruned", "infeasible", "failed"})
RUNNING_STATES = frozenset({"active", "stopping"})


class DatasetColumn(_Wire):
    """One column of an uploaded dataset: numeric, boolean, categorical or datetime."""

    name: str
    kind: str
    missing: int = 0


class DatasetData(_Wire):
    """An uploaded dataset (``POST /datasets``); studies name it by ``id`` or ``name``."""

    id: int
    name: str
    project: str | None = None
    format: str
    sha256: str
    size_bytes: int
    rows: int
    columns: list[DatasetColumn] = Field(default_factory=list)
    target: str | None = None
    groups: str | None = None
    created_at: datetime | None = None

    def reference(self) -> dict[str, Any]:
        """``objective.dataset`` for a study that trains on this dataset."""
        return {"source": "uploaded", "id": self.id}


class DatasetPage(_Wire):
    datasets: list[DatasetData]
    next_page_token: str | None = None
