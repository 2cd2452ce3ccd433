"""Acquisition for :mod:`.gp`: log expected improvement plus log probability of feasibility.

Everything is in log space so that products become sums and nothing underflows:
``log EI`` follows Ament et al. (2023), "Unexpected Improvements to Expected
Improvement", with the asymptotic branches that keep it finite and smooth far
below the incumbent. Each outcome constraint (and the model of infeasible
trials) adds ``log P(g(x) <= t)``; without a feasible incumbent the acquisition
is that probability alone.

:func:`maximize_local` polishes several starting points at once with a single
L-BFGS-B run on their concatenation: the objective is a sum of independent
terms (block-diagonal Hessian), so one vectorized run replaces a Python loop of
runs; they share the line search, which is fine for polishing, and a start
that got worse is returned unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy.stats import qmc

from .base import Params
from .gp_model import Posterior, SpaceEncoder
from .gp_rows import GrowingRows
from .sampling import enumerate_points
from .sobol import _RNG_KEYWORD

#: A pick closer than this (Euclidean, unit cube) to a used point counts as a duplicate.
DUPLICATE_RADIUS = 1e-3
#: A pick must be at least this far from in-flight trials and the other points of its batch:
#: a point that close would be evaluated before the nearby result could inform it.
PENDING_RADIUS = 0.02
#: Starting points of the local acquisition optimizer, and its iteration budget.
N_LOCAL_STARTS = 5
LOCAL_MAXITER = 60
#: In spaces of at most LOCAL_MAX_DIM parameters, once LOCAL_FROM_TRIALS trials are in, the
#: local polish also starts beside the best LOCAL_ANCHORS trials (Pool.anchors); measured
#: on 2-D BBOB problems, docs/algorithms.md.
LOCAL_MAX_DIM = 5
LOCAL_FROM_TRIALS = 20
LOCAL_ANCHORS = 5
#: Best candidates that then climb over their discrete parameters, and the climb's length.
N_DISCRETE_STARTS = 3
DISCRETE_ROUNDS = 4

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_SQRT_PI_2 = 0.5 * math.log(math.pi / 2.0)
_ASYMPTOTIC_Z = -1.0 / math.sqrt(np.finfo(float).eps)


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x < 0``, accurate near 0 and far below."""
    x = np.minimum(x, -1e-300)
    near = x > -math.log(2.0)
    out = np.empty_like(x)
    out[near] = np.log(-np.expm1(x[near]))
    out[~near] = np.log1p(-np.exp(x[~near]))
    return out


def log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(phi(z) + z Phi(z))`` and its derivative ``Phi(z) / h(z)``."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    upper = z > -1.0
    zu = z[upper]
    out[upper] = np.log(np.exp(-0.5 * zu * zu - _LOG_SQRT_2PI) + zu * special.ndtr(zu))
    mid = ~upper & (z > _ASYMPTOTIC_Z)
    zm = z[mid]
    inner = np.log(special.erfcx(-zm / math.sqrt(2.0)) * np.abs(zm)) + _LOG_SQRT_PI_2
    out[mid] = -0.5 * zm * zm - _LOG_SQRT_2PI + _log1mexp(inner)
    low = ~upper & ~mid
    zl = z[low]
    out[low] = -0.5 * zl * zl - _LOG_SQRT_2PI - 2.0 * np.log(np.abs(zl))
    slope = np.exp(special.log_ndtr(z) - out)
    slope[low] = -zl  # the limit of Phi(z) / h(z); the difference of logs has lost its digits
    return out, slope


