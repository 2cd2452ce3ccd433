"""CMA-ES through the ``cmaes`` package, rebuilt from the history (and kept between calls).

**What it searches.** CMA-ES runs on the unit-cube coordinates of the
parameters that are always active and numeric (floats, integers, discrete
values; integers are rounded by :meth:`SearchSpace.decode`), with bounds
``[0, 1]``, initial mean 0.5 and initial step size ``sigma0`` (default 1/3).
Categorical and conditional parameters are drawn uniformly at random from the
same seeded stream, like Optuna's ``CmaEsSampler`` with its independent
sampler; choose ``tpe`` for spaces where they matter. A space with none of the
former is plain seeded random search.

**No object needed in memory.** Each generation's points are asked in one or more
calls; the saved state records, per finished generation, the trial numbers
that were told, and for the current generation a short hash of every point
handed out. Each call (1) finds the finished trials among the current
generation's points, and once ``popsize`` of them exist tells the first
``popsize`` by trial number and starts the next generation (points of an old
generation that finish later are not used, as in Optuna); (2) rebuilds ``CMA``
and replays every told generation, re-encoding those trials' parameters;
(3) asks new points. Telling needs only ranks within a generation: the order
of :mod:`.history` (feasible by objective, then pruned, then violating
constraints, then infeasible), so constraints and several objectives work as
in TPE. Replay costs one ``tell`` per ``popsize`` trials (about 0.35 ms each,
some 40 ms for a thousand trials of a 6-d space), so the process keeps each
study's last replay and tells only the generations finished since
(:class:`_Replays`); the state alone still rebuilds it. Finished trials that this
algorithm did not hand out (queued by a user, or from before a state loss)
are not used.

**Parallel workers.** Batches of ``popsize`` points (or a divisor of it), all
finished before the next ask, waste nothing. Workers asking as they finish
get extra points of a generation that is not complete yet; those finishing
after the generation was told are not used (Optuna's behaviour too). There are
no restarts: once the step size collapses the points stay put (on finite
spaces the usual fallback to unused points takes over).

**Randomness.** Draw ``i`` of generation ``g`` seeds both CMA's sampler and the
stream for the other parameters with ``(seed, g, i)``, so a generation asked in
several calls equals the same points asked at once.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cmaes import CMA
from pydantic import Field

from ..options import OptionsModel
from ..space import ParamType, SearchSpace
from ..trials import Trial
from .base import Algorithm, Params, Suggestion, SuggestRequest
from .history import encode_trials, rank_trials
from .kept import Kept
from .sampling import DistinctPicker, seed_entropy, state_int

DEFAULT_SIGMA0 = 1 / 3
MAX_POPSIZE = 10_000


def cma_columns(space: SearchSpace) -> list[int]:
    """The parameters CMA-ES searches: always active and not categorical."""
    return [
        i
        for i, p in enumerate(space.parameters)
        if p.condition is None and p.type != ParamType.CATEGORICAL
    ]


def default_popsize(dim: int) -> int:
    """CMA-ES's default population size, ``4 + floor(3 ln d)``."""
    return 4 + math.floor(3 * math.log(max(dim, 1)))


def point_hash(space: SearchSpace, params: Mapping[str, Any]) -> str:
    """A short stable identity of a parameter set, to find it again among finished trials."""
    text = repr(space.key(params)).encode()
    return hashlib.blake2b(text, digest_size=8).hexdigest()


class CMAESOptions(OptionsModel):
    """Options of ``cmaes``."""

    sigma0: float | None = Field(
        None, gt=0, le=1, description="Initial step size in the unit cube (null: 1/3)."
    )
    popsize: int | None = Field(
        None, ge=2, le=MAX_POPSIZE, description="Population size (null: 4 + 3 ln d)."
    )


