"""Wire models of the analysis endpoints: parameter importance and warm-start history."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ...core.analysis import ImportanceResult
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
