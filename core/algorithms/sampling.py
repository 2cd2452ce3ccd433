"""Helpers the sampling algorithms share: seeded counters in the saved state and a
picker that avoids points already in use.

On spaces where two draws can be equal (no always-active continuous float), a
draw equal to an in-flight trial, a completed trial or an earlier point of the
same batch is redrawn, a bounded number of times; small finite spaces then
fall back to choosing among the points nobody has used yet.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..space import ParamType, SearchSpace
from .base import Params, SuggestRequest
from .grown import KeySet, keys_in_use

#: Redraws of one point before giving up on finding an unused one by sampling.
MAX_ATTEMPTS = 100
#: Finite spaces with at most this many points are enumerated when sampling fails.
ENUMERATION_LIMIT = 10_000

_SEED_MODULUS = 2**64


def seed_entropy(seed: int) -> int:
    """A non-negative integer for :class:`numpy.random.SeedSequence` (negative seeds wrap)."""
    return int(seed) % _SEED_MODULUS if seed < 0 else int(seed)


def state_int(state: Mapping[str, Any] | None, key: str) -> int:
    """A non-negative integer counter from a saved state; 0 when absent or malformed."""
    value = (state or {}).get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return max(int(value), 0)


def collisions_possible(space: SearchSpace) -> bool:
    """False when an always-active continuous float makes equal draws practically impossible."""
    return not any(
        p.condition is None and p.type == ParamType.FLOAT and p.n_choices is None
        for p in space.parameters
    )


class DistinctPicker:
    """Picks points not yet used by in-flight trials, completed trials or the current batch.

    ``pick(draw, rng)`` calls ``draw()`` up to :data:`MAX_ATTEMPTS` times and keeps
    the first unused point. If every draw was used already, a finite space of at
    most :data:`ENUMERATION_LIMIT` points is enumerated and an unused point chosen
    with ``rng``; only when no unused point exists is the last draw returned as is.
    """

    def __init__(self, request: SuggestRequest) -> None:
        self.space = request.space
        self.active = collisions_possible(self.space)
        self.taken = (
            keys_in_use(self.space, request.completed, request.in_flight)
            if self.active
            else KeySet(None, ())
        )
        self._points: list[tuple[tuple[Any, ...], Params]] | None = None

    def pick(self, draw: Callable[[], Params], rng: np.random.Generator) -> Params:
        params = draw()
        if not self.active:
            return params
        attempts = 1
        while self.space.key(params) in self.taken and attempts < MAX_ATTEMPTS:
            params = draw()
            attempts += 1
        if self.space.key(params) in self.taken:
            params = self._unused_point(rng) or params
        self.taken.add(self.space.key(params))
        return params

    def _unused_point(self, rng: np.random.Generator) -> Params | None:
        if self._points is None:
            points = enumerate_points(self.space)
            if points is None:
                return None  # too many points to list; keep redrawing for the next pick
            self._points = [(self.space.key(p), p) for p in points]
        unused = [p for k, p in self._points if k not in self.taken]
        if not unused:
            self.active = False  # every point is used: later picks take their first draw
            return None
        return unused[int(rng.integers(len(unused)))]


def enumerate_points(space: SearchSpace, limit: int = ENUMERATION_LIMIT) -> list[Params] | None:
    """Every point of a finite space (``grid_points`` ignored), or ``None`` if too many."""
    sizes = [p.n_choices for p in space.parameters]
    if any(n is None for n in sizes) or math.prod(n or 0 for n in sizes) > limit:
        return None
    full = SearchSpace(tuple(dataclasses.replace(p, grid_points=None) for p in space.parameters))
    return list(full.iter_grid())
