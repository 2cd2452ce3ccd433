"""A study's history shipped to the fit process as what it gained since the last fit.

A fit in the child process (:mod:`.fit_pool`) needs the request's finished trials.
Pickled whole, 10,000 of them cost 55 ms in the server and 210 ms in the child, more
than a TPE fit on its window; so only the Gaussian-process fits, on at most a few
hundred trials, used to go there. The history cache hands out a
:class:`.GrowingHistory` per study, each later one holding the same trial objects with
the newly finished ones inserted. So the server remembers the last history it sent
for each study (:class:`Shipper`), and the next fit sends only the trials gained
since, found by bisection (:func:`.grown.gained`); the child keeps its copy
(:class:`Mirror`) and inserts them where their numbers belong, as the cache did. Its
copy is a :class:`.GrowingHistory` too, of the same trials in the same order, so the
algorithm's own caches (:mod:`.grown`) work in the child as they do in the server.

Each lineage (a cache's histories of one study, until the cache reloads it) gets a
token that is never reused. When the child does not hold the token's previous history
at the expected length (it was restarted, or another child process took the earlier
fits), it says so (:class:`Missing`) and the server sends the whole history.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ...core.algorithms.grown import GrowingHistory, gained, grown
from ...core.trials import Trial

#: Lineages remembered on each side (least recently used dropped first).
MAX_LINEAGES = 64


@dataclass(frozen=True)
class Shipment:
    """A history as sent: the lineage's ``token``, the length of the history the child
    should hold already (``-1``: ``trials`` is the whole history) and the trials."""

    token: int
    base: int
    trials: tuple[Trial, ...]


class Missing(Exception):
    """The child does not hold the history a shipment builds on: send it whole."""


class Shipper:
    """In the server: the last history sent for each lineage."""

    def __init__(self) -> None:
        self._sent: OrderedDict[int, tuple[int, GrowingHistory]] = OrderedDict()
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self.deltas = 0  # shipments of gained trials only (for tests and metrics)
        self.wholes = 0

    def ship(self, history: Sequence[Trial], *, whole: bool = False) -> Shipment | None:
        """The shipment of ``history``, or None when it is no :class:`.GrowingHistory`
        (a rule's view, warm-start trials in front: it then goes pickled as it is)."""
        if not isinstance(history, GrowingHistory) or not history:
            return None
        key = id(history[0])  # alive while its history is remembered here: never reused
        with self._lock:
            held = self._sent.get(key)
            if held is None or held[1][0] is not history[0]:
                token, before = next(self._tokens), None
            else:
                token, before = held
            self._sent[key] = (token, history)
            self._sent.move_to_end(key)
            while len(self._sent) > MAX_LINEAGES:
                self._sent.popitem(last=False)
            new = None if whole or before is None else gained(before, history, len(history))
            if new is None:
                self.wholes += 1
            else:
                self.deltas += 1
        if new is None or before is None:
            return Shipment(token, -1, tuple(history))
        return Shipment(token, len(before), tuple(new))


class Mirror:
    """In the child: the last history received for each lineage."""

    def __init__(self) -> None:
        self._held: OrderedDict[int, GrowingHistory] = OrderedDict()

    def receive(self, shipment: Shipment) -> GrowingHistory:
        """The whole history a shipment stands for (:class:`Missing` when it builds on a
        history this process does not hold)."""
        if shipment.base < 0:
            history = GrowingHistory(shipment.trials)
        else:
            held = self._held.get(shipment.token)
            if held is None or len(held) != shipment.base:
                raise Missing(shipment.token)
            history = grown(held, shipment.trials)  # as the server's cache inserted them
        self._held[shipment.token] = history
        self._held.move_to_end(shipment.token)
        while len(self._held) > MAX_LINEAGES:
            self._held.popitem(last=False)
        return history
