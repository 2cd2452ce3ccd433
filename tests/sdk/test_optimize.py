"""``study.optimize`` with real worker processes against a live server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tuneforge
from tests.conftest import LiveServer
from tests.sdk import objectives
from tests.sdk.conftest import clean_env, float_study


@pytest.fixture
def client(sdk_live: LiveServer) -> tuneforge.Client:
    with tuneforge.Client(sdk_live.url) as c:
        yield c


def test_n_trials_is_shared_by_the_workers(client: tuneforge.Client, name: str) -> None:
    study = client.create_study(float_study(name))
    result = study.optimize(objectives.quadratic, n_trials=6, n_workers=2, progress=False)
    assert result.n_completed == 6 and result.n_trials == 6
    trials = list(study.trials())
    assert [t.state for t in trials] == ["completed"] * 6
    assert result.best is not None
    assert result.best.values == min((t.values for t in trials), key=lambda v: v["loss"])
    ids = {t.data.client_id for t in trials}
    assert client.client_id not in ids
    assert all(re.fullmatch(r"[^:]+:\d+:[0-9a-f]{6}", i or "") for i in ids)


def test_trial_pruned_completes_with_the_last_values(client: tuneforge.Client, name: str) -> None:
    rule = {"rule": "median", "n_startup_trials": 2, "min_peers": 1}
    study = client.create_study(float_study(name, early_stopping=rule, seed=3))
    result = study.optimize(objectives.reporting, n_trials=10, progress=False)
    assert result.n_pruned >= 1 and result.n_completed + result.n_pruned == 10
    for trial in study.trials(state="pruned"):
        last = trial.data.measurements[-1].values
        assert trial.values == last and len(trial.data.measurements) < 3


def test_caught_errors_fail_the_trial_and_go_on(client: tuneforge.Client, name: str) -> None:
    study = client.create_study(float_study(name))
    result = study.optimize(
        objectives.fails_on_positive, n_trials=6, n_workers=2, progress=False, catch=(ValueError,)
    )
    assert result.n_trials == 6
    failed = list(study.trials(state="failed"))
    assert len(failed) == result.n_failed and all(t.params["x"] > 0 for t in failed)
    assert all(re.fullmatch(r"ValueError: x=.* is positive", t.data.reason or "") for t in failed)
    assert study.refresh().trial_counts["requested"] == 0  # failed with retry=False


def test_an_uncaught_error_stops_and_is_raised(client: tuneforge.Client, name: str) -> None:
    study = client.create_study(float_study(name))
    with pytest.raises(ValueError, match="is positive") as info:
        study.optimize(objectives.fails_on_positive, n_trials=40, progress=False)
    assert any("raised in an optimize worker" in note for note in info.value.__notes__)
    counts = study.refresh().trial_counts
    assert counts["failed"] == 1 and counts["active"] == 0 and counts["requested"] == 0


def test_dict_results_budget_and_timeout(client: tuneforge.Client, name: str) -> None:
    spec = float_study(name, max_trials=50)
    spec["metrics"].append({"name": "size", "goal": "minimize", "role": "tracked"})
    study = client.create_study(spec)
    result = study.optimize(objectives.two_metrics, n_trials=3, progress=False)
    assert result.n_completed == 3
    assert all(set(t.values or {}) == {"loss", "size"} for t in study.trials())
    slow = study.optimize(objectives.slow_quadratic, n_workers=2, timeout=1.5, progress=False)
    assert slow.n_completed < 47 and slow.elapsed_seconds < 15  # the timeout, not the budget
    assert study.refresh().trial_counts["active"] == 0


def test_a_float_needs_a_single_objective(client: tuneforge.Client, name: str) -> None:
    spec = float_study(name)
    spec["metrics"].append({"name": "size", "goal": "minimize"})
    study = client.create_study(spec)
    with pytest.raises(ValueError, match="2 objectives"):
        study.optimize(objectives.quadratic, n_trials=1, progress=False)
    result = study.optimize(objectives.two_metrics, n_trials=2, progress=False)
    assert result.n_completed == 2 and result.best is not None  # first of the Pareto front


UNGUARDED_SCRIPT = """
import sys, tuneforge
study = tuneforge.Client(sys.argv[1]).get_study(int(sys.argv[2]))
study.optimize(lambda trial: 1.0, n_trials=1, progress=False)
"""


def test_a_script_without_main_guard_gets_a_clear_error(
    client: tuneforge.Client, name: str, tmp_path: Path
) -> None:
    study = client.create_study(float_study(name))
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), client.url, str(study.id)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert run.returncode != 0
    assert "if __name__ == '__main__':" in run.stderr.strip().splitlines()[-1]
    assert study.refresh().trial_counts["active"] == 0
