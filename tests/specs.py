"""Study specs shared by the tests."""

from __future__ import annotations

from typing import Any


def small_spec(name: str = "study", **overrides: Any) -> dict[str, Any]:
    """A five-parameter study with a condition, like the example in docs/api.md."""
    spec: dict[str, Any] = {
        "name": name,
        "parameters": [
            {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "scale": "log"},
            {"name": "depth", "type": "int", "low": 1, "high": 12},
            {"name": "batch", "type": "discrete", "values": [16, 32, 64]},
            {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
            {
                "name": "momentum",
                "type": "float",
                "low": 0.0,
                "high": 0.99,
                "condition": {"parent": "optimizer", "values": ["sgd"]},
            },
        ],
        "metrics": [{"name": "accuracy", "goal": "maximize"}],
    }
    spec.update(overrides)
    return spec


def score(params: dict[str, Any]) -> float:
    """A deterministic stand-in objective."""
    return round(1.0 - abs(params["depth"] - 6) / 12 - abs(params["batch"] - 32) / 640, 6)
