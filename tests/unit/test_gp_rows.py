"""The per-batch reuse in gp: pool moments kept across fantasies, objective columns
transformed once per call."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.core.algorithms.acquisition import Acquisition
from tuneforge.core.algorithms.gp_model import GPModel, Posterior
from tuneforge.core.algorithms.gp_rows import GrowingRows
from tuneforge.core.algorithms.gp_targets import ObjectiveColumns, compress_outliers, power_warp


def _model(rng: np.random.Generator, n: int = 40, d: int = 3) -> tuple[GPModel, np.ndarray]:
    X = rng.random((n, d))
    cat = np.zeros(d, dtype=bool)
    theta = np.r_[np.log(np.full(d, 0.3)), 0.0, np.log(1e-4)]
    y = np.sin(6 * X).sum(axis=1)
    return GPModel(X, theta, cat), (y - y.mean()) / y.std()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pool_moments_follow_a_growing_model_as_a_fresh_prediction_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model, y = _model(rng)
    alpha = Posterior.fit(model, y).alpha
    pool = rng.random((300, 3))
    rows = GrowingRows(pool)
    for _ in range(6):
        posterior = Posterior(model, alpha)
        mean, var = rows.moments(posterior)
        want_mean, want_var = posterior.predict(pool)
        np.testing.assert_allclose(mean, want_mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(var, want_var, rtol=1e-9, atol=1e-12)
        # each fantasy at the pool's most uncertain point: its variance there collapses
        widest = int(np.argmax(var))
        model = model.extend(pool[widest], 1e-6)
        after = rows.moments(Posterior(model, alpha))[1]
        assert after[widest] < var[widest] * 0.01


def test_a_model_of_another_lineage_is_scored_from_scratch() -> None:
    rng = np.random.default_rng(5)
    model, y = _model(rng)
    pool = rng.random((100, 3))
    rows = GrowingRows(pool)
    rows.moments(Posterior(model.extend(pool[0], 1e-6), Posterior.fit(model, y).alpha))
    other, y2 = _model(np.random.default_rng(6))  # different inputs, same size
    posterior = Posterior.fit(other, y2)
    mean, var = rows.moments(posterior)
    want_mean, want_var = posterior.predict(pool)
    np.testing.assert_allclose(mean, want_mean, atol=1e-12)
    np.testing.assert_allclose(var, want_var, rtol=1e-9, atol=1e-12)


def test_the_acquisition_uses_the_kept_moments_only_for_the_pool_itself() -> None:
    rng = np.random.default_rng(3)
    model, y = _model(rng)
    posterior = Posterior.fit(model, y)
    pool = rng.random((50, 3))
    rows = GrowingRows(pool)
    plain, kept = Acquisition(posterior, 0.0), Acquisition(posterior, 0.0, (), rows)
    np.testing.assert_allclose(kept(pool), plain(pool), rtol=1e-9)
    assert rows.holds(pool) and not rows.holds(pool.copy())
    other = rng.random((7, 3))
    np.testing.assert_array_equal(kept(other), plain(other))


def test_objective_columns_scalarize_per_weight_and_transform_once() -> None:
    rng = np.random.default_rng(0)
    Y = rng.lognormal(size=(30, 2))
    Y[3] = np.nan
    for warp in (False, True):
        columns = ObjectiveColumns.of(Y, warp)
        assert not columns.single
        transform = power_warp if warp else compress_outliers
        ok = np.isfinite(Y).all(axis=1)
        cols = np.column_stack([transform(Y[ok, i]) for i in range(2)])
        w = np.array([0.2, 0.8])
        norm = (cols - cols.min(axis=0)) / (cols.max(axis=0) - cols.min(axis=0))
        want = (norm * w).max(axis=1) + 0.05 * (norm * w).sum(axis=1)
        got = columns.targets(w)
        assert np.isnan(got[3])
        np.testing.assert_allclose(got[ok], want)
        assert not np.allclose(got[ok], columns.targets(np.array([0.8, 0.2]))[ok])
    one = ObjectiveColumns.of(Y[:, :1])
    assert one.single
    np.testing.assert_array_equal(one.targets(np.ones(1)), one.targets(np.array([0.3])))
    assert np.isnan(ObjectiveColumns.of(np.full((4, 1), np.nan)).targets(np.ones(1))).all()


def test_the_mean_alone_is_the_mean_of_a_prediction() -> None:
    rng = np.random.default_rng(4)
    model, y = _model(rng)
    posterior = Posterior.fit(model, y)
    grown = Posterior(model.extend(rng.random(3), 1e-6), posterior.alpha)
    F = rng.random((20, 3))
    for p in (posterior, grown):
        np.testing.assert_allclose(p.mean_at(F), p.predict(F)[0], rtol=0, atol=1e-12)
