"""Gaussian-process Bayesian optimization (``gp``), in numpy and scipy only.

One call, once ``n_startup`` trials have finished with a result (before that
the points come from scrambled Sobol', exactly as :class:`.SobolSearch`):

1. Every usable trial becomes a feature row (:class:`.gp_model.SpaceEncoder`)
   and targets (:mod:`.gp_targets`): objectives turned into minimization, outliers
   log-compressed (or, with :data:`WARP_FROM_IN_FLIGHT` or more trials in flight or
   points of the batch before the last, Yeo-Johnson warped), scalarized with random augmented Chebyshev
   weights when there are several objectives (ParEGO, new weights for every
   point of a batch), scaled to unit variance and centred on their 90th percentile
   (:data:`CENTRE_QUANTILE`): the GP's prior mean, what it predicts far from every
   trial, is a poor value, so unexplored corners are not presumed average.
2. At most ``max_training_points`` trials train the models: the best third by
   the (first) scalarized objective, then a seeded uniform sample of the rest
   (infeasible trials included) -- so the cost of a call stops growing.
3. A GP (:mod:`.gp_model`) is fitted to the objective, one to every outcome
   constraint with a threshold, and one to the +1/-1 labels of infeasible vs
   completed trials when there are infeasible ones; hyperparameters are MAP
   estimates warm-started from the saved state (:class:`_Fits`).
4. For each point of the batch: the objective model is conditioned on the
   in-flight and already chosen points at their posterior mean (kriging
   believer), the incumbent is the best posterior mean among feasible observed
   and believed points, and ``log EI + sum log P(feasible)`` is maximized by
   :class:`.acquisition.CandidateSearch` over a seeded candidate pool
   (scrambled Sobol' plus perturbations of the best trials, or every point of a
   small finite space), polished by multi-start L-BFGS-B on the numeric
   columns and by trying neighbouring values of the discrete ones. In spaces
   of at most ``LOCAL_MAX_DIM`` parameters the polish also starts beside the
   best trials (local precision for ill-conditioned basins); with the
   ``trust_region`` option (off by default) and no categorical parameter, candidates
   and polish stay inside a TuRBO-style box around the best trial
   (:mod:`.gp_trust`) unless the best values tie (a plateau). The best
   point not yet used (same parameter set, within ``DUPLICATE_RADIUS`` of a trial or
   ``PENDING_RADIUS`` of an in-flight trial or another point of the batch, in
   the unit cube) wins.

Pruned trials are ignored by the models but never suggested again. All
randomness comes from ``default_rng([seed, finished trials, calls])``, where
``calls`` counts this algorithm's calls in the saved state, so a request
always gives the same answer. The state is ``{"calls", "sobol_index",
"theta": {model: [log hyperparameters]}, "fitted_on": {model: usable trials then}}``,
plain JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field
from scipy import linalg

from ..options import OptionsModel
from ..space import SearchSpace
from . import acquisition as acq
from .acquisition import (
    N_LOCAL_STARTS,
    Acquisition,
    CandidateSearch,
    Constraint,
    Pool,
)
from .auto import on_plateau
from .base import Algorithm, Params, Suggestion, SuggestRequest
from .gp_model import GPModel, Posterior, Prior, SpaceEncoder, clip_theta, fit_theta
from .gp_rows import GrowingRows
from .gp_targets import History, ObjectiveColumns, constraint_targets, select_training
from .gp_trust import trust_box, trust_length
from .gp_warp import Warp
from .sampling import seed_entropy, state_int
from .sobol import SobolSearch

#: Hyperparameter fits restart from scratch on small data and on every few calls (see _Fits).
RESTART_BELOW = 100
RESTART_EVERY = 4
#: From this many training points on, the saved hyperparameters are reused until the
#: training set has grown by REFIT_GROWTH since they were fitted (see _Fits).
REUSE_FROM = 100
REFIT_GROWTH = 0.05
#: Share of the candidate pool that perturbs the best trials instead of following Sobol'.
PERTURBED_SHARE = 0.25
#: Targets are centred on this quantile of the observed values, not on their mean: the GP's
#: prior mean (what it predicts far from data) is then a poor value, not an average one,
#: and log EI stops sending points to the corners of the box, where the posterior is widest.
#: On seeds 10-29 of the synthetic and mixed benchmark problems, 0.9 beat the mean on seven
#: of nine (Styblinski-Tang-8 mean regret 76-83 -> 30-38, Rosenbrock-4 16-19 -> 4-6) and
#: 0.75; it lost on mixed-cat (more seeds stuck on a wrong category pair).
CENTRE_QUANTILE = 0.9
#: With this many trials in flight or more (counting the points of the batch after the
#: first), the objective is Yeo-Johnson warped (gp_targets.power_warp) instead of only
#: outlier-compressed: the good values spread out and the GP resolves the basin they sit
#: in, so picks made without the newest results stay closer to what pays. With 8 workers
#: it brought the mean normalized score of the synthetic and mixed benchmark problems from
#: 1.60 / 1.54 / 1.48 to 1.25 / 1.01 / 1.08 times the sequential one (seeds 10-25 /
#: 26-41 / 0-9). With 2 workers it was worse (1.10 -> 1.19 on seeds 10-25: mixed-cat
#: stuck in a wrong category pair more often), with 4 no better (1.14 -> 1.16), and
#: sequential runs lose with it (mixed-cat stuck on 9 of 16 seeds): hence the threshold.
WARP_FROM_IN_FLIGHT = 4


_blas_lock = threading.Lock()
_blas_state: dict[str, Any] = {"users": 0, "controller": None, "limiter": None}


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread while any suggestion runs, then restore the setting.

    The matrices here have at most a few hundred rows; threading them gains
    little, and on a busy machine spinning BLAS threads made calls several times
    slower. Uses threadpoolctl (installed with scikit-learn) when present.
    """
    with _blas_lock:
        if _blas_state["users"] == 0:
            _blas_state["limiter"] = _limit_blas()
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            limiter = _blas_state["limiter"]
            if _blas_state["users"] == 0 and limiter is not None:
                limiter.restore_original_limits()
                _blas_state["limiter"] = None


