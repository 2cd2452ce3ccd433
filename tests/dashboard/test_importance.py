"""Importance bars and the contour of the two most important parameters, drawn from
``GET /api/v1/studies/{id}/importance`` (issue 19, point 2), and what the page says when
the server cannot give the importance."""

from __future__ import annotations

from pathlib import Path

from tests.dashboard import seed
from tests.dashboard.conftest import Page, Seeded, trace
from tests.specs import small_spec

TIMES = "\u00d7"  # the multiplication sign the page puts between two parameters


def test_without_importance_the_page_says_so_and_draws_the_rest(page: Page, seeded: Seeded) -> None:
    study = seed.create(seeded.api, small_spec("one-trial", algorithm="random"))
    body = {
        "params": {"lr": 0.01, "depth": 3, "batch": 16, "optimizer": "adam"},
        "state": "completed",
        "values": {"accuracy": 0.5},
    }
    seed.ok(seeded.api.post(f"{seed.API}/studies/{study}/trials", json=body))
    p = page.open(f"#/study/{study}")
    page.show("plot-importance")
    p.wait_for_function(  # the importance is asked for once the trials are there
        "() => document.getElementById('importance-status').textContent"
        ".startsWith('importance not available')"
    )
    page.show("plot-contour")
    assert p.is_hidden("#plot-importance") and p.is_hidden("#plot-contour")
    assert "two most important parameters are not known" in p.inner_text("#contour-status")
    assert len(trace(page.plot("plot-history"), "trials")["x"]) == 1


def test_importance_bars_and_contour_follow_the_importance_endpoint(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    reply = seeded.api.get(f"{seed.API}/studies/{seeded.plain}/importance")
    importance = seed.ok(reply)
    names = [p["name"] for p in importance["params"]]
    p = page.open(f"#/study/{seeded.plain}")

    bars = page.plot("plot-importance")
    assert trace(bars, "parameters")["y"] == names[::-1]  # most important on top
    pairs = [f" {TIMES} ".join(i["params"]) for i in importance["interactions"]]
    assert trace(bars, "interactions")["y"] == pairs[::-1]

    top = names[:2]
    done = [
        t
        for t in seed.all_trials(seeded.api, seeded.plain)
        if t["state"] == "completed" and all(t["params"].get(n) is not None for n in top)
    ]
    contour = page.plot("plot-contour")
    assert len(trace(contour, "trials")["x"]) == len(done)
    assert p.inner_text("#contour-status").startswith(f"{top[0]} {TIMES} {top[1]}")
    page.screenshot(tmp_path, "importance", plot="plot-importance")
    page.screenshot(tmp_path, "contour", plot="plot-contour")
