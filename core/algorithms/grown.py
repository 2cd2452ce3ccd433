"""What a call reuses of an earlier call's reading of the same, since grown, history.

A study's finished trials only grow (a finished state is final), and the server's
history cache hands out the same trial objects on every call, in number order, the
newly finished ones inserted where their numbers belong (``api/services/history.py``).
So a call can take what an earlier call derived from its history (the keys of every
point in use, the best trials) and read only the trials inserted since, instead of the
whole history on every call (a ``SearchSpace.key`` per trial: 40 ms at 10,000 trials of
an integer space, for a suggestion that takes 0.1 ms). :func:`gained` finds those
trials by object identity; anything that is not the earlier history with trials
inserted (another study's history, new trial objects on every call as in-process use
may pass, a rule's view that shows a paused trial and later drops it) is read whole.
Either way a call's answer is the same.
"""

from __future__ import annotations

import bisect
import heapq
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from ..space import SearchSpace
from ..trials import Trial
from .kept import Kept

#: Reused entries per kind, one per study (the history's first trial object).
STUDIES = 64

T = TypeVar("T")


class GrowingHistory(tuple[Trial, ...]):
    """A history whose holder promises that every later history it hands out for the same
    study holds these very trial objects, in this order, with newly finished ones
    inserted: the server's history cache. :func:`gained` then checks only the places it
    probes; for any other sequence it compares every object."""

    __slots__ = ()


def grown(history: Sequence[Trial], finished: Iterable[Trial]) -> GrowingHistory:
    """``history`` (in number order) with the ``finished`` trials inserted where their
    numbers belong: a bisection per trial and one copy, the held objects kept in place, so
    the result is a :class:`GrowingHistory` of ``history`` (sorting it all again, on a
    study of 100,000 trials, took longer than a fit)."""
    new = sorted(finished, key=_number)
    if not history or not new or new[0].number > history[-1].number:
        return GrowingHistory((*history, *new))
    merged = list(history)
    for trial in new:
        bisect.insort(merged, trial, key=_number)
    return GrowingHistory(merged)


def _number(trial: Trial) -> int:
    return trial.number


def gained(before: Sequence[Trial], now: Sequence[Trial], limit: int) -> list[Trial] | None:
    """The trials of ``now`` that ``before`` lacks, when ``now`` is ``before`` with at most
    ``limit`` trials inserted (the same objects, in the same order); ``None`` otherwise.

    Each insertion is found by bisection, ``O(log n)`` identity checks: past the first
    ``k`` insertions, every object of ``before`` sits ``k`` places later in ``now``, up to
    the next insertion (a history holds each trial object once). So a trial with an old
    number that finished late costs no more than one that finished in order. Between
    two :class:`GrowingHistory` of one study that is all; otherwise every other object
    of ``now`` is then compared with ``before`` (in C: 0.4 ms at 10,000 trials)."""
    extra = len(now) - len(before)
    if extra < 0 or extra > limit or not before or now[0] is not before[0]:
        return None
    at: list[int] = []
    while len(at) < extra:
        offset, lo, hi = len(at), (at[-1] + 1 if at else 0), len(before) + len(at)
        while lo < hi:  # the first place past the last insertion where the next one sits
            mid = (lo + hi) // 2
            if now[mid] is before[mid - offset]:
                lo = mid + 1
            else:
                hi = mid
        at.append(lo)
    if isinstance(before, GrowingHistory) and isinstance(now, GrowingHistory):
        same = not at or at[-1] == len(now) - 1 or now[-1] is before[-1]
    else:
        same = _same_apart_from(before, now, at)
    return [now[i] for i in at] if same else None


def _same_apart_from(before: Sequence[Trial], now: Sequence[Trial], at: list[int]) -> bool:
    """Whether ``now`` without the places ``at`` (ascending) is ``before``, object for object."""
    start = 0
    for k, stop in enumerate([*at, len(now)]):
        if not all(map(operator.is_, now[start:stop], before[start - k : stop - k])):
            return False
        start = stop + 1
    return True