def log_ei(
    mean: np.ndarray, var: np.ndarray, best: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log E[max(best - f, 0)]`` for ``f ~ N(mean, var)``, with derivatives by mean and var."""
    sd = np.sqrt(var)
    z = (best - mean) / sd
    value, slope = log_h(z)
    return np.log(sd) + value, -slope / sd, (1.0 - slope * z) / (2.0 * var)


def log_pof(
    mean: np.ndarray, var: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log P(g <= threshold)`` for ``g ~ N(mean, var)``, with derivatives by mean and var."""
    sd = np.sqrt(var)
    w = (threshold - mean) / sd
    value = special.log_ndtr(w)
    ratio = np.exp(-0.5 * w * w - _LOG_SQRT_2PI - value)  # phi(w) / Phi(w)
    return value, -ratio / sd, -ratio * w / (2.0 * var)


@dataclass(frozen=True)
class Constraint:
    """A modelled outcome ``g`` that must satisfy ``g <= threshold``."""

    posterior: Posterior
    threshold: float


@dataclass(frozen=True)
class Acquisition:
    """``log EI(x) + sum log P(g_i(x) <= t_i)``; only the feasibility terms when ``best`` is None."""

    objective: Posterior
    best: float | None
    constraints: Sequence[Constraint] = ()
    #: The objective's moments at the candidate pool, kept across a batch's points.
    pool: GrowingRows | None = None

    def __call__(self, F: np.ndarray) -> np.ndarray:
        total = np.zeros(len(F))
        if self.best is not None:
            if self.pool is not None and self.pool.holds(F):
                mean, var = self.pool.moments(self.objective)
            else:
                mean, var = self.objective.predict(F)
            total += log_ei(mean, var, self.best)[0]
        for c in self.constraints:
            mean, var = c.posterior.predict(F)
            total += log_pof(mean, var, c.threshold)[0]
        return np.where(np.isnan(total), -np.inf, total)

    def value_and_grad(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total = np.zeros(len(F))
        grad = np.zeros_like(F)
        terms: list[tuple[Posterior, float, bool]] = [
            (c.posterior, c.threshold, False) for c in self.constraints
        ]
        if self.best is not None:
            terms.append((self.objective, self.best, True))
        for posterior, level, is_ei in terms:
            mean, var, dmean, dvar = posterior.predict_grad(F)
            value, by_mean, by_var = (log_ei if is_ei else log_pof)(mean, var, level)
            total += value
            grad += by_mean[:, None] * dmean + by_var[:, None] * dvar
        return total, grad


def maximize_local(
    acquisition: Acquisition,
    starts: np.ndarray,
    free: np.ndarray,
    maxiter: int = 50,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Polish ``starts`` (feature rows) over their ``free`` columns within ``[0, 1]`` (or
    within ``box``, lower and upper corners, when given).

    Columns that are not free keep their value (their bounds are pinned). Returns
    the improved rows and their acquisition values; a start that got worse (or
    non-finite) is returned unchanged.
    """
    k, d = starts.shape
    if k == 0 or not free.any():
        return starts, acquisition(starts)
    lo, hi = box if box is not None else (0.0, 1.0)
    if box is not None:
        starts = np.where(free, np.clip(starts, lo, hi), starts)
    lower = np.where(free, lo, starts).ravel()
    upper = np.where(free, hi, starts).ravel()

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        values, grads = acquisition.value_and_grad(x.reshape(k, d))
        grads = np.where(free, grads, 0.0)
        bad = ~np.isfinite(values) | ~np.all(np.isfinite(grads), axis=1)
        values = np.where(bad, -1e10, values)
        grads[bad] = 0.0
        return -float(values.sum()), -grads.ravel()

    res = optimize.minimize(
        objective,
        starts.ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lower, upper, strict=True)),
        options={"maxiter": maxiter},
    )
    polished = np.clip(res.x.reshape(k, d), lower.reshape(k, d), upper.reshape(k, d))
    before, after = acquisition(starts), acquisition(polished)
    keep = ~(after > before)
    polished[keep] = starts[keep]
    return polished, np.where(keep, before, after)


@dataclass(frozen=True)
class Pool:
    """Candidate unit-cube points ``U`` with their features ``F`` and activity ``A``."""

    U: np.ndarray
    F: np.ndarray
    A: np.ndarray
    #: True when the pool is every point of a small finite space (nothing to polish).
    enumerated: bool
    #: Unit-cube rows of the best trials: extra starting points of the local polish.
    anchors: np.ndarray | None = None
    #: Lower and upper unit-cube corners of a trust region (gp_trust), or None.
    box: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(
        cls,
        encoder: SpaceEncoder,
        near: np.ndarray,
        size: int,
        rng: np.random.Generator,
        perturbed_share: float = 0.25,
        anchors: np.ndarray | None = None,
        box: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Pool:
        """Every point of a space of at most ``size`` points, else scrambled Sobol' points plus
        Gaussian perturbations (scale 0.02 or 0.1) of the rows of ``near`` (the best trials).

        ``anchors`` (unit-cube rows of the best trials, or None) are kept as extra starting
        points of the gradient polish: the precision an ill-conditioned basin needs next
        to the best trials, which the best pool candidates (a Sobol' grid, perturbations at
        0.02 and 0.1) lack. With ``box`` every candidate lies in that box."""
        points = enumerate_points(encoder.space, limit=size)
        if points is not None:
            U = np.array([encoder.from_params(p)[0] for p in points]).reshape(-1, encoder.d)
            return cls(U, *encoder.features(U), enumerated=True)
        d = encoder.d
        n_near = int(size * perturbed_share) if len(near) else 0
        n_sobol = size - n_near
        engine = qmc.Sobol(d, scramble=True, **{_RNG_KEYWORD: rng})
        U = engine.random_base2(max(math.ceil(math.log2(n_sobol)), 0))[:n_sobol]
        if n_near:
            base = near[np.arange(n_near) % len(near)]
            scale = np.where(np.arange(n_near) % 2 == 0, 0.02, 0.1)[:, None]
            moved = np.clip(base + scale * rng.standard_normal((n_near, d)), 0.0, 1.0)
            redraw = (rng.random((n_near, d)) < 1.0 / max(d, 2)) & encoder.cat
            moved = np.where(redraw, rng.random((n_near, d)), moved)
            U = np.vstack([U, moved])
        if box is not None:
            lo, hi = box
            n_sobol = len(U) - n_near
            U[:n_sobol] = lo + U[:n_sobol] * (hi - lo)
            U = np.clip(U, lo, hi)
            anchors = None if anchors is None else np.clip(anchors, lo, hi)
        return cls(U, *encoder.features(U), enumerated=False, anchors=anchors, box=box)


class CandidateSearch:
    """Maximizes an acquisition over a candidate pool and picks the best point not yet used.

    The pool is scored; unless it is a whole finite space, the best
    :data:`N_LOCAL_STARTS` candidates are polished by :func:`maximize_local` on their
    relaxable columns (then snapped to admissible values), and the best
    :data:`N_DISCRETE_STARTS` points then climb greedily over their discrete columns
    (:meth:`_hill_climb`), every point on the way scored too. A point is used when a
    trial or an earlier pick has the same feature row (the same parameter set: the
    encoding is one-to-one), or, if it has an active continuous parameter, lies
    within :data:`DUPLICATE_RADIUS` of one, or within :data:`PENDING_RADIUS` of an
    in-flight trial or an earlier pick of the same call.
    """

    def __init__(
        self, encoder: SpaceEncoder, taken_F: np.ndarray, pending_F: np.ndarray | None = None
    ) -> None:
        self.space, self.encoder = encoder.space, encoder
        self.taken = {_identity(f) for f in taken_F}
        self.taken_F = [taken_F]
        self.pending_F = [np.empty((0, encoder.d)) if pending_F is None else pending_F]

    def pick(
        self, acq: Acquisition, pool: Pool, rng: np.random.Generator
    ) -> tuple[Params, np.ndarray]:
        U, scores = self._candidates(acq, pool, rng)
        used_F, pending_F = np.vstack(self.taken_F), np.vstack(self.pending_F)
        for i in np.argsort(-scores, kind="stable"):
            params = self.space.decode(U[i])
            _, f, active = self.encoder.from_params(params)
            if _identity(f) in self.taken:
                continue
            if (active & self.encoder.continuous).any() and (
                self._near(used_F, f, DUPLICATE_RADIUS) or self._near(pending_F, f, PENDING_RADIUS)
            ):
                continue
            return self._take(params, f)
        return self._take(*self._fallback(acq, U[int(np.argmax(scores))], rng))

    def _near(self, used_F: np.ndarray, f: np.ndarray, radius: float) -> bool:
        """Whether ``f`` is within ``radius`` of a row of ``used_F`` (a category apart is far)."""
        if not len(used_F):
            return False
        diff = np.abs(used_F - f)
        sq = np.where(self.encoder.cat, diff > 1e-9, diff * diff).sum(axis=1)
        return bool(sq.min() < radius**2)

    def _take(self, params: Params, f: np.ndarray) -> tuple[Params, np.ndarray]:
        self.taken.add(_identity(f))
        self.taken_F.append(f[None, :])
        self.pending_F.append(f[None, :])
        return params, f

    def _candidates(
        self, acq: Acquisition, pool: Pool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = acq(pool.F)
        if pool.enumerated:
            return pool.U, scores
        Us, Ss = [pool.U], [scores]
        top = np.argsort(-scores, kind="stable")[:N_LOCAL_STARTS]
        U_top, F_top, A_top = pool.U[top], pool.F[top], pool.A[top]
        if pool.anchors is not None:  # polish from (just beside) the best trials too
            jitter = 1e-3 * rng.standard_normal(pool.anchors.shape)
            lo, hi = pool.box if pool.box is not None else (0.0, 1.0)
            U_a = np.clip(pool.anchors + jitter, lo, hi)
            F_a, A_a = self.encoder.features(U_a)
            U_top, F_top = np.vstack([U_top, U_a]), np.vstack([F_top, F_a])
            A_top = np.vstack([A_top, A_a])
        free = A_top & self.encoder.relaxable
        if free.any():
            F_opt, _ = maximize_local(acq, F_top, free, LOCAL_MAXITER, pool.box)
            U_new = np.where(free, F_opt, U_top)
            Us.append(U_new)
            Ss.append(acq(self.encoder.features(U_new)[0]))
        U_all, S_all = np.vstack(Us), np.concatenate(Ss)
        for i in np.argsort(-S_all, kind="stable")[:N_DISCRETE_STARTS]:
            U_hc, S_hc = self._hill_climb(acq, U_all[i], S_all[i], rng)
            Us.append(U_hc)
            Ss.append(S_hc)
        return np.vstack(Us), np.concatenate(Ss)

    def _hill_climb(
        self, acq: Acquisition, u: np.ndarray, score: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Greedy moves of one discrete parameter at a time while the acquisition improves;
        returns every point scored on the way."""
        seen_U, seen_S = [], []
        for _ in range(DISCRETE_ROUNDS):
            U_nb = self.encoder.neighbours(u, rng)
            if not len(U_nb):
                break
            S_nb = acq(self.encoder.features(U_nb)[0])
            seen_U.append(U_nb)
            seen_S.append(S_nb)
            j = int(np.argmax(S_nb))
            if not S_nb[j] > score:
                break
            u, score = U_nb[j], float(S_nb[j])
        if not seen_U:
            return np.empty((0, len(u))), np.empty(0)
        return np.vstack(seen_U), np.concatenate(seen_S)

    def _fallback(
        self, acq: Acquisition, u_best: np.ndarray, rng: np.random.Generator
    ) -> tuple[Params, np.ndarray]:
        """Every candidate is used: the best unused point of a small space, else a random one."""
        points = enumerate_points(self.space)
        if points is not None:
            rows = [self.encoder.from_params(p)[1] for p in points]
            unused = [i for i, f in enumerate(rows) if _identity(f) not in self.taken]
            if unused:
                best = unused[int(np.argmax(acq(np.array([rows[i] for i in unused]))))]
                return points[best], rows[best]
        else:
            for _ in range(100):
                p = self.space.sample(rng)
                f = self.encoder.from_params(p)[1]
                if _identity(f) not in self.taken:
                    return p, f
        p = self.space.decode(u_best)  # nothing unused left: repeat the best point
        return p, self.encoder.from_params(p)[1]


def _identity(f: np.ndarray) -> bytes:
    return (f + 0.0).tobytes()  # + 0.0 turns -0.0 into 0.0
