"""What an algorithm keeps between calls in one process: a small, thread-safe store of
the most recently used entries (a study's work that a later call can continue from).

Each user checks an entry still fits the request (the very trial objects it was built
from) before continuing from it, and answers as if nothing had been kept otherwise; so
what is kept changes the cost of a call, never its answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    """At most ``size`` entries; storing one more drops the least recently stored."""

    def __init__(self, size: int = 64) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._size = size

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def take(self, key: K) -> V | None:
        """The entry, no longer kept (for an object that only one call may use at a time)."""
        with self._lock:
            return self._entries.pop(key, None)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
