"""Checkpoints from the SDK (sync and async, live server and in-process): save, load,
load another trial's, and the pause / resume cycle of an ASHA study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tuneforge
from tests.sdk.conftest import float_study


def test_save_and_load_checkpoints(sdk: Any, name: str) -> None:
    study = sdk.create_study(float_study(name, max_trials=3))
    first, second = study.suggest(2)
    assert first.resume_from_step is None
    assert first.load_checkpoint() is None
    assert first.load_checkpoint(default={"epoch": 0}) == {"epoch": 0}
    first.report(4, loss=1.0)
    info = first.save_checkpoint({"weights": [1.0, 2.0], "epoch": 4})
    assert info.step == 4 and info.size_bytes > 0  # the last reported step by default
    assert first.load_checkpoint() == {"weights": [1.0, 2.0], "epoch": 4}
    assert second.load_checkpoint(trial=first.number)["epoch"] == 4  # a donor's state
    second.save_checkpoint(b"raw bytes too", step=9)
    assert second.load_checkpoint() == b"raw bytes too"
    first.complete(loss=1.0)
    assert first.load_checkpoint()["epoch"] == 4  # readable after the trial ended


def _asha_study(name: str) -> dict[str, Any]:
    return float_study(
        name,
        max_trials=6,
        fidelity={"name": "epochs", "min": 1, "max": 9},
        early_stopping={"rule": "asha", "reduction_factor": 3},
    )


def test_paused_trial_resumes_from_its_checkpoint(sdk: Any, name: str) -> None:
    """One worker's loop: train (resuming from the checkpoint when told), save, report;
    trials paused at the first rung come back promoted, with their checkpoint."""
    study = sdk.create_study(_asha_study(name))
    paused: set[int] = set()
    resumed: list[int] = []
    for _ in range(40):
        got = study.suggest()
        if not got:
            break
        (trial,) = got
        start = 0
        if trial.resume_from_step is not None:
            state = trial.load_checkpoint()
            assert state == {"x": trial.params["x"], "epoch": trial.resume_from_step}
            assert trial.number in paused
            resumed.append(trial.number)
            start = state["epoch"]
        loss = abs(trial.params["x"])
        for epoch in range(start + 1, 10):
            stop = trial.report(epoch, loss=loss / epoch)
            trial.save_checkpoint({"x": trial.params["x"], "epoch": epoch})
            if stop:
                break
        trial.complete(loss=loss / epoch)
        if trial.state == "paused":
            paused.add(trial.number)
    assert resumed, "a paused trial must come back promoted"
    assert study.refresh().state == "completed"
    assert all(t.state in ("completed", "pruned") for t in study.trials())


def test_a_database_beside_another_sees_none_of_its_checkpoints(tmp_path: Path) -> None:
    spec = float_study("neighbours", max_trials=1)
    with tuneforge.local(tmp_path / "first.db") as first:
        (trial,) = first.create_study(spec).suggest()
        trial.save_checkpoint({"from": "first.db"}, step=3)
    with tuneforge.local(tmp_path / "second.db") as second:
        (fresh,) = second.create_study(spec).suggest()  # the same study id and number
        assert fresh.resume_from_step is None
        assert fresh.load_checkpoint() is None
