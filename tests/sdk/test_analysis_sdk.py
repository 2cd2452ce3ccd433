"""``study.add_trial`` and ``study.importance()`` with the sync and the async client."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tuneforge


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": [
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
            {"name": "width", "type": "int", "low": 8, "high": 64},
            {"name": "act", "type": "categorical", "values": ["relu", "tanh"]},
        ],
        "metrics": [{"name": "loss", "goal": "minimize"}],
    }


def test_importance_of_recorded_trials(sdk: Any, name: str) -> None:
    study = sdk.create_study(spec(name))
    rng = np.random.default_rng(1)
    for i in range(30):
        params = {
            "lr": float(10 ** rng.uniform(-4, 0)),
            "width": int(rng.integers(8, 65)),
            "act": "relu" if i % 2 else "tanh",
        }
        loss = abs(np.log10(params["lr"]) + 2) + (0.5 if params["act"] == "tanh" else 0.0)
        trial = study.add_trial(params, {"loss": loss}, metadata={"source": "test"})
        assert trial.state == "completed" and trial.data.metadata == {"source": "test"}
    reply = study.importance()
    assert isinstance(reply, tuneforge.ImportanceReply)
    assert reply.objective == "loss" and reply.n_trials == 30
    assert reply.params[0].name == "lr"
    assert {p.name for p in reply.params} == {"lr", "width", "act"}
    assert len(reply.interactions) == 3
    with pytest.raises(tuneforge.InvalidSpec) as info:
        study.importance("accuracy")
    assert info.value.status == 422


def test_importance_needs_completed_trials(sdk: Any, name: str) -> None:
    study = sdk.create_study(spec(name))
    with pytest.raises(tuneforge.Conflict) as info:
        study.importance()
    assert "at least 5" in str(info.value)
    queued = study.add_trial({"lr": 0.01, "width": 8, "act": "relu"})
    assert queued.state == "requested"
