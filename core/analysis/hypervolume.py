"""Hypervolume of a multi-objective study's Pareto front, and how it grew trial by trial.

The hypervolume is the volume of objective space that the front dominates and
that dominates the *reference point* (computed by ``moocore``). Only trials that
count for "best" add to it (completed, every objective finite, every outcome
constraint met: :func:`.best.is_feasible`); a point that does not strictly beat
the reference in every objective adds nothing. Values are in the metrics' own
units; maximized objectives are turned into losses first, which changes no volume.

The reference point is the spec's ``hypervolume_reference`` when it gives one
(checked by :func:`parse_reference`), otherwise inferred from the trials:
:data:`INFERRED_RULE`. An inferred reference moves as the study finds worse
points, so compare inferred hypervolumes only within one answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import moocore
import numpy as np

from ..errors import InvalidSpec
from ..trials import Goal, Metric, MetricRole, Trial, TrialState
from .best import is_feasible

FIELD = "hypervolume_reference"
#: How far beyond the worst feasible value the inferred reference lies, as a share of the range.
INFERRED_MARGIN = 0.1
INFERRED_RULE = (
    "the worst value of each objective among the feasible completed trials, moved "
    f"{INFERRED_MARGIN:.0%} of that objective's range (1 if the range is 0) further away"
)


@dataclass(frozen=True)
class HypervolumeResult:
    """The reference point, where it came from, and the hypervolume after each completed trial."""

    objectives: tuple[str, ...]
    reference: dict[str, float]
    inferred: bool
    #: ``(trial number, hypervolume after it)`` for every completed trial, in completion order.
    history: tuple[tuple[int, float], ...]
    #: Feasible completed trials (those that may add to the volume).
    n_feasible: int

    @property
    def hypervolume(self) -> float:
        return self.history[-1][1] if self.history else 0.0


def parse_reference(raw: object, metrics: Sequence[Metric]) -> dict[str, float] | None:
    """``hypervolume_reference``: a number for every objective of a study with several."""
    if raw is None:
        return None
    objectives = [m.name for m in metrics if m.role == MetricRole.OBJECTIVE]
    if len(objectives) < 2:
        raise InvalidSpec("only a study with two or more objectives has a hypervolume", field=FIELD)
    if not isinstance(raw, Mapping):
        raise InvalidSpec("must be an object mapping each objective to a number", field=FIELD)
    for key in raw:
        if key not in objectives:
            raise InvalidSpec(
                f"is not an objective of the study (objectives: {', '.join(objectives)})",
                field=f"{FIELD}.{key}",
            )
    out: dict[str, float] = {}
    for name in objectives:
        value = raw.get(name)
        if value is None:
            raise InvalidSpec("must be given: one number per objective", field=f"{FIELD}.{name}")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidSpec(f"must be a finite number, got {value!r}", field=f"{FIELD}.{name}")
        out[name] = float(value)
    return out


def study_hypervolume(
    trials: Sequence[Trial], metrics: Sequence[Metric], reference: Mapping[str, float] | None
) -> HypervolumeResult:
    """The hypervolume history of ``trials`` (completed ones, in completion order).

    Raises :class:`InvalidSpec` naming ``metrics`` for a study with one objective.
    """
    objectives = [m for m in metrics if m.role == MetricRole.OBJECTIVE]
    if len(objectives) < 2:
        raise InvalidSpec(
            "the study has one objective; a hypervolume needs two or more", field="metrics"
        )
    signs = np.array([1.0 if m.goal == Goal.MINIMIZE else -1.0 for m in objectives])
    completed = [t for t in trials if t.state == TrialState.COMPLETED]
    feasible = [is_feasible(t, metrics) for t in completed]
    points = [
        np.array([float((t.values or {})[m.name]) for m in objectives]) * signs if ok else None
        for t, ok in zip(completed, feasible, strict=True)
    ]
    inferred = reference is None
    if reference is None:
        reference = _infer(objectives, [p for p in points if p is not None], signs)
    ref = np.array([reference[m.name] for m in objectives]) * signs
    return HypervolumeResult(
        objectives=tuple(m.name for m in objectives),
        reference=dict(reference),
        inferred=inferred,
        history=tuple(
            zip([t.number for t in completed], _running_volume(points, ref), strict=True)
        ),
        n_feasible=sum(feasible),
    )


def _infer(objectives: Sequence[Metric], points: list[np.ndarray], signs: np.ndarray) -> dict:
    if not points:
        return {m.name: 0.0 for m in objectives}
    losses = np.vstack(points)
    worst, best = losses.max(axis=0), losses.min(axis=0)
    span = np.where(worst > best, worst - best, 1.0)
    ref = (worst + INFERRED_MARGIN * span) * signs
    return {m.name: float(v) for m, v in zip(objectives, ref, strict=True)}


def _running_volume(points: Sequence[np.ndarray | None], ref: np.ndarray) -> list[float]:
    """The hypervolume after each point (``None``: adds nothing), keeping only the front."""
    front = np.empty((0, len(ref)))
    volume, out = 0.0, []
    for p in points:
        if p is not None and bool(np.all(p < ref)):
            weakly_dominated = bool(np.any(np.all(front <= p, axis=1))) if len(front) else False
            if not weakly_dominated:
                keep = ~np.all(p <= front, axis=1)
                front = np.vstack([front[keep], p])
                volume = float(moocore.hypervolume(front, ref=ref))
        out.append(volume)
    return out
