"""Input warping for :mod:`.gp_model`: a Kumaraswamy CDF per numeric parameter.

``w(x) = 1 - (1 - x^a)^b`` maps ``[0, 1]`` onto itself, monotonically; with ``a, b`` near 1
it is close to the identity, with ``a < 1`` or ``b > 1`` it stretches the low end, with
``a > 1`` or ``b < 1`` the high end (Snoek et al. 2014, "Input Warping for Bayesian
Optimization of Non-Stationary Functions"). The GP then sees ``w(x)``: a stationary kernel
on warped inputs is a non-stationary one on the parameters, with short lengthscales where
the warp is steep. The shape parameters ``log a, log b`` of every warped column are
hyperparameters of the GP like its lengthscales, fitted by MAP (normal priors in log space
around the identity), appended to ``theta`` after the noise variance.
"""

from __future__ import annotations

import math

import numpy as np

#: Inputs are squeezed into ``[EPS, 1 - EPS]`` first, so that ``log x`` and ``log(1 - x^a)``
#: stay finite at the bounds.
EPS = 1e-7
#: Box and normal prior (mean, std) of ``log a`` and ``log b``.
LOG_CONCENTRATION_BOUNDS = (math.log(0.1), math.log(10.0))
CONCENTRATION_PRIOR = (0.0, 0.75)


class Warp:
    """The Kumaraswamy CDF of each column in ``cols`` (the others pass through)."""

    def __init__(self, cols: np.ndarray, log_ab: np.ndarray) -> None:
        k = len(cols)
        self.cols = cols
        self.a = np.exp(log_ab[:k])
        self.b = np.exp(log_ab[k : 2 * k])

    @staticmethod
    def n_params(cols: np.ndarray | None) -> int:
        return 0 if cols is None else 2 * len(cols)

    def _parts(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = F[:, self.cols] * (1.0 - 2.0 * EPS) + EPS
        xa = x**self.a
        return x, xa, 1.0 - xa

    def __call__(self, F: np.ndarray) -> np.ndarray:
        if not len(self.cols):
            return F
        _, _, rest = self._parts(F)
        out = F.copy()
        out[:, self.cols] = 1.0 - rest**self.b
        return out

    def slope(self, F: np.ndarray) -> np.ndarray:
        """``dw/dx`` per entry (1 in columns that are not warped)."""
        out = np.ones_like(F)
        if len(self.cols):
            x, xa, rest = self._parts(F)
            dx = self.a * self.b * xa / x * rest ** (self.b - 1.0)
            out[:, self.cols] = dx * (1.0 - 2.0 * EPS)
        return out

    def param_slopes(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``dw/d log a`` and ``dw/d log b`` of the warped columns, each ``(len(F), k)``."""
        x, xa, rest = self._parts(F)
        rest_b = rest**self.b
        by_a = self.a * self.b * rest_b / rest * xa * np.log(x)
        by_b = -self.b * rest_b * np.log(rest)
        return by_a, by_b
