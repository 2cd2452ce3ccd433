"""The server's CPU per call, one call at a time: what each hot call costs the server alone.

Under the closed-loop load of :mod:`bench.service` a call's latency is mostly queueing
for the server's interpreter, so a change that saves CPU shows there only through many
noisy runs. This benchmark sends one kind of call at a time from one client, so nothing
queues, and divides the CPU the ``tuneforge serve`` process tree used (from ``/proc``,
:mod:`bench.service_cpu`) by the calls sent: repeatable to a few hundredths of a
millisecond on a quiet machine.

For each mode (``open``: no API keys; ``keyed``: an editor key creates the study and a
worker key sends the trial calls, as a team's workers do) one server on a fresh
PostgreSQL database, one study of :func:`bench.service.spec` with ``--warm`` trials run
first; then, ``--reps`` times: ``--calls`` suggests, one measurement and one heartbeat
on each of those trials, their completes, ``GET /healthz`` and ``GET`` of the study.
Prints one row per mode and call (the median of the repetitions, in ms of server CPU per
call) and the CPU of a trial with one measurement.

``--against PYTHON`` compares two versions of the server on a noisy machine: a second
server, started by another checkout's interpreter, gets the same calls, the two taking
turns repetition by repetition; a third row is the median of their differences.

    python -m bench.call_cpu --algorithm random --calls 400 --reps 3
    python -m bench.call_cpu --modes open --calls 200 --reps 12 --against /tmp/base-venv/bin/python
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from .service import database, servers, spec
from .service_cpu import servers_usage
from .service_http import bench_keys

CALLS = ("suggest", "measurement", "heartbeat", "complete", "healthz", "get-study")
#: One repetition: the server's CPU ms per call of each kind.
Rep = dict[str, float]


def _cpu() -> float:
    usage = servers_usage()
    if usage is None:
        raise SystemExit("bench.call_cpu reads /proc: Linux only")
    return usage.cpu


def _timed(calls: int, send: Callable[[int], None]) -> float:
    """Server CPU milliseconds per call of ``send(0..calls-1)`` (every server this process
    started counts: the others are idle meanwhile)."""
    before = _cpu()
    for i in range(calls):
        send(i)
    return (_cpu() - before) / calls * 1000


@contextmanager
def _target(
    mode: str, algorithm: str, calls: int, warm: int, python: str
) -> Iterator[Callable[[int], Rep]]:
    """A server started by ``python`` on a fresh database with one study, ``warm`` trials
    run; yields a function that runs one repetition of every call in :data:`CALLS`."""
    with database("postgresql") as url, httpx.Client(timeout=60) as http:
        editor, worker = bench_keys(url) if mode == "keyed" else ({}, {})
        with servers(url, 1, python=python) as urls:
            base = urls[0]
            r = http.post(f"{base}/api/v1/studies", json=spec("cpu", algorithm), headers=editor)
            r.raise_for_status()
            trials = f"{base}/api/v1/studies/{r.json()['id']}/trials"

            def post(path: str, body: dict[str, Any] | None = None) -> Any:
                reply = http.post(f"{trials}{path}", json=body, headers=worker)
                reply.raise_for_status()
                return reply.json()

            def suggest(client: str) -> int:
                return int(post("/suggest", {"client_id": client})["trials"][0]["number"])

            def report(number: int) -> None:
                post(f"/{number}/measurements", {"step": 1, "values": {"loss": 1.0}})

            def complete(number: int, i: int) -> None:
                post(f"/{number}/complete", {"values": {"loss": (i * 7919 % 1000) / 1000}})

            for i in range(warm):
                number = suggest(f"warm-{i}")
                report(number)
                complete(number, i)
            study, health = trials.rsplit("/", 1)[0], f"{base}/healthz"

            def one_rep(rep: int) -> Rep:
                numbers: list[int] = []
                return {
                    "suggest": _timed(calls, lambda i: numbers.append(suggest(f"r{rep}-{i}"))),
                    "measurement": _timed(calls, lambda i: report(numbers[i])),
                    "heartbeat": _timed(calls, lambda i: post(f"/{numbers[i]}/heartbeat")),
                    "complete": _timed(calls, lambda i: complete(numbers[i], i)),
                    "healthz": _timed(calls, lambda i: http.get(health).raise_for_status()),
                    "get-study": _timed(
                        calls, lambda i: http.get(study, headers=worker).raise_for_status()
                    ),
                }

            yield one_rep


def measure(
    mode: str, algorithm: str, calls: int, reps: int, warm: int, against: str | None = None
) -> list[list[Rep]]:
    """Each server's repetitions: this interpreter's, then (``against``) the other one's,
    the two taking turns (AB, BA, AB, ...) so that a machine's drift hits both alike."""
    pythons = [sys.executable] + ([against] if against else [])
    with ExitStack() as stack:
        targets = [stack.enter_context(_target(mode, algorithm, calls, warm, p)) for p in pythons]
        out: list[list[Rep]] = [[] for _ in targets]
        for rep in range(reps):
            order = range(len(targets)) if rep % 2 == 0 else reversed(range(len(targets)))
            for k in order:
                out[k].append(targets[k](rep))
    return out


def _row(label: str, ms: dict[str, float], signed: bool = False) -> str:
    trial = ms["suggest"] + ms["measurement"] + ms["complete"]
    cells = [f"{ms[n]:+.2f}" if signed else f"{ms[n]:.2f}" for n in CALLS]
    return f"| {label} | " + " | ".join(cells) + f" | {trial:.2f} |"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--algorithm", default="random")
    p.add_argument("--modes", nargs="+", choices=["open", "keyed"], default=["open", "keyed"])
    p.add_argument("--calls", type=int, default=400, help="calls of each kind per repetition")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warm", type=int, default=150, help="trials run before the timed calls")
    p.add_argument(
        "--against",
        metavar="PYTHON",
        help="also a server of this interpreter (another checkout's virtualenv), the two "
        "taking turns; prints both and the median of their differences per repetition",
    )
    args = p.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"- algorithm `{args.algorithm}`, {args.calls} calls x {args.reps}; {started}")
    print("\n| mode | " + " | ".join(CALLS) + " | trial (1 measurement) |")
    print("|---|" + "---|" * (len(CALLS) + 1))
    for mode in args.modes:
        runs = measure(mode, args.algorithm, args.calls, args.reps, args.warm, args.against)
        medians = [{n: statistics.median(r[n] for r in reps) for n in CALLS} for reps in runs]
        print(_row(mode, medians[0]), flush=True)
        if args.against:
            print(_row(f"{mode}, --against", medians[1]), flush=True)
            pairs = list(zip(runs[0], runs[1], strict=True))
            diffs = {n: statistics.median(a[n] - b[n] for a, b in pairs) for n in CALLS}
            print(_row(f"difference ({mode})", diffs, signed=True), flush=True)


if __name__ == "__main__":
    main()
