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


def _runqueue_seconds(pid: int) -> float:
    """Seconds the live threads of ``pid`` have spent waiting on a run queue (0 when
    the kernel does not keep schedstat)."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def servers_cpu_seconds() -> float | None:
    """CPU seconds used so far by this process's ``tuneforge serve`` children and all
    their descendants (one pass over ``/proc``); None off Linux."""
    usage = servers_usage()
    return None if usage is None else usage[0]


def servers_usage() -> tuple[float, float] | None:
    """(CPU seconds, seconds their live threads waited for a core) of this process's
    ``tuneforge serve`` children and all their descendants; None off Linux."""
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
    cpu, waited = 0.0, 0.0
    stack = [p for p in children.get(os.getpid(), []) if _is_serve(p)]
    while stack:
        pid = stack.pop()
        cpu += stats.get(pid, (0, 0.0))[1]
        waited += _runqueue_seconds(pid)
        stack.extend(children.get(pid, ()))
    return cpu, waited


class CpuWindow:
    """Samples :func:`servers_usage` at ``start`` and ``end`` (epoch seconds) on a
    thread; :meth:`seconds` and :meth:`runqueue_seconds` are the differences (None
    when not measurable)."""

    def __init__(self, start: float, end: float) -> None:
        self._marks: list[tuple[float, float] | None] = []
        self._thread = threading.Thread(target=self._run, args=(start, end), daemon=True)
        self._thread.start()

    def _run(self, start: float, end: float) -> None:
        for at in (start, end):
            time.sleep(max(0.0, at - time.time()))
            self._marks.append(servers_usage())

    def seconds(self) -> float | None:
        """CPU seconds of the servers in the window."""
        return self._delta(0)

    def runqueue_seconds(self) -> float | None:
        """Seconds the servers' threads waited for a core in the window."""
        return self._delta(1)

    def _delta(self, field: int) -> float | None:
        self._thread.join(timeout=60)
        if len(self._marks) != 2:
            return None
        first, last = self._marks
        if first is None or last is None:
            return None
        return last[field] - first[field]
