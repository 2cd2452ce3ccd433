"""``genetic``: a steady-state genetic algorithm.

The parents are the best ``population_size`` finished trials in the order of
:func:`.history.rank_trials` (one objective by its value; several by
non-dominated rank, then crowding distance; pruned trials after completed ones,
then those breaking an outcome constraint, then infeasible ones), so the best
trial found is always a parent (elitism). Each child: two tournaments of
``tournament_size`` parents, crossover with chance ``crossover_prob``, then
mutation, both fitted to each parameter's type and scale (:mod:`.variation`).
The loop, its seeding, the start-up design and the use of infeasible trials
are those of :mod:`.evolution`: no generation is ever waited for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from pydantic import Field

from ..space import SearchSpace
from ..trials import Metric, Trial
from .base import SuggestRequest
from .evolution import EvolutionarySearch, Population
from .grown import Folded, best_of, by_number
from .history import (
    FEASIBLE,
    RankKey,
    crowding_distances,
    encode_param_sets,
    nondominated_ranks,
    objective_losses,
    objectives_of,
    rank_keys,
)
from .variation import VariationOptions


class GeneticOptions(VariationOptions):
    """Options of ``genetic``."""

    tournament_size: int = Field(
        2, ge=1, le=1_000, description="Parents drawn per tournament (the best one wins)."
    )


class GeneticSearch(EvolutionarySearch):
    """Steady-state GA; state ``{"draws": i, "sobol_index": j}``."""

    name = "genetic"
    options_model = GeneticOptions

    def population(self, request: SuggestRequest) -> Population:
        size = int(self.options["population_size"])
        space, metrics = request.space, request.metrics
        several = len(objectives_of(metrics)) > 1
        # The best by a key of each trial alone: all of them with one objective; with
        # several, those that are not feasible (the feasible ones rank by fronts).
        keyed = _parents.of(
            request.completed,
            best_of(size, partial(_encodable_keys, space, metrics, several)),
            (space, metrics, size),
        )
        parents = [t for _, t in keyed]
        if several:
            parents = [*_best_by_fronts(request, size), *parents][:size]
        rows, _ = encode_param_sets(space, [t.params for t in parents])
        return Population(rows, np.arange(len(parents), dtype=float))


#: Each study's parents by a key of each trial alone, kept between calls (:mod:`.grown`).
_parents: Folded[tuple[tuple[RankKey, Trial], ...]] = Folded()


def _encodable_keys(
    space: SearchSpace, metrics: Sequence[Metric], skip_feasible: bool, trials: Sequence[Trial]
) -> list[RankKey | None]:
    """Each trial's rank key; ``None`` for one whose parameters the space cannot encode,
    and with ``skip_feasible`` for a feasible one."""
    _, ok = encode_param_sets(space, [t.params for t in trials])
    keys = rank_keys(trials, metrics)
    return [
        k if ok[i] and not (skip_feasible and k[0] == FEASIBLE) else None
        for i, k in enumerate(keys)
    ]


@dataclass(frozen=True)
class _Feasible:
    """The feasible trials the space can encode, in number order, and their losses."""

    numbers: np.ndarray
    trials: np.ndarray  # of Trial objects
    losses: np.ndarray


#: Each study's feasible trials, kept between calls; a call inserts the new ones.
_feasible: Folded[_Feasible] = Folded()


def _add_feasible(
    space: SearchSpace, metrics: Sequence[Metric], held: _Feasible | None, trials: Sequence[Trial]
) -> _Feasible:
    keys = _encodable_keys(space, metrics, False, trials)
    chosen = sorted(
        (t for t, k in zip(trials, keys, strict=True) if k and k[0] == FEASIBLE), key=_number
    )
    numbers = np.array([t.number for t in chosen], dtype=np.int64)
    objects = np.empty(len(chosen), dtype=object)
    objects[:] = chosen
    losses = objective_losses(chosen, objectives_of(metrics))
    old = None if held is None else (held.numbers, held.trials, held.losses)
    return _Feasible(*by_number(old, (numbers, objects, losses)))


def _best_by_fronts(request: SuggestRequest, size: int) -> list[Trial]:
    """The best ``size`` feasible trials in :func:`.history.rank_trials` order (front, then
    larger crowding, then number), peeling only the fronts it needs."""
    space, metrics = request.space, request.metrics
    held = _feasible.of(request.completed, partial(_add_feasible, space, metrics), (space, metrics))
    fronts = nondominated_ranks(held.losses, size)
    placed = np.flatnonzero(fronts >= 0)
    crowd = crowding_distances(held.losses[placed], fronts[placed])
    order = sorted(
        range(len(placed)),
        key=lambda j: (fronts[placed[j]], -crowd[j], held.numbers[placed[j]]),
    )
    return [held.trials[placed[j]] for j in order[:size]]


def _number(trial: Trial) -> int:
    return trial.number
