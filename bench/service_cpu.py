"""The servers' CPU time in a cell's timed window, for :mod:`bench.service`.

Trials per second move with everything else the machine does (two cores shared by the
servers, PostgreSQL and the load generator); the CPU the ``tuneforge serve`` processes
spend per completed trial moves much less, so paired runs of two versions compare it
too. Read from ``/proc`` (Linux): the serve processes this benchmark started and all
their descendants (uvicorn workers, the GP fit child).

Also the time their threads spent runnable but waiting for a core (the second field
of ``/proc/<pid>/task/<tid>/schedstat``): a thread woken by a database reply or
handed the interpreter lock waits there while the cores run something else, so this
wait per CPU-second says how much of a call's latency is the machine's queue rather
than the server's own work.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _is_serve(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tuneforge.cli" in cmd and b"serve" in cmd


def _runqueue_waits(pid: int) -> dict[tuple[int, int], int]:
    """Per live thread of ``pid``: nanoseconds it has spent waiting on a run queue
    (empty when the kernel keeps no schedstat)."""
    waits: dict[tuple[int, int], int] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return waits
    for task in tasks:
        try:
            waits[(pid, int(task.name))] = int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waits


@dataclass(frozen=True)
class Usage:
    """What the servers had used at one moment: CPU seconds (every process, finished
    threads included) and each live thread's run-queue wait in nanoseconds (None when
    the kernel keeps no schedstat)."""

    cpu: float
    waits: dict[tuple[int, int], int] | None

    def waited_since(self, earlier: Usage) -> float | None:
        """Seconds the threads waited for a core since ``earlier``: the threads alive at
        both moments by their difference, the ones started since in full (a thread that
        ended in between is not counted); None when either moment has no schedstat."""
        if self.waits is None or earlier.waits is None:
            return None
        before = earlier.waits
        return sum(ns - before.get(key, 0) for key, ns in self.waits.items()) / 1e9


def servers_usage() -> Usage | None:
    """The :class:`Usage` of this process's ``tuneforge serve`` children and all their
    descendants (one pass over ``/proc``); None off Linux."""
    if not Path("/proc/self/stat").exists():
        return None
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    cpu, waits = 0.0, dict[tuple[int, int], int]()
    stack = [p for p in children.get(os.getpid(), []) if _is_serve(p)]
    while stack:
        pid = stack.pop()
        cpu += stats.get(pid, (0, 0.0))[1]
        waits.update(_runqueue_waits(pid))
        stack.extend(children.get(pid, ()))
    return Usage(cpu, waits or None)


class CpuWindow:
    """Samples :func:`servers_usage` at ``start`` and ``end`` (epoch seconds) on a
    thread; :meth:`seconds` and :meth:`runqueue_seconds` are the differences (None
    when not measurable)."""

    def __init__(self, start: float, end: float) -> None:
        self._marks: list[Usage | None] = []
        self._thread = threading.Thread(target=self._run, args=(start, end), daemon=True)
        self._thread.start()

    def _run(self, start: float, end: float) -> None:
        for at in (start, end):
            time.sleep(max(0.0, at - time.time()))
            self._marks.append(servers_usage())

    def seconds(self) -> float | None:
        """CPU seconds of the servers in the window."""
        marks = self._both()
        return None if marks is None else marks[1].cpu - marks[0].cpu

    def runqueue_seconds(self) -> float | None:
        """Seconds the servers' threads waited for a core in the window."""
        marks = self._both()
        return None if marks is None else marks[1].waited_since(marks[0])

    def _both(self) -> tuple[Usage, Usage] | None:
        self._thread.join(timeout=60)
        if len(self._marks) != 2:
            return None
        first, last = self._marks
        if first is None or last is None:
            return None
        return first, last