def _limit_blas() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return None
    if _blas_state["controller"] is None:
        _blas_state["controller"] = ThreadpoolController()
    return _blas_state["controller"].limit(limits=1, user_api="blas")


def default_startup(space: SearchSpace) -> int:
    """Sobol' trials before the first model: ``2 d``, at least 5 and at most 10."""
    return min(max(2 * len(space), 5), 10)


class GPModelOptions(OptionsModel):
    """The options every Gaussian-process algorithm (``gp``, ``ehvi``) takes."""

    n_startup: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Sobol' points before the first model (null: 2d, 5..10).",
    )
    max_training_points: int = Field(
        300, ge=10, le=5_000, description="Most finished trials a GP is fitted on."
    )


class GPOptions(GPModelOptions):
    """Options of ``gp``."""

    n_candidates: int = Field(
        1024, ge=16, le=100_000, description="Candidates scored by the acquisition per point."
    )
    xi: float = Field(0.0, ge=0, le=10, description="Exploration margin of expected improvement.")
    input_warping: bool = Field(
        False,
        description="Warp each numeric parameter by a Kumaraswamy CDF fitted with the GP "
        "(gp_warp; measured in docs/algorithms.md).",
    )
    trust_region: bool = Field(
        False,
        description="In spaces of at most 5 parameters, none categorical, and off plateaus, "
        "maximize the acquisition inside a TuRBO-style box around the best trial "
        "(gp_trust; measured in docs/algorithms.md).",
    )


