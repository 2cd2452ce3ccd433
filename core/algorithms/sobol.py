"""Scrambled Sobol' search: a quasi-random design that covers the space evenly.

Point ``i`` of the study is point ``i`` of ``scipy.stats.qmc.Sobol(d,
scramble=True)`` seeded by the study's seed, decoded with
:meth:`SearchSpace.decode`. The saved state is ``next_index``; each call
rebuilds the engine and fast-forwards it there, so the algorithm stays a pure
function of its inputs. Because the server runs suggest under the study's lock,
parallel callers always get different indices.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
from pydantic import Field
from scipy.stats import qmc

from ..options import OptionsModel
from ..space import SearchSpace
from .base import Algorithm, Params, Suggestion, SuggestRequest
from .sampling import DistinctPicker, collisions_possible, seed_entropy, state_int

#: The engine's default 30 bits give 2^30 distinct points; later indices are drawn uniformly.
MAX_SOBOL_INDEX = 2**30

# SciPy 1.15 renamed ``seed`` to ``rng``; both accept a Generator with the same result.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(qmc.Sobol).parameters else "seed"


def sobol_points(d: int, seed: int, start: int, *, scramble: bool = True) -> Iterator[np.ndarray]:
    """Points ``start, start + 1, ...`` of the seeded Sobol' sequence in ``[0, 1)^d``."""
    index = start
    if index < MAX_SOBOL_INDEX:
        rng = np.random.default_rng(seed_entropy(seed))
        engine = qmc.Sobol(d, scramble=scramble, **{_RNG_KEYWORD: rng})
        if index:
            engine.fast_forward(index)
        while index < MAX_SOBOL_INDEX:
            yield engine.random(1)[0]  # one at a time: no "power of 2" balance warning
            index += 1
    while True:
        yield np.random.default_rng([seed_entropy(seed), index]).random(d)
        index += 1


def sobol_start(
    request: SuggestRequest, picker: DistinctPicker, sobol_index: int, draws: int
) -> Suggestion:
    """A model-based algorithm's start-up: ``request.count`` distinct points of the seeded
    Sobol' sequence from ``sobol_index`` on; the state keeps ``draws`` and the new index."""
    points = sobol_points(len(request.space), request.seed, sobol_index)
    rng = np.random.default_rng([seed_entropy(request.seed), sobol_index])
    index = sobol_index

    def sobol_draw() -> Params:
        nonlocal index
        index += 1
        return request.space.decode(next(points))

    out = tuple(picker.pick(sobol_draw, rng) for _ in range(request.count))
    return Suggestion.of(out, {"draws": draws, "sobol_index": index})


class SobolOptions(OptionsModel):
    """Options of ``sobol``."""

    scramble: bool = Field(True, description="Scramble the sequence (Owen scrambling).")


class SobolSearch(Algorithm):
    """Scrambled Sobol' points; state ``{"next_index": i}``. Option ``scramble`` (bool)."""

    name = "sobol"
    options_model = SobolOptions

    @classmethod
    def reads_history(cls, space: SearchSpace) -> bool:
        """Only to avoid repeating points, which continuous floats make impossible."""
        return collisions_possible(space)

    def suggest(self, request: SuggestRequest) -> Suggestion:
        space = request.space
        start = state_int(request.state, "next_index")
        if request.count <= 0:
            return Suggestion.of((), {"next_index": start})
        scramble = bool(self.options.get("scramble", True))
        points = sobol_points(len(space), request.seed, start, scramble=scramble)
        used = 0

        def draw() -> Params:
            nonlocal used
            used += 1
            return space.decode(next(points))

        # Fallback choices among unused points (small finite spaces) stay reproducible.
        rng = np.random.default_rng([seed_entropy(request.seed), start])
        picker = DistinctPicker(request)
        out = tuple(picker.pick(draw, rng) for _ in range(request.count))
        return Suggestion.of(out, {"next_index": start + used})
