"""Smoke test of bench/dashboard.py: a tiny study, one page load, the whole report."""

from __future__ import annotations

import pytest

from bench.dashboard import main
from tests.dashboard.conftest import require_chromium


def test_the_dashboard_bench_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    require_chromium()
    assert main(["--trials", "40", "--measurements", "2", "--runs", "1"]) == 0
    text = capsys.readouterr().out
    assert "- command: `python -m bench.dashboard --trials 40 --measurements 2 --runs 1`" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    for row in ("header and trial table", "first figure (history)", "longest main-thread task"):
        seconds = float(rows[row].split("|")[2].split()[0])
        assert 0 <= seconds < 60, rows[row]
    assert "- table rows in the DOM: 40" in text
    assert "- trial requests of the first load: 1, each at most 200 trials" in text
