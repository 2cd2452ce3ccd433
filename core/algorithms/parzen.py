"""Multivariate Parzen estimators on the unit cube, the density model of TPE.

A :class:`ParzenEstimator` is a weighted mixture with one kernel per observed
point plus a *prior* kernel. Each kernel is a product over dimensions:

* continuous dimension (floats, log-scale integers): a Gaussian truncated to
  ``[0, 1]``; log scales are already linear in the unit-cube encoding;
* ordinal dimension (linear integers, stepped floats, ``discrete`` values):
  the same truncated Gaussian, integrated over the cell that owns each value,
  so the kernel is a probability mass over the ``n`` admissible values;
* categorical dimension: an Aitchison-Aitken-style kernel, mass ``1 + eps`` on
  the observed category and ``eps`` on every other (normalized), with
  ``eps = prior_weight / (m + 1)`` shrinking as observations accumulate.

Bandwidths follow Optuna 4-5 (also in multivariate mode) and hyperopt: per point
and dimension, the larger gap to its neighbouring observations (the outermost
points use their inner gap), clipped below by the "magic clip" ``1 / min(100,
m + 2)`` for ``m`` observations and above by 1. The Scott-like rule of older
Optuna (``0.2 * m ** (-1 / (k + 4))``, one width for all points) was measured
worse here (6-d Hartmann, 60 trials, 10 seeds: mean best -2.76 against -3.05).
The prior kernel is centred at 0.5 with bandwidth 1 (uniform over categories)
and weight 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from ..space import ParamType, Scale, SearchSpace

CONTINUOUS, ORDINAL, CATEGORICAL = 0, 1, 2

PRIOR_WEIGHT = 1.0
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_TINY = 1e-300


@dataclass(frozen=True)
class Dim:
    """How one parameter's unit-cube coordinate is modelled: kind and number of cells."""

    kind: int
    cells: int = 0


def dims_of(space: SearchSpace) -> tuple[Dim, ...]:
    """One :class:`Dim` per parameter of ``space``, in space order."""
    out = []
    for p in space.parameters:
        n = p.n_choices
        if p.type == ParamType.CATEGORICAL:
            out.append(Dim(CATEGORICAL, len(p.values)))
        elif n is not None and (p.type == ParamType.DISCRETE or p.scale == Scale.LINEAR):
            out.append(Dim(ORDINAL, n))
        else:
            out.append(Dim(CONTINUOUS))
    return tuple(out)


