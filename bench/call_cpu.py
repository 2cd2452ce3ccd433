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
first; then, ``--reps`` times: ``--calls`` suggests, one measurement on each of those
trials, their completes, ``GET /healthz`` and ``GET`` of the study. Prints one row per
mode and call (the median of the repetitions, in ms of server CPU per call) and the
CPU of a trial with one measurement.

    python -m bench.call_cpu --algorithm random --calls 400 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from .service import database, servers, spec
from .service_cpu import servers_usage
from .service_http import bench_keys

CALLS = ("suggest", "measurement", "complete", "healthz", "get-study")


def _cpu() -> float:
    usage = servers_usage()
    if usage is None:
        raise SystemExit("bench.call_cpu reads /proc: Linux only")
    return usage.cpu


@contextmanager
def _server(mode: str) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """A server on a fresh database: its URL, the headers that create studies and the
    headers of the trial calls."""
    with database("postgresql") as url:
        editor, worker = bench_keys(url) if mode == "keyed" else ({}, {})
        with servers(url, 1) as urls:
            yield urls[0], editor, worker


def _timed(calls: int, send: Callable[[int], None]) -> float:
    """Server CPU milliseconds per call of ``send(0..calls-1)``."""
    before = _cpu()
    for i in range(calls):
        send(i)
    return (_cpu() - before) / calls * 1000


def measure(mode: str, algorithm: str, calls: int, reps: int, warm: int) -> dict[str, float]:
    """The median server CPU ms per call of each kind in :data:`CALLS`."""
    with _server(mode) as (base, editor, worker), httpx.Client(timeout=60) as http:
        api = f"{base}/api/v1"
        r = http.post(f"{api}/studies", json=spec("cpu", algorithm), headers=editor)
        r.raise_for_status()
        trials = f"{api}/studies/{r.json()['id']}/trials"

        def post(path: str, body: dict[str, Any]) -> Any:
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

        def one_rep(rep: int) -> dict[str, float]:
            numbers: list[int] = []
            return {
                "suggest": _timed(calls, lambda i: numbers.append(suggest(f"r{rep}-{i}"))),
                "measurement": _timed(calls, lambda i: report(numbers[i])),
                "complete": _timed(calls, lambda i: complete(numbers[i], i)),
                "healthz": _timed(calls, lambda i: http.get(health).raise_for_status()),
                "get-study": _timed(
                    calls, lambda i: http.get(study, headers=worker).raise_for_status()
                ),
            }

        reps_ms = [one_rep(rep) for rep in range(reps)]
        samples = {name: [ms[name] for ms in reps_ms] for name in CALLS}
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--algorithm", default="random")
    p.add_argument("--modes", nargs="+", choices=["open", "keyed"], default=["open", "keyed"])
    p.add_argument("--calls", type=int, default=400, help="calls of each kind per repetition")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warm", type=int, default=150, help="trials run before the timed calls")
    args = p.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"- algorithm `{args.algorithm}`, {args.calls} calls x {args.reps}; {started}")
    print("\n| mode | " + " | ".join(CALLS) + " | trial (1 measurement) |")
    print("|---|" + "---|" * (len(CALLS) + 1))
    for mode in args.modes:
        ms = measure(mode, args.algorithm, args.calls, args.reps, args.warm)
        trial = ms["suggest"] + ms["measurement"] + ms["complete"]
        cells = " | ".join(f"{ms[name]:.2f}" for name in CALLS)
        print(f"| {mode} | {cells} | {trial:.2f} |", flush=True)


if __name__ == "__main__":
    main()
