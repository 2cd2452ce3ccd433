"""Smoke test of the multi-objective benchmark: tiny runs through the real API and Optuna,
and the report's tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.mo_problems import mo_problems
from bench.population_mo import execute, hypervolume_history, main


def test_runs_agree_with_the_endpoint_and_the_report_is_written(tmp_path: Path) -> None:
    runs = [execute(("zdt1", name, 0, 8)) for name in ("tf-nsga2", "optuna-nsga2")]
    for run in runs:
        assert len(run["points"]) == 8 and len(run["hypervolume"]) == 8
        assert run["hypervolume"] == sorted(run["hypervolume"])  # never shrinks
    log = tmp_path / "runs.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in runs))
    out = tmp_path / "mo.md"
    assert main(["--report", str(log), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| zdt1 | 8 |" in text and "tf-nsga2" in text and "optuna-nsga2" in text
    assert "at least Optuna's best" in text


def test_hypervolume_history_and_the_true_fronts() -> None:
    assert np.allclose(hypervolume_history([[0.5, 0.5], [2, 0], [0.2, 0.9]], [1, 1]),
                       [0.25, 0.25, 0.25 + 0.3 * 0.1])  # fmt: skip
    problems = mo_problems()
    # ZDT1's front f2 = 1 - sqrt(f1) encloses 1/3 of the unit square below it
    assert np.isclose(problems["zdt1"].best_hypervolume, 1.1 * 11 - 1 / 3, atol=1e-3)
    assert np.isclose(problems["zdt2"].best_hypervolume, 1.1 * 11 - 2 / 3, atol=1e-3)
    values = problems["dtlz2"].evaluate({f"x{i}": 0.5 for i in range(6)})
    assert np.isclose(np.linalg.norm(values), 1.0)  # g = 0: on the unit sphere
