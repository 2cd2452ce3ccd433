"""Smoke test of the early-stopping benchmark: a tiny ``--quick`` run through the real service,
and the properties its numbers rest on (equal resource, exact resumption)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from bench.early_stopping import main
from bench.es_runs import Budget, best_curve, first_reaching, run
from bench.es_tasks import MAX_STEPS, all_tasks


def test_quick_run_reports_every_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png, raw = tmp_path / "es.md", tmp_path / "es.png", tmp_path / "es.json"
    argv = [
        "--quick",
        "--configs", "2",
        "--methods", "random", "tf-asha", "optuna-sha",
        "--parallel", "2",
        "--parallel-methods", "tf-asha",
        "--processes", "1",
        "--out", str(out),
        "--plot", str(png),
        "--json", str(raw),
    ]  # fmt: skip
    assert main(argv) == 0  # non-zero when any run reported an error
    text = out.read_text()
    assert text.strip() == capsys.readouterr().out.strip()
    again = tmp_path / "again.md"  # the saved results render the same report
    assert main(["--from-json", str(raw), "--out", str(again), "--plot", str(png)]) == 0
    assert again.read_text() == text
    capsys.readouterr()
    assert "- command: `python -m bench.early_stopping --quick --configs 2" in text
    for section in (
        "### Best fully trained configuration at equal resource (1 worker)",
        "### Resource to reach random search's final score",
        "### Best score along the way",
        "### 2 workers",
    ):
        assert section in text
    header = next(line for line in text.splitlines() if line.startswith("| task | random"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "task",
        "random",
        "tf-asha",
        "optuna-sha",
    ]
    busy = next(line for line in text.splitlines() if line.startswith("| sim | tf-asha |"))
    assert "%" in busy
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("method", ["tf-asha", "optuna-sha", "random"])
def test_every_method_spends_exactly_the_budget(method: str) -> None:
    log = run(all_tasks()["sim"], method, seed=1, configs=2, workers=1)
    assert log.errors == []
    assert log.steps == log.budget == 2 * MAX_STEPS
    if method == "tf-asha":  # paused trials come back through the service, from a checkpoint
        assert log.configs > 2 and log.checkpoint_bytes > 0


def test_a_resumed_model_continues_its_curve_exactly() -> None:
    """A pickled model (what save_checkpoint stores) trains on to the same scores."""
    task = all_tasks()["sgd"]
    params = {
        "loss": "log_loss",
        "alpha": 1e-4,
        "l1_ratio": 0.2,
        "learning_rate": "invscaling",
        "eta0": 0.05,
    }
    straight = task.start(params, seed=3)
    expected = [task.step(straight) for _ in range(4)]
    model = task.start(params, seed=3)
    got = [task.step(model) for _ in range(2)]
    model = pickle.loads(pickle.dumps(model))
    got += [task.step(model) for _ in range(2)]
    assert got == expected and model.steps == 4


def test_budget_and_curves() -> None:
    budget = Budget(2)
    assert [budget.take(), budget.take(), budget.take()] == [True, True, False]
    curve = [(30, 0.5), (10, 0.6), (50, 0.7)]
    assert best_curve(curve) == [(10, 0.6), (30, 0.6), (50, 0.7)]
    assert first_reaching(curve, 0.65) == 50 and first_reaching(curve, 0.9) is None
