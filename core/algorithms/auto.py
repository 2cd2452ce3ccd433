"""``auto``, the default algorithm: picks a suggestion algorithm per call from the space,
the objectives and how far the study has come.

The rule (evidence in docs/algorithms.md, measured by bench/optimizers.py):

- a conditional space: ``tpe`` (it models conditional groups natively);
- several objectives: ``ehvi`` (one GP per objective, expected hypervolume
  improvement) while the study has fewer than ``GP_MAX_TRIALS`` finished
  trials, ``tpe`` past that;
- otherwise ``gp`` (Gaussian-process BO with a mismatch kernel for categories,
  which starts from its own scrambled Sobol design) while the study has fewer
  than ``GP_MAX_TRIALS`` finished trials; past that, ``tpe``, whose cost stays
  flat and which learns from the whole history;
- on a plateau (many of the best values tie: steps in integer or fractional
  parameters, a quantized metric), every other trial goes to ``tpe``
  (:func:`on_plateau`).

Each delegate keeps its own saved state under its name, so a switch never
loses what the other learned, and the choice is a pure function of the
request: same history + same seed = same suggestions.

A study with ``auto`` that declares a ``fidelity`` and no ``early_stopping``
gets :data:`FIDELITY_RULE` (``bohb``: Hyperband's brackets, with the chosen
algorithm fitted on the largest well-observed budget) when the study meets
its conditions; :func:`tuneforge.core.study.parse_study_spec` resolves it, and
the stored spec shows the rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..trials import MetricRole, TrialState
from .base import Algorithm, Suggestion, SuggestRequest

#: Finished trials after which ``auto`` hands a GP study over to TPE.
GP_MAX_TRIALS = 400
#: The early-stopping rule ``auto`` picks for a study with a fidelity and no rule of its own.
FIDELITY_RULE = "bohb"


#: The plateau test: from this many finished trials on, the best :data:`PLATEAU_TOP` share
#: of them (at least :data:`PLATEAU_MIN_TOP`) is looked at; when at least
#: :data:`PLATEAU_TIED` of those values tie with another one of them (equal within
#: :data:`PLATEAU_TOLERANCE` times the spread of all values), the objective is taken to
#: be made of steps, and every other trial (odd numbers of finished trials) goes to
#: ``tpe``, whose Parzen densities of the good and bad trials are not misled by flat
#: regions the way a GP's smooth surface is; the other half stays with ``gp``. On the
#: plateau-heavy development problems (docs/algorithms.md) this mixture was better than
#: both ``gp`` alone and switching to ``tpe`` altogether.
PLATEAU_MIN_TRIALS = 12
PLATEAU_TOP = 0.25
PLATEAU_MIN_TOP = 6
PLATEAU_TIED = 0.5
PLATEAU_TOLERANCE = 1e-9


def objective_values(request: SuggestRequest) -> np.ndarray:
    """The finished trials' objective values, as minimization (one objective)."""
    metric = next((m for m in request.metrics if m.role == MetricRole.OBJECTIVE), None)
    if metric is None:
        return np.empty(0)
    sign = 1.0 if metric.goal == "minimize" else -1.0
    out = []
    for t in request.completed:
        v = (t.values or {}).get(metric.name) if t.state == TrialState.COMPLETED else None
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out.append(sign * float(v))
    return np.array(out, dtype=float)


def on_plateau(values: np.ndarray) -> bool:
    """Whether many of the best values tie: the objective has flat steps (see PLATEAU_*)."""
    n = len(values)
    if n < PLATEAU_MIN_TRIALS:
        return False
    ordered = np.sort(values)
    top = ordered[: max(PLATEAU_MIN_TOP, math.ceil(PLATEAU_TOP * n))]
    tol = PLATEAU_TOLERANCE * max(float(ordered[-1] - ordered[0]), 1e-300)
    gaps = np.diff(top) <= tol
    tied = np.zeros(len(top), bool)
    tied[1:] |= gaps
    tied[:-1] |= gaps
    return bool(tied.mean() >= PLATEAU_TIED)


def choose(request: SuggestRequest) -> str:
    """The algorithm ``auto`` uses for this request."""
    objectives = [m for m in request.metrics if m.role == MetricRole.OBJECTIVE]
    if request.space.is_conditional or len(request.completed) >= GP_MAX_TRIALS:
        return "tpe"
    if len(objectives) > 1:
        return "ehvi"
    if len(request.completed) % 2 == 1 and on_plateau(objective_values(request)):
        return "tpe"  # every other trial on a plateau: see PLATEAU_*
    return "gp"


class AutoSearch(Algorithm):
    """Delegates to ``gp``, ``ehvi`` or ``tpe`` (see the module docstring); takes no options."""

    name = "auto"

    @classmethod
    def heavy_fit(cls, request: SuggestRequest) -> bool:
        """Only the Gaussian-process delegates are heavy: past :data:`GP_MAX_TRIALS`
        (and on a conditional space) ``auto`` runs TPE, whose fit on a windowed history
        costs milliseconds, far less than pickling a long history for a child process."""
        return choose(request) != "tpe"

    @classmethod
    def long_fit(cls, request: SuggestRequest) -> bool:
        """Past its GP phase ``auto`` runs TPE: :meth:`.TPESearch.long_fit`."""
        return choose(request) == "tpe"

    def suggest(self, request: SuggestRequest) -> Suggestion:
        from . import get_algorithm

        chosen = choose(request)
        states: dict[str, Any] = dict(request.state or {})
        inner = states.get(chosen)
        delegate = get_algorithm(chosen)(get_algorithm(chosen).validate_options({}, request.space))
        result = delegate.suggest(
            SuggestRequest(
                space=request.space,
                metrics=request.metrics,
                completed=request.completed,
                in_flight=request.in_flight,
                count=request.count,
                seed=request.seed,
                state=inner if isinstance(inner, Mapping) else None,
            )
        )
        states[chosen] = dict(result.state) if result.state is not None else None
        states["last"] = chosen
        return Suggestion(result.decisions, states, result.exhausted, {"algorithm": chosen})