def default_weights(n: int) -> np.ndarray:
    """Optuna's observation weights, oldest first: flat up to 25, then older ones ramp down."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, num=n - 25), np.ones(25)])


class ParzenEstimator:
    """A mixture over the observations ``obs`` (``m x k`` unit-cube points) plus the prior."""

    def __init__(self, obs: np.ndarray, weights: np.ndarray, dims: tuple[Dim, ...]) -> None:
        m = len(obs)
        self.dims = dims
        self._obs = obs
        self._set_weights(weights)
        self.num = np.array([j for j, d in enumerate(dims) if d.kind != CATEGORICAL], dtype=int)
        self.cat = [j for j, d in enumerate(dims) if d.kind == CATEGORICAL]
        # (m + 1, numeric dims): kernel centres and bandwidths, the prior last.
        self.mu = np.vstack([obs[:, self.num], np.full((1, self.num.size), 0.5)])
        gaps, order, ordered = _neighbour_bandwidths(obs[:, self.num])
        # per numeric dimension (a row each): the stable sort order and the sorted values
        self._order, self._sorted = order.T.copy(), ordered.T.copy()
        sig = np.clip(gaps, _min_bandwidth(m), 1.0)
        self.sigma = np.vstack([sig, np.ones((1, self.num.size))])
        self.log_norm = np.log(_mass(self.mu, self.sigma, 0.0, 1.0))
        self._set_cat_probs()

    def __len__(self) -> int:
        """The number of observations (the prior kernel not counted)."""
        return len(self._obs)

    def _set_weights(self, weights: np.ndarray) -> None:
        w = np.append(np.asarray(weights, dtype=float), PRIOR_WEIGHT)
        self.weights = w / w.sum()
        self.log_weights = np.log(np.maximum(self.weights, _TINY))

    def _set_cat_probs(self) -> None:
        """Per categorical dimension, (m + 1, n) kernel probabilities, the prior row uniform."""
        obs, m = self._obs, len(self._obs)
        self.cat_probs = []
        for j in self.cat:
            n = self.dims[j].cells
            probs = np.full((m + 1, n), PRIOR_WEIGHT / (m + 1))
            idx = np.minimum((obs[:, j] * n).astype(int), n - 1)
            probs[np.arange(m), idx] += 1.0
            self.cat_probs.append(probs / probs.sum(axis=1, keepdims=True))

    def extended(self, row: np.ndarray, weights: np.ndarray) -> ParzenEstimator:
        """The estimator of this one's observations and ``row`` (appended last) with
        ``weights`` (one per observation): equal, to the last bit, to
        ``ParzenEstimator(np.vstack([obs, row]), weights, dims)``, but built from this
        one's sorted columns. A new point changes the neighbour bandwidths of at most its
        two neighbours per dimension, so only those kernels are computed again; TPE adds
        each point of a batch to its bad estimator this way (the constant liar). Rebuilt
        whole while the bandwidths' lower clip still moves with ``m`` (under 98 points)."""
        m = len(self._obs)
        obs = np.vstack([self._obs, row[None, :]])
        if _min_bandwidth(m + 1) != _min_bandwidth(m):  # fewer than 98 points
            return ParzenEstimator(obs, weights, self.dims)
        new = object.__new__(ParzenEstimator)
        new.dims, new.num, new.cat, new._obs = self.dims, self.num, self.cat, obs
        new._set_weights(weights)
        k, x = self.num.size, row[self.num]
        new.mu = np.vstack([self.mu[:m], x[None, :], self.mu[m:]])
        new.sigma = np.vstack([self.sigma[:m], np.ones((1, k)), self.sigma[m:]])
        new.log_norm = np.vstack([self.log_norm[:m], np.zeros((1, k)), self.log_norm[m:]])
        new._sorted = np.empty((k, m + 1))
        new._order = np.empty((k, m + 1), dtype=self._order.dtype)
        lower, points, cols, sigmas = _min_bandwidth(m + 1), [], [], []
        for c in range(k):
            old, s, order = self._sorted[c], new._sorted[c], new._order[c]
            pos = int(np.searchsorted(old, x[c], side="right"))  # a stable sort's place
            s[:pos], s[pos], s[pos + 1 :] = old[:pos], x[c], old[pos:]
            order[:pos], order[pos], order[pos + 1 :] = (
                self._order[c, :pos],
                m,
                self._order[c, pos:],
            )
            for i in range(max(pos - 1, 0), min(pos + 2, m + 1)):  # the point and its neighbours
                points.append(order[i])
                cols.append(c)
                sigmas.append(min(max(_gap(s, i), lower), 1.0))
        at = (np.array(points, dtype=int), np.array(cols, dtype=int))
        new.sigma[at] = sigmas
        new.log_norm[at] = np.log(_mass(new.mu[at], new.sigma[at], 0.0, 1.0))
        new._set_cat_probs()
        return new

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` points drawn from the mixture (ordinal and categorical ones at cell centres)."""
        comp = rng.choice(len(self.weights), size=size, p=self.weights)
        out = np.empty((size, len(self.dims)))
        if self.num.size:
            mu, sigma = self.mu[comp], self.sigma[comp]
            lo, hi = ndtr(-mu / sigma), ndtr((1.0 - mu) / sigma)
            p = lo + rng.random(mu.shape) * (hi - lo)
            x = np.clip(mu + sigma * ndtri(np.clip(p, 1e-300, 1 - 1e-16)), 0.0, 1.0)
            out[:, self.num] = x
        for j, probs in zip(self.cat, self.cat_probs, strict=True):
            cum = np.cumsum(probs[comp], axis=1)
            idx = (cum < rng.random((size, 1)) * cum[:, -1:]).sum(axis=1)
            out[:, j] = (np.minimum(idx, self.dims[j].cells - 1) + 0.5) / self.dims[j].cells
        for j, d in enumerate(self.dims):
            if d.kind == ORDINAL:  # the centre of the cell that owns the value
                out[:, j] = (np.minimum(np.floor(out[:, j] * d.cells), d.cells - 1) + 0.5) / d.cells
        return out

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density (mass for ordinal/categorical coordinates) of each row of ``x``."""
        total = np.broadcast_to(self.log_weights, (len(x), len(self.weights))).copy()
        for col, j in enumerate(self.num):
            mu, sigma, log_norm = self.mu[:, col], self.sigma[:, col], self.log_norm[:, col]
            d = self.dims[j]
            xj = x[:, j : j + 1]
            if d.kind == ORDINAL:
                cell = np.minimum(np.floor(xj * d.cells), d.cells - 1)
                mass = _mass(mu, sigma, cell / d.cells, (cell + 1) / d.cells)
                total += np.log(np.maximum(mass, _TINY)) - log_norm
            else:
                z = (xj - mu) / sigma
                total += -0.5 * z * z - np.log(sigma) - _LOG_SQRT_2PI - log_norm
        for j, probs in zip(self.cat, self.cat_probs, strict=True):
            idx = np.minimum((x[:, j] * self.dims[j].cells).astype(int), self.dims[j].cells - 1)
            total += np.log(probs[:, idx].T)
        top = total.max(axis=1)
        out: np.ndarray = top + np.log(np.exp(total - top[:, None]).sum(axis=1))
        return out


def _min_bandwidth(m: int) -> float:
    """The lower clip of the bandwidths of ``m`` observations (the "magic clip")."""
    return 1.0 / min(100.0, m + 2.0)


def _neighbour_bandwidths(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point and dimension: the larger gap to its neighbours (hyperopt's rule); also
    each dimension's stable sort order and sorted values."""
    m = len(mu)
    order = np.argsort(mu, axis=0, kind="stable")
    s = np.take_along_axis(mu, order, axis=0)
    if m == 0:
        return np.empty_like(mu), order, s
    padded = np.vstack([np.zeros((1, mu.shape[1])), s, np.ones((1, mu.shape[1]))])
    gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if m >= 2:  # no endpoints: the outermost points use their inner neighbour
        gaps[0] = padded[2] - padded[1]
        gaps[-1] = padded[-2] - padded[-3]
    out = np.empty_like(mu)
    np.put_along_axis(out, order, gaps, axis=0)
    return out, order, s


def _gap(s: np.ndarray, i: int) -> float:
    """:func:`_neighbour_bandwidths`' gap of the ``i``-th of the sorted values ``s`` (at
    least two of them)."""
    n = len(s)
    if i == 0:
        return float(s[1] - s[0])
    if i == n - 1:
        return float(s[n - 1] - s[n - 2])
    return float(max(s[i] - s[i - 1], s[i + 1] - s[i]))


def _mass(
    mu: np.ndarray, sigma: np.ndarray, a: float | np.ndarray, b: float | np.ndarray
) -> np.ndarray:
    """P(a <= N(mu, sigma^2) <= b), computed on the side of the tail that keeps precision."""
    za, zb = (a - mu) / sigma, (b - mu) / sigma
    upper = za > 0  # both above the mean: mirror, since 1 - Phi would lose the digits there
    lo, hi = np.where(upper, -zb, za), np.where(upper, -za, zb)
    out: np.ndarray = ndtr(hi) - ndtr(lo)
    return out
