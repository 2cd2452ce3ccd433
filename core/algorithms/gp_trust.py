"""A trust region for :mod:`.gp` (the ``trust_region`` option): a box around the best trial.

After TuRBO (Eriksson et al. 2019, "Scalable Global Optimization via Local Bayesian
Optimization"): the acquisition is maximized inside a box centred on the best feasible
trial, whose side (in the unit cube) is ``length`` times each numeric parameter's
lengthscale over their geometric mean. The length starts at :data:`INIT`, doubles after
:data:`SUCCESSES` trials in a row that improved on the best value, halves after
``max(FAILURES, d)`` in a row that did not, stays at most :data:`MAX`, and starts again from
:data:`INIT` when it falls below :data:`MIN`. It is replayed from the trials in order on
every call, so it is a pure function of the history: no state, same answer on any replica.

The box is used in spaces of at most ``acquisition.LOCAL_MAX_DIM`` parameters, none of them
categorical (with categories it kept the continuous parameters next to the best trial's
values while the right category needed others: mixed-nn and mixed-cat each stuck on one of
12 development seeds), and not when many of the best values tie (``auto.on_plateau``): on a
plateau no trial improves, the box shrinks around the first good step found and stays there
(quantized-ellipsoid-2 missed the exact optimum on 7 of 12 development seeds without this
guard, on 4 with it or without the box). Measured in docs/algorithms.md ("Trust region and
input warping").
"""

from __future__ import annotations

import numpy as np

INIT = 0.8
MIN = 2.0**-7
MAX = 1.6
SUCCESSES = 3
FAILURES = 4
#: A trial improves when it beats the best value by this share of its magnitude.
IMPROVEMENT = 1e-3


def trust_length(values: np.ndarray, n_startup: int, d: int) -> float:
    """The box's length after replaying ``values`` (minimized, in trial order; ``inf`` for
    unusable trials) from the first model-based trial on."""
    length, wins, losses = INIT, 0, 0
    best = float(np.min(values[:n_startup], initial=np.inf))
    for v in values[n_startup:]:
        improved = np.isfinite(v) and (not np.isfinite(best) or v < best - IMPROVEMENT * abs(best))
        wins, losses = (wins + 1, 0) if improved else (0, losses + 1)
        best = min(best, float(v))
        if wins >= SUCCESSES:
            length, wins = min(2.0 * length, MAX), 0
        elif losses >= max(FAILURES, d):
            length, losses = length / 2.0, 0
        if length < MIN:
            length = INIT
    return length


def trust_box(
    centre: np.ndarray, length: float, log_lengthscales: np.ndarray, numeric: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper unit-cube corners of the box (whole range in non-numeric columns)."""
    ls = np.exp(log_lengthscales)
    scale = np.ones_like(ls)
    if numeric.any():
        scale = ls / np.exp(np.mean(np.log(ls[numeric])))
    half = np.where(numeric, 0.5 * length * scale, 1.0)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
