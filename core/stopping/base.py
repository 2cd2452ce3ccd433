"""The one interface every early-stopping rule implements.

The server consults the study's rule after every measurement a trial reports:
it builds a :class:`StoppingContext` (the trial with its newest measurement,
the watched metric, and a :class:`PeerView` over the study's other trials) and
calls :meth:`StoppingRule.decide`, which returns a decision of the engine's
vocabulary (:mod:`tuneforge.core.decisions`): continue, pause, prune, or an
action for the worker. The service applies it; a rule never changes a trial.

A rule keeps no state in process memory: everything it needs comes from the
context, so any server replica can answer the next measurement. The server
answers the peer queries with SQL; :class:`TrialsPeerView` answers them from
trial objects in memory for tests and the embedded engine.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import Field

from ..decisions import ResumeTrial, TrialDecision
from ..errors import InvalidSpec
from ..options import NoOptions, OptionsModel, parse_options
from ..space import SearchSpace
from ..trials import Goal, Metric, Trial, TrialState


@runtime_checkable
class PeerView(Protocol):
    """The study's other trials, as far as a rule needs them, for the watched metric.

    "Other" excludes the trial being decided and failed trials (a failed trial's
    retry repeats its parameters, so counting both would weigh them twice).
    """

    def values_at(self, step: int) -> list[float]:
        """The watched metric at exactly ``step``, one value per other trial that reported it."""
        ...

    def best_until(self, step: int) -> list[float]:
        """Per other trial that reached ``step``: its best value over its steps ``<= step``.

        A trial has reached ``step`` when it reported the watched metric at
        ``step`` or at a later step.
        """
        ...

    def n_completed(self) -> int:
        """How many other trials are ``completed``."""
        ...


@dataclass(frozen=True)
class StoppingContext:
    """Everything a rule may look at to decide on one measurement."""

    #: The trial being decided; its measurements include the newest one.
    trial: Trial
    #: The metric the rule watches: its ``metric`` option, or the study's first objective.
    metric: Metric
    peers: PeerView
    #: The study's other trials with their measurements (failed ones left out);
    #: filled only for rules whose :attr:`StoppingRule.promotes` or
    #: :attr:`StoppingRule.sees_trials` is true.
    others: tuple[Trial, ...] = ()
    #: The study's search space (rules that propose new parameters, such as ``pbt``, need it).
    space: SearchSpace | None = None


def metric_series(trial: Trial, metric_name: str) -> list[tuple[int, float]]:
    """``(step, value)`` pairs of one metric in a trial's measurements, sorted by step."""
    pairs = [
        (m.step, float(m.values[metric_name]))
        for m in trial.measurements
        if metric_name in m.values
    ]
    return sorted(pairs, key=lambda pair: pair[0])


def best_of(values: Sequence[float], goal: Goal | str) -> float:
    """The best of non-empty ``values`` for ``goal``."""
    return max(values) if Goal(goal) == Goal.MAXIMIZE else min(values)


class TrialsPeerView:
    """A :class:`PeerView` computed from trial objects in memory.

    ``goal`` is the watched metric's goal; :meth:`best_until` needs it.
    """

    def __init__(
        self,
        trials: Sequence[Trial],
        metric_name: str,
        exclude_number: int | None,
        *,
        goal: Goal | str,
    ) -> None:
        others = [t for t in trials if t.number != exclude_number and t.state != TrialState.FAILED]
        self._goal = Goal(goal)
        self._series = [metric_series(t, metric_name) for t in others]
        self._completed = sum(t.state == TrialState.COMPLETED for t in others)

    def values_at(self, step: int) -> list[float]:
        """See :meth:`PeerView.values_at`."""
        out = []
        for series in self._series:
            at_step = [value for s, value in series if s == step]
            if at_step:
                out.append(at_step[-1])
        return out

    def best_until(self, step: int) -> list[float]:
        """See :meth:`PeerView.best_until`."""
        out = []
        for series in self._series:
            if not series or series[-1][0] < step:
                continue
            upto = [value for s, value in series if s <= step]
            if upto:
                out.append(best_of(upto, self._goal))
        return out

    def n_completed(self) -> int:
        """See :meth:`PeerView.n_completed`."""
        return self._completed


class RuleOptions(OptionsModel):
    """Options every rule that watches a metric takes."""

    metric: str | None = Field(
        None, description="The objective the rule watches (null: the study's first objective)."
    )


