"""Smoke test of the PBT benchmark: a ``--quick`` run through the real service spends equal
compute in every method and writes its table."""

from __future__ import annotations

import json
from pathlib import Path

from bench.population_pbt import main


def test_quick_run_spends_equal_compute_and_reports(tmp_path: Path) -> None:
    out, raw = tmp_path / "pbt.txt", tmp_path / "pbt.json"
    assert main(["--quick", "--out", str(out), "--json", str(raw)]) == 0
    text = out.read_text()
    assert "- command: `python -m bench.population_pbt --quick" in text
    for method in ("random", "asha", "pbt"):
        assert f"| {method} |" in text
    runs = json.loads(raw.read_text())["runs"]
    assert {r["epochs_spent"] for r in runs} == {4 * 6}  # population x epochs, each method
    assert all(r["finals"] for r in runs)
    assert any(r["exploits"] for r in runs if r["method"] == "pbt")
