"""The hypervolume card of a multi-objective study: the API's history drawn point by point,
its reference point stated, new completed trials drawn without a reload."""

from __future__ import annotations

from pathlib import Path

from tests.dashboard import seed
from tests.dashboard.conftest import Page, Seeded, trace

API = seed.API


def two_objective_study(seeded: Seeded, n: int) -> int:
    spec = {
        "name": "hv-live",
        "parameters": [{"name": "w", "type": "float", "low": 0.0, "high": 1.0}],
        "metrics": [
            {"name": "accuracy", "goal": "maximize"},
            {"name": "latency", "goal": "minimize"},
        ],
        "algorithm": "random",
        "hypervolume_reference": {"accuracy": 0.0, "latency": 2.0},
    }
    study = seed.create(seeded.api, spec)
    for i in range(n):
        w = (i * 7 % n) / n
        add(seeded, study, w, {"accuracy": round(w, 4), "latency": round(w * w + 0.3, 4)})
    return study


def add(seeded: Seeded, study: int, w: float, values: dict[str, float]) -> None:
    body = {"params": {"w": w}, "state": "completed", "values": values}
    seed.ok(seeded.api.post(f"{API}/studies/{study}/trials", json=body))


def test_the_hypervolume_history_matches_the_api_and_grows_live(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    study = two_objective_study(seeded, 12)
    p = page.open(f"#/study/{study}")
    p.evaluate("window.notReloaded = true")
    served = seed.ok(seeded.api.get(f"{API}/studies/{study}/hypervolume"))
    drawn = trace(page.plot("plot-hypervolume"), "hypervolume")
    assert drawn["y"] == [h["hypervolume"] for h in served["history"]]
    assert drawn["customdata"] == [h["number"] for h in served["history"]]
    status = p.inner_text("#hypervolume-status")
    assert "accuracy 0, latency 2" in status and "from the spec" in status, status

    add(seeded, study, 0.99, {"accuracy": 0.99, "latency": 0.05})  # dominates every trial
    p.wait_for_function(
        "() => { const d = document.getElementById('plot-hypervolume');"
        " return d.data && d.data[0].y.length === 13; }",
        timeout=15_000,
    )
    assert p.evaluate("window.notReloaded") is True, "the page was reloaded"
    after = seed.ok(seeded.api.get(f"{API}/studies/{study}/hypervolume"))
    drawn = trace(page.plot("plot-hypervolume"), "hypervolume")
    assert drawn["y"][-1] == after["hypervolume"] > served["hypervolume"]
    page.screenshot(tmp_path, "hypervolume", plot="plot-hypervolume")


def test_an_inferred_reference_is_stated_and_one_objective_has_no_card(
    page: Page, seeded: Seeded
) -> None:
    p = page.open(f"#/study/{seeded.pareto}")
    page.show("plot-hypervolume")
    assert "inferred: the worst value" in p.inner_text("#hypervolume-status")
    trials = seed.all_trials(seeded.api, seeded.pareto)
    assert len(trace(page.plot("plot-hypervolume"), "hypervolume")["y"]) == len(trials)
    p = page.open(f"#/study/{seeded.plain}")
    assert p.locator("#card-hypervolume").count() == 0
