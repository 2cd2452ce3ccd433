"""Tree-structured Parzen Estimator: multivariate, grouped by conditions, constant liar.

Each suggestion follows Optuna's multivariate TPE (Falkner et al. 2018, Watanabe 2023):

1. **Startup.** While fewer than ``n_startup_trials`` trials have finished (or the
   study has no objective), points come from the seeded scrambled Sobol'
   sequence; the state's ``sobol_index`` says where it continues.
2. **Split.** Finished trials are ordered best first by :mod:`.history`
   (goal-aware; several objectives by non-dominated rank then crowding
   distance). The first ``gamma(n)`` of them are *good*, the rest *bad*, with
   ``gamma(n) = min(ceil(0.1 n), 25)`` by default (no cap of 25 with several
   objectives, as in Optuna) or ``ceil(gamma * n)`` when the option ``gamma``
   is a fraction. Pruned trials rank below every completed one
   (by step reached, then last intermediate value), so they are good only while
   few trials completed. Infeasible trials and those breaking an outcome
   constraint are always bad.
   Past ``max_observations`` finished trials (default 1000) the model reads only
   the best of the whole history (as many as the good group takes) and the most
   recent others (:func:`window`), so a suggestion's cost stops growing with the study.
3. **Constant liar.** In-flight trials, and the earlier points of the same
   batch, join the bad set as if they had finished with the worst value, so
   the next point is pushed away from them and a batch spreads out.
4. **Groups.** Parameters that share a condition (same parent, same values) are
   active together and form a group; unconditional ones form the root group.
   Groups are sampled in topological order, each only when its condition holds
   given the values already chosen, and each from the trials where it was
   active (its own good/bad split). ``multivariate: false`` makes every
   parameter its own group (independent TPE).
5. **Acquisition.** ``n_ei_candidates`` points are drawn jointly from the good
   density ``l`` (pick a kernel, sample every dimension around it) and the one
   maximizing ``log l(x) - log g(x)`` wins. See :mod:`.parzen` for the kernels.

Randomness: draw ``i`` of a study with ``n`` finished trials uses
``numpy.random.default_rng([seed, n, i])``; ``draws`` lives in the saved state,
so a batch asked in several calls equals the same batch asked at once;
:meth:`TPESearch.reserve` sets a range of draws aside for a fit that runs beside the
study's own (the server's spare points). Points already in use are avoided on finite
spaces as in every sampler (:mod:`.sampling`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import Field

from ..options import OptionsModel
from ..space import SearchSpace
from ..trials import Goal, Metric, Trial, TrialState
from .base import Algorithm, Params, Reservation, Suggestion, SuggestRequest
from .history import Ranking, encode_trials, objectives_of, rank_trials
from .kept import Kept
from .parzen import Dim, ParzenEstimator, default_weights, dims_of
from .sampling import MAX_ATTEMPTS, DistinctPicker, seed_entropy, state_int
from .sobol import sobol_start

MAX_CANDIDATES = 10_000


class TPEOptions(OptionsModel):
    """Options of ``tpe``."""

    n_startup_trials: int = Field(
        10, ge=0, le=1_000_000, description="Sobol' points before the first model."
    )
    n_ei_candidates: int = Field(
        24, ge=1, le=MAX_CANDIDATES, description="Candidates drawn per suggestion."
    )
    gamma: float | None = Field(
        None, gt=0, le=1, description="Fraction of trials in the good group (null: adaptive)."
    )
    multivariate: bool = Field(True, description="Model parameters jointly, not one by one.")
    max_observations: int | None = Field(
        1000,
        ge=50,
        le=10_000_000,
        description="Most finished trials the model reads: the best of the whole history "
        "and the most recent others (null: all of them).",
    )


class TPESearch(Algorithm):
    """Multivariate TPE; state ``{"draws": i, "sobol_index": j}``."""

    name = "tpe"
    options_model = TPEOptions

    @classmethod
    def long_fit(cls, request: SuggestRequest) -> bool:
        """A fit reads at most ``max_observations`` trials (a window of the history)."""
        del request
        return True

    def reserve(self, request: SuggestRequest) -> Reservation | None:
        """Draws ``draws`` up to ``draws + MAX_ATTEMPTS * count``: a point takes at most
        :data:`.sampling.MAX_ATTEMPTS` draws, and draw ``i`` seeds its generator with
        ``[seed, n, i]``, so a fit inside the range shares no random numbers with any
        fit outside it. ``None`` during the start-up, whose Sobol' points follow one
        position in the sequence that cannot be split."""
        startup = int(self.options["n_startup_trials"])
        if len(request.completed) < startup or not objectives_of(request.metrics):
            return None
        draws = state_int(request.state, "draws")
        start = {"draws": draws, "sobol_index": state_int(request.state, "sobol_index")}
        saved = {**start, "draws": draws + MAX_ATTEMPTS * max(request.count, 1)}
        return Reservation(start, saved, "draws")

    def suggest(self, request: SuggestRequest) -> Suggestion:
        draws = state_int(request.state, "draws")
        sobol_index = state_int(request.state, "sobol_index")
        if request.count <= 0:
            return Suggestion.of((), {"draws": draws, "sobol_index": sobol_index})
        seed = seed_entropy(request.seed)
        picker = DistinctPicker(request)
        startup = int(self.options["n_startup_trials"])
        if len(request.completed) < startup or not objectives_of(request.metrics):
            return sobol_start(request, picker, sobol_index, draws)

        n = len(request.completed)
        model = _Model(self._windowed(request), self.options)
        picks: list[Params] = []
        for _ in range(request.count):
            rng = np.random.default_rng([seed, n, draws, 1])

            def draw() -> Params:
                nonlocal draws
                draws += 1
                return model.draw(np.random.default_rng([seed, n, draws - 1]), picker)

            params = picker.pick(draw, rng)
            model.add_liar(params)
            picks.append(params)
        return Suggestion.of(tuple(picks), {"draws": draws, "sobol_index": sobol_index})

    def _windowed(self, request: SuggestRequest) -> SuggestRequest:
        """``request`` with its history cut to ``max_observations`` (see :func:`window`)."""
        limit = self.options.get("max_observations")
        if limit is None or len(request.completed) <= int(limit):
            return request
        keep = min(int(limit) // 2, _n_good_rule(request, self.options)(int(limit)))
        return replace(
            request, completed=window(request.completed, request.metrics, int(limit), keep)
        )


def window(
    completed: Sequence[Trial], metrics: Sequence[Metric], limit: int, keep: int
) -> tuple[Trial, ...]:
    """At most ``limit`` of the finished trials ``completed`` (ordered oldest first): the
    ``keep`` best feasible completed ones among those older than the most recent
    ``limit - keep``, and those most recent ones; in their original order.

    So the good group of a long study (``n_good`` trials, 25 by default) still holds the
    best trials of the whole history, while the bad group and the bandwidths come from
    the recent trials, whose weights dominate anyway (:func:`.parzen.default_weights`
    ramps older observations down), and a suggestion costs the same at 10,000 trials
    as at ``limit``. With several objectives only the recent trials are kept.
    """
    if len(completed) <= limit:
        return tuple(completed)
    cut = len(completed) - (limit - keep)
    recent = tuple(completed[cut:])  # the older ones are read by index, never copied
    objectives = objectives_of(metrics)
    if len(objectives) != 1 or keep <= 0:
        return recent
    name, sign = objectives[0].name, (1.0 if objectives[0].goal == Goal.MINIMIZE else -1.0)
    candidates = [completed[i] for i in _older_best.picked(completed, cut, name, sign, 4 * keep)]
    ranking = rank_trials(candidates, metrics)
    best = [i for i in ranking.order if ranking.eligible[i]][:keep]
    return (*(candidates[i] for i in sorted(best)), *recent)


def _lowest(
    trials: Sequence[Trial], start: int, stop: int, name: str, sign: float, size: int
) -> list[tuple[float, int]]:
    """The ``size`` lowest finite ``(sign * value, index)`` of the completed trials among
    ``trials[start:stop]``, in that order (a stable sort's: ties by index)."""
    done = TrialState.COMPLETED
    found = []
    for i in range(start, stop):
        t = trials[i]
        value = t.values.get(name) if t.state == done and t.values else None
        if value is not None:
            loss = sign * float(value)
            if math.isfinite(loss):
                found.append((loss, i))
    return heapq.nsmallest(size, found)


@dataclass
class _Older:
    first: Trial
    last: Trial
    cut: int
    key: tuple[str, float, int]
    lowest: list[tuple[float, int]]


class _OlderBest:
    """The best older trials of :func:`window`, kept per history between calls.

    A study's history only grows (the server's cache hands the same trial objects out,
    newly finished ones inserted): when the trials before the last call's cut are the
    same objects at the same places (its first and last one still are: an insertion
    before them would have moved the last), only the trials that crossed the cut since
    are read, instead of every older trial on every call (30 ms at 100,000 trials).
    Anything else reads them all; either way the answer is the same.
    """

    def __init__(self, histories: int = 64) -> None:
        self._held: Kept[int, _Older] = Kept(histories)

    def picked(
        self, completed: Sequence[Trial], cut: int, name: str, sign: float, size: int
    ) -> list[int]:
        """Indices (ascending) of the ``size`` lowest finite losses among ``completed[:cut]``."""
        key = (name, sign, size)
        held = self._held.get(id(completed[0]))
        if (
            held is not None
            and held.first is completed[0]
            and held.key == key
            and held.cut <= cut
            and completed[held.cut - 1] is held.last
        ):
            fresh = _lowest(completed, held.cut, cut, name, sign, size)
            lowest = heapq.nsmallest(size, [*held.lowest, *fresh])
        else:
            lowest = _lowest(completed, 0, cut, name, sign, size)
        self._held.put(id(completed[0]), _Older(completed[0], completed[cut - 1], cut, key, lowest))
        return sorted(i for _, i in lowest)


_older_best = _OlderBest()


def _n_good_rule(request: SuggestRequest, options: Mapping[str, Any]) -> Callable[[int], int]:
    """How many of ``n`` finished trials form the good group (see the module docstring)."""
    gamma = options["gamma"]
    cap = 25 if len(objectives_of(request.metrics)) == 1 else None  # Optuna's defaults
    if gamma is not None:
        return lambda n: math.ceil(float(gamma) * n)
    return lambda n: min(math.ceil(0.1 * n), cap or n)


def groups_of(space: SearchSpace, multivariate: bool) -> list[list[int]]:
    """Column groups of parameters active together, parents' groups before their children's."""
    index = {p.name: i for i, p in enumerate(space.parameters)}
    order: list[int] = []
    stack = [index[p.name] for p in reversed(space.roots())]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(index[c.name] for c in reversed(space.children(space.parameters[i].name)))
    if not multivariate:
        return [[i] for i in order]
    groups: dict[Any, list[int]] = {}
    for i in order:
        cond = space.parameters[i].condition
        key = None
        if cond is not None:
            parent = space[cond.parent]
            key = (cond.parent, frozenset(round(parent.encode(v), 12) for v in cond.values))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class _Model:
    """The history of one suggest call, split and turned into Parzen estimators per group."""

    def __init__(self, request: SuggestRequest, options: Mapping[str, Any]) -> None:
        self.space = request.space
        self.dims = dims_of(self.space)
        self.candidates = int(options["n_ei_candidates"])
        self.n_good: Callable[[int], int] = _n_good_rule(request, options)
        self.groups = groups_of(self.space, bool(options["multivariate"]))
        self.x, kept = encode_trials(self.space, request.completed)
        trials = [request.completed[i] for i in kept]
        self.numbers = np.array([t.number for t in trials], dtype=float)
        self.ranking: Ranking = rank_trials(trials, request.metrics)
        liars = sorted(request.in_flight, key=lambda t: t.number)
        self.liars, _ = encode_trials(self.space, liars)
        self._split: dict[int, np.ndarray] = {}  # group -> its bad finished trials' rows
        self._good: dict[int, ParzenEstimator] = {}
        self._bad: dict[int, ParzenEstimator] = {}

    def add_liar(self, params: Params) -> None:
        """A point of the current batch: from now on it counts as a bad trial."""
        row = self.space.encode(params)
        self.liars = np.vstack([self.liars, row])
        for g, cols in enumerate(self.groups):
            bad = self._bad.get(g)
            if bad is not None and not np.isnan(row[cols]).any():  # the groups it is active in
                self._bad[g] = bad.extended(row[cols], default_weights(len(bad) + 1))

    def draw(self, rng: np.random.Generator, picker: DistinctPicker) -> Params:
        """One point: each active group in turn, its best of the candidates drawn from ``l``."""
        u = np.full(len(self.space), np.nan)
        assigned: dict[str, Any] = {}
        params = self.space.parameters
        for g, cols in enumerate(self.groups):
            if not self.space.is_active(params[cols[0]], assigned):
                continue
            good, bad = self._estimators(g, cols)
            cand = good.sample(rng, self.candidates)
            score = good.log_pdf(cand) - bad.log_pdf(cand)
            best = cand[int(np.argmax(score))]
            if len(self.groups) == 1 and picker.active:  # skip candidates already in use
                for i in np.argsort(-score, kind="stable"):
                    if self.space.key(self.space.decode(cand[i])) not in picker.taken:
                        best = cand[i]
                        break
            u[cols] = best
            for c, value in zip(cols, best, strict=True):
                assigned[params[c].name] = params[c].decode(value)
        return self.space.decode(u)

    def _estimators(self, g: int, cols: list[int]) -> tuple[ParzenEstimator, ParzenEstimator]:
        dims: tuple[Dim, ...] = tuple(self.dims[c] for c in cols)
        if g not in self._split:
            active = ~np.isnan(self.x[:, cols]).any(axis=1)
            ranked = [i for i in self.ranking.order if active[i]]
            cut = self.n_good(len(ranked))
            by_number = self.numbers.__getitem__
            good = sorted((i for i in ranked[:cut] if self.ranking.eligible[i]), key=by_number)
            bad = sorted(set(ranked) - set(good), key=by_number)
            self._split[g] = self.x[bad][:, cols]
            self._good[g] = ParzenEstimator(self.x[good][:, cols], default_weights(len(good)), dims)
        if g not in self._bad:
            liars = self.liars[~np.isnan(self.liars[:, cols]).any(axis=1)][:, cols]
            obs = np.vstack([self._split[g], liars])
            self._bad[g] = ParzenEstimator(obs, default_weights(len(obs)), dims)
        return self._good[g], self._bad[g]
