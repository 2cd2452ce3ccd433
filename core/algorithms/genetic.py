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

import numpy as np
from pydantic import Field

from .base import SuggestRequest
from .evolution import EvolutionarySearch, Population
from .history import encode_trials, rank_trials
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
        x, kept = encode_trials(request.space, request.completed)
        trials = [request.completed[i] for i in kept]
        ranking = rank_trials(trials, request.metrics)
        size = int(self.options["population_size"])
        best = list(ranking.order[:size])
        return Population(x[best], np.arange(len(best), dtype=float))