def _limit(n: int) -> int:
    """How many new trials a call reads before it rereads the whole history instead:
    rereads come once per ``n / 16`` new trials, so their cost per call stays constant."""
    return max(256, n // 16)


class KeySet:
    """Keys (:meth:`SearchSpace.key`) of points in use: those of a history's trials,
    shared by the calls that read it and never changed, and this call's own."""

    def __init__(self, shared: _Keys | None, own: Iterable[tuple[Any, ...]]) -> None:
        self._shared = shared
        self._own = set(own)

    def __contains__(self, key: object) -> bool:
        return key in self._own or (self._shared is not None and self._shared.holds(key))

    def add(self, key: tuple[Any, ...]) -> None:
        self._own.add(key)


@dataclass(frozen=True)
class _Keys:
    """The keys of a history's trials, held as their sorted hashes (8 bytes a trial; the
    keys themselves took 660, 66 MB for a study of 100,000 trials): a key is held when a
    trial with its hash has that very key, recomputed for the few trials that match."""

    space: SearchSpace
    history: Sequence[Trial]
    hashes: np.ndarray  # sorted
    index: np.ndarray  # of each hash, its trial's place in ``history``

    @classmethod
    def of(cls, space: SearchSpace, history: Sequence[Trial]) -> _Keys:
        hashes = np.fromiter((hash(space.key(t.params)) for t in history), np.int64, len(history))
        index = np.argsort(hashes, kind="stable")
        return cls(space, history, hashes[index], index)

    def holds(self, key: object) -> bool:
        h = np.int64(hash(key))
        lo = int(np.searchsorted(self.hashes, h, side="left"))
        hi = int(np.searchsorted(self.hashes, h, side="right"))
        return any(self.space.key(self.history[int(i)].params) == key for i in self.index[lo:hi])


_keys: Kept[int, _Keys] = Kept(STUDIES)


def keys_in_use(space: SearchSpace, completed: Sequence[Trial], others: Iterable[Trial]) -> KeySet:
    """The keys of ``completed`` and of ``others`` (in-flight trials), to which a call adds
    the points it picks; the keys of ``completed`` come from an earlier call's where it can."""
    own = [space.key(t.params) for t in others]
    if not completed:
        return KeySet(None, own)
    held = _keys.get(id(completed[0]))
    fresh = None
    if held is not None and held.space == space:
        fresh = gained(held.history, completed, _limit(len(completed)))
    if held is None or fresh is None:
        held = _Keys.of(space, completed)
        _keys.put(id(completed[0]), held)
        fresh = []
    return KeySet(held, [*own, *(space.key(t.params) for t in fresh)])


@dataclass(frozen=True)
class _Folded(Generic[T]):
    what: object
    history: Sequence[Trial]
    value: T


class Folded(Generic[T]):
    """A value derived from a history by folding its trials in, kept per history: a later
    call folds in only the trials inserted since. ``fold(None, trials)`` derives the value
    of ``trials``; ``fold(value, more)`` that of the trials ``value`` came from and
    ``more``, which must not depend on where ``more`` sit among them (the best few by a
    key of each trial alone, the trials that pass a test of each alone)."""

    def __init__(self) -> None:
        self._held: Kept[int, _Folded[T]] = Kept(STUDIES)

    def of(
        self,
        completed: Sequence[Trial],
        fold: Callable[[T | None, Sequence[Trial]], T],
        what: object = (),
    ) -> T:
        """The value of ``completed``; ``what`` names everything ``fold`` reads besides the
        trials (the space, the metrics, a size): a value is reused only for an equal one."""
        if not completed:
            return fold(None, completed)
        held = self._held.get(id(completed[0]))
        fresh = None
        if held is not None and held.what == what:
            fresh = gained(held.history, completed, _limit(len(completed)))
        value = fold(None, completed) if held is None or fresh is None else fold(held.value, fresh)
        self._held.put(id(completed[0]), _Folded(what, completed, value))
        return value


def best_of(
    size: int, sort_keys: Callable[[Sequence[Trial]], Sequence[Any]]
) -> Callable[
    [tuple[tuple[Any, Trial], ...] | None, Sequence[Trial]], tuple[tuple[Any, Trial], ...]
]:
    """A fold for :class:`Folded`: the ``size`` trials with the smallest keys, best first,
    as ``(key, trial)``. ``sort_keys`` gives each trial's key (``None`` leaves it out); a
    key must depend on its trial alone and differ between trials (end with the number)."""

    def fold(
        held: tuple[tuple[Any, Trial], ...] | None, trials: Sequence[Trial]
    ) -> tuple[tuple[Any, Trial], ...]:
        keyed = [(k, t) for k, t in zip(sort_keys(trials), trials, strict=True) if k is not None]
        return tuple(heapq.nsmallest(size, [*(held or ()), *keyed], key=_first))

    return fold


def _first(pair: tuple[Any, Trial]) -> Any:
    return pair[0]


def by_number(held: Sequence[np.ndarray] | None, new: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Columns of rows kept in trial-number order (the first column holds the numbers,
    both sorted) with the ``new`` rows inserted where their numbers belong, for a
    :class:`Folded` value: the order a full read of the history gives."""
    if held is None:
        return list(new)
    at = np.searchsorted(held[0], new[0])
    return [np.insert(old, at, part, axis=0) for old, part in zip(held, new, strict=True)]
