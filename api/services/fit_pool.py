"""Model fits in a child process: the Gaussian-process ones, and TPE on a long history.

A GP fit (``auto``, ``gp``, ``ehvi``) runs for a tenth of a second to seconds,
mostly in Python and small NumPy calls that hold the interpreter lock. In the
server's own process every other request then waits for that lock between its
statements: with 8 clients on an ``auto`` study, a ninth client's completes on
another study took p50 96 ms and p99 1.0 s; with the fits in a child process,
28 ms and 113 ms (``python -m bench.fit_probe``, docs/performance.md). So these
fits run in a child process (``TUNEFORGE_FIT_PROCESSES``, default 1 per server
process; 0 fits in the server's process): the request's thread waits for the
child's answer without holding the lock, and the operating system shares the
cores between the child and the server.

:func:`fit_in_child` sends the algorithm's name, options, space and request and gets the
:class:`Suggestion` back; the same inputs give the same suggestion as a fit in the
server (``tests/api/test_fit_pool.py``). The request's finished trials go as what the
study gained since its previous fit when they are the history cache's
(:mod:`.fit_history`: the child keeps a copy), else pickled whole (about 4 ms to pickle
and 6 ms to unpickle 1,000 trials with two measurements each). A study's first
:data:`MIN_HISTORY` suggestions (the Sobol' start-up) and the cheap fits stay in the
server: random, Sobol', grid, CMA-ES, the evolutionary ones, and TPE (``tpe``, and
``auto`` past its GP phase: 400 trials, or a conditional space) until the study has
:data:`LONG_FIT_FROM` finished trials. Past that, TPE's fit costs the same on every
call (its window), 20 ms or so of the interpreter lock that every other request of the
server waits for; sent whole, the history would cost more than the fit (55 ms to
pickle and 210 ms to unpickle 10,000 trials), sent as what it gained, a few trials.
One child (the default) serves the fits of every study of its server, in turn; with
several, a fit goes to whichever is free, histories go whole and TPE stays in the
server. If the child dies, the fit runs in the server and the next one starts a new
child; a child is never left behind by its server. The children and their pipes are
:mod:`.fit_child`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
from collections.abc import Mapping
from typing import Any

from ...core.algorithms import Suggestion, SuggestRequest, create_algorithm, get_algorithm
from ...core.algorithms.grown import GrowingHistory
from ...core.space import SearchSpace
from .fit_child import ChildDied, ChildPool, PoolClosed
from .fit_history import Mirror, Missing, Shipment, Shipper

log = logging.getLogger("tuneforge.api.fit_pool")

#: Finished trials a study needs before its fits go to the child: below that, the GP
#: algorithms draw their Sobol' start-up (microseconds), not worth a child process.
MIN_HISTORY = 8
#: Finished trials from which a long fit (:meth:`.Algorithm.long_fit`: TPE) goes to the
#: child: TPE's default window, past which its fit costs the same however long the study.
LONG_FIT_FROM = 1000
#: The histories sent to the child, per lineage (:mod:`.fit_history`).
shipper = Shipper()

_lock = threading.Lock()
_processes = 0
_pool: ChildPool | None = None
_broken = 0
#: Child processes that may die before fits stay in the server's process for good.
MAX_BROKEN = 3
#: Fits answered by a child process since this process started (for tests and metrics).
child_fits = 0


def configure(processes: int) -> None:
    """Use ``processes`` child processes for GP fits (0: fit in the caller's process). The
    pool starts on the first fit and is shared by the apps of this process."""
    global _processes
    with _lock:
        _processes = max(0, int(processes))


def shutdown() -> None:
    """Stop the child processes and wait for them (a later fit starts them again); the
    app's lifespan calls it when the server stops."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def fit_in_child(
    name: str, options: Mapping[str, Any], space: SearchSpace, request: SuggestRequest
) -> Suggestion | None:
    """``create_algorithm(name, options, space).suggest(request)`` run by the child
    process; None when this fit belongs in the caller's process (not a heavy fit,
    :meth:`.Algorithm.heavy_fit`, nor a long one on a history that can be sent as what
    it gained, :meth:`.Algorithm.long_fit`; no child configured; or the child died: the
    next fit starts a new one)."""
    if not _goes_to_child(name, request):
        return None
    pool = _child_pool()
    if pool is None:
        return None
    try:
        try:
            suggestion = _submit(pool, name, options, space, request, whole=False)
        except Missing:  # the child lacks what the shipment built on (it restarted)
            suggestion = _submit(pool, name, options, space, request, whole=True)
    except PoolClosed:  # shut down meanwhile: this fit runs here
        return None
    except ChildDied:
        _child_died(pool)
        return None
    _count_child_fit()
    return suggestion


def _goes_to_child(name: str, request: SuggestRequest) -> bool:
    n = len(request.completed)
    if n < MIN_HISTORY:
        return False
    algorithm = get_algorithm(name)
    if algorithm.heavy_fit(request):
        return True
    return (
        n >= LONG_FIT_FROM
        and _processes == 1
        and isinstance(request.completed, GrowingHistory)
        and algorithm.long_fit(request)
    )


def _submit(
    pool: ChildPool,
    name: str,
    options: Mapping[str, Any],
    space: SearchSpace,
    request: SuggestRequest,
    *,
    whole: bool,
) -> Suggestion:
    """The fit in the child, with the request's history as a shipment when it can be:
    with one child, which then holds every study's last history. (With several, a fit
    goes to whichever is free, which would mostly lack it: histories go whole, and
    long fits stay in the server.)"""
    shipment = shipper.ship(request.completed, whole=whole) if _processes == 1 else None
    if shipment is not None:
        request = dataclasses.replace(request, completed=())
    suggestion: Suggestion = pool.call(_fit_here, name, dict(options), space, request, shipment)
    return suggestion


#: In the child process: the histories received so far (in the server it stays empty).
_mirror = Mirror()


def _fit_here(
    name: str,
    options: Mapping[str, Any],
    space: SearchSpace,
    request: SuggestRequest,
    shipment: Shipment | None = None,
) -> Suggestion:
    if shipment is not None:
        request = dataclasses.replace(request, completed=_mirror.receive(shipment))
    return create_algorithm(name, options, space).suggest(request)


def _child_pool() -> ChildPool | None:
    global _pool
    with _lock:
        if _processes == 0:
            return None
        if _pool is None:
            # spawn, not fork: the server has threads (and locks) that a fork would copy
            _pool = ChildPool(_processes, multiprocessing.get_context("spawn"))
        return _pool


def _child_died(pool: ChildPool) -> None:
    """Count a child that died (the pool starts another on the next fit); after
    :data:`MAX_BROKEN` such deaths (a child that cannot start, e.g. a ``__main__`` script
    without its ``if __name__ == "__main__"`` guard, which spawn imports again), fit in
    the server's process from then on."""
    global _pool, _processes, _broken
    with _lock:
        _broken += 1
        if _broken >= MAX_BROKEN:
            _processes = 0
            if _pool is pool:
                _pool = None
        stop = _processes == 0
    if stop:
        log.warning("the fit process failed %d times; fitting in the server process", _broken)
        pool.close()
    else:
        log.warning("the fit process stopped; fitting in the server process this time")


def _count_child_fit() -> None:
    global child_fits
    with _lock:
        child_fits += 1
