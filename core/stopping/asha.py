"""ASHA: asynchronous successive halving with paused trials and promotion.

The study's ``fidelity`` ``{"name": "epochs", "min": 1, "max": 81}`` gives the
rungs: ``min * reduction_factor**k`` below ``max`` (1, 3, 9, 27 here; a
trial that reaches ``max`` simply finishes). A measurement's ``step`` counts
the resource.

When a trial's measurement crosses a rung, the rule ranks the trial's value
there among every trial that reached the rung (its value at the first step at
or past the rung). In the top ``1 / reduction_factor`` (``n // reduction_factor``
trials of ``n``) it goes on training; otherwise it is **paused**, not pruned:
the worker stops and is free for other work at once. As more trials reach a
rung, the top grows, and a paused trial that has entered it is **promoted**:
:meth:`ASHARule.promotions` names it, and the next suggest hands it back (same
number, same parameters, ``resume_from_step`` = the step it stopped at) before
any new point. Promotions from higher rungs come first. No worker ever waits
for a rung to fill. When the study ends, paused trials never promoted end
``pruned``.

What the study's algorithm learns from (:meth:`ASHARule.algorithm_view`): its
finished trials, and every paused trial as if it had been pruned at the step
it reached (TPE ranks those by that step, then by their value there, as Optuna
does with pruned trials); only the trials that hold a worker are in flight. A
paused trial is a result, not work in progress: counted as in flight, TPE would
treat each as a bad point (its constant liar), and the many trials an ASHA study
pauses would keep it from ever leaving its start-up.

Options: ``reduction_factor`` (3), an integer from 2 to 100; ``keep_leader``
(false): while a rung holds fewer than ``reduction_factor`` trials the paper
lets none of them go on; with ``keep_leader`` the best of them does (the top
is ``max(1, n // reduction_factor)``), so a short study's first good trials
train fully at once instead of waiting to be promoted.

Reference: Li et al., "A System for Massively Parallel Hyperparameter Tuning"
(MLSys 2020).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from ..decisions import CONTINUE, Pause, ResumeTrial, TrialDecision
from ..errors import InvalidSpec
from ..options import OptionsModel
from ..trials import Goal, Metric, Trial, TrialState
from .base import RUNNING, WITH_RESULT, RuleOptions, StoppingContext, StoppingRule, metric_series


class ASHAOptions(RuleOptions):
    """Options of the ``asha`` rule (and, through :class:`HyperbandOptions`, of ``hyperband``
    and ``bohb``)."""

    reduction_factor: int = Field(
        3, ge=2, le=100, description="Keep the top 1/reduction_factor at each rung."
    )
    keep_leader: bool = Field(
        False,
        description=(
            "While a rung holds fewer than reduction_factor trials, the best of them goes on "
            "(the paper's rule: none goes on until the rung has reduction_factor trials)."
        ),
    )


def rungs_of(fidelity: Mapping[str, Any], reduction_factor: int) -> list[float]:
    """The rung resources ``min * reduction_factor**k`` below ``max``."""
    low, high = float(fidelity["min"]), float(fidelity["max"])
    out: list[float] = []
    resource = low
    while resource < high:
        out.append(resource)
        resource *= reduction_factor
    return out


def value_at_rung(series: Sequence[tuple[int, float]], rung: float) -> float | None:
    """The value at the first step at or past ``rung`` (``None`` if the trial never got there)."""
    for step, value in series:
        if step >= rung:
            return value
    return None


class ASHARule(StoppingRule):
    """Pause a trial outside the top 1/eta of its rung; promote paused ones that enter it."""

    name = "asha"
    options_model: ClassVar[type[OptionsModel]] = ASHAOptions
    requires_fidelity = True
    promotes = True

    @classmethod
    def check_options(cls, options: ASHAOptions, fidelity: Mapping[str, Any] | None) -> None:
        """Rungs grow from ``fidelity.min``, so it must be above zero."""
        del options
        if fidelity is not None and not float(fidelity["min"]) > 0:
            raise InvalidSpec(
                "must be > 0 for the asha rule (its rungs are min * reduction_factor**k)",
                field="fidelity.min",
            )

    @property
    def eta(self) -> int:
        """The reduction factor."""
        return int(self.options["reduction_factor"])

    def rungs(self) -> list[float]:
        """The rungs of this study's fidelity."""
        if self.fidelity is None:
            raise ValueError("the asha rule needs the study's fidelity")
        return rungs_of(self.fidelity, self.eta)

    def _top(self, n_ranked: int) -> int:
        """How many of the ``n_ranked`` trials at a rung go on."""
        top = n_ranked // self.eta
        if self.options.get("keep_leader") and n_ranked > 0:
            return max(1, top)
        return top

    def needs_others(self, trial: Trial, metric: Metric) -> bool:
        """Only a measurement that crosses one of the trial's rungs is ranked."""
        return self._crossed(trial, metric) is not None

    def next_decision_step(self, trial: Trial, step: int) -> int | None:
        """The first step at or past the trial's next rung above ``step`` (in its bracket,
        for Hyperband and BOHB); ``None`` past its last rung (it then trains to the end)."""
        rungs = self.rungs()[self._first_rung(trial) :]
        return next((math.ceil(r) for r in rungs if r > step), None)

    def _crossed(self, trial: Trial, metric: Metric) -> float | None:
        """The highest of the trial's rungs its newest measurement crossed, if any."""
        series = metric_series(trial, metric.name)
        if not series:
            return None
        step = series[-1][0]
        before = series[-2][0] if len(series) > 1 else -math.inf
        rungs = self.rungs()[self._first_rung(trial) :]
        crossed = [r for r in rungs if before < r <= step]
        return crossed[-1] if crossed else None

    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Continue inside the rung's top 1/eta, pause outside it, when a rung is crossed."""
        rung = self._crossed(ctx.trial, ctx.metric)
        if rung is None:
            return CONTINUE
        group = self._group(ctx.trial)
        peers = [t for t in ctx.others if self._group(t) == group]
        ranked = self._ranked(rung, [*peers, ctx.trial], ctx.metric)
        top = self._top(len(ranked))
        position = next(i for i, (_, t) in enumerate(ranked) if t.number == ctx.trial.number)
        if position < top:
            return CONTINUE
        own = ranked[position][0]
        return Pause(
            f"{self._label(ctx.trial)}: at rung {rung:g} {ctx.metric.name} {own:.6g} ranks "
            f"{position + 1} of {len(ranked)}; the top {top} go on (paused, may be promoted)"
        )

    def promotions(
        self, trials: Sequence[Trial], metric: Metric, *, final: bool = False
    ) -> tuple[ResumeTrial, ...]:
        """Paused trials now in their rung's top 1/eta, highest rung first, best first.

        With ``final`` (no new trial can start, none runs) and no trial trained to
        ``fidelity.max`` yet, the best paused trial of the highest rung is promoted
        even outside the top, so every study trains at least one trial fully.
        """
        rungs = self.rungs()
        groups: dict[int, list[Trial]] = {}
        for trial in trials:
            groups.setdefault(self._group(trial), []).append(trial)
        out: list[ResumeTrial] = []
        for index in reversed(range(len(rungs))):
            for _, members in sorted(groups.items()):
                ranked = self._ranked(rungs[index], members, metric)
                for value, trial in ranked[: self._top(len(ranked))]:
                    if self._paused_at(trial, metric, rungs) == rungs[index]:
                        out.append(self._resume(trial, metric, rungs[index], value, "promoted"))
        if out or not final or self._someone_finished(trials, metric):
            return tuple(out)
        for rung in reversed(rungs):
            for value, trial in self._ranked(rung, trials, metric):
                if self._paused_at(trial, metric, rungs) == rung:
                    return (self._resume(trial, metric, rung, value, "best paused, promoted"),)
        return ()

    def algorithm_view(
        self,
        trials: Sequence[Trial],
        metric: Metric,
        n_params: int,
        min_observations: int = 0,
    ) -> tuple[tuple[Trial, ...], tuple[Trial, ...]]:
        """The finished trials, with the paused ones shown as pruned where they stopped;
        in flight: the trials that hold a worker."""
        del metric, n_params, min_observations
        history = tuple(
            dataclasses.replace(t, state=TrialState.PRUNED) if t.state == TrialState.PAUSED else t
            for t in trials
            if t.state in WITH_RESULT or t.state == TrialState.PAUSED
        )
        return history, tuple(t for t in trials if t.state in RUNNING)

    def _group(self, trial: Trial) -> int:
        """Trials are ranked among their group: one group for ASHA."""
        del trial
        return 0

    def _first_rung(self, trial: Trial) -> int:
        """The index of the first rung where ``trial`` is decided: 0 for ASHA."""
        del trial
        return 0

    def _label(self, trial: Trial) -> str:
        """How a reason names the rule (and, for Hyperband, the trial's bracket)."""
        del trial
        return self.name

    @staticmethod
    def _paused_at(trial: Trial, metric: Metric, rungs: list[float]) -> float | None:
        """The rung a paused trial waits at (``None`` for trials not paused)."""
        if trial.state != TrialState.PAUSED:
            return None
        series = metric_series(trial, metric.name)
        newest = series[-1][0] if series else -math.inf
        return max((r for r in rungs if r <= newest), default=None)

    def _someone_finished(self, trials: Sequence[Trial], metric: Metric) -> bool:
        assert self.fidelity is not None
        top = float(self.fidelity["max"])
        return any(
            series[-1][0] >= top for t in trials if (series := metric_series(t, metric.name))
        )

    def _resume(
        self, trial: Trial, metric: Metric, rung: float, value: float, how: str
    ) -> ResumeTrial:
        newest = metric_series(trial, metric.name)[-1][0]
        return ResumeTrial(
            trial.number,
            newest,
            f"{self._label(trial)}: {how} from rung {rung:g} ({metric.name} {value:.6g})",
        )

    def _ranked(
        self, rung: float, trials: Sequence[Trial], metric: Metric
    ) -> list[tuple[float, Trial]]:
        """``(value at rung, trial)`` of every non-failed trial that reached ``rung``, best first
        (ties: lower trial number first)."""
        sign = -1.0 if metric.goal == Goal.MAXIMIZE else 1.0
        rows = []
        for trial in trials:
            if trial.state == TrialState.FAILED:
                continue
            value = value_at_rung(metric_series(trial, metric.name), rung)
            if value is not None and math.isfinite(value):
                rows.append((value, trial))
        return sorted(rows, key=lambda row: (sign * row[0], row[1].number))
