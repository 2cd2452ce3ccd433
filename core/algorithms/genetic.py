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
from functools import partial

import numpy as np
from pydantic import Field

from ..space import SearchSpace
from ..trials import Metric, Trial
from .base import SuggestRequest
from .evolution import EvolutionarySearch, Population
from .grown import Folded, best_of
from .history import (
    RankKey,
    encode_param_sets,
    encode_trials,
    objectives_of,
    rank_keys,
    rank_trials,
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
        if len(objectives_of(metrics)) > 1:  # fronts depend on every trial: rank them all
            x, kept = encode_trials(space, request.completed)
            ranking = rank_trials([request.completed[i] for i in kept], metrics)
            order = list(ranking.order[:size])
            return Population(x[order], np.arange(len(order), dtype=float))
        best = _parents.of(
            request.completed,
            best_of(size, partial(_encodable_keys, space, metrics)),
            (space, metrics, size),
        )
        rows, _ = encode_param_sets(space, [t.params for _, t in best])
        return Population(rows, np.arange(len(best), dtype=float))


#: Each study's parents, the best trials by rank, kept between calls (see :mod:`.grown`).
_parents: Folded[tuple[tuple[RankKey, Trial], ...]] = Folded()


def _encodable_keys(
    space: SearchSpace, metrics: Sequence[Metric], trials: Sequence[Trial]
) -> list[RankKey | None]:
    """Each trial's rank key, ``None`` for one whose parameters the space cannot encode."""
    _, ok = encode_param_sets(space, [t.params for t in trials])
    return [k if ok[i] else None for i, k in enumerate(rank_keys(trials, metrics))]
