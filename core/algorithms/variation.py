"""Variation operators the evolutionary algorithms share (``genetic`` and ``nsga2``).

Everything works on the unit-cube coordinates of :meth:`SearchSpace.encode`, in
which a log-scaled parameter is already uniform in its logarithm and an integer
or a discrete value owns a cell of equal width; so one operator per kind of
parameter fits each parameter's type and scale:

- **numeric** parameters (floats on either scale, integers, discrete values, which are
  ordered): simulated binary crossover (SBX, Deb and Agrawal 1995) with
  distribution index ``eta_c``, then polynomial mutation (Deb 2001) with index
  ``eta_m``; :meth:`SearchSpace.decode` snaps the result to an admissible value;
- **categorical** parameters: uniform crossover (the child takes either parent's
  value), mutation redraws another value uniformly.

Conditional parameters: a child's activity follows its own values (decode walks the
condition tree), so a parameter that is inactive in a parent contributes nothing;
when it is inactive in both parents but active in the child it is drawn uniformly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..options import OptionsModel
from ..space import ParamType, SearchSpace

#: Redraws of a child that lands next to an infeasible trial before it is taken anyway.
INFEASIBLE_REDRAWS = 8
#: A child closer than this (largest coordinate difference) to an infeasible trial is redrawn.
INFEASIBLE_RADIUS = 0.05


class VariationOptions(OptionsModel):
    """The options every evolutionary algorithm shares."""

    population_size: int = Field(
        10, ge=2, le=10_000, description="Finished trials kept as the parent population."
    )
    n_startup: int | None = Field(
        None, ge=1, le=1_000_000, description="Sobol' points before breeding (null: population)."
    )
    crossover_prob: float = Field(0.9, ge=0, le=1, description="Chance a child is a crossover.")
    mutation_prob: float | None = Field(
        None, gt=0, le=1, description="Per-parameter mutation chance (null: 1 / parameters)."
    )
    eta_c: float = Field(15.0, gt=0, le=1_000, description="SBX distribution index.")
    eta_m: float = Field(20.0, gt=0, le=1_000, description="Polynomial mutation index.")


@dataclass(frozen=True)
class Breeder:
    """Makes children of unit-cube parent rows (``nan`` where a parameter is inactive)."""

    space: SearchSpace
    crossover_prob: float
    mutation_prob: float
    eta_c: float
    eta_m: float

    @classmethod
    def from_options(cls, space: SearchSpace, options: dict[str, object]) -> Breeder:
        rate = options.get("mutation_prob")
        return cls(
            space,
            float(options["crossover_prob"]),  # type: ignore[arg-type]
            float(rate) if rate is not None else 1.0 / max(len(space), 1),  # type: ignore[arg-type]
            float(options["eta_c"]),  # type: ignore[arg-type]
            float(options["eta_m"]),  # type: ignore[arg-type]
        )

    @property
    def categorical(self) -> np.ndarray:
        return np.array([p.type == ParamType.CATEGORICAL for p in self.space.parameters])

    def child(self, rng: np.random.Generator, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """One child of parents ``a`` and ``b``: crossover (with ``crossover_prob``), mutation,
        and uniform draws for coordinates neither parent had; every coordinate is set."""
        u = (
            crossover(rng, a, b, self.categorical, self.eta_c)
            if rng.random() < self.crossover_prob
            else a.copy()
        )
        u = mutate(rng, u, self.categorical, self.mutation_prob, self.eta_m)
        missing = np.isnan(u)
        u[missing] = rng.random(int(missing.sum()))
        return u


def crossover(
    rng: np.random.Generator, a: np.ndarray, b: np.ndarray, categorical: np.ndarray, eta: float
) -> np.ndarray:
    """SBX on numeric coordinates (each with chance 1/2, as in Deb's NSGA-II), uniform choice
    on categorical ones; where only one parent has a value the child takes it."""
    out = np.where(rng.random(len(a)) < 0.5, a, b)
    out = np.where(np.isnan(out), np.where(np.isnan(a), b, a), out)
    both = ~np.isnan(a) & ~np.isnan(b) & ~categorical & (rng.random(len(a)) < 0.5)
    for j in np.flatnonzero(both):
        out[j] = _sbx(rng, float(a[j]), float(b[j]), eta)
    return out


def _sbx(rng: np.random.Generator, x1: float, x2: float, eta: float) -> float:
    """One bounded SBX offspring of ``x1`` and ``x2`` in ``[0, 1]``."""
    lo, hi = min(x1, x2), max(x1, x2)
    if hi - lo < 1e-14:
        return x1
    r = rng.random()
    children = []
    for beta_edge in (1.0 + 2.0 * lo / (hi - lo), 1.0 + 2.0 * (1.0 - hi) / (hi - lo)):
        alpha = 2.0 - beta_edge ** -(eta + 1.0)
        if r <= 1.0 / alpha:
            betaq = (r * alpha) ** (1.0 / (eta + 1.0))
        else:
            betaq = (1.0 / (2.0 - r * alpha)) ** (1.0 / (eta + 1.0))
        children.append(betaq)
    c1 = 0.5 * ((lo + hi) - children[0] * (hi - lo))
    c2 = 0.5 * ((lo + hi) + children[1] * (hi - lo))
    return float(np.clip(c1 if rng.random() < 0.5 else c2, 0.0, 1.0))


def mutate(
    rng: np.random.Generator, u: np.ndarray, categorical: np.ndarray, rate: float, eta: float
) -> np.ndarray:
    """Polynomial mutation of numeric coordinates and a uniform redraw of categorical ones,
    each coordinate with chance ``rate``; ``nan`` coordinates are left alone."""
    out = u.copy()
    hit = (rng.random(len(u)) < rate) & ~np.isnan(u)
    for j in np.flatnonzero(hit):
        if categorical[j]:
            out[j] = rng.random()
            continue
        x, r = float(u[j]), rng.random()
        if r < 0.5:
            delta = (2.0 * r + (1.0 - 2.0 * r) * (1.0 - x) ** (eta + 1.0)) ** (
                1.0 / (eta + 1.0)
            ) - 1.0
        else:
            delta = 1.0 - (2.0 * (1.0 - r) + 2.0 * (r - 0.5) * x ** (eta + 1.0)) ** (
                1.0 / (eta + 1.0)
            )
        out[j] = float(np.clip(x + delta, 0.0, 1.0))
    return out


def tournament(rng: np.random.Generator, fitness_rank: np.ndarray, size: int) -> int:
    """Index of the winner of a tournament of ``size`` members drawn without replacement
    (smaller ``fitness_rank`` wins; ties go to the one drawn first)."""
    n = len(fitness_rank)
    entrants = rng.choice(n, size=min(size, n), replace=False)
    return int(entrants[np.argmin(fitness_rank[entrants])])


def near_infeasible(space: SearchSpace, u: np.ndarray, infeasible: np.ndarray) -> bool:
    """Whether the child ``u`` lies within :data:`INFEASIBLE_RADIUS` of an infeasible trial
    (coordinates inactive in either are ignored; a different category is far)."""
    if not len(infeasible):
        return False
    row = space.encode(space.decode(u))
    diff = np.abs(infeasible - row)
    diff = np.where(np.isnan(diff), 0.0, diff)
    return bool((diff.max(axis=1) < INFEASIBLE_RADIUS).any())


def unit_rows(space: SearchSpace, params: Sequence[dict[str, object]]) -> np.ndarray:
    """Unit-cube rows of parameter sets known to fit the space."""
    return np.array([space.encode(p) for p in params], dtype=float).reshape(-1, len(space))
