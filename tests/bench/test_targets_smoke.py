"""bench.targets: the verdict over several runs, and the cells' flags as bench.service reads
them (the cells themselves need PostgreSQL and minutes: `python -m bench.targets`)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.service import parse
from bench.targets import AUTO_OPTUNA_RATIO, AUTO_RATIO, CELLS, TARGETS, report, verdicts


def _auto(random_rate: float, auto_rate: float, complete_p99: float) -> list[dict[str, Any]]:
    return [
        {"algorithm": "random", "trials_per_s": random_rate, "complete_p99_ms": 40.0},
        {"algorithm": "auto", "trials_per_s": auto_rate, "complete_p99_ms": complete_p99},
        {"algorithm": "optuna-random", "trials_per_s": 25.0},
    ]


def test_the_verdict_is_the_median_and_counts_the_runs_that_met() -> None:
    runs = {"auto": [_auto(100, 40, 120), _auto(100, 60, 90), _auto(100, 55, 95)]}
    results = {r["target"]: r for r in verdicts(runs)}
    assert set(results) == {"auto-complete", "auto-ratio", "auto-optuna"}  # the cells that ran
    ratio = results["auto-ratio"]
    assert ratio["runs"] == pytest.approx([0.40, 0.60, 0.55])
    assert ratio["median"] == pytest.approx(0.55)
    assert ratio["runs_met"] == 2 and ratio["met"]
    complete = results["auto-complete"]
    assert complete["median"] == 95.0 and complete["runs_met"] == 2 and complete["met"]
    table = report(list(results.values()))
    assert "| 2 of 3 | **met** |" in table
    optuna = results["auto-optuna"]  # the reference that tuneforge's changes do not move
    assert optuna["runs"] == pytest.approx([1.6, 2.4, 2.2]) and optuna["met"]


def test_a_median_past_the_bound_is_not_met_however_one_run_went() -> None:
    runs = {"tpe": [[{"algorithm": "tpe", "suggest_p99_ms": v}] for v in (40.0, 55.0, 61.0)]}
    (tpe,) = verdicts(runs)
    assert tpe["median"] == 55.0 and tpe["runs_met"] == 1 and not tpe["met"]
    assert "**not met**" in report([tpe])


def test_the_optuna_ratio_reads_the_optuna_row_of_the_same_run() -> None:
    rows = [
        {"algorithm": "random", "trials_per_s": 80.0},
        {"algorithm": "optuna-random", "trials_per_s": 16.0},
    ]
    (optuna,) = verdicts({"optuna": [rows]})
    assert optuna["median"] == pytest.approx(5.0) and optuna["met"]


def test_the_ratios_asked_of_auto_follow_from_the_issue() -> None:
    assert AUTO_RATIO == AUTO_OPTUNA_RATIO == 0.52
    assert {t.cell for t in TARGETS} == set(CELLS)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_each_cell_is_one_bench_service_cell(cell: str) -> None:
    args = parse(CELLS[cell])
    if cell == "tpe":
        assert args.clients == [] and args.large == [10_000]
        assert args.large_algorithms == ["tpe", "random"] and args.large_clients == 8
    else:
        assert args.large == [] and args.backends == ["postgresql"]
        assert args.servers == [1] and args.layouts == ["one"]
        clients = [16] if cell == "auto" else [32]
        assert args.clients == clients and args.optuna_clients == clients
        assert args.optuna == ["random"]
