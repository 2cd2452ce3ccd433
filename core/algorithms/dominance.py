"""The share of a set of region points that posterior draws dominate, for :mod:`.ehvi`.

EHVI's Monte Carlo estimate asks, for every candidate and every draw of its
objectives, how many points of the region (the part of the objective box the front
does not dominate yet) the draw weakly dominates. Compared pair by pair that is
``candidates x draws x region`` comparisons per point of a batch, most of an
``ehvi`` call. With two objectives it is a 2-D dominance count: after ranking the
region's points along each objective, the number of points at or above a draw is
one look-up in a table of suffix counts (:class:`RegionCover`), built once per
region. The counts are the same integers the comparisons add up, so the shares are
the same floats.
"""

from __future__ import annotations

import numpy as np


class RegionCover:
    """For draws of ``m`` objectives (minimized), the share of ``region``'s points each
    candidate's draws weakly dominate, averaged over its draws."""

    def __init__(self, region: np.ndarray) -> None:
        self.region = region
        n = len(region)
        self._table: np.ndarray | None = None
        if region.ndim == 2 and region.shape[1] == 2 and n:
            self._cols = [np.sort(region[:, k]) for k in range(2)]
            # a point's rank along an objective: how many values lie strictly below its own
            rank = [np.searchsorted(c, region[:, k], "left") for k, c in enumerate(self._cols)]
            grid = np.zeros((n + 1, n + 1), dtype=np.int32)
            np.add.at(grid, (rank[0], rank[1]), 1)
            # table[i, j]: the points whose ranks are at least i and at least j
            self._table = grid[::-1, ::-1].cumsum(axis=0).cumsum(axis=1)[::-1, ::-1]

    def shares(self, draws: np.ndarray) -> np.ndarray:
        """``draws`` of shape ``(candidates, samples, m)``: per candidate, the mean over its
        samples and the region's points of ``all(draw <= point)``."""
        n = len(self.region)
        if self._table is None:
            covers = np.all(draws[:, :, None, :] <= self.region[None, None, :, :], axis=-1)
            return covers.mean(axis=(1, 2))  # type: ignore[no-any-return]
        # a point is at or above a draw along an objective exactly when its rank is at
        # least the number of the region's values strictly below the draw
        i = np.searchsorted(self._cols[0], draws[..., 0], "left")
        j = np.searchsorted(self._cols[1], draws[..., 1], "left")
        counts = self._table[i, j].sum(axis=1, dtype=np.int64)
        return counts / (draws.shape[1] * n)  # type: ignore[no-any-return]
