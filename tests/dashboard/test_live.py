"""What changes while the page is open: a trial completed through the API appears without
a reload; the page's actions (pause, resume, stop, enqueue, downloads) reach the API."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from tests.dashboard import seed
from tests.dashboard.conftest import Page, Seeded, trace
from tests.specs import small_spec

API = seed.API


def study_with_running_trials(seeded: Seeded, name: str, finished: int, running: int) -> int:
    study = seed.create(seeded.api, small_spec(name, algorithm="random", seed=5, max_trials=20))
    for i in range(finished + running):
        trial = seed.suggest(seeded.api, study, f"live-{i}")
        assert trial is not None
        if i < finished:
            seed.complete(seeded.api, study, trial["number"], {"accuracy": 0.1 + 0.01 * i})
    return study


def row_state(page: Page, number: int) -> str:
    return str(page.page.inner_text(f"#trial-table tr[data-number='{number}'] .badge"))


def test_a_trial_completed_through_the_api_appears_without_a_reload(
    page: Page, seeded: Seeded, tmp_path: Path
) -> None:
    study = study_with_running_trials(seeded, "live", finished=3, running=1)
    p = page.open(f"#/study/{study}")
    p.evaluate("window.notReloaded = true")
    assert len(trace(page.plot("plot-history"), "trials")["x"]) == 3
    assert row_state(page, 3) == "active"

    seed.measure(seeded.api, study, 3, 0, 0.5)
    seed.complete(seeded.api, study, 3, {"accuracy": 0.99})
    started = time.monotonic()
    p.wait_for_function(
        "() => { const d = document.getElementById('plot-history');"
        " return d.data && d.data[0].x.length === 4; }",
        timeout=15_000,
    )
    seen_after = time.monotonic() - started
    assert p.evaluate("window.notReloaded") is True, "the page was reloaded"
    assert trace(page.plot("plot-history"), "best so far")["y"][-1] == 0.99
    assert row_state(page, 3) == "completed"
    assert "0.99 (trial 3)" in p.inner_text(".study-head")
    curves = page.plot("plot-intermediate")
    assert trace(curves, "completed")["customdata"] == [3, None]
    assert seen_after < 10, f"took {seen_after:.1f} s (polls every 2 s)"
    page.screenshot(tmp_path, "live", plot="plot-history")


def test_pause_resume_stop_and_enqueue_from_the_page(page: Page, seeded: Seeded) -> None:
    study = study_with_running_trials(seeded, "actions", finished=1, running=2)
    url = f"{API}/studies/{study}"
    p = page.open(f"#/study/{study}")

    p.click("#pause-study")
    p.wait_for_selector("#resume-study")
    assert seed.ok(seeded.api.get(url))["state"] == "paused"
    p.click("#resume-study")
    p.wait_for_selector("#pause-study")
    assert seed.ok(seeded.api.get(url))["state"] == "active"

    p.click("button[data-stop='2']")
    p.wait_for_function(
        "() => document.querySelector(\"#trial-table tr[data-number='2'] .badge\")"
        ".textContent === 'stopping'"
    )
    assert seed.ok(seeded.api.get(f"{url}/trials/2"))["state"] == "stopping"

    p.fill("#enqueue-form input[name='lr']", "0.001")
    p.fill("#enqueue-form input[name='depth']", "5")
    p.select_option("#enqueue-form select[name='batch']", label="32")
    p.select_option("#enqueue-form select[name='optimizer']", label="sgd")
    p.fill("#enqueue-form input[name='momentum']", "0.5")
    p.click("#enqueue-form button[type='submit']")
    p.wait_for_selector("#enqueue-form[data-queued]")
    number = int(p.get_attribute("#enqueue-form", "data-queued"))
    queued = seed.ok(seeded.api.get(f"{url}/trials/{number}"))
    assert queued["state"] == "requested"
    assert queued["params"] == {
        "lr": 0.001,
        "depth": 5,
        "batch": 32,
        "optimizer": "sgd",
        "momentum": 0.5,
    }
    p.wait_for_selector(f"#trial-table tr[data-number='{number}']")

    # a value out of range: the API's 422 is shown, nothing is queued
    p.fill("#enqueue-form input[name='depth']", "99")
    p.click("#enqueue-form button[type='submit']")
    p.wait_for_selector("#toast.error")
    assert "depth" in p.inner_text("#toast")
    assert len(seed.all_trials(seeded.api, study)) == number + 1


def test_the_download_buttons_save_every_trial_or_say_exports_are_missing(
    page: Page, seeded: Seeded
) -> None:
    trials = seed.all_trials(seeded.api, seeded.plain)
    probe = seeded.api.get(f"{API}/studies/{seeded.plain}/trials", params={"format": "csv"})
    exports = probe.headers["content-type"].split(";")[0] != "application/json"
    p = page.open(f"#/study/{seeded.plain}")
    if not exports:  # a server before the export endpoints (issue 19, point 4)
        p.click("#export-csv")
        p.wait_for_selector("#toast.error")
        assert "csv export not available on this server" in p.inner_text("#toast")
        return
    with p.expect_download() as csv_download:
        p.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text())))
    assert sorted(int(r["number"]) for r in rows) == [t["number"] for t in trials]
    with p.expect_download() as jsonl_download:
        p.click("#export-jsonl")
    lines = Path(jsonl_download.value.path()).read_text().splitlines()
    assert sorted(json.loads(line)["number"] for line in lines) == [t["number"] for t in trials]
