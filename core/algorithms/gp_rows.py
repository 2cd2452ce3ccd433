"""Posterior moments at fixed rows (the candidate pool) under a GP that grows by fantasies.

A batch of ``count`` points from :mod:`.gp` scores the same candidate pool once per
point, each time under the model of the previous point plus one fantasy observation
(:meth:`.GPModel.extend`). Scored from scratch, each pool costs a kernel against every
input and a triangular solve, ``O(pool · n^2)``: about 30 ms per point at 300
inputs and 1,024 candidates, the bulk of a batch's fit. The solve's rows for the inputs
the models share do not change when one is added (the Cholesky factor only gains a
row), so :class:`GrowingRows` keeps ``V = L^-1 K(X, pool)`` and its column sums of
squares and adds one row per fantasy in ``O(pool · n)``.
"""

from __future__ import annotations

import numpy as np

from .gp_model import VAR_FLOOR, GPModel, Posterior


class GrowingRows:
    """The objective's latent mean and variance at the rows ``F`` for a lineage of models,
    each :meth:`.GPModel.extend` of the one before (checked: a model of another lineage
    gets its moments computed from scratch)."""

    def __init__(self, F: np.ndarray) -> None:
        self.F = F
        self._model: GPModel | None = None
        self._Fw = np.empty((0, 0))
        self._Kc = np.empty((0, 0))  # kernel of the rows against the first model's inputs
        self._V = np.empty((0, 0))  # L^-1 K(X, F), one row per input
        self._sq = np.empty(0)  # column sums of squares of _V

    def holds(self, F: np.ndarray) -> bool:
        """Whether ``F`` is the rows this cache scores (the very array)."""
        return F is self.F

    def moments(self, posterior: Posterior) -> tuple[np.ndarray, np.ndarray]:
        """``posterior.predict(self.F)``, computed from what earlier calls kept."""
        model = posterior.model
        if not self._follows(model):
            self._start(model)
        self._grow(model)
        n = len(posterior.alpha)
        if n > self._Kc.shape[1]:
            return posterior.predict(self.F)  # mean from inputs the first model lacked
        mean = self._Kc[:, :n] @ posterior.alpha
        var = np.maximum(model.signal - self._sq, VAR_FLOOR * model.signal)
        return mean, var

    def _follows(self, model: GPModel) -> bool:
        last = self._model
        if last is None or model is last:
            return last is not None
        n = len(last.X)
        return (
            len(model.X) >= n
            and model.signal == last.signal
            and np.array_equal(model.theta, last.theta)
            and np.array_equal(model.Xw[:n], last.Xw)
            and np.array_equal(model.L[n - 1, :n], last.L[n - 1, :n])
        )

    def _start(self, model: GPModel) -> None:
        self._Fw = model.inputs(self.F)
        self._Kc = model.kernel_w(self._Fw, model.Xw)
        self._V = model.solve(self._Kc)
        self._sq = np.einsum("ij,ij->j", self._V, self._V)
        self._model = model

    def _grow(self, model: GPModel) -> None:
        """Add the rows of ``V`` for the inputs ``model`` has beyond the last one seen."""
        have = self._V.shape[0]
        for i in range(have, len(model.X)):
            k = model.kernel_w(self._Fw, model.Xw[i : i + 1])[:, 0]
            row = (k - model.L[i, :i] @ self._V) / model.L[i, i]
            self._V = np.vstack([self._V, row[None, :]])
            self._sq = self._sq + row * row
        self._model = model
