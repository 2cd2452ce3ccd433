"""``tuneforge report``: a real study on a live server (trials with intermediate values, some
pruned by the median rule, a stored held-out evaluation) written to one HTML file that
references no remote URL and holds every plot's data."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tuneforge
from tests.cli.test_cli_studies import ok, run
from tests.conftest import LiveServer
from tuneforge.api.db.migrate import upgrade

SPEC = {
    "name": "report-me",
    "description": "width & depth <sweep>",
    "parameters": [
        {"name": "lr", "type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        {"name": "depth", "type": "int", "low": 1, "high": 8},
        {"name": "act", "type": "categorical", "values": ["relu", "tanh"]},
    ],
    "metrics": [{"name": "accuracy", "goal": "maximize"}],
    "algorithm": "random",
    "early_stopping": {"rule": "median", "n_startup_trials": 3},
    "seed": 5,
}
#: A remote resource in a tag attribute or a stylesheet: what would need the network.
REMOTE = re.compile(
    r"<(?:script|link|img|iframe|source|embed)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//"
    r"|url\(\s*[\"']?\s*(?:https?:)?//|@import",
    re.IGNORECASE,
)


def accuracy(params: dict[str, Any], step: int) -> float:
    base = 1 - abs(np.log10(params["lr"]) + 2) / 4 - (0.1 if params["act"] == "tanh" else 0)
    return round(base * (1 - 0.5 ** (step + 1)), 6)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'tuneforge.db'}"
    upgrade(url)
    live = LiveServer(url).start()
    yield live
    live.stop()


def run_study(server: LiveServer) -> tuneforge.Study:
    """18 trials reporting 5 steps each (the median rule prunes some), one running."""
    with tuneforge.Client(server.url) as client:
        study = client.create_study(SPEC)
        for _ in range(18):
            (trial,) = study.suggest(1)
            for step in range(5):
                if trial.report(step, accuracy=accuracy(trial.params, step)):
                    break
            trial.complete(accuracy=trial.last_reported["accuracy"])
        (running,) = study.suggest(1)
        assert not running.report(0, accuracy=0.99)  # still running in the picture
        best = study.best()
        assert best is not None
        study.store_evaluation(
            {
                "trial_number": best.number,
                "params": best.params,
                "cv_score": 0.912,
                "test_score": 0.873,
            }
        )
        return study.refresh()


def figures(page: str) -> dict[str, Any]:
    found = re.findall(
        r'<script type="application/json" id="figure-([\w-]+)">(.*?)</script>', page, re.S
    )
    return {key: json.loads(text) for key, text in found}


def test_report_is_self_contained_with_every_plot_and_the_best_configuration(
    server: LiveServer, tmp_path: Path
) -> None:
    study = run_study(server)
    trials = [t.data for t in tuneforge.Client(server.url).get_study(study.id).trials()]
    out = tmp_path / "report.html"
    said = ok(run("report", "report-me", "-o", str(out), url=server.url))
    assert said.startswith(f"wrote the report of study {study.id} 'report-me' to {out}")
    page = out.read_text(encoding="utf-8")

    assert not REMOTE.search(page), REMOTE.search(page)
    assert page.count("<script") == len(figures(page)) + 2  # plotly.js, the figures, the boot
    assert "Plotly.newPlot" in page and len(page) > 3_000_000  # plotly.js itself is inline

    plots = figures(page)
    assert set(plots) == {"history-0", "importance", "interactions", "early-stopping"}
    done = [t for t in trials if t.state == "completed"]
    pruned = [t for t in trials if t.state == "pruned"]
    assert pruned, "the median rule pruned no trial: the picture would not show one"
    points, best_line = plots["history-0"]["data"]
    assert points["x"] == [t.number for t in done] and len(best_line["y"]) == len(done)
    assert best_line["y"][-1] == max(t.values["accuracy"] for t in done if t.values)
    curves = plots["early-stopping"]["data"]
    assert len(curves) == len([t for t in trials if t.measurements]) == 19
    assert {c["name"] for c in curves} == {"completed", "pruned", "active"}
    assert sum(c["name"] == "pruned" for c in curves) == len(pruned)
    assert sorted(plots["importance"]["data"][0]["y"]) == ["act", "depth", "lr"]
    assert len(plots["interactions"]["data"][0]["y"]) == 3

    best = study.data.best_trial
    assert best is not None
    assert f"trial {best.number}</td>" in page
    for name, value in best.params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        assert f"<code>{name}</code> = {shown}" in page
    assert "0.912</td>" in page and "0.873</td>" in page  # CV beside held-out test
    assert "width &amp; depth &lt;sweep&gt;" in page  # text is escaped
    assert "&quot;early_stopping&quot;: {" in page and "median" in page  # the spec


def test_report_of_a_study_without_results_says_so(server: LiveServer, tmp_path: Path) -> None:
    with tuneforge.Client(server.url) as client:
        client.create_study({**SPEC, "name": "empty"})
    out = tmp_path / "empty.html"
    ok(run("report", "empty", "-o", str(out), url=server.url))
    page = out.read_text(encoding="utf-8")
    assert figures(page) == {}
    assert "No completed trial yet." in page and "at least 5 completed trials" in page
    assert "Not evaluated on held-out data" in page
