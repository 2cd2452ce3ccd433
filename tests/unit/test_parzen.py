"""ParzenEstimator.extended: the constant liar's incremental bad estimator."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.core.algorithms.parzen import (
    CATEGORICAL,
    CONTINUOUS,
    ORDINAL,
    Dim,
    ParzenEstimator,
    default_weights,
)

DIMS = (Dim(CONTINUOUS), Dim(ORDINAL, 5), Dim(CATEGORICAL, 3), Dim(CONTINUOUS), Dim(ORDINAL, 2))


def _points(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-cube points with the ties real histories have: cell centres of the ordinal and
    categorical dimensions, repeated continuous values, and the cube's edges."""
    x = rng.random((n, len(DIMS)))
    for j, d in enumerate(DIMS):
        if d.kind != CONTINUOUS:
            x[:, j] = (np.floor(x[:, j] * d.cells) + 0.5) / d.cells
    if n > 4:
        x[rng.integers(0, n, n // 4), 0] = x[0, 0]  # repeats
        x[rng.integers(0, n, 2), 3] = rng.choice([0.0, 1.0], 2)  # edges
    return x


def _same(a: ParzenEstimator, b: ParzenEstimator) -> None:
    for name in ("weights", "log_weights", "mu", "sigma", "log_norm"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert len(a.cat_probs) == len(b.cat_probs)
    for p, q in zip(a.cat_probs, b.cat_probs, strict=True):
        assert np.array_equal(p, q)


@pytest.mark.parametrize("m", [0, 1, 2, 5, 97, 98, 99, 150, 1000])
def test_extended_equals_the_estimator_built_whole(m: int) -> None:
    rng = np.random.default_rng(m)
    obs = _points(rng, m)
    extended = ParzenEstimator(obs, default_weights(m), DIMS)
    for row in _points(rng, 12):  # new minima, maxima, ties and interior points in turn
        obs = np.vstack([obs, row])
        extended = extended.extended(row, default_weights(len(obs)))
        whole = ParzenEstimator(obs, default_weights(len(obs)), DIMS)
        _same(extended, whole)
        probe = _points(rng, 24)
        assert np.array_equal(extended.log_pdf(probe), whole.log_pdf(probe))


def test_extended_at_the_ends_of_every_dimension() -> None:
    rng = np.random.default_rng(7)
    obs = _points(rng, 200)
    estimator = ParzenEstimator(obs, default_weights(200), DIMS)
    for row in (np.zeros(len(DIMS)), np.ones(len(DIMS)), obs[3].copy(), obs[3].copy()):
        obs = np.vstack([obs, row])
        estimator = estimator.extended(row, default_weights(len(obs)))
        _same(estimator, ParzenEstimator(obs, default_weights(len(obs)), DIMS))
