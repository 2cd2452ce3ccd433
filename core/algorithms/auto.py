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
  flat and which learns from the whole history.

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

from collections.abc import Mapping
from typing import Any

from ..trials import MetricRole
from .base import Algorithm, Suggestion, SuggestRequest

#: Finished trials after which ``auto`` hands a GP study over to TPE.
GP_MAX_TRIALS = 400
#: The early-stopping rule ``auto`` picks for a study with a fidelity and no rule of its own.
FIDELITY_RULE = "bohb"


def choose(request: SuggestRequest) -> str:
    """The algorithm ``auto`` uses for this request."""
    objectives = [m for m in request.metrics if m.role == MetricRole.OBJECTIVE]
    if request.space.is_conditional or len(request.completed) >= GP_MAX_TRIALS:
        return "tpe"
    return "ehvi" if len(objectives) > 1 else "gp"


class AutoSearch(Algorithm):
    """Delegates to ``gp``, ``ehvi`` or ``tpe`` (see the module docstring); takes no options."""

    name = "auto"

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
