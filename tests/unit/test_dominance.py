"""ehvi's region cover counts (core/algorithms/dominance.py) against the pairwise comparison."""

from __future__ import annotations

import numpy as np
import pytest

from tuneforge.core.algorithms.dominance import RegionCover


def brute(draws: np.ndarray, region: np.ndarray) -> np.ndarray:
    covers = np.all(draws[:, :, None, :] <= region[None, None, :, :], axis=-1)
    return covers.mean(axis=(1, 2))  # type: ignore[no-any-return]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("quantized", [False, True])
def test_two_objectives_count_exactly_what_the_comparisons_count(
    seed: int, quantized: bool
) -> None:
    rng = np.random.default_rng(seed)
    region = rng.random((300, 2))
    draws = rng.normal(0.5, 0.4, (40, 16, 2))
    if quantized:  # ties among the region's values and between draws and the region
        region, draws = np.round(region * 8) / 8, np.round(draws * 8) / 8
    draws[0, 0, 1] = np.nan  # covers nothing
    got = RegionCover(region).shares(draws)
    np.testing.assert_array_equal(got, brute(draws, region))  # the same floats
    assert 0 < got.max() <= 1


def test_three_objectives_fall_back_to_the_comparisons() -> None:
    rng = np.random.default_rng(9)
    region = rng.random((50, 3))
    draws = rng.random((6, 5, 3))
    np.testing.assert_array_equal(RegionCover(region).shares(draws), brute(draws, region))
