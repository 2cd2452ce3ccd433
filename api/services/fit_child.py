"""The fit processes of :mod:`.fit_pool`: spawned children, each answering one call at a
time over a pipe of its own.

A request's thread takes an idle child, writes the call to the child's pipe and waits
for the answer on that pipe without holding the interpreter lock, which it takes back
once, when the answer comes. (``concurrent.futures.ProcessPoolExecutor``, used before,
passes every call through its queue-management thread and a feeder thread on each
side: each hand-over waits for the lock behind the requests' threads. Under load that
was about 7 ms of a 24 ms TPE fit at 10,000 trials, see docs/performance.md.)

A child that dies during a call (killed, out of memory) raises :class:`ChildDied` in
the caller and is replaced on demand; an exception the called function raises in the
child comes back and is raised in the caller, the child serving on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

#: How often a child checks that the server process that started it still runs.
PARENT_CHECK_SECONDS = 0.5
#: How long :meth:`ChildPool.close` waits for an idle child to exit before killing it.
STOP_SECONDS = 5.0


class ChildDied(Exception):
    """The child process stopped during a call, or could not be started."""


class PoolClosed(Exception):
    """The pool was closed (the server is stopping): the call did not run."""


class _Child:
    """One spawned process and the parent's end of its pipe."""

    def __init__(self, context: SpawnContext) -> None:
        here, there = context.Pipe()
        self.process: SpawnProcess = context.Process(
            target=serve, args=(there, os.getpid()), name="tuneforge-fit", daemon=True
        )
        self.process.start()
        there.close()
        self.conn = here

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        """``(True, result)`` or ``(False, exception)`` from ``fn(*args)`` in the child."""
        try:
            self.conn.send((fn, args))
            answer: tuple[bool, Any] = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise ChildDied(f"the fit process stopped (exit code {self._exit_code()})") from exc
        return answer

    def _exit_code(self) -> int | None:
        self.process.join(timeout=0.1)
        return self.process.exitcode

    def stop(self) -> None:
        """Ask the child to exit, then kill it if it has not after :data:`STOP_SECONDS`."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout=STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ChildPool:
    """Up to ``size`` children, started on demand; a call waits for an idle one."""

    def __init__(self, size: int, context: SpawnContext) -> None:
        self._size = max(1, size)
        self._context = context
        self._idle: list[_Child] = []
        self._running = 0  # started and not lost: idle or in a call
        self._closed = False
        self._changed = threading.Condition()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a child: its result, or the exception it raised there.
        :class:`ChildDied` when the child stopped during the call (the next call starts
        another), :class:`PoolClosed` after :meth:`close`; anything else interrupting
        the call also retires the child, whose pipe may hold a late answer."""
        child = self._take()
        try:
            ok, value = child.call(fn, args)
        except BaseException:
            self._retire(child)
            raise
        self._give_back(child)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the idle children now and each busy one when its call returns."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._running -= len(idle)
            self._changed.notify_all()
        for child in idle:
            child.stop()

    def _take(self) -> _Child:
        with self._changed:
            while not self._idle and self._running >= self._size and not self._closed:
                self._changed.wait()
            if self._closed:
                raise PoolClosed("the fit processes were shut down")
            if self._idle:
                return self._idle.pop()
            self._running += 1
        try:
            return _Child(self._context)
        except BaseException as exc:
            with self._changed:
                self._running -= 1
                self._changed.notify()
            raise ChildDied(f"the fit process could not start: {exc}") from exc

    def _give_back(self, child: _Child) -> None:
        with self._changed:
            if not self._closed:
                self._idle.append(child)
                self._changed.notify()
                return
            self._running -= 1
        child.stop()

    def _retire(self, child: _Child) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify()
        child.process.kill()
        child.process.join()
        child.conn.close()


def serve(conn: Connection, parent: int) -> None:
    """The child's loop: answer each call sent on ``conn`` until ``None`` or the pipe
    closes; exit as soon as the server process ``parent`` is gone (even SIGKILLed,
    which leaves it no chance to stop its children), never outliving it. Ctrl-C in the
    server's terminal reaches the child too: it ignores SIGINT and stops when the server
    stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(parent)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args = message
        try:
            answer: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # sent back and raised in the caller
            answer = (False, exc)
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an answer that does not pickle
            conn.send((False, RuntimeError(f"the fit's answer could not be sent: {exc!r}")))


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="tuneforge-fit-parent-watch", daemon=True).start()