class GPSearch(Algorithm):
    """GP Bayesian optimization; see the module docstring for the method and the state."""

    name = "gp"
    options_model = GPOptions

    @classmethod
    def heavy_fit(cls, request: SuggestRequest) -> bool:
        del request
        return True

    # ---- entry point -------------------------------------------------------------
    def suggest(self, request: SuggestRequest) -> Suggestion:
        state = request.state or {}
        calls = state_int(state, "calls")
        saved = state.get("theta")
        thetas = {
            str(k): [float(x) for x in v]
            for k, v in (saved.items() if isinstance(saved, Mapping) else ())
            if _finite_list(v)
        }
        fitted = state.get("fitted_on")
        fitted_on = {
            str(k): int(v)
            for k, v in (fitted.items() if isinstance(fitted, Mapping) else ())
            if isinstance(v, int) and not isinstance(v, bool) and v > 0
        }
        out_state: dict[str, Any] = {
            "calls": calls + 1,
            "sobol_index": state_int(state, "sobol_index"),
            "theta": thetas,
            "fitted_on": fitted_on,
        }
        if request.count <= 0:
            return Suggestion.of((), out_state)
        with single_threaded_blas():
            return self._suggest(request, out_state, calls)

    def _suggest(
        self, request: SuggestRequest, out_state: dict[str, Any], calls: int
    ) -> Suggestion:
        encoder = SpaceEncoder(request.space)
        history = History.collect(request, encoder)
        n_startup = self.options.get("n_startup") or default_startup(request.space)
        if not history.objectives or history.n_valid == 0 or history.n_used < n_startup:
            return self._sobol(request, out_state, "startup")
        rng = np.random.default_rng([seed_entropy(request.seed), len(request.completed), calls])
        try:
            warp_cols = np.flatnonzero(~encoder.cat) if self.options["input_warping"] else None
            fits = _Fits(
                encoder.cat,
                out_state["theta"],
                out_state["fitted_on"],
                rng,
                restart=calls % RESTART_EVERY == 0,
                n_seen=history.n_used,
                warp_cols=warp_cols if warp_cols is not None and len(warp_cols) else None,
            )
            params = self._model_suggest(request, encoder, history, fits, rng)
        except linalg.LinAlgError:  # even the largest jitter failed: keep the study moving
            return self._sobol(request, out_state, "fallback")
        return Suggestion.of(params, out_state, extra={"phase": "model"})

    def _sobol(self, request: SuggestRequest, out_state: dict[str, Any], phase: str) -> Suggestion:
        sub = dataclasses.replace(request, state={"next_index": out_state["sobol_index"]})
        got = SobolSearch({"scramble": True}).suggest(sub)
        out_state["sobol_index"] = state_int(got.state, "next_index")
        return Suggestion(got.decisions, out_state, extra={"phase": phase})

    # ---- the model phase ---------------------------------------------------------------
    def _model_suggest(
        self,
        request: SuggestRequest,
        encoder: SpaceEncoder,
        history: History,
        fits: _Fits,
        rng: np.random.Generator,
    ) -> tuple[Params, ...]:
        count = request.count
        n_obj = len(history.objectives)
        weights = rng.dirichlet(np.ones(n_obj), size=count) if n_obj > 1 else np.ones((count, 1))
        cap = int(self.options["max_training_points"])
        warp = len(history.pending_F) + count - 1 >= WARP_FROM_IN_FLIGHT
        columns = ObjectiveColumns.of(history.Y, warp)
        y_all = columns.targets(weights[0])
        chosen = select_training(history, y_all, cap, rng)
        rows = chosen[history.valid[chosen]]
        X = history.F[rows]

        def targets(e: int) -> np.ndarray:
            y = (y_all if e == 0 else columns.targets(weights[e]))[rows]
            return (y - np.quantile(y, CENTRE_QUANTILE)) / (y.std() or 1.0)

        y0 = targets(0)
        base = fits.model("objective", X, y0)
        # one objective: every point's targets are y0, so its weights' posterior is shared
        alpha0 = Posterior.fit(base, y0).alpha
        constraints = self._constraints(history, chosen, fits)
        feasible = history.feasible[rows]
        best_rows = rows[np.lexsort((y0, ~feasible))[:N_LOCAL_STARTS]]
        near = np.where(
            history.A[best_rows], history.U[best_rows], rng.random((len(best_rows), encoder.d))
        )
        local = encoder.d <= acq.LOCAL_MAX_DIM and history.n_used >= acq.LOCAL_FROM_TRIALS
        anchors = near[: acq.LOCAL_ANCHORS] if local else None
        box = self._trust_box(history, base, encoder) if self.options["trust_region"] else None
        pool = Pool.build(
            encoder, near, int(self.options["n_candidates"]), rng, PERTURBED_SHARE, anchors, box
        )
        search = CandidateSearch(encoder, history.taken_F, history.pending_F)
        scored = GrowingRows(pool.F)
        fantasy_noise = min(base.noise_var, 1e-4 * base.signal)
        model = base
        for x in history.pending_F[-cap:]:
            model = model.extend(x, fantasy_noise)
        out: list[Params] = []
        train_means = Posterior(base, alpha0).mean_at_train()
        for e in range(count):
            shared = e == 0 or columns.single
            alpha = alpha0 if shared else Posterior.fit(base, targets(e)).alpha
            posterior = Posterior(model, alpha)
            at_train = train_means if shared else posterior.mean_at_train()
            best = self._incumbent(posterior, at_train[feasible], constraints)
            if best is not None:
                best -= float(self.options["xi"])
            params, f = search.pick(Acquisition(posterior, best, constraints, scored), pool, rng)
            out.append(params)
            model = model.extend(f, fantasy_noise)
        return tuple(out)

    def _trust_box(
        self, history: History, base: GPModel, encoder: SpaceEncoder
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The trust region around the best feasible trial (gp_trust), in small numeric spaces."""
        if encoder.d > acq.LOCAL_MAX_DIM or encoder.cat.any() or not history.feasible.any():
            return None
        values = np.where(history.feasible, history.Y[:, 0], np.inf)
        if on_plateau(values[np.isfinite(values)]):
            return None  # no trial improves on a plateau: the box would shrink onto one step
        n_startup = self.options.get("n_startup") or default_startup(encoder.space)
        length = trust_length(values, n_startup, encoder.d)
        centre = history.U[int(np.argmin(values))]
        return trust_box(centre, length, base.theta[: encoder.d], encoder.relaxable)

    def _constraints(self, history: History, chosen: np.ndarray, fits: _Fits) -> list[Constraint]:
        out = []
        for key, rows, g, threshold in constraint_targets(history, chosen):
            out.append(Constraint(Posterior.fit(fits.model(key, history.F[rows], g), g), threshold))
        return out

    @staticmethod
    def _incumbent(
        posterior: Posterior, means: np.ndarray, constraints: list[Constraint]
    ) -> float | None:
        """Best posterior mean over feasible observed points (their ``means``) and believed
        pending ones."""
        n_obs = len(posterior.alpha)
        pending = posterior.model.X[n_obs:]
        if len(pending):
            mean = posterior.mean_at(pending)
            likely = np.ones(len(pending), bool)
            for c in constraints:
                c_mean, _ = c.posterior.predict(pending)
                likely &= c_mean <= c.threshold
            means = np.r_[means, mean[likely]]
        return float(means.min()) if len(means) else None


def _finite_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x) for x in value
    )


@dataclass
class _Fits:
    """Fits GP hyperparameters within one call and records them for the saved state.

    L-BFGS-B always runs from the saved hyperparameters of the same model; a fresh
    start (the best of the prior mode and two prior draws) runs too when there
    are none, on at most :data:`RESTART_BELOW` points, and on every
    :data:`RESTART_EVERY`-th call -- so a fit cannot stay in a poor mode for long
    while a large study mostly pays for one warm-started run. From
    :data:`REUSE_FROM` training points on, the saved hyperparameters are reused
    as they are until the training set has grown by :data:`REFIT_GROWTH`: one
    more point barely moves a MAP estimate from that many, and the fit is the
    part of a call whose cost grows fastest.
    """

    cat: np.ndarray
    thetas: dict[str, list[float]]
    fitted_on: dict[str, int]
    rng: np.random.Generator
    restart: bool
    #: Usable trials in the history: what "grown" counts (the training set stops at its cap).
    n_seen: int
    #: Numeric columns the objective's model warps (gp_warp), or None.
    warp_cols: np.ndarray | None = None

    def model(self, key: str, X: np.ndarray, y: np.ndarray) -> GPModel:
        d = X.shape[1]
        warp_cols = self.warp_cols if key == "objective" else None
        prior = Prior.default(d, Warp.n_params(warp_cols))
        saved = self.thetas.get(key)
        warm = np.array(saved) if saved is not None and len(saved) == len(prior.mean) else None
        n, since = self.n_seen, self.fitted_on.get(key, 0)
        if warm is not None and len(X) >= REUSE_FROM and since <= n < since * (1.0 + REFIT_GROWTH):
            return GPModel(X, clip_theta(warm, d), self.cat, warp_cols=warp_cols)
        starts: list[np.ndarray] = []
        if warm is None or self.restart or len(X) <= RESTART_BELOW:
            draws = prior.mean + prior.std * self.rng.standard_normal((2, len(prior.mean)))
            starts = [prior.mean, *draws]
        theta = fit_theta(X, y, self.cat, starts, warm=warm, prior=prior, warp_cols=warp_cols)
        self.thetas[key] = [float(v) for v in theta]
        self.fitted_on[key] = n
        return GPModel(X, theta, self.cat, warp_cols=warp_cols)
