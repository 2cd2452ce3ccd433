"""Rung-based training from the SDK: ``trial.steps()`` / ``trial.budgets()`` (sync and
async, live and in-process) and ``study.optimize`` with asha and hyperband studies, whose
paused trials come back promoted and train on from their checkpoints.

The optimize tests count the epochs the objective really trains (one line per epoch in
a log file the worker processes append to): every (trial, epoch) is trained exactly once
(a resumed trial does not start over, and no trial runs on two workers at once), and far
fewer epochs are trained than running every trial to the end would take.
"""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

import tuneforge
from tests.conftest import LiveServer
from tests.sdk import objectives
from tests.sdk.conftest import float_study

EPOCHS = 27


def rung_study(name: str, rule: str, max_trials: int, **extra: Any) -> dict[str, Any]:
    return float_study(
        name,
        max_trials=max_trials,
        fidelity={"name": "epochs", "min": 1, "max": EPOCHS},
        early_stopping={"rule": rule, "reduction_factor": 3},
        **extra,
    )


# ---------------------------------------------------------------- trial.steps / budgets


def test_steps_and_budgets_follow_the_fidelity_and_the_resume(sdk: Any, name: str) -> None:
    spec = float_study(
        name,
        max_trials=3,
        fidelity={"name": "epochs", "min": 1, "max": 9},
        early_stopping={"rule": "asha", "reduction_factor": 3},
    )
    study = sdk.create_study(spec)
    trials = study.suggest(3)
    first = trials[0]
    assert first.fidelity.name == "epochs" and first.fidelity.reduction_factor == 3
    assert first.steps() == range(1, 10)
    assert first.steps(4) == range(1, 5) and first.steps(start=3) == range(3, 10)
    assert first.budgets() == [1, 3, 9]
    # Three trials reach rung 1 in order of x: the best goes on, the others pause.
    for trial in sorted(trials, key=lambda t: abs(t.params["x"]), reverse=True):
        stop = trial.report(1, loss=abs(trial.params["x"]))
        if stop:
            trial.save_checkpoint({"epoch": 1})
        trial.complete(loss=abs(trial.params["x"]))
    states = sorted(t.state for t in trials)
    assert states == ["completed", "paused", "paused"], states
    # Nothing runs and the budget is spent: the best paused trial comes back.
    (resumed,) = study.suggest()
    assert resumed.resume_from_step == 1 and resumed.load_checkpoint() == {"epoch": 1}
    assert resumed.steps() == range(2, 10) and resumed.budgets() == [3, 9]
    resumed.complete(loss=0.0)


def test_steps_need_a_fidelity_or_a_stop(sdk: Any, name: str) -> None:
    study = sdk.create_study(float_study(name, max_trials=1))
    (trial,) = study.suggest()
    assert trial.fidelity is None
    assert trial.steps(3) == range(1, 4)
    with pytest.raises(ValueError, match="no fidelity"):
        trial.steps()
    with pytest.raises(ValueError, match="no fidelity"):
        trial.budgets()
    trial.complete(loss=1.0)


def test_budgets_round_rungs_up_to_whole_steps(sdk: Any, name: str) -> None:
    spec = float_study(
        name,
        max_trials=1,
        fidelity={"name": "rows", "min": 2.5, "max": 100},
        early_stopping={"rule": "hyperband"},  # reduction_factor 3 by default
    )
    (trial,) = sdk.create_study(spec).suggest()
    assert trial.fidelity.reduction_factor == 3
    assert trial.budgets() == [3, 8, 23, 68, 100]  # 2.5, 7.5, 22.5, 67.5 rounded up
    trial.complete(loss=1.0)


# ---------------------------------------------------------------- study.optimize


@pytest.fixture
def client(sdk_live: LiveServer) -> tuneforge.Client:
    with tuneforge.Client(sdk_live.url) as c:
        yield c


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_trained_once(study: tuneforge.Study, log: list[dict[str, Any]]) -> dict[int, Any]:
    """The study ended with every trial finished, and every (trial, epoch) was trained
    exactly once, in order, with the trial's own params: resumed trials went on from their
    checkpoint (the objective checks it holds ``resume_from_step``) and no trial ran on two
    workers at once. Returns the trials by number."""
    study.refresh()
    assert study.state == "completed"
    trials = {t.number: t for t in study.trials()}
    assert {t.state for t in trials.values()} <= {"completed", "pruned"}
    epochs, times = defaultdict(list), defaultdict(list)
    for line in log:
        epochs[line["trial"]].append(line["epoch"])
        times[line["trial"]].append(line["t"])
        assert line["x"] == trials[line["trial"]].params["x"]  # same params when resumed
    assert set(epochs) == set(trials)
    for number, trained in epochs.items():
        assert trained == list(range(1, len(trained) + 1)), (number, trained)
        assert [m.step for m in trials[number].data.measurements] == trained
        assert times[number] == sorted(times[number])  # epoch after epoch, never two at once
    assert max(len(e) for e in epochs.values()) == EPOCHS  # someone trained to the end
    return trials


@pytest.mark.parametrize("rule", ["asha", "hyperband"])
def test_optimize_resumes_promoted_trials_from_their_checkpoints(
    client: tuneforge.Client, name: str, rule: str, tmp_path: Path
) -> None:
    n_trials = 18
    study = client.create_study(rung_study(name, rule, n_trials, seed=5))
    log = tmp_path / "epochs.jsonl"
    objective = functools.partial(objectives.rung_training, log=str(log))
    result = study.optimize(objective, n_workers=3, progress=False)
    log_lines = read_log(log)
    trials = check_trained_once(study, log_lines)
    # the result counts each trial once, by its final state; some were resumed
    assert result.counts == dict(Counter(t.state for t in trials.values()))
    assert result.n_paused == 0 and result.n_trials == n_trials
    resumed = [t for t in trials.values() if t.data.resume_from_step is not None]
    assert result.n_resumed >= len(resumed) >= 1
    trained, full = len(log_lines), n_trials * EPOCHS
    print(f"{rule}: {trained} epochs trained of {full} ({trained / full:.0%}), {result.counts}")
    assert trained < 0.6 * full


def test_optimize_n_trials_counts_new_trials_and_a_later_call_resumes(
    client: tuneforge.Client, name: str, tmp_path: Path
) -> None:
    """Without max_trials, n_trials caps the new trials; the paused ones wait for the next
    call. Nine trials at rung 1 let at most three reach rung 3 and at most one rung 9, where
    it pauses: so once the budget is raised to 9, the end of the study must promote the best
    paused trial (docs/early-stopping.md), and the second call resumes at least one trial of
    the first."""
    study = client.create_study(rung_study(name, "asha", max_trials=None, seed=2))
    log = tmp_path / "epochs.jsonl"
    objective = functools.partial(objectives.rung_training, log=str(log))
    first = study.optimize(objective, n_trials=6, n_workers=2, progress=False)
    assert study.refresh().state == "active"
    first_lines = read_log(log)
    assert len({line["trial"] for line in first_lines}) == 6  # resumed ones are among them
    assert first.n_paused == study.trial_counts["paused"] >= 1
    assert first.n_trials == 6

    study.update(max_trials=9)
    second = study.optimize(objective, n_workers=2, progress=False)
    lines = read_log(log)
    assert len({line["trial"] for line in lines}) == 9
    touched = {line["trial"] for line in lines[len(first_lines) :]}
    carried = {line["trial"] for line in first_lines} & touched
    assert carried and second.n_resumed >= len(carried)
    assert second.n_trials >= len(touched)  # plus paused ones the end of the study pruned
    check_trained_once(study, lines)