class StoppingRule(ABC):
    """Base class of early-stopping rules; construct with validated options."""

    name: ClassVar[str]
    #: The typed options this rule accepts, with their defaults (none by default).
    options_model: ClassVar[type[OptionsModel]] = NoOptions
    #: Whether the study must declare a ``fidelity`` (multi-fidelity rules do).
    requires_fidelity: ClassVar[bool] = False
    #: Whether the rule pauses trials and promotes them later (it then sees every
    #: trial with its measurements, in :attr:`StoppingContext.others` and in
    #: :meth:`promotions`).
    promotes: ClassVar[bool] = False
    #: Whether the rule needs the other trials with their measurements in
    #: :attr:`StoppingContext.others` (rules that promote always get them).
    sees_trials: ClassVar[bool] = False
    #: Whether the rule decides what the study's algorithm learns from (BOHB), through
    #: :meth:`model_history`.
    feeds_algorithm: ClassVar[bool] = False
    #: Whether the rule answers with actions that make a trial train on from another trial's
    #: checkpoint (PBT's exploit): workers then keep a checkpoint at every reported step.
    exploits: ClassVar[bool] = False
    #: Whether :meth:`decide` can answer anything but ``continue`` (the ``none`` rule
    #: cannot: the service then skips building its context on every measurement).
    decides: ClassVar[bool] = True

    def __init__(
        self, options: Mapping[str, Any] | None = None, fidelity: Mapping[str, Any] | None = None
    ) -> None:
        self.options: dict[str, Any] = {**self.default_options(), **(options or {})}
        self.fidelity = dict(fidelity) if fidelity is not None else None

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """Every option with its default value."""
        return cls.options_model().model_dump()

    def needs_others(self, trial: Trial, metric: Metric) -> bool:
        """Whether deciding on ``trial``'s newest measurement needs the other trials
        (:attr:`StoppingContext.others`); the service loads them only then."""
        del trial, metric
        return self.promotes or self.sees_trials

    def next_decision_step(self, trial: Trial, step: int) -> int | None:
        """The smallest step greater than ``step`` at which this rule could decide anything
        but ``continue`` for ``trial``; ``None``: at no later step.

        A worker may hold back its reports of the steps below it and send them with the
        first report at or past it (the measurement reply's ``next_decision_step``): the
        rule's decision on any of them would be ``continue``. The default: the next step
        for rules that decide (they may decide at every step), ``None`` for those that
        never do (``none``)."""
        del trial
        return step + 1 if self.decides else None

    def member_limit(self) -> int | None:
        """How many trials (failed ones not counted) the study may ever start under this rule;
        ``None`` (the default): no limit besides ``max_trials``. PBT's population."""
        return None

    @property
    def checkpoints(self) -> bool:
        """Whether workers must keep a checkpoint at every reported step (the rule pauses
        trials or makes them exploit others)."""
        return self.promotes or self.exploits

    def model_history(
        self,
        trials: Sequence[Trial],
        metric: Metric,
        n_params: int,
        min_observations: int = 0,
    ) -> tuple[float, tuple[Trial, ...]] | None:
        """For a rule that feeds the algorithm: the budget and the trials, finished with
        their value there, that the algorithm learns from; ``None`` (the default): the
        study's finished trials as they are. ``min_observations``: how many trials the
        algorithm needs before it models anything (its start-up)."""
        del trials, metric, n_params, min_observations
        return None

    def algorithm_view(
        self,
        trials: Sequence[Trial],
        metric: Metric,
        n_params: int,
        min_observations: int = 0,
    ) -> tuple[tuple[Trial, ...], tuple[Trial, ...]] | None:
        """What the study's algorithm learns from and what it must keep away from, as
        ``(history, in_flight)``, for rules that pause trials or feed the algorithm;
        ``None`` (the default): the study's finished trials and its in-flight ones.

        ``trials``: the study's trials with their measurements, failed ones left out.
        """
        del trials, metric, n_params, min_observations
        return None

    def watched(self, objectives: Sequence[Metric]) -> Metric:
        """The objective the rule watches: the one its ``metric`` option names, else the first."""
        name = self.options.get("metric")
        return next((m for m in objectives if m.name == name), objectives[0])

    @classmethod
    def validate_options(
        cls, options: Mapping[str, Any], fidelity: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Check the ``early_stopping`` options at study creation; return them with defaults.

        :attr:`options_model` checks each option's type and range, then
        :attr:`requires_fidelity`, then :meth:`check_options` what needs the
        fidelity too. Errors are :class:`InvalidSpec` naming ``early_stopping.<key>``.
        """
        parsed = parse_options(
            cls.options_model,
            options,
            prefix="early_stopping",
            owner=f"early-stopping rule {cls.name!r}",
        )
        if cls.requires_fidelity and fidelity is None:
            raise InvalidSpec(
                f"early-stopping rule {cls.name!r} needs a fidelity (the resource steps count)",
                field="fidelity",
            )
        cls.check_options(parsed, fidelity)
        return parsed.model_dump(exclude_none=True)

    @classmethod
    def check_options(cls, options: Any, fidelity: Mapping[str, Any] | None) -> None:
        """Checks across options and the fidelity; none by default."""
        del options, fidelity

    @abstractmethod
    def decide(self, ctx: StoppingContext) -> TrialDecision:
        """Decide what the trial in ``ctx`` does after its newest measurement."""

    def promotions(
        self, trials: Sequence[Trial], metric: Metric, *, final: bool = False
    ) -> tuple[ResumeTrial, ...]:
        """Paused trials to resume now, best first (``trials``: the study's, failed ones left
        out). Suggest hands these out before new points; rules that never pause have none.

        ``final``: the study can start no new trial and none is running, so this
        is the rule's last chance to promote; paused trials it leaves are pruned.
        """
        del trials, metric, final
        return ()


#: States of trials that hold a worker now (or will at once): the algorithm's in-flight set
#: under rules that pause trials.
RUNNING = frozenset({TrialState.REQUESTED, TrialState.ACTIVE, TrialState.STOPPING})
#: Finished states whose trials carry a result an algorithm learns from.
WITH_RESULT = frozenset({TrialState.COMPLETED, TrialState.PRUNED, TrialState.INFEASIBLE})


def due_after(step: int, warmup: int, interval: int) -> int:
    """The smallest step greater than ``step`` that is at least ``warmup`` and a whole number
    of ``interval`` steps past it (where rules with a warm-up and an interval decide)."""
    if step + 1 <= warmup:
        return warmup
    return warmup + -(-(step + 1 - warmup) // interval) * interval


def fidelity_max(fidelity: Mapping[str, Any] | None) -> float | None:
    """The largest step a study's fidelity allows, when it declares a finite numeric one."""
    if fidelity is None:
        return None
    value = fidelity.get("max")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
