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
from ..options import NoOptions, OptionsModel, parse_options
from ..space import ParamValue, SearchSpace
from ..trials import Metric, Trial

Params = dict[str, ParamValue]


@dataclass(frozen=True)
class SuggestRequest:
    """Everything an algorithm may look at when it proposes new points."""

    space: SearchSpace
    metrics: tuple[Metric, ...]
    #: Trials that finished with a result: completed, pruned and infeasible. The service
    #: hands them without timestamps, client, reason or metadata (its history cache
    #: leaves out what no algorithm or rule reads), so an algorithm must not use those.
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


@dataclass(frozen=True)
class Reservation:
    """See :meth:`Algorithm.reserve`: a fit starts from ``start``; ``saved`` is the
    study's state from then on; :meth:`covers` tells whether the fit stayed inside."""

    start: dict[str, Any]
    saved: dict[str, Any]
    #: The state key that counts the algorithm's draws (the reserved range is
    #: ``start[counter]`` up to ``saved[counter]``).
    counter: str

    def covers(self, state: Mapping[str, Any] | None) -> bool:
        """Whether a fit that started from :attr:`start` and ended in ``state`` drew only
        inside the reserved range (and moved nothing else of the state, such as TPE's
        place in its start-up sequence, which no reservation covers)."""
        ended = dict(state or {})
        used = ended.pop(self.counter, None)
        others = {k: v for k, v in self.start.items() if k != self.counter}
        return (
            isinstance(used, int)
            and self.start[self.counter] <= used <= self.saved[self.counter]
            and ended == others
        )


class Algorithm(ABC):
    """Base class of suggestion algorithms; construct with validated options."""

    name: ClassVar[str]
    #: The typed options this algorithm accepts, with their defaults (none by default).
    options_model: ClassVar[type[OptionsModel]] = NoOptions

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = {**self.default_options(), **(options or {})}

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """Every option with its default value."""
        return cls.options_model().model_dump()

    @classmethod
    def validate_options(cls, options: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
        """Check ``algorithm_options`` at study creation; return them with defaults filled in.

        :attr:`options_model` checks each option's type and range; then
        :meth:`check_options` checks what needs the space too. Errors are
        :class:`InvalidSpec` naming ``algorithm_options.<key>`` and the rule.
        """
        parsed = parse_options(
            cls.options_model, options, prefix="algorithm_options", owner=f"algorithm {cls.name!r}"
        )
        cls.check_options(parsed, space)
        return parsed.model_dump()

    @classmethod
    def check_options(cls, options: Any, space: SearchSpace) -> None:
        """Checks across options and the space (a grid needs a finite space); none by default."""
        del options, space

    @classmethod
    def reads_history(cls, space: SearchSpace) -> bool:
        """Whether :meth:`suggest` looks at ``request.completed`` or ``request.in_flight`` on
        ``space``. When it does not, the service hands it neither and runs it inside the
        short transaction that writes its trials (it then costs microseconds)."""
        del space
        return True

    @classmethod
    def heavy_fit(cls, request: SuggestRequest) -> bool:
        """Whether answering ``request`` fits a model that takes a tenth of a second or
        more and holds the interpreter lock meanwhile (a Gaussian process): the service
        then runs it in a child process, which costs pickling the request's history
        there and back. False by default: the other fits cost about what that pickling
        would, so they stay in the server's process."""
        del request
        return False

    @classmethod
    def long_fit(cls, request: SuggestRequest) -> bool:
        """Whether answering ``request`` fits a model on a long history that costs
        milliseconds of the interpreter lock per call however long the history grows (TPE
        on its window). The service runs such a fit in its fit process once the history
        is long, when it can send the history as the trials gained since the previous
        fit (``api/services/fit_history.py``). False by default."""
        del request
        return False

    def reserve(self, request: SuggestRequest) -> Reservation | None:
        """Randomness set aside for a fit of ``request.count`` points from
        ``request.state`` that runs beside the study's own fits (the service's spare
        points): the state that fit starts from and the state to save at once in its
        place, so that no other fit draws the same random numbers. ``None`` (the
        default) when the algorithm's randomness cannot be split this way for
        ``request``."""
        del request
        return None

    @abstractmethod
    def suggest(self, request: SuggestRequest) -> Suggestion:
        """Propose up to ``request.count`` decisions (fewer only when exhausted)."""
