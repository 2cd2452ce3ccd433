"""The servers' CPU time in a cell's timed window, for :mod:`bench.service`.

Trials per second move with everything else the machine does (two cores shared by the
servers, PostgreSQL and the load generator); the CPU the ``tuneforge serve`` processes
spend per completed trial moves much less, so paired runs of two versions compare it
too. Read from ``/proc`` (Linux): the serve processes this benchmark started and all
their descendants (uvicorn workers, the GP fit child).
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


def servers_cpu_seconds() -> float | None:
    """CPU seconds used so far by this process's ``tuneforge serve`` children and all
    their descendants (one pass over ``/proc``); None off Linux."""
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
    total, stack = 0.0, [p for p in children.get(os.getpid(), []) if _is_serve(p)]
    while stack:
        pid = stack.pop()
        total += stats.get(pid, (0, 0.0))[1]
        stack.extend(children.get(pid, ()))
    return total


class CpuWindow:
    """Samples :func:`servers_cpu_seconds` at ``start`` and ``end`` (epoch seconds) on a
    thread; :meth:`seconds` is the difference (None when not measurable)."""

    def __init__(self, start: float, end: float) -> None:
        self._marks: list[float | None] = []
        self._thread = threading.Thread(target=self._run, args=(start, end), daemon=True)
        self._thread.start()

    def _run(self, start: float, end: float) -> None:
        for at in (start, end):
            time.sleep(max(0.0, at - time.time()))
            self._marks.append(servers_cpu_seconds())

    def seconds(self) -> float | None:
        self._thread.join(timeout=60)
        if len(self._marks) != 2 or None in self._marks:
            return None
        first, last = self._marks
        assert first is not None and last is not None
        return last - first
