"""Studies for the dashboard tests, made through the REST API of a live server.

- ``asha``: one objective, a fidelity and the ASHA rule, run by two simulated workers
  until a few suggestions before its budget ends, so it holds completed, paused,
  resumed and (from the rule) stopped trials, each with measurements;
- ``plain``: one objective, ``n`` trials by two workers with measurements, a held-out
  evaluation stored, two trials left running;
- ``pareto``: two objectives (accuracy up, latency down), finished trials recorded.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from tests.specs import score, small_spec

API = "/api/v1"
MAX_EPOCHS = 9


def ok(reply: httpx.Response) -> Any:
    assert reply.status_code in (200, 201, 204), reply.text
    return reply.json() if reply.status_code != 204 else None


def create(api: httpx.Client, spec: dict[str, Any]) -> int:
    return int(ok(api.post(f"{API}/studies", json=spec))["id"])


def suggest(api: httpx.Client, study: int, client_id: str) -> dict[str, Any] | None:
    reply = ok(api.post(f"{API}/studies/{study}/trials/suggest", json={"client_id": client_id}))
    return reply["trials"][0] if reply["trials"] else None


def measure(api: httpx.Client, study: int, number: int, step: int, value: float) -> bool:
    reply = ok(
        api.post(
            f"{API}/studies/{study}/trials/{number}/measurements",
            json={"step": step, "values": {"accuracy": value}, "elapsed_seconds": 0.1 * step},
        )
    )
    return bool(reply["should_stop"])


def complete(api: httpx.Client, study: int, number: int, values: dict[str, float]) -> Any:
    return ok(api.post(f"{API}/studies/{study}/trials/{number}/complete", json={"values": values}))


def curve(params: dict[str, Any], epoch: int) -> float:
    """A learning curve towards ``score(params)``; speeds differ, so curves cross."""
    tau = 1.0 + 3.0 * (params["depth"] % 4)
    return round(score(params) * (1.0 - math.exp(-epoch / tau)), 6)


def asha_study(api: httpx.Client, name: str = "asha", turns: int = 14) -> int:
    """ASHA with rungs 1 and 3 of 9 epochs, ``turns`` suggestions by two workers: some
    trials are paused, some were resumed, some trained to the end."""
    spec = small_spec(
        name,
        max_trials=14,
        seed=3,
        algorithm="random",
        fidelity={"name": "epochs", "min": 1, "max": MAX_EPOCHS},
        early_stopping={"rule": "asha", "reduction_factor": 3},
    )
    study = create(api, spec)
    for turn in range(turns):
        trial = suggest(api, study, f"worker-{'ab'[turn % 2]}")
        if trial is None:
            break
        epoch = trial["resume_from_step"] or 0
        while True:
            epoch += 1
            value = curve(trial["params"], epoch)
            stop = measure(api, study, trial["number"], epoch, value)
            if stop or epoch == MAX_EPOCHS:
                complete(api, study, trial["number"], {"accuracy": value})
                break
    return study


def plain_study(api: httpx.Client, name: str = "plain", n: int = 24, running: int = 2) -> int:
    """``n`` finished trials with up to three measurements each (the threshold rule stops
    the slow learners: pruned), ``running`` left active."""
    rule = {"rule": "threshold", "lower": 0.2, "n_warmup_steps": 1}
    spec = small_spec(name, seed=1, algorithm="random", max_trials=n + running + 20)
    study = create(api, {**spec, "early_stopping": rule})
    for i in range(n + running):
        trial = suggest(api, study, f"host-{i % 2}:worker")
        assert trial is not None
        value = 0.0
        for step in range(3 if i < n else 1):  # running ones: one step, before the rule looks
            value = curve(trial["params"], step + 1)
            if measure(api, study, trial["number"], step, value):
                break
        if i < n:
            complete(api, study, trial["number"], {"accuracy": value})
    return study


def store_evaluation(api: httpx.Client, study: int, cv: float, test: float) -> None:
    body = {"trial_number": 0, "params": {"depth": 6}, "cv_score": cv, "test_score": test}
    ok(api.put(f"{API}/studies/{study}/evaluation", json=body))


def pareto_study(api: httpx.Client, name: str = "pareto", n: int = 30) -> int:
    """Two objectives; ``n`` finished trials recorded with values from a trade-off."""
    spec = {
        "name": name,
        "parameters": [{"name": "width", "type": "float", "low": 0.0, "high": 1.0}],
        "metrics": [
            {"name": "accuracy", "goal": "maximize"},
            {"name": "latency", "goal": "minimize"},
        ],
        "algorithm": "random",
        "seed": 2,
    }
    study = create(api, spec)
    for i in range(n):
        width = (i * 7 % n) / n
        noise = ((i * 13) % 5) / 50
        values = {"accuracy": round(width - noise, 4), "latency": round(width**2 + noise, 4)}
        body = {"params": {"width": width}, "state": "completed", "values": values}
        ok(api.post(f"{API}/studies/{study}/trials", json=body))
    return study


def all_trials(api: httpx.Client, study: int) -> list[dict[str, Any]]:
    return list(ok(api.get(f"{API}/studies/{study}/trials", params={"page_size": 1000}))["trials"])
