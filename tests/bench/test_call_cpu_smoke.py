"""Smoke test of the per-call CPU benchmark: a tiny run in both modes against real servers,
and two servers taking turns (``--against``)."""

from __future__ import annotations

import sys

from bench.call_cpu import CALLS, measure


def test_both_modes_measure_every_call(pg_url: str) -> None:
    """``pg_url``: PostgreSQL is up (the benchmark makes its own databases). A keyed run
    sends its trial calls with a worker key: they must succeed (``raise_for_status``)."""
    for mode in ("open", "keyed"):
        ((ms,),) = measure(mode, "random", calls=5, reps=1, warm=2)
        assert set(ms) == set(CALLS)
        # /proc counts CPU in clock ticks (10 ms): a few calls may read 0, never less
        assert all(value >= 0 for value in ms.values()), (mode, ms)
        assert ms["suggest"] + ms["measurement"] + ms["complete"] > 0, (mode, ms)


def test_a_second_server_gets_the_same_repetitions(pg_url: str) -> None:
    runs = measure("open", "random", calls=3, reps=2, warm=1, against=sys.executable)
    assert [len(reps) for reps in runs] == [2, 2]
    assert all(set(rep) == set(CALLS) for reps in runs for rep in reps)