class CMAESSearch(Algorithm):
    """CMA-ES; state ``{"told": [[trial numbers] per generation], "asked": [hashes],
    "draws": i, "floor": n}`` (``floor``: the highest trial number the call that asked the
    current generation's first point saw; its points' trials are numbered above it)."""

    name = "cmaes"
    options_model = CMAESOptions

    def suggest(self, request: SuggestRequest) -> Suggestion:
        space = request.space
        cols = cma_columns(space)
        popsize = int(self.options.get("popsize") or default_popsize(len(cols)))
        told, asked, draws = _read_state(request.state)
        floor = _read_floor(request.state)
        # The trials of the points asked since the last tell have higher numbers than
        # every told trial and every trial the call that asked the first of them saw.
        since = max([floor, *(n for gen in told for n in gen)])
        finished = [t for t in request.completed if t.number > since] if asked else []
        by_hash = _finished_by_hash(space, finished)
        done = sorted(
            {by_hash[h].number: by_hash[h] for h in asked if h in by_hash}.values(),
            key=lambda t: t.number,
        )
        if cols and len(done) >= popsize:  # the current generation is complete
            told.append([t.number for t in done[:popsize]])
            asked, draws = [], 0
        if not asked:  # this call asks the generation's first points
            seen = (t.number for t in (*request.completed, *request.in_flight))
            floor = max(seen, default=-1)
        state: dict[str, Any] = {"told": told, "asked": asked, "draws": draws, "floor": floor}
        if request.count <= 0:
            return Suggestion.of((), state)

        replayed = self._replay(request, cols, popsize, told) if cols else None
        optimizer = replayed[1].optimizer if replayed is not None else None
        seed, generation = seed_entropy(request.seed), len(told)

        def draw() -> Params:
            nonlocal draws
            rng = np.random.default_rng([seed, generation, draws])
            draws += 1
            u = rng.random(len(space))
            if optimizer is not None:
                optimizer.reseed_rng(int(rng.integers(2**32)))
                u[cols] = np.clip(optimizer.ask(), 0.0, 1.0)
            return space.decode(u)

        picker = DistinctPicker(request)
        fallback = np.random.default_rng([seed, generation, draws, 1])
        out = tuple(picker.pick(draw, fallback) for _ in range(request.count))
        if replayed is not None:  # kept after its asks, which a later call continues
            _replays.keep(*replayed)
        if cols:  # without CMA dimensions there are no generations to track
            asked = asked + [point_hash(space, p) for p in out]
        return Suggestion.of(out, {**state, "asked": asked, "draws": draws})

    def _replay(
        self, request: SuggestRequest, cols: list[int], popsize: int, told: list[list[int]]
    ) -> tuple[tuple[Any, ...], _Replayed]:
        """The optimizer after telling every told generation: the one this process kept
        for the study (:class:`_Replays`) told the generations added since, or a new one
        told them all; with the key to keep it under once its points are asked."""
        sigma0 = float(self.options.get("sigma0") or DEFAULT_SIGMA0)
        seed = seed_entropy(request.seed) % 2**32
        by_number = {t.number: t for t in request.completed}
        members = [[by_number[n] for n in gen if n in by_number] for gen in told]
        key = (id(request.space), seed, sigma0, popsize, tuple(cols), request.metrics)
        optimizer, start = _replays.resume(key, members)
        if optimizer is None:
            dim = len(cols)
            optimizer = CMA(
                mean=np.full(dim, 0.5),
                sigma=sigma0,
                bounds=np.tile([0.0, 1.0], (dim, 1)),
                seed=seed,
                population_size=popsize,
            )
        flat = [t for gen in members[start:] for t in gen]
        x, kept = encode_trials(request.space, flat)
        rows = np.full((len(flat), len(request.space)), np.nan)
        rows[kept] = x
        first = 0
        for trials in members[start:]:
            block = rows[first : first + len(trials), cols]
            first += len(trials)
            if len(trials) != popsize or np.isnan(block).any():
                continue  # a told trial vanished from the history: skip its generation
            ranking = rank_trials(trials, request.metrics)
            rank = np.empty(popsize)
            rank[list(ranking.order)] = np.arange(popsize)
            optimizer.tell([(block[i], float(rank[i])) for i in range(popsize)])
        return key, _Replayed(members, optimizer)


@dataclass
class _Replayed:
    members: list[list[Trial]]
    optimizer: CMA  # after telling ``members`` (and asking a call's points)


class _Replays:
    """The optimizer each study's last call used, kept between calls.

    A replay tells every finished generation again, one ``tell`` per ``popsize`` trials
    (194 ms at 10,000 trials of a 4-d space), while a generation is told once. So the
    optimizer is kept after its call asked its points, with the told generations' trial
    objects; a later call whose told generations start with those very objects (the
    server's history cache hands out the same ones; trials never change once finished)
    takes it and tells only the generations added since, as a live optimizer would.
    A live optimizer equals a replay bit for bit (``tests/unit/test_cmaes.py``); a copy
    of one does not (its arrays' copies gave results apart in the last bits after a few
    generations), so the object itself is handed over: :meth:`resume` removes it, and
    a call that fails before :meth:`keep` leaves the next call a full replay. Anything
    that does not match replays from the start.
    """

    def __init__(self, studies: int = 64) -> None:
        self._held: Kept[tuple[Any, ...], _Replayed] = Kept(studies)

    def resume(self, key: tuple[Any, ...], members: list[list[Trial]]) -> tuple[CMA | None, int]:
        """The kept optimizer (no longer kept) and how many generations of ``members``
        it told, or ``(None, 0)`` when none matches."""
        held = self._held.take(key)
        if held is None or len(held.members) > len(members):
            return None, 0
        for old, new in zip(held.members, members, strict=False):
            if len(old) != len(new) or not all(map(operator.is_, old, new)):
                return None, 0
        return held.optimizer, len(held.members)

    def keep(self, key: tuple[Any, ...], kept: _Replayed) -> None:
        self._held.put(key, kept)


_replays = _Replays()


def _finished_by_hash(space: SearchSpace, completed: Sequence[Trial]) -> dict[str, Trial]:
    """Finished trials by :func:`point_hash`; the lowest number wins (a retry repeats a point)."""
    out: dict[str, Trial] = {}
    for t in sorted(completed, key=lambda t: t.number):
        out.setdefault(point_hash(space, t.params), t)
    return out


def _read_floor(state: Mapping[str, Any] | None) -> int:
    """The saved ``floor`` (a trial number, ``-1`` for none); ``-1`` when absent or malformed
    (then every finished trial is searched for the asked points, as before it was saved)."""
    value = (state or {}).get("floor", -1)
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _read_state(state: Mapping[str, Any] | None) -> tuple[list[list[int]], list[str], int]:
    """``told``, ``asked`` and ``draws`` of a saved state; malformed parts read as empty."""
    raw_told = (state or {}).get("told")
    raw_asked = (state or {}).get("asked")
    told = []
    if isinstance(raw_told, list):
        for gen in raw_told:
            if isinstance(gen, list) and all(
                isinstance(n, int) and not isinstance(n, bool) for n in gen
            ):
                told.append(list(gen))
    asked = [h for h in raw_asked if isinstance(h, str)] if isinstance(raw_asked, list) else []
    return told, asked, state_int(state, "draws")
