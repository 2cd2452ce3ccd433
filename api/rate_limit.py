"""Per-caller rate limit: a token bucket per API key (per client address without one).

Each caller's bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a
second; a request takes one token, and a request finding less than one is answered
429 ``rate_limited`` with ``Retry-After`` (whole seconds, rounded up) saying when
the next token is there. :func:`tuneforge.api.auth.authorize` calls
:meth:`RateLimiter.take` once the caller is known. Buckets live in the process: each
replica behind a load balancer limits on its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Buckets kept before idle (full) ones are dropped; a full bucket equals a new one.
MAX_BUCKETS = 10_000


class RateLimited(Exception):
    """The caller's bucket is empty: answer 429, retry after ``retry_after`` seconds."""

    def __init__(self, rate: float, burst: int, retry_after: int, who: str) -> None:
        super().__init__(
            f"rate limit exceeded for this {who}: at most {rate:g} requests per second "
            f"(bursts of {burst}); retry in {retry_after} s"
        )
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by caller; thread-safe (sync routes run on a thread pool).

    ``rate <= 0`` turns the limit off. ``clock`` (seconds, monotonic) can be replaced,
    which tests use to step time without sleeping.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self.rate > 0

    def take(self, caller: str, who: str = "caller") -> None:
        """Take one token from ``caller``'s bucket; raise :class:`RateLimited` (its message
        naming the caller as ``who``: ``API key``, ``client address``) when it is empty."""
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(caller)
            if bucket is None:
                self._prune(now)
                bucket = self._buckets[caller] = _Bucket(float(self.burst), now)
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate
            )
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / self.rate
        raise RateLimited(self.rate, self.burst, max(1, math.ceil(wait)), who)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled (they behave like new ones) once there are many."""
        if len(self._buckets) < MAX_BUCKETS:
            return
        full = [
            caller
            for caller, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for caller in full:
            del self._buckets[caller]
