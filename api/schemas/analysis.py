"""Wire models of the analysis endpoints: parameter importance and warm-start history."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ...core.analysis.hypervolume import INFERRED_RULE, HypervolumeResult
from ...core.analysis.importance import ImportanceResult
from ..services.warm_start import SourceCount


class ParamImportanceOut(BaseModel):
    """The share of the objective's variance one parameter explains alone (0 to 1)."""

    name: str
    importance: float


class InteractionOut(BaseModel):
    """The share of the variance two parameters explain together beyond their main effects."""

    params: list[str] = Field(min_length=2, max_length=2)
    importance: float


class ImportanceOut(BaseModel):
    """Functional-ANOVA importance of every parameter and of the strongest pairs, largest
    first (docs/analysis.md)."""

    objective: str
    n_trials: int = Field(description="completed trials the forest was fitted to")
    params: list[ParamImportanceOut]
    interactions: list[InteractionOut]


def importance_out(result: ImportanceResult) -> ImportanceOut:
    return ImportanceOut(
        objective=result.objective,
        n_trials=result.n_trials,
        params=[ParamImportanceOut(name=p.name, importance=p.importance) for p in result.params],
        interactions=[
            InteractionOut(params=list(i.params), importance=i.importance)
            for i in result.interactions
        ],
    )


class WarmStartSource(BaseModel):
    """One earlier study named in ``warm_start`` and what the algorithm takes from it."""

    study_id: int
    name: str
    used: int = Field(description="completed trials the algorithm sees as prior history")
    skipped_params: int = Field(description="skipped: parameters outside this study's space")
    skipped_values: int = Field(description="skipped: an objective or constraint value missing")


class WarmStartOut(BaseModel):
    """The study's warm-start sources (an empty list when it names none)."""

    sources: list[WarmStartSource]
    used: int
    skipped: int


def warm_start_out(counts: list[SourceCount]) -> WarmStartOut:
    return WarmStartOut(
        sources=[WarmStartSource(**vars(c)) for c in counts],
        used=sum(c.used for c in counts),
        skipped=sum(c.skipped_params + c.skipped_values for c in counts),
    )


class HypervolumePoint(BaseModel):
    """The hypervolume once trial ``number`` had completed."""

    number: int
    hypervolume: float


class HypervolumeOut(BaseModel):
    """The hypervolume of a multi-objective study's Pareto front after each completed trial
    (docs/multi-objective.md)."""

    objectives: list[str]
    reference_point: dict[str, float] = Field(description="objective name -> value")
    reference_source: str = Field(description="'spec' (hypervolume_reference) or 'inferred'")
    reference_rule: str | None = Field(description="how an inferred reference was chosen")
    hypervolume: float = Field(description="after the last completed trial")
    n_trials: int = Field(description="completed trials, one history entry each")
    n_feasible: int = Field(description="completed trials meeting every constraint")
    history: list[HypervolumePoint] = Field(description="in the order the trials completed")


def hypervolume_out(result: HypervolumeResult) -> HypervolumeOut:
    return HypervolumeOut(
        objectives=list(result.objectives),
        reference_point=dict(result.reference),
        reference_source="inferred" if result.inferred else "spec",
        reference_rule=INFERRED_RULE if result.inferred else None,
        hypervolume=result.hypervolume,
        n_trials=len(result.history),
        n_feasible=result.n_feasible,
        history=[HypervolumePoint(number=n, hypervolume=v) for n, v in result.history],
    )
