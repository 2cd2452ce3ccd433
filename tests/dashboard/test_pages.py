"""Every dashboard page in headless Chromium: each plot draws as many points as the API
holds trials, measurements and workers for it; the trial table pages, sorts and filters."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tests.dashboard import seed
from tests.dashboard.conftest import Page, Seeded, points, trace

GROUPS = {
    "completed": ["completed"],
    "stopped (pruned)": ["pruned"],
    "paused": ["paused"],
    "running": ["active", "stopping", "requested"],
    "failed / infeasible": ["failed", "infeasible"],
}


def study_of(seeded: Seeded, study_id: int) -> dict[str, Any]:
    return dict(seed.ok(seeded.api.get(f"{seed.API}/studies/{study_id}")))


def completed(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trials if t["state"] == "completed"]


def test_the_studies_list_shows_state_progress_best_and_algorithm(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    p = page.open("#/")
    rows = p.locator("#studies-table tbody tr")
    listed = seed.ok(seeded.api.get(f"{seed.API}/studies"))["studies"]
    assert rows.count() == len(listed) >= 3
    for study_id in (seeded.asha, seeded.plain, seeded.pareto):
        study = study_of(seeded, study_id)
        row = p.locator(f"#studies-table tr[data-id='{study_id}']")
        text = row.inner_text()
        assert study["name"] in text and study["state"] in text and "random" in text
        used = sum(n for s, n in study["trial_counts"].items() if s != "failed")
        assert row.locator(".progress").get_attribute("data-used") == str(used)
    plain = study_of(seeded, seeded.plain)
    best = plain["best_trial"]["values"]["accuracy"]
    best_cell = p.locator(f"#studies-table tr[data-id='{seeded.plain}'] td").nth(4).inner_text()
    assert best_cell.startswith(f"{best:.6g}"), best_cell
    assert "Pareto front" in p.locator(f"#studies-table tr[data-id='{seeded.pareto}']").inner_text()
    page.screenshot(tmp_path, "studies")
    p.click(f"#studies-table tr[data-id='{seeded.plain}'] a")
    p.wait_for_selector("#plot-history .main-svg")
    assert p.evaluate("location.hash") == f"#/study/{seeded.plain}"


def test_the_study_page_plots_every_trial_and_measurement(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    trials = seed.all_trials(seeded.api, seeded.plain)
    study = study_of(seeded, seeded.plain)
    done = completed(trials)
    assert len(done) >= 10 and Counter(t["state"] for t in trials)["pruned"] >= 5
    p = page.open(f"#/study/{seeded.plain}")

    history = page.plot("plot-history")
    assert trace(history, "trials")["x"] == [t["number"] for t in done]
    running_best, best_line = -1.0, []
    for t in done:
        running_best = max(running_best, t["values"]["accuracy"])
        best_line.append(running_best)
    assert trace(history, "best so far")["y"] == best_line

    (parcoords,) = page.plot("plot-parcoords")
    labels = [d["label"] for d in parcoords["dimensions"]]
    assert labels == ["lr (log10)", "depth", "batch", "optimizer", "momentum", "accuracy"]
    assert all(len(d["values"]) == len(done) for d in parcoords["dimensions"])

    slices = page.plot("plot-slice")
    assert [t["name"] for t in slices] == [p["name"] for p in study["parameters"]]
    for s in slices:
        assert len(s["x"]) == sum(1 for t in done if t["params"].get(s["name"]) is not None)

    curves = page.plot("plot-intermediate")
    for group, states in GROUPS.items():
        expected = sum(len(t["measurements"]) for t in trials if t["state"] in states)
        assert points(trace(curves, group)) == expected, group
    stopped = [t for t in trials if t["state"] == "pruned"]
    assert points(trace(curves, "stopped here")) == len(stopped)

    timeline = page.plot("plot-timeline")
    for group, states in GROUPS.items():
        ran = [t for t in trials if t["state"] in states and t["started_at"]]
        assert points(trace(timeline, group)) == 2 * len(ran), group
    workers = {y for t in timeline for y in t["y"] if y is not None}
    assert workers == {t["client_id"] for t in trials}

    assert p.inner_text("#cv-score") == "0.9321"
    assert p.inner_text("#test-score") == "0.9105"
    spec = json.loads(p.inner_text("#spec"))
    assert spec["parameters"] == study["parameters"] and spec["name"] == study["name"]
    assert p.locator("#card-pareto").count() == 0  # one objective: no Pareto front
    page.screenshot(tmp_path, "study")


def test_paused_and_resumed_trials_are_marked_on_the_curves(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    trials = seed.all_trials(seeded.api, seeded.asha)
    paused = [t for t in trials if t["state"] == "paused"]
    resumed = [t for t in trials if t["resume_from_step"] is not None]
    assert paused and resumed, Counter(t["state"] for t in trials)
    page.open(f"#/study/{seeded.asha}")
    curves = page.plot("plot-intermediate")
    assert points(trace(curves, "paused")) == sum(len(t["measurements"]) for t in paused)
    assert sorted(trace(curves, "paused here")["customdata"]) == [t["number"] for t in paused]
    marks = trace(curves, "resumed here")
    assert marks["customdata"] == [t["number"] for t in resumed]
    assert marks["x"] == [t["resume_from_step"] for t in resumed]
    page.screenshot(tmp_path, "asha", plot="plot-intermediate")


def test_a_multi_objective_study_shows_the_same_pareto_front_as_the_api(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    trials = seed.all_trials(seeded.api, seeded.pareto)
    front = seed.ok(seeded.api.get(f"{seed.API}/studies/{seeded.pareto}/best"))["trials"]
    p = page.open(f"#/study/{seeded.pareto}")
    pareto = page.plot("plot-pareto")
    assert len(trace(pareto, "trials")["x"]) == len(trials)
    assert sorted(trace(pareto, "Pareto front")["customdata"]) == [t["number"] for t in front]
    assert 2 <= len(front) < len(trials)
    # the objective picker redraws the history for the other objective
    p.select_option("#objective-select", "latency")
    page.show("plot-history")
    assert p.evaluate("document.getElementById('plot-history').layout.yaxis.title.text") == (
        "latency"
    )
    best = min(t["values"]["latency"] for t in trials)
    assert trace(page.plot("plot-history"), "best so far")["y"][-1] == best
    # no measurements and no workers here: the plots say so instead of drawing empty axes
    assert p.locator("#plot-intermediate").is_hidden()
    assert "no trial has reported" in p.inner_text("#plot-intermediate-note")
    page.screenshot(tmp_path, "pareto", plot="plot-pareto")


def test_the_trial_table_pages_sorts_and_filters(page: Page, seeded: Seeded) -> None:
    trials = seed.all_trials(seeded.api, seeded.plain)
    assert len(trials) > 50
    p = page.open(f"#/study/{seeded.plain}")
    rows = p.locator("#trial-table tbody tr")
    assert rows.count() == 50
    assert p.inner_text("#page-info") == f"page 1 of 2 · {len(trials)} trials"
    p.click("#page-next")
    assert rows.count() == len(trials) - 50
    assert rows.first.get_attribute("data-number") == "50"
    assert p.locator("#page-next").is_disabled()

    pruned = [t["number"] for t in trials if t["state"] == "pruned"]
    p.select_option("#state-filter", "pruned")
    assert p.inner_text("#page-info") == f"page 1 of 1 · {len(pruned)} trials"
    shown = [int(r.get_attribute("data-number")) for r in rows.all()]
    assert shown == pruned

    p.select_option("#state-filter", "")
    p.click("#trial-table th[data-key='v:accuracy']")  # ascending
    p.click("#trial-table th[data-key='v:accuracy']")  # descending
    top = max(
        (t for t in trials if t["values"]), key=lambda t: (t["values"]["accuracy"], -t["number"])
    )
    assert rows.first.get_attribute("data-number") == str(top["number"])


def test_the_trial_page_shows_params_values_measurements_and_metadata(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    trials = seed.all_trials(seeded.api, seeded.asha)
    trial = max(trials, key=lambda t: len(t["measurements"]))
    p = page.open(f"#/study/{seeded.asha}/trial/{trial['number']}")
    params = p.inner_text("#card-params")
    for name in trial["params"]:
        assert name in params
    assert p.locator("#measurements-table tbody tr").count() == len(trial["measurements"])
    (curve,) = page.plot("plot-measurements")
    assert curve["x"] == [m["step"] for m in trial["measurements"]]
    assert json.loads(p.inner_text("#metadata")) == trial["metadata"]
    assert trial["state"] in p.inner_text("#card-life")
    page.screenshot(tmp_path, "trial")
