"""Wire models of the analysis endpoints: parameter importance and warm-start history."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ...core.analysis import ImportanceResult


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
