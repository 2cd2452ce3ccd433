"""The study lock and the suggest phases over a cell's timed window, for :mod:`bench.service`:
read from the servers' ``/metrics`` at the window's start and end."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from .service import Window


LOCK_SERIES = {
    "tuneforge_study_lock_hold_seconds_count": "count",
    "tuneforge_study_lock_wait_seconds_sum": "wait",
    "tuneforge_study_lock_hold_seconds_sum": "hold",
}
#: The phases of a model suggest's shared fit (``tuneforge_suggest_phase_seconds``).
PHASES = ("snapshot", "fit", "claim")
#: Phases counted: a batch has one claim; ``stale`` counts the attempts thrown away.
COUNTED_PHASES = {"claim": "batches", "stale": "stale"}


async def lock_totals(http: httpx.AsyncClient, urls: list[str]) -> dict[str, float]:
    """The study-lock histograms' count and sums, and the seconds of each suggest phase
    with the number of batches (``batches``) and of stale attempts (``stale``), added over
    the servers' ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = dict.fromkeys([*LOCK_SERIES.values(), *PHASES, "batches", "stale"], 0.0)
    for url in urls:
        r = await http.get(f"{url}/metrics")
        r.raise_for_status()
        for family in text_string_to_metric_families(r.text):
            for sample in family.samples:
                if sample.name in LOCK_SERIES:
                    totals[LOCK_SERIES[sample.name]] += sample.value
                elif sample.name == "tuneforge_suggest_phase_seconds_sum":
                    if sample.labels["phase"] in PHASES:
                        totals[sample.labels["phase"]] += sample.value
                elif sample.name == "tuneforge_suggest_phase_seconds_count":
                    counted = COUNTED_PHASES.get(sample.labels["phase"])
                    if counted is not None:
                        totals[counted] += sample.value
    return totals


async def lock_window(http: httpx.AsyncClient, urls: list[str], window: Window) -> dict[str, float]:
    """The study locks of the timed window: the totals at its end less those at its start."""
    await asyncio.sleep(max(0.0, window.timed_from - time.time()))
    start = await lock_totals(http, urls)
    await asyncio.sleep(max(0.0, window.end - time.time()))
    end = await lock_totals(http, urls)
    return {k: end[k] - start[k] for k in start}
