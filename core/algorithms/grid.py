"""Grid search: every combination exactly once, in a seeded shuffled order.

The grid is numbered ``0 .. N-1`` by :meth:`SearchSpace.grid_point` (mixed
radix, conditions respected). A seeded :class:`FeistelPermutation` shuffles
those numbers in O(1) memory, so grids of 10^9 points cost no more than small
ones; the saved state is the next position in the shuffled order. Points equal
to an in-flight or completed trial (a user-queued one, say) are skipped.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..errors import InvalidSpec
from ..options import OptionsModel
from ..space import MAX_GRID_POINTS, SearchSpace
from .base import Algorithm, Params, Suggestion, SuggestRequest
from .grown import keys_in_use
from .sampling import seed_entropy, state_int

#: The largest grid a study may ask for.
MAX_GRID_SIZE = 10**12

_MASK64 = (1 << 64) - 1


def _mix64(z: int) -> int:
    """The splitmix64 finalizer: a fast, well-mixing bijection of 64-bit integers."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class FeistelPermutation:
    """A seeded pseudo-random bijection of ``range(n)`` that needs O(1) memory.

    A keyed Feistel network permutes the integers below the next power of two
    (at least 4) of ``n``; cycle walking (apply it again until the value is below
    ``n``) turns that into a permutation of ``range(n)``. Because the domain is
    less than twice ``n`` (or at most 4), a walk takes two steps on average.
    """

    ROUNDS = 8  # even, so the unequal halves come back to their original widths

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError(f"a permutation needs n >= 1, got {n}")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self._left_bits = bits // 2
        self._right_bits = bits - bits // 2
        words = np.random.SeedSequence([seed_entropy(seed), n]).generate_state(
            self.ROUNDS, dtype=np.uint64
        )
        self._keys = tuple(int(w) for w in words)

    def __call__(self, index: int) -> int:
        """The value at position ``index`` of the permutation, ``0 <= index < n``."""
        if not 0 <= index < self.n:
            raise IndexError(f"position {index} is outside range({self.n})")
        value = self._encrypt(index)
        while value >= self.n:
            value = self._encrypt(value)
        return value

    def _encrypt(self, x: int) -> int:
        lw, rw = self._left_bits, self._right_bits
        left, right = x >> rw, x & ((1 << rw) - 1)
        for key in self._keys:
            mixed = _mix64((right + key) & _MASK64) & ((1 << lw) - 1)
            left, right, lw, rw = right, left ^ mixed, rw, lw
        return (left << rw) | right


class GridOptions(OptionsModel):
    """Options of ``grid``."""

    grid_points: int | None = Field(
        None,
        ge=1,
        le=MAX_GRID_POINTS,
        description="Values per float parameter that has neither step nor grid_points.",
    )


class GridSearch(Algorithm):
    """Every grid point once, shuffled by the seed; ``exhausted`` once all are handed out.

    Option ``grid_points`` (int >= 1, default ``None``): how many values a float
    parameter without its own ``step`` or ``grid_points`` contributes.
    """

    name = "grid"
    options_model = GridOptions

    @classmethod
    def check_options(cls, options: GridOptions, space: SearchSpace) -> None:
        """Check that the space makes a finite grid of at most 10^12 points."""
        points = options.grid_points
        if points is None:
            _check_finite(space)
        size = space.grid_size(points)
        if size > MAX_GRID_SIZE:
            raise InvalidSpec(
                f"the grid holds {_count(size)} points, more than 10^12; use fewer "
                "values (step, grid_points) or a sampling algorithm",
                field="algorithm_options.grid_points" if points is not None else "parameters",
            )

    def suggest(self, request: SuggestRequest) -> Suggestion:
        space, points = request.space, self.options.get("grid_points")
        size = space.grid_size(points)
        order = FeistelPermutation(size, request.seed)
        position = min(state_int(request.state, "next_index"), size)
        taken = keys_in_use(space, request.completed, request.in_flight)
        out: list[Params] = []
        # Each skip passes a point equal to a distinct taken trial: at most len(taken) skips.
        while len(out) < request.count and position < size:
            params = space.grid_point(order(position), points)
            position += 1
            key = space.key(params)
            if key not in taken:
                taken.add(key)
                out.append(params)
        return Suggestion.of(tuple(out), {"next_index": position}, exhausted=position >= size)


def _check_finite(space: SearchSpace) -> None:
    for i, p in enumerate(space.parameters):
        if p.n_choices is None and p.grid_points is None:
            raise InvalidSpec(
                f"float parameter {p.name!r} needs 'step' or 'grid_points' for a grid search "
                "(or set algorithm_options.grid_points, used for every such parameter)",
                field=f"parameters[{i}].grid_points",
            )


def _count(n: int) -> str:
    digits = len(str(n))
    return f"{n:,}" if digits <= 18 else f"about 10^{digits - 1}"
