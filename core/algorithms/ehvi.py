"""``ehvi``: Gaussian-process Bayesian optimization by expected hypervolume improvement.

For studies with two or more objectives (with one objective it is exactly
``gp``, whose expected improvement EHVI then equals). One call, once
``n_startup`` trials are usable (before that: scrambled Sobol', as ``gp``):

1. **Models.** One GP per objective (:mod:`.gp_model`, the same kernel, priors
   and warm-started MAP fits as ``gp``, saved in the state under
   ``objective:<k>``), on the objective log-compressed against outliers
   (:func:`.gp_targets.compress_outliers`) and standardized; one GP per outcome
   constraint and one for infeasible trials, exactly as ``gp``.
2. **Front and region.** In the standardized target space: the Pareto front of
   the feasible trials, a reference point 10% of each objective's range beyond
   its worst feasible value, and :data:`REGION_POINTS` seeded uniform points of
   the box from 30% of the range below the best values to the reference that
   the front does not dominate: the region a new point could add.
3. **Acquisition.** ``EHVI(x) * P(feasible | x)``: the expected share of the
   region that ``x`` dominates, by Monte Carlo over ``n_samples`` draws of the
   posterior (independent objectives, one set of normal draws for every
   candidate, so candidates compare without sampling noise); ties at zero go
   to the larger predictive spread.
4. **Candidates.** A pool of ``n_candidates`` scrambled Sobol' points plus
   perturbations of the front's members (:class:`.acquisition.Pool`), and as
   many children of the front's members as NSGA-II would breed
   (:mod:`.variation`); the best :data:`N_REFINE` are then refined by Gaussian
   moves in the unit cube and scored again.
5. **Batches and in-flight trials** (kriging believer): each in-flight trial and
   each point already chosen joins the front at its posterior mean and the
   models' variance shrinks there, so the next point goes elsewhere. A point
   is never a repeat of a used parameter set, nor within
   :data:`.acquisition.PENDING_RADIUS` of an in-flight or chosen one.

Randomness comes from ``default_rng([seed, finished trials, calls])`` as in ``gp``;
the state is ``gp``'s (``calls``, ``sobol_index``, ``theta``, ``fitted_on``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import moocore
import numpy as np
from pydantic import Field
from scipy import linalg

from .acquisition import DUPLICATE_RADIUS, PENDING_RADIUS, Pool, log_pof
from .base import Algorithm, Params, Suggestion, SuggestRequest
from .dominance import RegionCover
from .gp import (
    CENTRE_QUANTILE,
    PERTURBED_SHARE,
    RESTART_EVERY,
    GPModelOptions,
    GPSearch,
    _Fits,
    default_startup,
    single_threaded_blas,
)
from .gp_model import Posterior, SpaceEncoder
from .gp_targets import History, compress_outliers, constraint_targets, select_training
from .history import objectives_of
from .sampling import seed_entropy, state_int
from .variation import Breeder, VariationOptions

#: Uniform points of the objective box that measure the region a new point could add.
REGION_POINTS = 1024
#: Candidates scored against the region at once (bounds memory to chunk * samples * region).
CHUNK = 32
#: Posterior draws of the first, coarse scoring of every candidate, and how many candidates
#: then get the full ``n_samples`` draws.
COARSE_SAMPLES = 8
N_SCREENED = 64
#: Best candidates refined by Gaussian moves, moves each, and the moves' scale.
N_REFINE = 8
REFINE_MOVES = 24
REFINE_SCALE = 0.03


class EHVIOptions(GPModelOptions):
    """Options of ``ehvi``."""

    n_candidates: int = Field(
        512, ge=16, le=20_000, description="Candidates scored by the acquisition per point."
    )
    n_samples: int = Field(
        32, ge=4, le=512, description="Posterior draws per candidate in the Monte Carlo EHVI."
    )


class EHVISearch(Algorithm):
    """GP BO by expected hypervolume improvement; see the module docstring."""

    name = "ehvi"
    options_model = EHVIOptions

    @classmethod
    def heavy_fit(cls, request: SuggestRequest) -> bool:
        del request
        return True

    def suggest(self, request: SuggestRequest) -> Suggestion:
        if len(objectives_of(request.metrics)) < 2:
            return self._gp().suggest(request)
        state = request.state or {}
        out_state = dict(self._gp().suggest(dataclasses.replace(request, count=0)).state or {})
        if request.count <= 0:
            return Suggestion.of((), out_state)
        calls = state_int(state, "calls")
        encoder = SpaceEncoder(request.space)
        history = History.collect(request, encoder)
        n_startup = self.options.get("n_startup") or default_startup(request.space)
        if history.n_valid == 0 or history.n_used < n_startup:
            return self._gp()._sobol(request, out_state, "startup")
        rng = np.random.default_rng([seed_entropy(request.seed), len(request.completed), calls])
        fits = _Fits(
            encoder.cat,
            out_state["theta"],
            out_state["fitted_on"],
            rng,
            restart=calls % RESTART_EVERY == 0,
            n_seen=history.n_used,
        )
        try:
            with single_threaded_blas():
                params = _Round(self.options, request, encoder, history, fits, rng).run()
        except linalg.LinAlgError:
            return self._gp()._sobol(request, out_state, "fallback")
        return Suggestion.of(params, out_state, extra={"phase": "model"})

    def _gp(self) -> GPSearch:
        options = GPSearch.default_options()
        options["n_startup"] = self.options.get("n_startup")
        options["max_training_points"] = self.options["max_training_points"]
        return GPSearch(options)


class _Round:
    """One suggest call's models, front, region and candidates."""

    def __init__(
        self,
        options: Mapping[str, Any],
        request: SuggestRequest,
        encoder: SpaceEncoder,
        history: History,
        fits: _Fits,
        rng: np.random.Generator,
    ) -> None:
        self.request, self.encoder, self.rng = request, encoder, rng
        self.options = options
        m = len(history.objectives)
        equal = objective_sum(history.Y)
        chosen = select_training(history, equal, int(options["max_training_points"]), rng)
        rows = chosen[history.valid[chosen]]
        X = history.F[rows]
        T = np.column_stack([_standardize(history.Y[rows, k]) for k in range(m)])
        self.posteriors = [
            Posterior.fit(fits.model(f"objective:{k}", X, T[:, k]), T[:, k]) for k in range(m)
        ]
        self.constraints = [
            (Posterior.fit(fits.model(key, history.F[r], g), g), threshold)
            for key, r, g, threshold in constraint_targets(history, chosen)
        ]
        feasible = history.feasible[rows]
        span = np.maximum(T.max(axis=0) - T.min(axis=0), 1e-9)
        worst = T[feasible].max(axis=0) if feasible.any() else T.max(axis=0)
        ref = worst + 0.1 * span
        low = T.min(axis=0) - 0.3 * span
        self.front = T[feasible] if feasible.any() else np.empty((0, m))
        region = low + rng.random((REGION_POINTS, m)) * (ref - low)
        self.region = region[~_dominated_by(region, self.front)]
        self._region_cover: RegionCover | None = None
        self.z = rng.standard_normal((int(options["n_samples"]), m))
        self.taken = {_identity(f) for f in history.taken_F}
        self.used_F, self.pending_F = history.taken_F, history.pending_F
        on_front = np.flatnonzero(feasible)
        if len(on_front):
            nd = moocore.is_nondominated(T[on_front], keep_weakly=True)
            on_front = on_front[nd]
        self.parents = np.where(history.A[rows][on_front], history.U[rows][on_front], np.nan)
        self.parents_near = np.where(
            history.A[rows][on_front], history.U[rows][on_front], rng.random(self.parents.shape)
        )
        for f in history.pending_F:
            self._believe(f)

    def run(self) -> tuple[Params, ...]:
        return tuple(self._pick() for _ in range(self.request.count))

    # ---- one point ---------------------------------------------------------------------
    def _pick(self) -> Params:
        U = self._candidates()
        coarse = self._score(self.encoder.features(U)[0], self.z[:COARSE_SAMPLES])
        U = U[np.argsort(-coarse, kind="stable")[:N_SCREENED]]
        scores = self._score(self.encoder.features(U)[0], self.z)
        top = np.argsort(-scores, kind="stable")[:N_REFINE]
        moves = U[top].repeat(REFINE_MOVES, axis=0)
        moves = np.clip(moves + REFINE_SCALE * self.rng.standard_normal(moves.shape), 0.0, 1.0)
        U = np.vstack([U, moves])
        scores = np.r_[scores, self._score(self.encoder.features(moves)[0], self.z)]
        for i in np.argsort(-scores, kind="stable"):
            params = self.request.space.decode(U[i])
            _, f, active = self.encoder.from_params(params)
            if self._usable(f, active):
                return self._take(params, f)
        params = self.request.space.sample(self.rng)  # everything scored is used: any point
        return self._take(params, self.encoder.from_params(params)[1])

    def _candidates(self) -> np.ndarray:
        size = int(self.options["n_candidates"])
        pool = Pool.build(self.encoder, self.parents_near, size, self.rng, PERTURBED_SHARE)
        if len(self.parents) < 2:
            return pool.U
        breeder = Breeder.from_options(
            self.request.space, VariationOptions.model_validate({}).model_dump()
        )
        kids = []
        for _ in range(size // 2):
            a, b = self.rng.choice(len(self.parents), 2, replace=False)
            kids.append(breeder.child(self.rng, self.parents[a], self.parents[b]))
        return np.vstack([pool.U, np.array(kids)])

    def _score(self, F: np.ndarray, z: np.ndarray) -> np.ndarray:
        preds = [p.predict(F) for p in self.posteriors]
        mean = np.column_stack([m for m, _ in preds])
        sd = np.sqrt(np.column_stack([v for _, v in preds]))
        gain = np.zeros(len(F))
        if len(self.region):
            cover = self._cover()
            for start in range(0, len(F), CHUNK):
                draws = (
                    mean[start : start + CHUNK, None, :]
                    + sd[start : start + CHUNK, None, :] * self.z
                )
                gain[start : start + CHUNK] = cover.shares(draws)
        log_feasible = np.zeros(len(F))
        for posterior, threshold in self.constraints:
            c_mean, c_var = posterior.predict(F)
            log_feasible += log_pof(c_mean, c_var, threshold)[0]
        spread = 1e-9 * sd.sum(axis=1) / (1.0 + sd.sum(axis=1))  # breaks ties at zero gain
        return (gain + spread) * np.exp(log_feasible)

    def _cover(self) -> RegionCover:
        """The dominance counts of the current region (it shrinks with each believed point)."""
        if self._region_cover is None or self._region_cover.region is not self.region:
            self._region_cover = RegionCover(self.region)
        return self._region_cover

    # ---- bookkeeping -------------------------------------------------------------------
    def _usable(self, f: np.ndarray, active: np.ndarray) -> bool:
        if _identity(f) in self.taken:
            return False
        if not (active & self.encoder.continuous).any():
            return True
        return not (
            _near(self.used_F, f, DUPLICATE_RADIUS, self.encoder.cat)
            or _near(self.pending_F, f, PENDING_RADIUS, self.encoder.cat)
        )

    def _take(self, params: Params, f: np.ndarray) -> Params:
        self.taken.add(_identity(f))
        self.used_F = np.vstack([self.used_F, f])
        self.pending_F = np.vstack([self.pending_F, f])
        self._believe(f)
        return params

    def _believe(self, f: np.ndarray) -> None:
        """Kriging believer: ``f`` joins the front at its posterior mean; variance shrinks."""
        mean = np.array([p.predict(f[None, :])[0][0] for p in self.posteriors])
        self.front = np.vstack([self.front, mean])
        self.region = self.region[~np.all(mean <= self.region, axis=1)]
        self.posteriors = [
            p.with_pending(f, min(p.model.noise_var, 1e-4 * p.model.signal))
            for p in self.posteriors
        ]


def objective_sum(Y: np.ndarray) -> np.ndarray:
    """The sum of the min-max scaled objectives: which rows train the models past the cap."""
    ok = np.isfinite(Y).all(axis=1)
    out = np.full(len(Y), np.nan)
    if ok.any():
        lo, hi = Y[ok].min(axis=0), Y[ok].max(axis=0)
        out[ok] = ((Y[ok] - lo) / np.where(hi > lo, hi - lo, 1.0)).sum(axis=1)
    return out


def _standardize(y: np.ndarray) -> np.ndarray:
    y = compress_outliers(y)
    return (y - np.quantile(y, CENTRE_QUANTILE)) / (y.std() or 1.0)


def _dominated_by(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Whether each of ``points`` is weakly dominated by a row of ``front``."""
    out = np.zeros(len(points), dtype=bool)
    for row in front:
        out |= np.all(row <= points, axis=1)
    return out


def _near(used: np.ndarray, f: np.ndarray, radius: float, cat: np.ndarray) -> bool:
    if not len(used):
        return False
    diff = np.abs(used - f)
    sq = np.where(cat, diff > 1e-9, diff * diff).sum(axis=1)
    return bool(sq.min() < radius**2)


def _identity(f: np.ndarray) -> bytes:
    return (f + 0.0).tobytes()
