"""Random search.

Random search draws every parameter uniformly on its own scale with
:meth:`SearchSpace.sample`. The random stream of a call is
``numpy.random.default_rng([seed, draws])`` where ``draws`` counts the points
handed out before it and lives in the saved state, so the same history, seed
and state always give the same suggestions. Duplicates of points in use are
avoided where the space makes them possible (see :mod:`.sampling`).
"""

from __future__ import annotations

import numpy as np

from ..space import SearchSpace
from .base import Algorithm, Suggestion, SuggestRequest
from .sampling import DistinctPicker, collisions_possible, seed_entropy, state_int


class RandomSearch(Algorithm):
    """Uniform random sampling; state ``{"draws": n}`` keeps calls reproducible."""

    name = "random"

    @classmethod
    def reads_history(cls, space: SearchSpace) -> bool:
        """Only to avoid repeating points, which continuous floats make impossible."""
        return collisions_possible(space)

    def suggest(self, request: SuggestRequest) -> Suggestion:
        draws = state_int(request.state, "draws")
        if request.count <= 0:
            return Suggestion.of((), {"draws": draws})
        rng = np.random.default_rng([seed_entropy(request.seed), draws])
        picker = DistinctPicker(request)
        out = tuple(
            picker.pick(lambda: request.space.sample(rng), rng) for _ in range(request.count)
        )
        return Suggestion.of(out, {"draws": draws + len(out)})
