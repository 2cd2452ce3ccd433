"""Group commit per study: the calls of one study that arrive while its write transaction
runs in this process share the next one.

A busy study's writers queue on its row lock, and on a busy server a transaction holds
that lock for several interpreter-lock waits, one per statement (docs/performance.md).
One transaction for the calls that queued meanwhile takes the lock once for all of
them. The work function answers each call separately (a value or the exception that
call raises), so one caller's refusal is never another's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: A work function: one answer per item, in order; an exception answers its item alone.
Work = Callable[[Sequence[T]], Sequence["R | BaseException"]]


@dataclass(eq=False)
class _Slot(Generic[T]):
    item: T
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    answer: object = None


class GroupCommit(Generic[T, R]):
    """Runs ``work`` over batches of items, one batch per key at a time in this process.

    The first caller of an idle key leads: it runs its own item and every item queued
    for the key when it starts, while their ``weight`` (1 each by default) adds up to at
    most ``limit`` (or to the leader's own weight when that is more); the callers queued
    after that wait for the next batch, led by the first of them."""

    def __init__(self, limit: int = 32, weight: Callable[[T], int] | None = None) -> None:
        self.limit = limit
        self._weight = weight
        self._lock = threading.Lock()
        self._became_idle = threading.Condition(self._lock)
        self._queues: dict[int, deque[_Slot[T]]] = {}

    def wait_idle(self, key: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no batch of ``key`` runs in this process;
        whether none does."""
        with self._became_idle:
            return self._became_idle.wait_for(lambda: key not in self._queues, timeout)

    def idle(self, key: int) -> bool:
        """Whether no batch of ``key`` runs in this process now (a caller would lead)."""
        with self._lock:
            return key not in self._queues

    def submit(
        self, key: int, item: T, work: Work[T, R], on_queue: Callable[[], None] | None = None
    ) -> R:
        """``item``'s answer from ``work``: returned, or raised when it is an exception.
        ``on_queue`` is called when the caller has to wait for a running batch."""
        slot: _Slot[T] = _Slot(item)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:  # idle: lead at once
                self._queues[key] = deque()
                slot.lead = True
            else:
                queue.append(slot)
        if not slot.lead:
            if on_queue is not None:
                on_queue()
            slot.wake.wait()
        if slot.lead:
            self._run(key, slot, work)
        if isinstance(slot.answer, BaseException):
            raise slot.answer
        return slot.answer  # type: ignore[return-value]

    def _run(self, key: int, leader: _Slot[T], work: Work[T, R]) -> None:
        batch = [leader]
        weigh = self._weight or (lambda _: 1)
        cap, total = max(weigh(leader.item), self.limit), weigh(leader.item)
        with self._lock:
            queue = self._queues[key]
            while queue and total + weigh(queue[0].item) <= cap:
                total += weigh(queue[0].item)
                batch.append(queue.popleft())
        try:
            answers: Sequence[object] = work([s.item for s in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for a batch of {len(batch)}")
        except BaseException as exc:  # the work itself failed: every caller hears it
            answers = [exc] * len(batch)
        for slot, answer in zip(batch, answers, strict=True):
            slot.answer = answer
        with self._lock:
            queue = self._queues[key]
            if queue:
                successor = queue.popleft()
                successor.lead = True
                successor.wake.set()
            else:
                del self._queues[key]
                self._became_idle.notify_all()
        for slot in batch[1:]:
            slot.wake.set()
