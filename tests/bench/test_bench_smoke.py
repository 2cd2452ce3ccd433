"""Smoke test of the optimizer benchmark: a tiny quick run through the real API."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.optimizers import main
from bench.problems import all_problems
from bench.runners import run


def test_quick_subset_writes_every_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.md"
    argv = [
        "--quick",
        "--problems", "branin-2",
        "--seeds", "1",
        "--optimizers", "tf-random", "tf-auto", "optuna-tpe",
        "--budget", "10",
        "--workers", "1",
        "--latency-levels", "20",
        "--latency-reps", "2",
        "--no-batch",
        "--parallel-workers", "2", "8",
        "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    assert printed.strip() == text.strip()
    assert "- command: `python -m bench.optimizers --quick --problems branin-2" in text
    for section in (
        "## Final best value",
        "## Normalized score",
        "## tuneforge auto vs Optuna",
        "## Suggest latency vs history size",
        "## auto with 1 to N workers (equal trials)",
        "## 8-way parallel auto vs sequential auto",
        "## 8-way parallel: every optimizer against its own sequential runs",
    ):
        assert section in text
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")}
    assert {"branin-2", "mean (all)", "20"} <= rows
    final = next(line for line in text.splitlines() if line.startswith("| branin-2 | regret"))
    cells = [c.strip() for c in final.strip("|").split("|")]
    assert len(cells) == 2 + 3 and all(float(c) >= 0 for c in cells[2:])  # 1 seed: no "±"
    header = next(line for line in text.splitlines() if line.startswith("| problem | reported"))
    assert [c.strip() for c in header.strip("|").split("|")][2:] == [
        "tf-random",
        "tf-auto",
        "optuna-tpe",
    ]
    assert "auto vs optuna-tpe: " in text
    assert "- 8-way auto vs 8-way optuna-tpe: " in text
    peers = next(line for line in text.splitlines() if line.startswith("| problem | tf-auto seq"))
    assert "optuna-tpe 8-way" in peers and "tf-random" not in peers
    workers = [line for line in text.splitlines() if line.startswith("| ") and "|" in line[2:]]
    counts = [line.split("|")[1].strip() for line in workers]
    assert counts[counts.index("workers") + 1 :][:3] == ["1", "2", "8"]
    sequential = next(line for line in workers if line.startswith("| 1 |"))
    assert sequential.rstrip(" |").endswith(("1.00", "n/a (sequential score 0)"))
    assert "parallel (2 workers)" in text and "parallel (8 workers)" in text


def test_run_modes_name_their_worker_count() -> None:
    problem = all_problems()["branin-2"]
    result = run(problem, "tf-random", 1, 6, "par3")
    assert result.mode == "par3" and len(result.values) == 6
    with pytest.raises(ValueError, match="parN with N >= 2"):
        run(problem, "tf-random", 1, 6, "par1")


def test_optuna_parallel_runs_are_seeded() -> None:
    problem = all_problems()["branin-2"]
    first = run(problem, "optuna-tpe", 3, 12, "par8")
    second = run(problem, "optuna-tpe", 3, 12, "par8")
    assert first.values == second.values and len(first.values) == 12
    assert first.mode == "par8"
    assert first.values != run(problem, "optuna-tpe", 3, 12).values  # not the sequential run


@pytest.mark.parametrize("optimizer", ["tf-auto", "optuna-tpe"])
def test_runs_are_deterministic_given_the_seed(optimizer: str) -> None:
    problem = all_problems()["branin-2"]
    first = run(problem, optimizer, 3, 12)
    second = run(problem, optimizer, 3, 12)
    assert first.values == second.values
    assert len(first.values) == 12


def test_a_peer_that_cannot_run_here_is_named_not_silently_dropped() -> None:
    from bench.optimizers import parse_args
    from bench.runners import missing_requirement

    why = missing_requirement("optuna-gp")
    if why is None:  # torch installed: the GP peer runs and is never reported as missing
        assert parse_args(["--quick", "--optimizers", "optuna-gp"]).not_run == []
        return
    assert "torch" in why and ".[dev,bench]" in why
    with pytest.raises(SystemExit):  # asked for by name: an error, not a silent skip
        parse_args(["--quick", "--optimizers", "optuna-gp"])
    args = parse_args(["--quick"])  # the default set: run what can run, say what not
    assert "optuna-gp" not in args.optimizers and args.not_run == [why]
