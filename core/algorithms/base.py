"""The one interface every suggestion algorithm implements.

An algorithm is a pure function of (space, finished trials, in-flight trials,
count, seed, saved state): :meth:`Algorithm.suggest` receives all of them in a
:class:`SuggestRequest` and returns a :class:`Suggestion`: decisions of the
engine's vocabulary (:mod:`tuneforge.core.decisions`; new parameter sets, or
paused trials to resume) and the state to save. Nothing lives in process memory between calls, so
any server replica can serve the next suggest of a study.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..decisions import NewParams, ResumeTrial, SuggestDecision
from ..errors import InvalidSpec
from ..space import ParamValue, SearchSpace
from ..trials import Metric, Trial

Params = dict[str, ParamValue]


@dataclass(frozen=True)
class SuggestRequest:
    """Everything an algorithm may look at when it proposes new points."""

    space: SearchSpace
    metrics: tuple[Metric, ...]
    #: Trials that finished with a result: completed, pruned and infeasible.
    completed: tuple[Trial, ...]
    #: Trials handed out or queued and not finished: requested, active, stopping, paused.
    in_flight: tuple[Trial, ...]
    count: int
    seed: int
    #: What the previous call returned as ``Suggestion.state`` (``None`` the first time).
    state: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Suggestion:
    """What an algorithm hands out, as decisions, plus the state to hand to the next call."""

    decisions: tuple[SuggestDecision, ...]
    state: Mapping[str, Any] | None = None
    #: True when the algorithm can propose nothing new ever again (a grid used up).
    exhausted: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        params: Iterable[Params],
        state: Mapping[str, Any] | None = None,
        exhausted: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Suggestion:
        """A suggestion of new parameter sets only (one :class:`NewParams` each, in order)."""
        return cls(tuple(NewParams(p) for p in params), state, exhausted, dict(extra or {}))

    @property
    def params(self) -> tuple[Params, ...]:
        """The new parameter sets, in the order they were decided."""
        return tuple(dict(d.params) for d in self.decisions if isinstance(d, NewParams))

    @property
    def resumes(self) -> tuple[ResumeTrial, ...]:
        """The paused trials to hand back, in the order they were decided."""
        return tuple(d for d in self.decisions if isinstance(d, ResumeTrial))


class Algorithm(ABC):
    """Base class of suggestion algorithms; construct with validated options."""

    name: ClassVar[str]
    #: Options this algorithm accepts, with their defaults.
    default_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = {**self.default_options, **(options or {})}

    @classmethod
    def validate_options(cls, options: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
        """Check ``algorithm_options`` at study creation; raise :class:`InvalidSpec` naming the field.

        The default accepts only the keys of :attr:`default_options`; subclasses
        extend this to check values and the space (a grid needs finite parameters).
        """
        for key in options:
            if key not in cls.default_options:
                allowed = ", ".join(sorted(cls.default_options)) or "none"
                raise InvalidSpec(
                    f"unknown option for algorithm {cls.name!r} (allowed: {allowed})",
                    field=f"algorithm_options.{key}",
                )
        return {**cls.default_options, **options}

    @abstractmethod
    def suggest(self, request: SuggestRequest) -> Suggestion:
        """Propose up to ``request.count`` decisions (fewer only when exhausted)."""
