"""The steady-state loop ``genetic`` and ``nsga2`` share.

There are no generations to wait for: every call builds the parent population
from the trials finished so far (the subclass decides which and how they rank),
and breeds as many children as asked. Workers that ask while others still train
get children of the current population at once; in-flight trials and the
earlier children of the same batch are only avoided as duplicates. Because the
population is always the best ``population_size`` finished trials, a good trial
stays a parent until better ones displace it (elitism, the ``(mu + 1)``
replacement of steady-state evolution).

Before ``n_startup`` trials have finished (default: the population size) the
points come from the seeded scrambled Sobol' sequence; the state's
``sobol_index`` says where it continues. Child ``i`` of a study with ``n``
finished trials uses ``numpy.random.default_rng([seed, n, draws])`` with
``draws`` counted in the saved state, so the same history and seed give the
same children, and a batch asked in several calls equals the batch asked at once.

Infeasible trials (the objective could not be measured there) are information:
a child within :data:`~.variation.INFEASIBLE_RADIUS` of one is redrawn, up to
:data:`~.variation.INFEASIBLE_REDRAWS` times.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..trials import Trial, TrialState
from .base import Algorithm, Params, Suggestion, SuggestRequest
from .grown import Folded, keys_in_use
from .history import encode_trials, objectives_of
from .sampling import MAX_ATTEMPTS, DistinctPicker, seed_entropy, state_int
from .sobol import sobol_start
from .variation import INFEASIBLE_REDRAWS, Breeder, near_infeasible, tournament


@dataclass(frozen=True)
class Population:
    """The parents: unit-cube ``rows`` (``nan`` where inactive) and each one's
    ``fitness`` for tournaments (smaller wins)."""

    rows: np.ndarray
    fitness: np.ndarray


class EvolutionarySearch(Algorithm):
    """Base of the steady-state evolutionary algorithms; state ``{"draws", "sobol_index"}``."""

    @abstractmethod
    def population(self, request: SuggestRequest) -> Population:
        """The parent population of this call, from the finished trials."""

    def suggest(self, request: SuggestRequest) -> Suggestion:
        draws = state_int(request.state, "draws")
        sobol_index = state_int(request.state, "sobol_index")
        if request.count <= 0:
            return Suggestion.of((), {"draws": draws, "sobol_index": sobol_index})
        space, seed = request.space, seed_entropy(request.seed)
        picker = DistinctPicker(request)
        startup = int(self.options.get("n_startup") or self.options["population_size"])
        parents = None
        if len(request.completed) >= startup and objectives_of(request.metrics):
            parents = self.population(request)
            if len(parents.rows) < 2:
                parents = None
        if parents is None:
            return sobol_start(request, picker, sobol_index, draws)

        n = len(request.completed)
        breeder = Breeder.from_options(space, self.options)
        infeasible = _infeasible_rows(request)
        # A child equal to a parent (no crossover, no mutation) would repeat an evaluation,
        # even on continuous spaces where the picker does not look for repeats.
        taken = keys_in_use(space, request.completed, request.in_flight)

        def breed() -> Params:
            nonlocal draws
            rng = np.random.default_rng([seed, n, draws])
            draws += 1
            params = space.decode(self._child(rng, breeder, parents, infeasible))
            for _ in range(MAX_ATTEMPTS):
                if space.key(params) not in taken:
                    break
                params = space.decode(self._child(rng, breeder, parents, infeasible))
            taken.add(space.key(params))
            return params

        fallback = np.random.default_rng([seed, n, draws, 1])
        out = tuple(picker.pick(breed, fallback) for _ in range(request.count))
        return Suggestion.of(out, {"draws": draws, "sobol_index": sobol_index})

    def _child(
        self,
        rng: np.random.Generator,
        breeder: Breeder,
        parents: Population,
        infeasible: np.ndarray,
    ) -> np.ndarray:
        """A child of two tournament winners, redrawn while it lands next to an infeasible trial."""
        u = self._pair_child(rng, breeder, parents)
        for _ in range(INFEASIBLE_REDRAWS):
            if not near_infeasible(breeder.space, u, infeasible):
                break
            u = self._pair_child(rng, breeder, parents)
        return u

    def _pair_child(
        self, rng: np.random.Generator, breeder: Breeder, parents: Population
    ) -> np.ndarray:
        size = int(self.options.get("tournament_size", 2))
        a = tournament(rng, parents.fitness, size)
        b = tournament(rng, parents.fitness, size)
        if b == a and len(parents.rows) > 1:  # two different parents when there are two
            b = (a + 1 + int(rng.integers(len(parents.rows) - 1))) % len(parents.rows)
        return breeder.child(rng, parents.rows[a], parents.rows[b])


def _infeasible_rows(request: SuggestRequest) -> np.ndarray:
    trials = _infeasible.of(request.completed, _add_infeasible)
    rows, _ = encode_trials(request.space, trials)
    return rows


#: Each study's infeasible trials, kept between calls (see :mod:`.grown`).
_infeasible: Folded[tuple[Trial, ...]] = Folded()


def _add_infeasible(held: tuple[Trial, ...] | None, trials: Sequence[Trial]) -> tuple[Trial, ...]:
    return (*(held or ()), *(t for t in trials if t.state == TrialState.INFEASIBLE))
